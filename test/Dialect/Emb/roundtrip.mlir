// Every emb op, in every operand form, prints and parses back to itself.
// RUN: emb-opt %s -split-input-file | emb-opt -split-input-file | FileCheck %s
// RUN: emb-opt %s -split-input-file -mlir-print-op-generic | emb-opt -split-input-file | FileCheck %s

// CHECK-LABEL: func @lookup
// CHECK-SAME: (%[[W:.*]]: tensor<1000x64xf32>, %[[I:.*]]: tensor<8x32xi64>, %[[S:.*]]: tensor<i32>, %[[H:.*]]: tensor<?x17xbf16>, %[[J:.*]]: tensor<?xi32>)
func.func @lookup(%w: tensor<1000x64xf32>, %ids: tensor<8x32xi64>, %scalar: tensor<i32>,
                  %h: tensor<?x17xbf16>, %j: tensor<?xi32>)
    -> (tensor<8x32x64xf32>, tensor<64xf32>, tensor<?x17xbf16>, tensor<8x32x64xf32>) {
  // CHECK: emb.lookup %[[W]][%[[I]]] : tensor<1000x64xf32>[tensor<8x32xi64>] -> tensor<8x32x64xf32>
  %0 = emb.lookup %w[%ids] : tensor<1000x64xf32>[tensor<8x32xi64>] -> tensor<8x32x64xf32>
  // CHECK: emb.lookup %[[W]][%[[S]]] {padding_idx = 0 : i64} : tensor<1000x64xf32>[tensor<i32>] -> tensor<64xf32>
  %1 = emb.lookup %w[%scalar] {padding_idx = 0 : i64} : tensor<1000x64xf32>[tensor<i32>] -> tensor<64xf32>
  // CHECK: emb.lookup %[[H]][%[[J]]] {padding_idx = -1 : i64, padding_mode = #emb.padding_mode<zero>} : tensor<?x17xbf16>[tensor<?xi32>] -> tensor<?x17xbf16>
  %2 = emb.lookup %h[%j] {padding_idx = -1 : i64, padding_mode = #emb.padding_mode<zero>}
      : tensor<?x17xbf16>[tensor<?xi32>] -> tensor<?x17xbf16>
  // The default padding mode is not printed.
  // CHECK: emb.lookup %[[W]][%[[I]]] {padding_idx = 3 : i64} : tensor<1000x64xf32>[tensor<8x32xi64>] -> tensor<8x32x64xf32>
  %3 = emb.lookup %w[%ids] {padding_idx = 3 : i64, padding_mode = #emb.padding_mode<keep>}
      : tensor<1000x64xf32>[tensor<8x32xi64>] -> tensor<8x32x64xf32>
  return %0, %1, %2, %3 : tensor<8x32x64xf32>, tensor<64xf32>, tensor<?x17xbf16>, tensor<8x32x64xf32>
}

// -----

// CHECK-LABEL: func @bag_offsets
func.func @bag_offsets(%w: tensor<?x128xf32>, %ids: tensor<?xi64>, %offs: tensor<?xi32>,
                       %psw: tensor<?xf32>) -> (tensor<?x128xf32>, tensor<?x128xf32>, tensor<?x128xf32>) {
  // CHECK: emb.bag sum %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) per_sample_weights(%{{.*}} : tensor<?xf32>) {include_last_offset} : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  %0 = emb.bag sum %w[%ids] offsets(%offs : tensor<?xi32>) per_sample_weights(%psw : tensor<?xf32>)
      {include_last_offset} : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  // CHECK: emb.bag mean %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) {padding_idx = 7 : i64} : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  %1 = emb.bag mean %w[%ids] offsets(%offs : tensor<?xi32>) {padding_idx = 7 : i64}
      : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  // CHECK: emb.bag max %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>{{$}}
  %2 = emb.bag max %w[%ids] offsets(%offs : tensor<?xi32>) : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  return %0, %1, %2 : tensor<?x128xf32>, tensor<?x128xf32>, tensor<?x128xf32>
}

// -----

// The combiners of docs/semantics.md §6.1: sqrtn, with or without weights,
// and the weighted mean.
// CHECK-LABEL: func @bag_sqrtn_weighted_mean
func.func @bag_sqrtn_weighted_mean(%w: tensor<?x16xbf16>, %ids: tensor<?x4xi32>,
                                   %psw: tensor<?x4xbf16>, %g: tensor<?x16xbf16>)
    -> (tensor<?x16xbf16>, tensor<?x16xbf16>, tensor<?x16xbf16>, tensor<100x16xbf16>,
        tensor<?xi64>, tensor<?x16xbf16>) {
  // CHECK: emb.bag sqrtn %{{.*}}[%{{.*}}] : tensor<?x16xbf16>[tensor<?x4xi32>] -> tensor<?x16xbf16>
  %0 = emb.bag sqrtn %w[%ids] : tensor<?x16xbf16>[tensor<?x4xi32>] -> tensor<?x16xbf16>
  // CHECK: emb.bag sqrtn %{{.*}}[%{{.*}}] per_sample_weights(%{{.*}} : tensor<?x4xbf16>) {padding_idx = 2 : i64}
  %1 = emb.bag sqrtn %w[%ids] per_sample_weights(%psw : tensor<?x4xbf16>) {padding_idx = 2 : i64}
      : tensor<?x16xbf16>[tensor<?x4xi32>] -> tensor<?x16xbf16>
  // CHECK: emb.bag mean %{{.*}}[%{{.*}}] per_sample_weights(%{{.*}} : tensor<?x4xbf16>) :
  %2 = emb.bag mean %w[%ids] per_sample_weights(%psw : tensor<?x4xbf16>)
      : tensor<?x16xbf16>[tensor<?x4xi32>] -> tensor<?x16xbf16>
  // CHECK: emb.bag_grad sqrtn %{{.*}}[%{{.*}}] per_sample_weights(%{{.*}} : tensor<?x4xbf16>) {num_embeddings = 100 : i64}
  %3 = emb.bag_grad sqrtn %g[%ids] per_sample_weights(%psw : tensor<?x4xbf16>) {num_embeddings = 100 : i64}
      : tensor<?x16xbf16>[tensor<?x4xi32>] -> tensor<100x16xbf16>
  // CHECK: emb.bag_sparse_grad mean %{{.*}}[%{{.*}}] per_sample_weights(%{{.*}} : tensor<?x4xbf16>) {num_embeddings = 100 : i64}
  %4, %5 = emb.bag_sparse_grad mean %g[%ids] per_sample_weights(%psw : tensor<?x4xbf16>) {num_embeddings = 100 : i64}
      : tensor<?x16xbf16>[tensor<?x4xi32>] -> tensor<?xi64>, tensor<?x16xbf16>
  return %0, %1, %2, %3, %4, %5 : tensor<?x16xbf16>, tensor<?x16xbf16>, tensor<?x16xbf16>,
      tensor<100x16xbf16>, tensor<?xi64>, tensor<?x16xbf16>
}

// -----

// CHECK-LABEL: func @bag_2d_max_indices
func.func @bag_2d_max_indices(%w: tensor<50x3xf16>, %ids: tensor<4x6xi32>)
    -> (tensor<4x3xf16>, tensor<4x3xi64>) {
  // CHECK: %{{.*}}, %{{.*}} = emb.bag max %{{.*}}[%{{.*}}] {padding_idx = 0 : i64} : tensor<50x3xf16>[tensor<4x6xi32>] -> tensor<4x3xf16>, tensor<4x3xi64>
  %0, %1 = emb.bag max %w[%ids] {padding_idx = 0 : i64} : tensor<50x3xf16>[tensor<4x6xi32>] -> tensor<4x3xf16>, tensor<4x3xi64>
  return %0, %1 : tensor<4x3xf16>, tensor<4x3xi64>
}

// -----

// CHECK-LABEL: func @bag_static_offsets
func.func @bag_static_offsets(%w: tensor<10x4xf64>, %ids: tensor<8xi64>, %offs: tensor<3xi64>)
    -> (tensor<3x4xf64>, tensor<2x4xf64>) {
  // CHECK: emb.bag sum {{.*}} : tensor<10x4xf64>[tensor<8xi64>] -> tensor<3x4xf64>
  %0 = emb.bag sum %w[%ids] offsets(%offs : tensor<3xi64>) : tensor<10x4xf64>[tensor<8xi64>] -> tensor<3x4xf64>
  // With include_last_offset the last offset closes the last bag: B = 3 - 1.
  // CHECK: emb.bag mean {{.*}} {include_last_offset} : tensor<10x4xf64>[tensor<8xi64>] -> tensor<2x4xf64>
  %1 = emb.bag mean %w[%ids] offsets(%offs : tensor<3xi64>) {include_last_offset}
      : tensor<10x4xf64>[tensor<8xi64>] -> tensor<2x4xf64>
  return %0, %1 : tensor<3x4xf64>, tensor<2x4xf64>
}

// -----

// CHECK-LABEL: func @renorm
func.func @renorm(%w: tensor<1000x64xf32>, %ids: tensor<?x?xi64>) -> tensor<1000x64xf32> {
  // CHECK: %[[R:.*]] = emb.renorm %{{.*}}[%{{.*}}] {max_norm = 1.000000e+00 : f64} : tensor<1000x64xf32>[tensor<?x?xi64>] -> tensor<1000x64xf32>
  %0 = emb.renorm %w[%ids] {max_norm = 1.0 : f64} : tensor<1000x64xf32>[tensor<?x?xi64>] -> tensor<1000x64xf32>
  // CHECK: emb.renorm %[[R]][%{{.*}}] {max_norm = 2.500000e+00 : f64, norm_type = 0x7FF0000000000000 : f64}
  %1 = emb.renorm %0[%ids] {max_norm = 2.5 : f64, norm_type = 0x7FF0000000000000 : f64}
      : tensor<1000x64xf32>[tensor<?x?xi64>] -> tensor<1000x64xf32>
  return %1 : tensor<1000x64xf32>
}

// -----

// CHECK-LABEL: func @lookup_grad
func.func @lookup_grad(%g: tensor<8x32x64xf32>, %ids: tensor<8x32xi64>, %g2: tensor<?x16xbf16>, %j: tensor<?xi32>)
    -> (tensor<1000x64xf32>, tensor<?x16xbf16>) {
  // CHECK: emb.lookup_grad %{{.*}}[%{{.*}}] {num_embeddings = 1000 : i64} : tensor<8x32x64xf32>[tensor<8x32xi64>] -> tensor<1000x64xf32>
  %0 = emb.lookup_grad %g[%ids] {num_embeddings = 1000 : i64} : tensor<8x32x64xf32>[tensor<8x32xi64>] -> tensor<1000x64xf32>
  // CHECK: emb.lookup_grad %{{.*}}[%{{.*}}] {deterministic, grad_scale = 5.000000e-01 : f64, num_embeddings = 10 : i64, padding_idx = -2 : i64, scale_grad_by_freq} : tensor<?x16xbf16>[tensor<?xi32>] -> tensor<?x16xbf16>
  %1 = emb.lookup_grad %g2[%j] {num_embeddings = 10 : i64, padding_idx = -2 : i64, scale_grad_by_freq,
                                grad_scale = 0.5 : f64, deterministic}
      : tensor<?x16xbf16>[tensor<?xi32>] -> tensor<?x16xbf16>
  return %0, %1 : tensor<1000x64xf32>, tensor<?x16xbf16>
}

// -----

// CHECK-LABEL: func @bag_grad
func.func @bag_grad(%g: tensor<?x64xf32>, %ids: tensor<?xi64>, %offs: tensor<?xi64>, %psw: tensor<?xf32>,
                    %ids2: tensor<?x5xi32>, %mi: tensor<?x64xi64>)
    -> (tensor<100x64xf32>, tensor<100x64xf32>, tensor<100x64xf32>) {
  // CHECK: emb.bag_grad sum %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi64>) per_sample_weights(%{{.*}} : tensor<?xf32>) {include_last_offset, num_embeddings = 100 : i64} : tensor<?x64xf32>[tensor<?xi64>] -> tensor<100x64xf32>
  %0 = emb.bag_grad sum %g[%ids] offsets(%offs : tensor<?xi64>) per_sample_weights(%psw : tensor<?xf32>)
      {num_embeddings = 100 : i64, include_last_offset} : tensor<?x64xf32>[tensor<?xi64>] -> tensor<100x64xf32>
  // CHECK: emb.bag_grad mean %{{.*}}[%{{.*}}] {num_embeddings = 100 : i64, padding_idx = 0 : i64, scale_grad_by_freq} : tensor<?x64xf32>[tensor<?x5xi32>] -> tensor<100x64xf32>
  %1 = emb.bag_grad mean %g[%ids2] {num_embeddings = 100 : i64, padding_idx = 0 : i64, scale_grad_by_freq}
      : tensor<?x64xf32>[tensor<?x5xi32>] -> tensor<100x64xf32>
  // CHECK: emb.bag_grad max %{{.*}}[%{{.*}}] max_indices(%{{.*}} : tensor<?x64xi64>) {grad_scale = 2.000000e+00 : f64, num_embeddings = 100 : i64} : tensor<?x64xf32>[tensor<?x5xi32>] -> tensor<100x64xf32>
  %2 = emb.bag_grad max %g[%ids2] max_indices(%mi : tensor<?x64xi64>) {num_embeddings = 100 : i64, grad_scale = 2.0 : f64}
      : tensor<?x64xf32>[tensor<?x5xi32>] -> tensor<100x64xf32>
  return %0, %1, %2 : tensor<100x64xf32>, tensor<100x64xf32>, tensor<100x64xf32>
}

// -----

// CHECK-LABEL: func @bag_psw_grad
func.func @bag_psw_grad(%g: tensor<?x64xf16>, %w: tensor<100x64xf16>, %ids: tensor<?xi64>, %offs: tensor<?xi32>,
                        %ids2: tensor<3x4xi64>, %g2: tensor<3x64xf16>) -> (tensor<?xf16>, tensor<3x4xf16>) {
  // CHECK: emb.bag_psw_grad %{{.*}}, %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) {padding_idx = 1 : i64} : tensor<?x64xf16>, tensor<100x64xf16>[tensor<?xi64>] -> tensor<?xf16>
  %0 = emb.bag_psw_grad %g, %w[%ids] offsets(%offs : tensor<?xi32>) {padding_idx = 1 : i64}
      : tensor<?x64xf16>, tensor<100x64xf16>[tensor<?xi64>] -> tensor<?xf16>
  // CHECK: emb.bag_psw_grad %{{.*}}, %{{.*}}[%{{.*}}] : tensor<3x64xf16>, tensor<100x64xf16>[tensor<3x4xi64>] -> tensor<3x4xf16>
  %1 = emb.bag_psw_grad %g2, %w[%ids2] : tensor<3x64xf16>, tensor<100x64xf16>[tensor<3x4xi64>] -> tensor<3x4xf16>
  return %0, %1 : tensor<?xf16>, tensor<3x4xf16>
}

// -----

// CHECK-LABEL: func @sparse_grads
func.func @sparse_grads(%g: tensor<?x?x32xf64>, %ids: tensor<?x?xi64>, %bg: tensor<?x32xf64>,
                        %bids: tensor<?xi32>, %offs: tensor<?xi64>, %psw: tensor<?xf64>)
    -> (tensor<?xi64>, tensor<?x32xf64>, tensor<?xi64>, tensor<?x32xf64>) {
  // CHECK: %{{.*}}, %{{.*}} = emb.lookup_sparse_grad %{{.*}}[%{{.*}}] {coalesced, num_embeddings = 500 : i64, padding_idx = 0 : i64} : tensor<?x?x32xf64>[tensor<?x?xi64>] -> tensor<?xi64>, tensor<?x32xf64>
  %r0, %v0 = emb.lookup_sparse_grad %g[%ids] {num_embeddings = 500 : i64, padding_idx = 0 : i64, coalesced}
      : tensor<?x?x32xf64>[tensor<?x?xi64>] -> tensor<?xi64>, tensor<?x32xf64>
  // CHECK: %{{.*}}, %{{.*}} = emb.bag_sparse_grad sum %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi64>) per_sample_weights(%{{.*}} : tensor<?xf64>) {num_embeddings = 500 : i64} : tensor<?x32xf64>[tensor<?xi32>] -> tensor<?xi64>, tensor<?x32xf64>
  %r1, %v1 = emb.bag_sparse_grad sum %bg[%bids] offsets(%offs : tensor<?xi64>) per_sample_weights(%psw : tensor<?xf64>)
      {num_embeddings = 500 : i64} : tensor<?x32xf64>[tensor<?xi32>] -> tensor<?xi64>, tensor<?x32xf64>
  return %r0, %v0, %r1, %v1 : tensor<?xi64>, tensor<?x32xf64>, tensor<?xi64>, tensor<?x32xf64>
}

// -----

// A row window of the dense gradient (how the runtime splits rows over threads).
// CHECK-LABEL: func @grad_row_window
func.func @grad_row_window(%g: tensor<?x64xf32>, %ids: tensor<?xi64>, %first: index, %count: index,
                           %bg: tensor<?x64xf32>, %ids2: tensor<?x5xi32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  // CHECK: emb.lookup_grad %{{.*}}[%{{.*}}] rows(%{{.*}}, %{{.*}}) {num_embeddings = 1000 : i64} : tensor<?x64xf32>[tensor<?xi64>] -> tensor<?x64xf32>
  %0 = emb.lookup_grad %g[%ids] rows(%first, %count) {num_embeddings = 1000 : i64}
      : tensor<?x64xf32>[tensor<?xi64>] -> tensor<?x64xf32>
  // CHECK: emb.bag_grad sum %{{.*}}[%{{.*}}] rows(%{{.*}}, %{{.*}}) {num_embeddings = 1000 : i64} : tensor<?x64xf32>[tensor<?x5xi32>] -> tensor<?x64xf32>
  %1 = emb.bag_grad sum %bg[%ids2] rows(%first, %count) {num_embeddings = 1000 : i64}
      : tensor<?x64xf32>[tensor<?x5xi32>] -> tensor<?x64xf32>
  return %0, %1 : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// Row-wise quantised tables (docs/semantics.md §6.2): bytes in, f32 / f16 out.
// CHECK-LABEL: func @bag_quantized
func.func @bag_quantized(%w8: tensor<1000x136xi8>, %w4: tensor<?x11xi8>, %ids: tensor<?xi64>,
                         %offs: tensor<?xi32>, %psw: tensor<?xf16>) -> (tensor<?x128xf32>, tensor<?x13xf16>) {
  // CHECK: emb.bag sum %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) {padding_idx = 0 : i64, quantized = #emb.quantized<int8>} : tensor<1000x136xi8>[tensor<?xi64>] -> tensor<?x128xf32>
  %0 = emb.bag sum %w8[%ids] offsets(%offs : tensor<?xi32>) {padding_idx = 0 : i64, quantized = #emb.quantized<int8>}
      : tensor<1000x136xi8>[tensor<?xi64>] -> tensor<?x128xf32>
  // CHECK: emb.bag sqrtn %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) per_sample_weights(%{{.*}} : tensor<?xf16>) {quantized = #emb.quantized<int4>} : tensor<?x11xi8>[tensor<?xi64>] -> tensor<?x13xf16>
  %1 = emb.bag sqrtn %w4[%ids] offsets(%offs : tensor<?xi32>) per_sample_weights(%psw : tensor<?xf16>)
      {quantized = #emb.quantized<int4>} : tensor<?x11xi8>[tensor<?xi64>] -> tensor<?x13xf16>
  return %0, %1 : tensor<?x128xf32>, tensor<?x13xf16>
}

// -----

// Many tables in one call (docs/semantics.md §6.3).
// CHECK-LABEL: func @multi_bag
func.func @multi_bag(%t0: tensor<1000x64xf32>, %t1: tensor<?x16xf32>, %ids: tensor<?xi64>,
                     %offs: tensor<?xi32>, %psw: tensor<?xf32>, %a: index, %n: index)
    -> (tensor<?x80xf32>, tensor<?x80xf32>) {
  // CHECK: emb.multi_bag %{{.*}}, %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) {modes = [#emb.mode<sum>, #emb.mode<max>], padding_idx = array<i64: -1, 0>} : (tensor<1000x64xf32>, tensor<?x16xf32>) [tensor<?xi64>] -> tensor<?x80xf32>
  %0 = emb.multi_bag %t0, %t1[%ids] offsets(%offs : tensor<?xi32>)
      {modes = [#emb.mode<sum>, #emb.mode<max>], padding_idx = array<i64: -1, 0>}
      : (tensor<1000x64xf32>, tensor<?x16xf32>)[tensor<?xi64>] -> tensor<?x80xf32>
  // CHECK: emb.multi_bag {{.*}} per_sample_weights(%{{.*}} : tensor<?xf32>) bags(%{{.*}}, %{{.*}}) {modes = [#emb.mode<sqrtn>, #emb.mode<mean>]
  %1 = emb.multi_bag %t0, %t1[%ids] offsets(%offs : tensor<?xi32>) per_sample_weights(%psw : tensor<?xf32>) bags(%a, %n)
      {modes = [#emb.mode<sqrtn>, #emb.mode<mean>], padding_idx = array<i64: 3, -1>}
      : (tensor<1000x64xf32>, tensor<?x16xf32>)[tensor<?xi64>] -> tensor<?x80xf32>
  // A sequence table (mode none, L = 4): 64 + 4 * 16 columns.
  // CHECK: emb.multi_bag {{.*}} {modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, -1>, sequence_lengths = array<i64: 0, 4>} : (tensor<1000x64xf32>, tensor<?x16xf32>) [tensor<?xi64>] -> tensor<?x128xf32>
  %2 = emb.multi_bag %t0, %t1[%ids] offsets(%offs : tensor<?xi32>)
      {modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, -1>, sequence_lengths = array<i64: 0, 4>}
      : (tensor<1000x64xf32>, tensor<?x16xf32>)[tensor<?xi64>] -> tensor<?x128xf32>
  return %0, %1 : tensor<?x80xf32>, tensor<?x80xf32>
}

// -----

// The backward fused with an optimizer (docs/semantics.md §6.4).
// CHECK-LABEL: func @bag_update
func.func @bag_update(%g: tensor<?x16xf32>, %ids: tensor<?xi64>, %offs: tensor<?xi64>,
                      %psw: tensor<?xf32>, %w: tensor<100x16xf32>, %h: tensor<100xf32>,
                      %m: tensor<?x16xf32>, %s: tensor<?x16xf32>, %wd: tensor<?x16xf32>,
                      %am: tensor<?x16xi64>, %lr: f64, %t: i64, %a: index, %n: index)
    -> (tensor<100x16xf32>, tensor<100xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<100x16xf32>) {
  // CHECK: emb.bag_update rowwise_adagrad mean %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi64>) per_sample_weights(%{{.*}} : tensor<?xf32>) weight(%{{.*}} : tensor<100x16xf32>) states(%{{.*}} : tensor<100xf32>) lr(%{{.*}}) {eps = 1.000000e-10 : f64, num_embeddings = 100 : i64, padding_idx = 0 : i64, weight_decay = 1.000000e-02 : f64} : tensor<?x16xf32>[tensor<?xi64>] -> tensor<100x16xf32>, tensor<100xf32>
  %0:2 = emb.bag_update rowwise_adagrad mean %g[%ids] offsets(%offs : tensor<?xi64>) per_sample_weights(%psw : tensor<?xf32>)
      weight(%w : tensor<100x16xf32>) states(%h : tensor<100xf32>) lr(%lr)
      {num_embeddings = 100 : i64, padding_idx = 0 : i64, eps = 1.0e-10 : f64, weight_decay = 0.01 : f64}
      : tensor<?x16xf32>[tensor<?xi64>] -> tensor<100x16xf32>, tensor<100xf32>
  // CHECK: emb.bag_update adam sum %{{.*}} rows(%{{.*}}, %{{.*}}) weight(%{{.*}} : tensor<?x16xf32>) states(%{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<?x16xf32>) lr(%{{.*}}) step(%{{.*}}) {beta1 = 8.000000e-01 : f64, num_embeddings = 100 : i64, scale_grad_by_freq}
  %1:3 = emb.bag_update adam sum %g[%ids] offsets(%offs : tensor<?xi64>) rows(%a, %n)
      weight(%wd : tensor<?x16xf32>) states(%m, %s : tensor<?x16xf32>, tensor<?x16xf32>) lr(%lr) step(%t)
      {num_embeddings = 100 : i64, scale_grad_by_freq, beta1 = 0.8 : f64}
      : tensor<?x16xf32>[tensor<?xi64>] -> tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>
  // CHECK: emb.bag_update sgd max %{{.*}} max_indices(%{{.*}} : tensor<?x16xi64>) weight(%{{.*}} : tensor<100x16xf32>) lr(%{{.*}}) {num_embeddings = 100 : i64}
  %2 = emb.bag_update sgd max %g[%ids] offsets(%offs : tensor<?xi64>) max_indices(%am : tensor<?x16xi64>)
      weight(%w : tensor<100x16xf32>) lr(%lr) {num_embeddings = 100 : i64}
      : tensor<?x16xf32>[tensor<?xi64>] -> tensor<100x16xf32>
  return %0#0, %0#1, %1#0, %1#1, %1#2, %2 : tensor<100x16xf32>, tensor<100xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<?x16xf32>, tensor<100x16xf32>
}

// -----

// Many tables' fused step, in FBGEMM's flat layout (docs/semantics.md §6.4).
// CHECK-LABEL: func @multi_bag_update
func.func @multi_bag_update(%g: tensor<?x12xf32>, %w: tensor<1000xf32>, %ids: tensor<?xi64>, %offs: tensor<?xi32>,
                            %psw: tensor<?xf32>, %m: tensor<1000xf32>, %s: tensor<1000xf32>, %lr: f64, %t: i64,
                            %a: index, %n: index) -> (tensor<1000xf32>, tensor<1000xf32>, tensor<1000xf32>) {
  // CHECK: emb.multi_bag_update adam %{{.*}}, %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) per_sample_weights(%{{.*}} : tensor<?xf32>) rows(%{{.*}}, %{{.*}}) states(%{{.*}}, %{{.*}} : tensor<1000xf32>, tensor<1000xf32>) lr(%{{.*}}) step(%{{.*}}) {modes = [#emb.mode<sum>, #emb.mode<sqrtn>], padding_idx = array<i64: -1, 3>, row_parts = 1024 : i64, table_shapes = array<i64: 100, 8, 50, 4>}
  %0:3 = emb.multi_bag_update adam %g, %w[%ids] offsets(%offs : tensor<?xi32>) per_sample_weights(%psw : tensor<?xf32>)
      rows(%a, %n) states(%m, %s : tensor<1000xf32>, tensor<1000xf32>) lr(%lr) step(%t)
      {table_shapes = array<i64: 100, 8, 50, 4>, modes = [#emb.mode<sum>, #emb.mode<sqrtn>], padding_idx = array<i64: -1, 3>, row_parts = 1024 : i64}
      : tensor<?x12xf32>, tensor<1000xf32>[tensor<?xi64>] -> tensor<1000xf32>, tensor<1000xf32>, tensor<1000xf32>
  return %0#0, %0#1, %0#2 : tensor<1000xf32>, tensor<1000xf32>, tensor<1000xf32>
}

// -----

// CHECK-LABEL: func @on_buffers
// CHECK: emb.on_buffers outs(%{{.*}} : tensor<?x8xf32>) {
// CHECK: %{{.*}}:2 = emb.on_buffers updates ins(%{{.*}} : tensor<?xi64>) outs(%{{.*}}, %{{.*}} : tensor<10x8xf32>, tensor<?x8xf32>) {
// CHECK-NEXT: ^bb0(%{{.*}}: memref<10x8xf32>, %{{.*}}: memref<?x8xf32>):
// CHECK-NEXT: } -> tensor<10x8xf32>, tensor<?x8xf32>
func.func @on_buffers(%w: tensor<10x8xf32>, %e: tensor<?x8xf32>, %x: tensor<?xi64>) -> (tensor<10x8xf32>, tensor<?x8xf32>) {
  %1 = emb.on_buffers outs(%e : tensor<?x8xf32>) {
  ^bb0(%b: memref<?x8xf32>):
  } -> tensor<?x8xf32>
  %0:2 = emb.on_buffers updates ins(%x : tensor<?xi64>) outs(%w, %1 : tensor<10x8xf32>, tensor<?x8xf32>) {
  ^bb0(%bw: memref<10x8xf32>, %out: memref<?x8xf32>):
  } -> tensor<10x8xf32>, tensor<?x8xf32>
  return %0#0, %0#1 : tensor<10x8xf32>, tensor<?x8xf32>
}
