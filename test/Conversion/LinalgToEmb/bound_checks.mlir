// The bounds checks a gather may carry, in the forms producers write them:
// raised when they check exactly 0 <= x < V (the checks kept, as asserts
// with the producer's messages), left alone when they check anything else.
// RUN: emb-opt %s -raise-linalg-to-emb -split-input-file | FileCheck %s

// IREE's form: two i64 compares joined by arith.andi under one assert.
// CHECK-LABEL: func @andi_joined_checks
// CHECK:   scf.for
// CHECK:     cf.assert %{{.*}}, "index out of bounds"
// CHECK:     cf.assert %{{.*}}, "index out of bounds"
// CHECK:   emb.lookup
// CHECK-NOT: linalg.generic
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
func.func @andi_joined_checks(%w: tensor<100x8xf32>, %x: tensor<?xi64>, %init: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %c100 = arith.constant 100 : i64
  %c0 = arith.constant 0 : i64
  %r = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi64>) outs(%init : tensor<?x8xf32>) {
  ^bb0(%in: i64, %out: f32):
    %lt = arith.cmpi slt, %in, %c100 : i64
    %ge = arith.cmpi sge, %in, %c0 : i64
    %ok = arith.andi %lt, %ge : i1
    cf.assert %ok, "index out of bounds"
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 1 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

// One unsigned compare against tensor.dim of the table checks both bounds;
// the operands may come in either order.
// CHECK-LABEL: func @unsigned_and_mirrored_checks
// CHECK:   emb.lookup
// CHECK-NOT: linalg.generic
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
func.func @unsigned_and_mirrored_checks(%w: tensor<?x8xf32>, %x: tensor<?xi32>, %init: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %rows = tensor.dim %w, %c0 : tensor<?x8xf32>
  %r = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi32>) outs(%init : tensor<?x8xf32>) {
  ^bb0(%in: i32, %out: f32):
    %i = arith.index_cast %in : i32 to index
    %in_range = arith.cmpi ugt, %rows, %i : index
    cf.assert %in_range, "index must be in [0, V)"
    %d = linalg.index 1 : index
    %v = tensor.extract %w[%i, %d] : tensor<?x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

// A check of another bound (x < 50 on a table of 100 rows) is not an
// embedding's: raising would drop the abort for 50 <= x < 100.
// CHECK-LABEL: func @check_of_another_bound
// CHECK-NOT: emb.lookup
// CHECK:   linalg.generic
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
func.func @check_of_another_bound(%w: tensor<100x8xf32>, %x: tensor<?xi64>, %init: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %c50 = arith.constant 50 : i64
  %r = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi64>) outs(%init : tensor<?x8xf32>) {
  ^bb0(%in: i64, %out: f32):
    %lt = arith.cmpi slt, %in, %c50 : i64
    cf.assert %lt, "index out of bounds"
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 1 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}

// -----

// A check joined with something else than a bound (arith.ori, or a compare
// of another value) is not one either.
// CHECK-LABEL: func @check_joined_with_another_condition
// CHECK-NOT: emb.lookup
// CHECK:   linalg.generic
#map = affine_map<(d0, d1) -> (d0)>
#map1 = affine_map<(d0, d1) -> (d0, d1)>
func.func @check_joined_with_another_condition(%w: tensor<100x8xf32>, %x: tensor<?xi64>, %init: tensor<?x8xf32>, %flag: i1) -> tensor<?x8xf32> {
  %c100 = arith.constant 100 : i64
  %r = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?xi64>) outs(%init : tensor<?x8xf32>) {
  ^bb0(%in: i64, %out: f32):
    %lt = arith.cmpi slt, %in, %c100 : i64
    %ok = arith.ori %lt, %flag : i1
    cf.assert %ok, "index out of bounds"
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 1 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x8xf32>
  return %r : tensor<?x8xf32>
}
