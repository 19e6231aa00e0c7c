// raise-linalg-to-emb: the linalg.generic gather torch-mlir emits for
// aten.embedding (IR in exactly its form, bounds checks included) becomes
// emb.lookup; the checks are kept; other generics are left unchanged.
// RUN: emb-opt %s -raise-linalg-to-emb -split-input-file | FileCheck %s

#map = affine_map<(d0, d1, d2) -> (d0, d1)>
#map1 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-LABEL: func @torch_mlir_embedding
// CHECK-SAME: (%[[X:.*]]: tensor<1x128xi64>, %[[W:.*]]: tensor<30522x768xf32>)
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[X]]
// CHECK: scf.for
// CHECK:   cf.assert %{{.*}}, "index must be smaller than dim size"
// CHECK:   cf.assert %{{.*}}, "index must be larger or equal to 0"
// CHECK: %[[R:.*]] = emb.lookup %[[W]][%[[X]]] : tensor<30522x768xf32>[tensor<1x128xi64>] -> tensor<1x128x768xf32>
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
func.func @torch_mlir_embedding(%arg0: tensor<1x128xi64>, %cst_7: tensor<30522x768xf32>) -> tensor<1x128x768xf32> {
  %c30522 = arith.constant 30522 : index
  %c0_i64 = arith.constant 0 : i64
  %0 = tensor.empty() : tensor<1x128x768xf32>
  %1 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel", "parallel"]} ins(%arg0 : tensor<1x128xi64>) outs(%0 : tensor<1x128x768xf32>) {
  ^bb0(%in: i64, %out: f32):
    %741 = arith.index_cast %in : i64 to index
    %742 = linalg.index 2 : index
    %743 = arith.cmpi slt, %741, %c30522 : index
    cf.assert %743, "index must be smaller than dim size"
    %744 = arith.cmpi sge, %in, %c0_i64 : i64
    cf.assert %744, "index must be larger or equal to 0"
    %extracted = tensor.extract %cst_7[%741, %742] : tensor<30522x768xf32>
    linalg.yield %extracted : f32
  } -> tensor<1x128x768xf32>
  return %1 : tensor<1x128x768xf32>
}

// -----

// Without the bounds checks (and with a dynamic table, 1-D indices).
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func @no_checks
// CHECK-NOT: cf.assert
// CHECK: emb.lookup %{{.*}}[%{{.*}}] : tensor<?x?xf16>[tensor<?xi32>] -> tensor<?x?xf16>
// CHECK-NOT: linalg.generic
func.func @no_checks(%w: tensor<?x?xf16>, %x: tensor<?xi32>, %init: tensor<?x?xf16>) -> tensor<?x?xf16> {
  %1 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi32>) outs(%init : tensor<?x?xf16>) {
  ^bb0(%in: i32, %out: f16):
    %i = arith.index_cast %in : i32 to index
    %j = linalg.index 1 : index
    %e = tensor.extract %w[%i, %j] : tensor<?x?xf16>
    linalg.yield %e : f16
  } -> tensor<?x?xf16>
  return %1 : tensor<?x?xf16>
}

// -----

// The body does more than gather (scales the row): left unchanged.
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func @not_a_plain_gather
// CHECK: linalg.generic
// CHECK-NOT: emb.lookup
func.func @not_a_plain_gather(%w: tensor<?x?xf32>, %x: tensor<?xi64>, %init: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c2 = arith.constant 2.0 : f32
  %1 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi64>) outs(%init : tensor<?x?xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %j = linalg.index 1 : index
    %e = tensor.extract %w[%i, %j] : tensor<?x?xf32>
    %s = arith.mulf %e, %c2 : f32
    linalg.yield %s : f32
  } -> tensor<?x?xf32>
  return %1 : tensor<?x?xf32>
}

// -----

// The column is not the last loop index (a transposed read): unchanged.
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func @wrong_column
// CHECK: linalg.generic
// CHECK-NOT: emb.lookup
func.func @wrong_column(%w: tensor<?x?xf32>, %x: tensor<?xi64>, %init: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %1 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi64>) outs(%init : tensor<?x?xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %j = linalg.index 0 : index
    %e = tensor.extract %w[%i, %j] : tensor<?x?xf32>
    linalg.yield %e : f32
  } -> tensor<?x?xf32>
  return %1 : tensor<?x?xf32>
}

// -----

// Reads the output (an accumulation, not a gather): unchanged.
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func @reads_output
// CHECK: linalg.generic
// CHECK-NOT: emb.lookup
func.func @reads_output(%w: tensor<?x?xf32>, %x: tensor<?xi64>, %init: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %1 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi64>) outs(%init : tensor<?x?xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %j = linalg.index 1 : index
    %e = tensor.extract %w[%i, %j] : tensor<?x?xf32>
    %s = arith.addf %e, %out : f32
    linalg.yield %s : f32
  } -> tensor<?x?xf32>
  return %1 : tensor<?x?xf32>
}
