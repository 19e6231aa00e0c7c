// A gather whose row is a pure function of the index (a clamp that makes
// it safe, ONNX Gather's wrap of negative indices, casts) is a lookup of
// that function's rows: the function is hoisted into an elementwise generic
// over the indices (the body's own ops), and the gather becomes emb.lookup
// of its result. Exact for every index, valid or not. A row that depends
// on anything else (a loop index, another tensor) is not a gather's.
// RUN: emb-opt %s -raise-linalg-to-emb | FileCheck %s
// Raised or not, the same values (stock mlir-runner):
// RUN: emb-opt %s -raise-linalg-to-emb -emb-cpu-pipeline \
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \
// RUN:   | FileCheck %s --check-prefix=VALUES
// RUN: %stock_mlir_opt %s -one-shot-bufferize=bufferize-function-boundaries \
// RUN:     -convert-linalg-to-loops -convert-scf-to-cf -expand-strided-metadata \
// RUN:     -lower-affine -convert-to-llvm -reconcile-unrealized-casts \
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \
// RUN:   | FileCheck %s --check-prefix=VALUES

#x = affine_map<(d0, d1) -> (d0)>
#o = affine_map<(d0, d1) -> (d0, d1)>

// CHECK-LABEL: func @clamped
// CHECK-SAME: (%[[W:.*]]: tensor<5x2xf32>, %[[X:.*]]: tensor<4xi64>)
// CHECK: %[[ROWS:.*]] = linalg.generic {{.*}} ins(%[[X]] : tensor<4xi64>) outs(%{{.*}} : tensor<4xi64>)
// CHECK: arith.maxsi
// CHECK: arith.minsi
// CHECK: linalg.yield %{{.*}} : i64
// CHECK: emb.lookup %[[W]][%[[ROWS]]] : tensor<5x2xf32>[tensor<4xi64>] -> tensor<4x2xf32>
func.func @clamped(%w: tensor<5x2xf32>, %x: tensor<4xi64>) -> tensor<4x2xf32> {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %e = tensor.empty() : tensor<4x2xf32>
  %r = linalg.generic {indexing_maps = [#x, #o], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4xi64>) outs(%e : tensor<4x2xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %lo = arith.maxsi %i, %c0 : index
    %safe = arith.minsi %lo, %c4 : index
    %d = linalg.index 1 : index
    %v = tensor.extract %w[%safe, %d] : tensor<5x2xf32>
    linalg.yield %v : f32
  } -> tensor<4x2xf32>
  return %r : tensor<4x2xf32>
}

// ONNX Gather: a negative index counts from the end (V from tensor.dim).
// CHECK-LABEL: func @wrapped
// CHECK: %[[V:.*]] = tensor.dim
// CHECK: %[[ROWS:.*]] = linalg.generic
// CHECK: arith.cmpi slt
// CHECK: arith.select
// CHECK: emb.lookup %{{.*}}[%[[ROWS]]]
func.func @wrapped(%w: tensor<?x2xf32>, %x: tensor<4xi32>) -> tensor<4x2xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0 : i32
  %v = tensor.dim %w, %c0 : tensor<?x2xf32>
  %vi = arith.index_cast %v : index to i32
  %e = tensor.empty() : tensor<4x2xf32>
  %r = linalg.generic {indexing_maps = [#x, #o], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4xi32>) outs(%e : tensor<4x2xf32>) {
  ^bb0(%in: i32, %out: f32):
    %neg = arith.cmpi slt, %in, %zero : i32
    %up = arith.addi %in, %vi : i32
    %s = arith.select %neg, %up, %in : i32
    %i = arith.index_cast %s : i32 to index
    %d = linalg.index 1 : index
    %g = tensor.extract %w[%i, %d] : tensor<?x2xf32>
    linalg.yield %g : f32
  } -> tensor<4x2xf32>
  return %r : tensor<4x2xf32>
}

// The row moves with the loop (x + i): not a gather of rows by index.
// CHECK-LABEL: func @row_uses_a_loop_index
// CHECK-NOT: emb.lookup
// CHECK: return
func.func @row_uses_a_loop_index(%w: tensor<5x2xf32>, %x: tensor<4xi64>) -> tensor<4x2xf32> {
  %e = tensor.empty() : tensor<4x2xf32>
  %r = linalg.generic {indexing_maps = [#x, #o], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4xi64>) outs(%e : tensor<4x2xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %k = linalg.index 0 : index
    %s = arith.addi %i, %k : index
    %d = linalg.index 1 : index
    %v = tensor.extract %w[%s, %d] : tensor<5x2xf32>
    linalg.yield %v : f32
  } -> tensor<4x2xf32>
  return %r : tensor<4x2xf32>
}

// The row read through another table (a remapping): not an embedding's.
// CHECK-LABEL: func @row_through_another_tensor
// CHECK-NOT: emb.lookup
// CHECK: return
func.func @row_through_another_tensor(%w: tensor<5x2xf32>, %map: tensor<5xindex>, %x: tensor<4xi64>) -> tensor<4x2xf32> {
  %e = tensor.empty() : tensor<4x2xf32>
  %r = linalg.generic {indexing_maps = [#x, #o], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4xi64>) outs(%e : tensor<4x2xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %m = tensor.extract %map[%i] : tensor<5xindex>
    %d = linalg.index 1 : index
    %v = tensor.extract %w[%m, %d] : tensor<5x2xf32>
    linalg.yield %v : f32
  } -> tensor<4x2xf32>
  return %r : tensor<4x2xf32>
}

func.func private @printMemrefF32(memref<*xf32>)

func.func @main() {
  %w = arith.constant dense<[[0.0, 0.5], [1.0, 1.5], [2.0, 2.5], [3.0, 3.5], [4.0, 4.5]]> : tensor<5x2xf32>
  %x = arith.constant dense<[-3, 1, 9, 4]> : tensor<4xi64>
  %c = call @clamped(%w, %x) : (tensor<5x2xf32>, tensor<4xi64>) -> tensor<4x2xf32>
  %cb = bufferization.to_buffer %c : tensor<4x2xf32> to memref<4x2xf32>
  %cu = memref.cast %cb : memref<4x2xf32> to memref<*xf32>
  call @printMemrefF32(%cu) : (memref<*xf32>) -> ()
  // VALUES: [0,   0.5]
  // VALUES-NEXT: [1,   1.5]
  // VALUES-NEXT: [4,   4.5]
  // VALUES-NEXT: [4,   4.5]
  %wd = tensor.cast %w : tensor<5x2xf32> to tensor<?x2xf32>
  %xi = arith.constant dense<[-1, -5, 2, 0]> : tensor<4xi32>
  %r = call @wrapped(%wd, %xi) : (tensor<?x2xf32>, tensor<4xi32>) -> tensor<4x2xf32>
  %rb = bufferization.to_buffer %r : tensor<4x2xf32> to memref<4x2xf32>
  %ru = memref.cast %rb : memref<4x2xf32> to memref<*xf32>
  call @printMemrefF32(%ru) : (memref<*xf32>) -> ()
  // VALUES: [4,   4.5]
  // VALUES-NEXT: [0,   0.5]
  // VALUES-NEXT: [2,   2.5]
  // VALUES-NEXT: [0,   0.5]
  return
}
