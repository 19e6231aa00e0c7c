// The many-table fused step (emb.multi_bag_update) lowers as one
// emb.bag_update per table over its rows window, each table taken out of
// the flat weights and put back before the next (test/Pipelines/
// multi_update_in_place.mlir: bufferisation updates in place).
// RUN: emb-opt %s -convert-emb-to-scf --canonicalize --cse | FileCheck %s

// With row_parts = 16, rows(%a, %n) are parts of every table: table t
// updates rows [floor(min(%a, 16) V_t / 16), floor(min(%a + %n, 16) V_t / 16)),
// V = 100, then V = 50.
// CHECK-LABEL: func.func @parts
// CHECK-SAME: %[[A:[^:]*]]: index, %[[N:[^:]*]]: index
// CHECK: %[[END:.*]] = arith.addi %[[A]], %[[N]]
// CHECK: %[[PA:.*]] = arith.minui %[[A]], %c16
// CHECK: %[[MA:.*]] = arith.muli %[[PA]], %c100
// CHECK: %[[F0:.*]] = arith.divui %[[MA]], %c16
// CHECK: %[[PE:.*]] = arith.minui %[[END]], %c16
// CHECK: %[[ME:.*]] = arith.muli %[[PE]], %c100
// CHECK: %[[E0:.*]] = arith.divui %[[ME]], %c16
// CHECK: arith.subi %[[E0]], %[[F0]]
// CHECK: scf.for
// CHECK: %[[MA1:.*]] = arith.muli %[[PA]], %c50
// CHECK: %[[F1:.*]] = arith.divui %[[MA1]], %c16
// CHECK: %[[ME1:.*]] = arith.muli %[[PE]], %c50
// CHECK: %[[E1:.*]] = arith.divui %[[ME1]], %c16
// CHECK: arith.subi %[[E1]], %[[F1]]
// CHECK-NOT: emb.
// CHECK: return
func.func @parts(%g: tensor<?x12xf32>, %w: tensor<1000xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>, %a: index, %n: index, %lr: f64) -> tensor<1000xf32> {
  %r = emb.multi_bag_update sgd %g, %w[%x] offsets(%o : tensor<?xi64>) rows(%a, %n) lr(%lr)
      {table_shapes = array<i64: 100, 8, 50, 4>, modes = [#emb.mode<sum>, #emb.mode<mean>], padding_idx = array<i64: -1, 0>, row_parts = 16 : i64}
      : tensor<?x12xf32>, tensor<1000xf32>[tensor<?xi64>] -> tensor<1000xf32>
  return %r : tensor<1000xf32>
}

// Without row_parts, rows(%a, %n) are rows of the concatenated tables:
// table 1's window is [%a, %a + %n) - 100 clipped to [0, 50).
// CHECK-LABEL: func.func @concatenated_rows
// CHECK-SAME: %[[A:[^:]*]]: index, %[[N:[^:]*]]: index
// CHECK: arith.minui %[[A]], %c100
// CHECK: scf.for
// CHECK: %[[S:.*]] = arith.subi %[[A]], %c100
// CHECK: arith.cmpi slt, %[[A]], %c100
// CHECK: arith.minui %[[S]], %c50
func.func @concatenated_rows(%g: tensor<?x12xf32>, %w: tensor<1000xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>, %a: index, %n: index, %lr: f64) -> tensor<1000xf32> {
  %r = emb.multi_bag_update sgd %g, %w[%x] offsets(%o : tensor<?xi64>) rows(%a, %n) lr(%lr)
      {table_shapes = array<i64: 100, 8, 50, 4>, modes = [#emb.mode<sum>, #emb.mode<mean>], padding_idx = array<i64: -1, 0>}
      : tensor<?x12xf32>, tensor<1000xf32>[tensor<?xi64>] -> tensor<1000xf32>
  return %r : tensor<1000xf32>
}
