// emb-nvptx-runtime-pipeline: what the JIT compiles for the nvptx target.
// The kernels are embedded; the host function is LLVM dialect that calls the
// runtime table: here an f16 gradient with scale_grad_by_freq, i.e. an f32
// scratch table and i64 row counts (two allocations), five launches (zeros,
// zero counts, counts, the atomic scatter, the rounding) and two frees.
// The row window is read on the host and passed as scalars.
// RUN: emb-opt %s --emb-nvptx-runtime-pipeline="chip=sm_90" | FileCheck %s
// RUN: emb-opt %s --emb-nvptx-runtime-pipeline="chip=sm_90" | FileCheck %s --check-prefix=LAUNCH
// RUN: emb-opt %s --emb-nvptx-runtime-pipeline="chip=sm_90" | FileCheck %s --check-prefix=SCRATCH

// CHECK-COUNT-5: llvm.mlir.global internal constant @__emb_gpu_binary_
// CHECK-LABEL: llvm.func @emb_97887572dd8e7ad6(
// The window: two host loads, before any launch.
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> i64
// CHECK-NOT: gpu.
// CHECK: llvm.func @_mlir_ciface_emb_97887572dd8e7ad6

// LAUNCH-LABEL: llvm.func @emb_97887572dd8e7ad6(
// LAUNCH-COUNT-5: llvm.call %{{.*}} : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i64, !llvm.ptr, i64, i64, i64, i64, i64, i64, !llvm.ptr, i32) -> ()
// LAUNCH-NOT: (!llvm.ptr, !llvm.ptr, i64, !llvm.ptr, i64, i64, i64, i64, i64, i64, !llvm.ptr, i32) -> ()

// SCRATCH-LABEL: llvm.func @emb_97887572dd8e7ad6(
// SCRATCH-COUNT-2: llvm.call %{{.*}}(%{{.*}}) : !llvm.ptr, (i64) -> !llvm.ptr
// SCRATCH-COUNT-2: llvm.call %{{.*}}(%{{.*}}) : !llvm.ptr, (!llvm.ptr) -> ()
// SCRATCH-NOT: llvm.call %{{.*}}(%{{.*}}) : !llvm.ptr, (i64) -> !llvm.ptr

module {
  func.func @emb_97887572dd8e7ad6(%arg0: memref<?x64xf16>, %arg1: memref<?xi64>, %arg2: memref<2xi64>, %arg3: memref<?x64xf16>) attributes {llvm.emit_c_interface} {
    %0 = bufferization.to_tensor %arg0 restrict : memref<?x64xf16> to tensor<?x64xf16>
    %1 = bufferization.to_tensor %arg1 restrict : memref<?xi64> to tensor<?xi64>
    %2 = bufferization.to_tensor %arg2 restrict : memref<2xi64> to tensor<2xi64>
    %c0 = arith.constant 0 : index
    %extracted = tensor.extract %2[%c0] : tensor<2xi64>
    %3 = arith.index_cast %extracted : i64 to index
    %c1 = arith.constant 1 : index
    %extracted_0 = tensor.extract %2[%c1] : tensor<2xi64>
    %4 = arith.index_cast %extracted_0 : i64 to index
    %5 = emb.lookup_grad %0[%1] rows(%3, %4) {num_embeddings = 1000 : i64, scale_grad_by_freq} : tensor<?x64xf16>[tensor<?xi64>] -> tensor<?x64xf16>
    bufferization.materialize_in_destination %5 in restrict writable %arg3 : (tensor<?x64xf16>, memref<?x64xf16>) -> ()
    return
  }
}
