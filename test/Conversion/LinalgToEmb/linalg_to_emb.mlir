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

// -----

// torch-mlir's aten._embedding_bag (sum mode), in the form its
// TorchToLinalg emits it (zero-filled output, offsets window in the body).
#map = affine_map<(d0, d1, d2) -> (d1)>
#map1 = affine_map<(d0, d1, d2) -> (d0)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func @torch_mlir_embedding_bag
// CHECK-SAME: (%[[W:.*]]: tensor<?x?xf32>, %[[X:.*]]: tensor<?xi64>, %[[O:.*]]: tensor<?xi64>)
// CHECK: %[[R:.*]] = emb.bag sum %[[W]][%[[X]]] offsets(%[[O]] : tensor<?xi64>) : tensor<?x?xf32>[tensor<?xi64>] -> tensor<?x?xf32>
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
func.func @torch_mlir_embedding_bag(%weight: tensor<?x?xf32>, %indices: tensor<?xi64>, %offsets: tensor<?xi64>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %dim = tensor.dim %weight, %c1 : tensor<?x?xf32>
  %dim_0 = tensor.dim %offsets, %c0 : tensor<?xi64>
  %cst = arith.constant 0.000000e+00 : f32
  %0 = tensor.empty(%dim_0, %dim) : tensor<?x?xf32>
  %1 = linalg.fill ins(%cst : f32) outs(%0 : tensor<?x?xf32>) -> tensor<?x?xf32>
  %dim_1 = tensor.dim %offsets, %c0 : tensor<?xi64>
  %dim_2 = tensor.dim %indices, %c0 : tensor<?xi64>
  %2 = linalg.generic {indexing_maps = [#map, #map1, #map2], iterator_types = ["parallel", "reduction", "parallel"]} ins(%indices, %offsets : tensor<?xi64>, tensor<?xi64>) outs(%1 : tensor<?x?xf32>) {
  ^bb0(%in: i64, %in_3: i64, %out: f32):
    %3 = linalg.index 0 : index
    %4 = arith.index_cast %3 : index to i64
    %c1_i64 = arith.constant 1 : i64
    %5 = arith.addi %4, %c1_i64 : i64
    %6 = arith.index_cast %5 : i64 to index
    %7 = arith.index_cast %dim_1 : index to i64
    %8 = arith.cmpi eq, %7, %5 : i64
    %9 = arith.index_cast %dim_2 : index to i64
    %extracted = tensor.extract %offsets[%6] : tensor<?xi64>
    %10 = arith.select %8, %9, %extracted : i64
    %11 = linalg.index 1 : index
    %12 = arith.index_cast %11 : index to i64
    %13 = arith.cmpi slt, %in_3, %12 : i64
    %14 = arith.cmpi eq, %in_3, %12 : i64
    %15 = arith.ori %13, %14 : i1
    %16 = arith.cmpi slt, %12, %10 : i64
    %17 = arith.andi %15, %16 : i1
    %18 = arith.index_cast %in : i64 to index
    %19 = linalg.index 2 : index
    %extracted_4 = tensor.extract %weight[%18, %19] : tensor<?x?xf32>
    %20 = arith.addf %extracted_4, %out : f32
    %21 = arith.select %17, %20, %out : f32
    linalg.yield %21 : f32
  } -> tensor<?x?xf32>
  return %2 : tensor<?x?xf32>
}

// -----

// The same generic accumulating into an output that does not start at zero
// is not an embedding_bag: unchanged.
#map = affine_map<(d0, d1, d2) -> (d1)>
#map1 = affine_map<(d0, d1, d2) -> (d0)>
#map2 = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func @bag_into_nonzero_output
// CHECK: linalg.generic
// CHECK-NOT: emb.bag
func.func @bag_into_nonzero_output(%weight: tensor<?x?xf32>, %indices: tensor<?xi64>, %offsets: tensor<?xi64>, %init: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %dim_1 = tensor.dim %offsets, %c0 : tensor<?xi64>
  %dim_2 = tensor.dim %indices, %c0 : tensor<?xi64>
  %2 = linalg.generic {indexing_maps = [#map, #map1, #map2], iterator_types = ["parallel", "reduction", "parallel"]} ins(%indices, %offsets : tensor<?xi64>, tensor<?xi64>) outs(%init : tensor<?x?xf32>) {
  ^bb0(%in: i64, %in_3: i64, %out: f32):
    %3 = linalg.index 0 : index
    %4 = arith.index_cast %3 : index to i64
    %c1_i64 = arith.constant 1 : i64
    %5 = arith.addi %4, %c1_i64 : i64
    %6 = arith.index_cast %5 : i64 to index
    %7 = arith.index_cast %dim_1 : index to i64
    %8 = arith.cmpi eq, %7, %5 : i64
    %9 = arith.index_cast %dim_2 : index to i64
    %extracted = tensor.extract %offsets[%6] : tensor<?xi64>
    %10 = arith.select %8, %9, %extracted : i64
    %11 = linalg.index 1 : index
    %12 = arith.index_cast %11 : index to i64
    %13 = arith.cmpi slt, %in_3, %12 : i64
    %14 = arith.cmpi eq, %in_3, %12 : i64
    %15 = arith.ori %13, %14 : i1
    %16 = arith.cmpi slt, %12, %10 : i64
    %17 = arith.andi %15, %16 : i1
    %18 = arith.index_cast %in : i64 to index
    %19 = linalg.index 2 : index
    %extracted_4 = tensor.extract %weight[%18, %19] : tensor<?x?xf32>
    %20 = arith.addf %extracted_4, %out : f32
    %21 = arith.select %17, %20, %out : f32
    linalg.yield %21 : f32
  } -> tensor<?x?xf32>
  return %2 : tensor<?x?xf32>
}
