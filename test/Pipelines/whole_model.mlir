// A whole model through raise-linalg-to-emb and emb-cpu-pipeline, run by
// stock mlir-runner: a text classifier in torch-mlir's linalg form (the
// embedding as a gathering generic, the mean over the sequence, a
// linear layer). The raise makes the gather, its sum over the sequence and
// the divide one emb.bag mean (2-D ids); the pipeline
// lowers the rest of the model (linalg.fill, the reduction, linalg.matmul,
// the bias add) too. The expected values are torch's:
//   F.embedding(ids, table).mean(1) @ w + bias
// RUN: emb-opt %s -raise-linalg-to-emb | FileCheck %s --check-prefix=RAISED
// RUN: emb-opt %s -raise-linalg-to-emb -emb-cpu-pipeline \
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \
// RUN:   | FileCheck %s

// RAISED-LABEL: func.func @classify
// RAISED: emb.bag mean %{{.*}}[%{{.*}}] : tensor<5x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
// RAISED: linalg.matmul

// CHECK: rank = 2 offset = 0 sizes = [2, 2]
// CHECK-NEXT: [3.725, 3.63333]
// CHECK-NEXT: [1.37083, -3.28333]

#map = affine_map<(d0, d1, d2) -> (d0, d1)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d2)>
#map3 = affine_map<(d0, d1) -> (d0, d1)>
#map4 = affine_map<(d0, d1) -> (d1)>
func.func @classify(%ids: tensor<2x3xi64>, %table: tensor<5x4xf32>, %w: tensor<4x2xf32>, %bias: tensor<2xf32>) -> tensor<2x2xf32> {
  %c5 = arith.constant 5 : index
  %c0_i64 = arith.constant 0 : i64
  %zero = arith.constant 0.0 : f32
  %three = arith.constant 3.0 : f32
  %e = tensor.empty() : tensor<2x3x4xf32>
  %rows = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "parallel"]} ins(%ids : tensor<2x3xi64>) outs(%e : tensor<2x3x4xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 2 : index
    %lt = arith.cmpi slt, %i, %c5 : index
    cf.assert %lt, "index must be smaller than dim size"
    %ge = arith.cmpi sge, %in, %c0_i64 : i64
    cf.assert %ge, "index must be larger or equal to 0"
    %x = tensor.extract %table[%i, %d] : tensor<5x4xf32>
    linalg.yield %x : f32
  } -> tensor<2x3x4xf32>
  %se = tensor.empty() : tensor<2x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x4xf32>) -> tensor<2x4xf32>
  %sum = linalg.generic {indexing_maps = [#map1, #map2], iterator_types = ["parallel", "reduction", "parallel"]} ins(%rows : tensor<2x3x4xf32>) outs(%sz : tensor<2x4xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2x4xf32>
  %me = tensor.empty() : tensor<2x4xf32>
  %mean = linalg.generic {indexing_maps = [#map3, #map3], iterator_types = ["parallel", "parallel"]} ins(%sum : tensor<2x4xf32>) outs(%me : tensor<2x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %q = arith.divf %in, %three : f32
    linalg.yield %q : f32
  } -> tensor<2x4xf32>
  %le = tensor.empty() : tensor<2x2xf32>
  %lz = linalg.fill ins(%zero : f32) outs(%le : tensor<2x2xf32>) -> tensor<2x2xf32>
  %mm = linalg.matmul ins(%mean, %w : tensor<2x4xf32>, tensor<4x2xf32>) outs(%lz : tensor<2x2xf32>) -> tensor<2x2xf32>
  %be = tensor.empty() : tensor<2x2xf32>
  %out = linalg.generic {indexing_maps = [#map3, #map4, #map3], iterator_types = ["parallel", "parallel"]} ins(%mm, %bias : tensor<2x2xf32>, tensor<2xf32>) outs(%be : tensor<2x2xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<2x2xf32>
  return %out : tensor<2x2xf32>
}

func.func private @printMemrefF32(memref<*xf32>)

func.func @main() {
  %ids = arith.constant dense<[[1, 4, 2], [0, 0, 3]]> : tensor<2x3xi64>
  %table = arith.constant dense<[[0.5, -1.0, 2.0, 0.25], [1.0, 2.0, 3.0, 4.0],
                                 [-2.0, 0.5, 1.5, -0.5], [3.0, -3.0, 0.75, 1.25],
                                 [0.0, 1.0, -1.0, 2.0]]> : tensor<5x4xf32>
  %w = arith.constant dense<[[1.0, -1.0], [0.5, 2.0], [-0.25, 1.0], [2.0, 0.0]]> : tensor<4x2xf32>
  %bias = arith.constant dense<[0.1, -0.2]> : tensor<2xf32>
  %out = call @classify(%ids, %table, %w, %bias)
      : (tensor<2x3xi64>, tensor<5x4xf32>, tensor<4x2xf32>, tensor<2xf32>) -> tensor<2x2xf32>
  %buffer = bufferization.to_buffer %out : tensor<2x2xf32> to memref<2x2xf32>
  %unranked = memref.cast %buffer : memref<2x2xf32> to memref<*xf32>
  call @printMemrefF32(%unranked) : (memref<*xf32>) -> ()
  return
}
