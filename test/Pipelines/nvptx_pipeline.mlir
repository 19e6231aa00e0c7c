// emb-nvptx-pipeline: emb -> gpu.launch -> outlined kernels -> NVVM -> PTX.
// The PTX uses 16-byte vector loads and stores and 64-bit address
// arithmetic; ptxas accepts it for sm_80 and sm_90 when installed.
// RUN: emb-opt %s --emb-nvptx-pipeline="chip=sm_90" | FileCheck %s
// RUN: emb-opt %s --emb-nvptx-pipeline="chip=sm_80 ptx=70" | FileCheck %s --check-prefix=SM80
// RUN: emb-opt %s --emb-nvptx-pipeline="chip=sm_90" --mlir-print-ir-after=gpu-kernel-outlining 2>&1 >/dev/null | FileCheck %s --check-prefix=OUTLINED

// OUTLINED: gpu.launch_func {{ *}}@lookup_kernel::@lookup_kernel blocks in ({{.*}}) threads in (%c256, %c1, %c1) args({{[^)]*}}memref<?xi64>, {{[^)]*}}memref<1000x128xf32>, {{[^)]*}}memref<?x128xf32>)
// OUTLINED: gpu.module @lookup_kernel
// OUTLINED: gpu.func @lookup_kernel({{.*}}) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// Constants are sunk into the kernel, not passed as parameters.
// OUTLINED: arith.constant 32 : index

// CHECK: gpu.launch_func {{ *}}@lookup_kernel::@lookup_kernel
// CHECK: gpu.binary @lookup_kernel [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">
// CHECK-SAME: .target sm_90
// CHECK-SAME: .address_size 64
// The block size and the occupancy floor (emb-set-kernel-occupancy): ptxas
// may use 64 registers a thread and keep 4 blocks of 256 threads an SM.
// CHECK-SAME: .maxntid 256, 1, 1
// CHECK-SAME: .minnctapersm 4
// CHECK-SAME: ld.global.b64
// CHECK-SAME: ld.global.v4.{{[bf]}}32
// CHECK-SAME: st.global.v4.{{[bf]}}32
// CHECK: gpu.binary @bag_kernel
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: cvt.f32.f16
// CHECK-SAME: div.rn.f32
// CHECK-SAME: cvt.rn.f16x2.f32
// CHECK-SAME: st.global.v4.b32

// SM80: #nvvm.target<O = 3, chip = "sm_80", features = "+ptx70">
// SM80-SAME: .version 7.0
// SM80-SAME: .target sm_80

func.func @lookup(%w: tensor<1000x128xf32>, %x: tensor<?xi64>) -> tensor<?x128xf32> {
  %r = emb.lookup %w[%x] : tensor<1000x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  return %r : tensor<?x128xf32>
}

func.func @bag(%w: tensor<1000x64xf16>, %x: tensor<?xi64>, %o: tensor<?xi64>) -> tensor<?x64xf16> {
  %r = emb.bag mean %w[%x] offsets(%o : tensor<?xi64>) {padding_idx = 3 : i64} : tensor<1000x64xf16>[tensor<?xi64>] -> tensor<?x64xf16>
  return %r : tensor<?x64xf16>
}
