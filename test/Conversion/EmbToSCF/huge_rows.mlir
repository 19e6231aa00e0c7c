// The radix sort of the gradients makes one pass per 8-bit digit of V, at
// most 8: for V >= 2^56 the pass loop never ended (a shift of 64 is UB).
// RUN: emb-opt %s -convert-emb-to-scf | FileCheck %s

// V = 2^56 + 5: 8 passes (a digit shift in the histogram and one in the
// scatter of each), the last shifting by 56.
// CHECK-LABEL: func @sparse_grad_huge_v
// CHECK-COUNT-14: arith.shrui
// CHECK: arith.shrui %{{.*}}, %c56_i64
// CHECK: arith.shrui %{{.*}}, %c56_i64
// CHECK-NOT: arith.shrui
// CHECK: return
func.func @sparse_grad_huge_v(%g: tensor<3x4xf32>, %x: tensor<3xi64>) -> (tensor<?xi64>, tensor<?x4xf32>) {
  %r, %v = emb.lookup_sparse_grad %g[%x] {num_embeddings = 72057594037927941 : i64, coalesced}
      : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return %r, %v : tensor<?xi64>, tensor<?x4xf32>
}
