// convert-emb-to-scf, SparseGrad.cpp: the COO gradients, uncoalesced and coalesced.
// RUN: emb-opt %s -convert-emb-to-scf -split-input-file -verify-diagnostics | FileCheck %s

// Sparse, uncoalesced: one (row, scaled gradient row) per non-padding
// position, in input order, compacted with a running count.
// CHECK-LABEL: func @lookup_sparse_grad
// CHECK: scf.for {{.*}} -> (index)
// CHECK: scf.for {{.*}} -> (index, tensor<?xi64>, tensor<?x4xf32>)
// CHECK:   arith.cmpi ne
// CHECK:   scf.if
// CHECK:     tensor.insert
// CHECK:     arith.mulf {{.*}} : vector<4xf32>
// CHECK:     vector.transfer_write
func.func @lookup_sparse_grad(%g: tensor<3x4xf32>, %x: tensor<3xi64>) -> (tensor<?xi64>, tensor<?x4xf32>) {
  %r, %v = emb.lookup_sparse_grad %g[%x] {num_embeddings = 10 : i64, padding_idx = 0 : i64, grad_scale = 2.0 : f64}
      : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return %r, %v : tensor<?xi64>, tensor<?x4xf32>
}

// -----

// Sparse, coalesced: the sort, a count of distinct rows, then one summed
// row per run.
// CHECK-LABEL: func @bag_sparse_grad_coalesced
// CHECK: arith.shrui
// CHECK: arith.cmpi ne
// CHECK: scf.while {{.*}} -> (index, index, tensor<?xi64>, tensor<?x4xf32>)
func.func @bag_sparse_grad_coalesced(%g: tensor<?x4xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>) -> (tensor<?xi64>, tensor<?x4xf32>) {
  %r, %v = emb.bag_sparse_grad mean %g[%x] offsets(%o : tensor<?xi64>) {num_embeddings = 10 : i64, coalesced}
      : tensor<?x4xf32>[tensor<?xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return %r, %v : tensor<?xi64>, tensor<?x4xf32>
}
