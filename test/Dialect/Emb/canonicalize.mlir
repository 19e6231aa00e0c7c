// Canonicalisation: a negative padding_idx becomes V + padding_idx when V is
// known, and a padding mode without a padding row is dropped.
// RUN: emb-opt %s -canonicalize -split-input-file | FileCheck %s

// CHECK-LABEL: func @normalize_padding_idx
func.func @normalize_padding_idx(%w: tensor<10x4xf32>, %i: tensor<3xi64>, %g: tensor<3x4xf32>,
                                 %bi: tensor<2x3xi64>, %bg: tensor<2x4xf32>)
    -> (tensor<3x4xf32>, tensor<2x4xf32>, tensor<10x4xf32>, tensor<10x4xf32>, tensor<2x3xf32>,
        tensor<?xi64>, tensor<?x4xf32>, tensor<?xi64>, tensor<?x4xf32>) {
  // CHECK: emb.lookup {{.*}} {padding_idx = 9 : i64, padding_mode = #emb.padding_mode<zero>}
  %0 = emb.lookup %w[%i] {padding_idx = -1 : i64, padding_mode = #emb.padding_mode<zero>}
      : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x4xf32>
  // CHECK: emb.bag sum {{.*}} {padding_idx = 0 : i64}
  %1 = emb.bag sum %w[%bi] {padding_idx = -10 : i64} : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  // CHECK: emb.lookup_grad {{.*}} {num_embeddings = 10 : i64, padding_idx = 8 : i64}
  %2 = emb.lookup_grad %g[%i] {num_embeddings = 10 : i64, padding_idx = -2 : i64}
      : tensor<3x4xf32>[tensor<3xi64>] -> tensor<10x4xf32>
  // CHECK: emb.bag_grad mean {{.*}} {num_embeddings = 10 : i64, padding_idx = 5 : i64}
  %3 = emb.bag_grad mean %bg[%bi] {num_embeddings = 10 : i64, padding_idx = -5 : i64}
      : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  // CHECK: emb.bag_psw_grad {{.*}} {padding_idx = 7 : i64}
  %4 = emb.bag_psw_grad %bg, %w[%bi] {padding_idx = -3 : i64}
      : tensor<2x4xf32>, tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3xf32>
  // CHECK: emb.lookup_sparse_grad {{.*}} {num_embeddings = 10 : i64, padding_idx = 9 : i64}
  %r5, %v5 = emb.lookup_sparse_grad %g[%i] {num_embeddings = 10 : i64, padding_idx = -1 : i64}
      : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  // CHECK: emb.bag_sparse_grad sum {{.*}} {num_embeddings = 10 : i64, padding_idx = 1 : i64}
  %r6, %v6 = emb.bag_sparse_grad sum %bg[%bi] {num_embeddings = 10 : i64, padding_idx = -9 : i64}
      : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return %0, %1, %2, %3, %4, %r5, %v5, %r6, %v6 : tensor<3x4xf32>, tensor<2x4xf32>, tensor<10x4xf32>, tensor<10x4xf32>,
      tensor<2x3xf32>, tensor<?xi64>, tensor<?x4xf32>, tensor<?xi64>, tensor<?x4xf32>
}

// -----

// With a dynamic V the padding row cannot be normalised: left as it is.
// CHECK-LABEL: func @dynamic_v_kept
func.func @dynamic_v_kept(%w: tensor<?x4xf32>, %i: tensor<3xi64>) -> tensor<3x4xf32> {
  // CHECK: emb.lookup {{.*}} {padding_idx = -1 : i64}
  %0 = emb.lookup %w[%i] {padding_idx = -1 : i64} : tensor<?x4xf32>[tensor<3xi64>] -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// CHECK-LABEL: func @drop_padding_mode_without_padding_idx
func.func @drop_padding_mode_without_padding_idx(%w: tensor<10x4xf32>, %i: tensor<3xi64>) -> tensor<3x4xf32> {
  // CHECK: emb.lookup %{{.*}}[%{{.*}}] : tensor<10x4xf32>
  %0 = emb.lookup %w[%i] {padding_mode = #emb.padding_mode<zero>} : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x4xf32>
  return %0 : tensor<3x4xf32>
}

// -----

// Ops without uses have no side effects and disappear; renorm's result is
// its only effect (value semantics), so an unused renorm goes too.
// CHECK-LABEL: func @dead_ops
// CHECK-NOT: emb.
func.func @dead_ops(%w: tensor<10x4xf32>, %i: tensor<3xi64>) {
  %0 = emb.lookup %w[%i] : tensor<10x4xf32>[tensor<3xi64>] -> tensor<3x4xf32>
  %1 = emb.renorm %w[%i] {max_norm = 1.0 : f64} : tensor<10x4xf32>[tensor<3xi64>] -> tensor<10x4xf32>
  return
}
