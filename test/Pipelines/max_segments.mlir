// Bag max with max_indices, run by stock mlir-runner, with the argmax
// segment pinned to 2 entries (the default is 2^31 - 1): the i32 positions
// of each segment are turned into rows, and kept across segments, exactly
// as one segment would (ties to the first entry, padding skipped, -1 for
// an empty bag). i32 indices, so the gathered rows are sign-extended.
// RUN: emb-opt %s -convert-emb-to-scf=argmax-segment=2 -emb-cpu-pipeline \
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \
// RUN:   | FileCheck %s
// RUN: emb-opt %s -emb-cpu-pipeline \
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \
// RUN:   | FileCheck %s

// Bags: [2, 0, 1, 3, 1], [], [2, 0].
// CHECK: [3,   9]
// CHECK-NEXT: [0,   0]
// CHECK-NEXT: [3,   7]
// CHECK: [2,   3]
// CHECK-NEXT: [-1,   -1]
// CHECK-NEXT: [2,   2]
// With padding_idx = 2: [0, 1, 3, 1], [], [0].
// CHECK: [3,   9]
// CHECK-NEXT: [0,   0]
// CHECK-NEXT: [1,   5]
// CHECK: [1,   3]
// CHECK-NEXT: [-1,   -1]
// CHECK-NEXT: [0,   0]

func.func private @printMemrefF32(memref<*xf32>)
func.func private @printMemrefI64(memref<*xi64>)

func.func @show(%v: tensor<3x2xf32>, %i: tensor<3x2xi64>) {
  %vb = bufferization.to_buffer %v : tensor<3x2xf32> to memref<3x2xf32>
  %vu = memref.cast %vb : memref<3x2xf32> to memref<*xf32>
  call @printMemrefF32(%vu) : (memref<*xf32>) -> ()
  %ib = bufferization.to_buffer %i : tensor<3x2xi64> to memref<3x2xi64>
  %iu = memref.cast %ib : memref<3x2xi64> to memref<*xi64>
  call @printMemrefI64(%iu) : (memref<*xi64>) -> ()
  return
}

func.func @main() {
  %w = arith.constant dense<[[1.0, 5.0], [3.0, 2.0], [3.0, 7.0], [0.0, 9.0]]> : tensor<4x2xf32>
  %x = arith.constant dense<[2, 0, 1, 3, 1, 2, 0]> : tensor<7xi32>
  %off = arith.constant dense<[0, 5, 5]> : tensor<3xi64>
  %v, %i = emb.bag max %w[%x] offsets(%off : tensor<3xi64>) : tensor<4x2xf32>[tensor<7xi32>] -> tensor<3x2xf32>, tensor<3x2xi64>
  call @show(%v, %i) : (tensor<3x2xf32>, tensor<3x2xi64>) -> ()
  %pv, %pi = emb.bag max %w[%x] offsets(%off : tensor<3xi64>) {padding_idx = 2 : i64} : tensor<4x2xf32>[tensor<7xi32>] -> tensor<3x2xf32>, tensor<3x2xi64>
  call @show(%pv, %pi) : (tensor<3x2xf32>, tensor<3x2xi64>) -> ()
  return
}
