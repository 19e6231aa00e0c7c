// convert-emb-to-scf, DenseGrad.cpp: the dense gradients sort positions by row, then accumulate each row once.
// RUN: emb-opt %s -convert-emb-to-scf -split-input-file -verify-diagnostics | FileCheck %s

// Dense gradient: positions sorted by row with a stable radix sort (V = 300
// needs two 8-bit passes), then one accumulation
// per run of equal rows, scaled by grad_scale / run length
// (scale_grad_by_freq), written once.
// CHECK-LABEL: func @lookup_grad
// CHECK: arith.constant dense<0> : tensor<256xi64>
// CHECK-COUNT-2: arith.shrui
// CHECK: scf.for {{.*}} -> (tensor<300x8xf32>)
// CHECK: scf.while {{.*}} : (index, tensor<300x8xf32>) -> (index, tensor<300x8xf32>)
// CHECK:   scf.while {{.*}} : (index, vector<8xf32>) -> (index, vector<8xf32>)
// CHECK:     vector.transfer_read {{.*}} : tensor<?x8xf32>, vector<8xf32>
// CHECK:   arith.uitofp
// CHECK:   arith.divf
// CHECK:   vector.transfer_write
func.func @lookup_grad(%g: tensor<?x8xf32>, %x: tensor<?xi64>) -> tensor<300x8xf32> {
  %0 = emb.lookup_grad %g[%x] {num_embeddings = 300 : i64, padding_idx = 0 : i64, scale_grad_by_freq, grad_scale = 2.0 : f64}
      : tensor<?x8xf32>[tensor<?xi64>] -> tensor<300x8xf32>
  return %0 : tensor<300x8xf32>
}

// -----

// embedding_bag mean: a per-position source bag and factor (1 / non-padding
// count of the bag) feed the same sort and accumulation.
// CHECK-LABEL: func @bag_grad_mean
// CHECK: scf.for {{.*}} -> (tensor<?xi64>, tensor<?xf32>)
// CHECK:   arith.divf
// CHECK: arith.shrui
// CHECK: scf.while
// CHECK:     arith.mulf {{.*}} : vector<4xf32>
func.func @bag_grad_mean(%g: tensor<?x4xf16>, %x: tensor<?xi32>, %o: tensor<?xi64>) -> tensor<50x4xf16> {
  %0 = emb.bag_grad mean %g[%x] offsets(%o : tensor<?xi64>) {num_embeddings = 50 : i64}
      : tensor<?x4xf16>[tensor<?xi32>] -> tensor<50x4xf16>
  return %0 : tensor<50x4xf16>
}

// -----

// sqrtn with weights: the factor of each position is psw / sqrt(sum of the
// bag's squared live weights), 0 when that is 0 (docs/semantics.md §6.1).
// CHECK-LABEL: func @bag_grad_sqrtn_psw
// CHECK: scf.for {{.*}} -> (tensor<?xi64>, tensor<?xf32>)
// CHECK:   scf.for {{.*}} -> (index, f32)
// CHECK:     arith.mulf {{.*}} : f32
// CHECK:   %[[ROOT:.*]] = math.sqrt %{{.*}} : f32
// CHECK:   %[[ZERO:.*]] = arith.cmpf oeq, %[[ROOT]]
// CHECK:   %[[INV:.*]] = arith.divf
// CHECK:   arith.select %[[ZERO]], %{{.*}}, %[[INV]] : f32
// CHECK: arith.shrui
// CHECK: scf.while
func.func @bag_grad_sqrtn_psw(%g: tensor<?x4xf32>, %x: tensor<?xi32>, %o: tensor<?xi64>, %p: tensor<?xf32>) -> tensor<50x4xf32> {
  %0 = emb.bag_grad sqrtn %g[%x] offsets(%o : tensor<?xi64>) per_sample_weights(%p : tensor<?xf32>)
      {num_embeddings = 50 : i64, padding_idx = 1 : i64}
      : tensor<?x4xf32>[tensor<?xi32>] -> tensor<50x4xf32>
  return %0 : tensor<50x4xf32>
}

// -----

// Max, f32: gW is its own accumulator: zeroed, then each element of the
// gradient added to gW[max_indices[b, d], d] in bag order (-1: nothing).
// CHECK-LABEL: func @bag_grad_max
// CHECK: scf.for {{.*}} -> (tensor<10x4xf32>)
// CHECK: scf.for {{.*}} -> (tensor<10x4xf32>)
// CHECK:   scf.for {{.*}} -> (tensor<10x4xf32>)
// CHECK:     arith.cmpi sge
// CHECK:     scf.if
// CHECK:       arith.addf
// CHECK-NOT: arith.shrui
func.func @bag_grad_max(%g: tensor<2x4xf32>, %x: tensor<2x3xi64>, %m: tensor<2x4xi64>) -> tensor<10x4xf32> {
  %0 = emb.bag_grad max %g[%x] max_indices(%m : tensor<2x4xi64>) {num_embeddings = 10 : i64}
      : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return %0 : tensor<10x4xf32>
}

// -----

// Gradient of per_sample_weights: one dot product per entry (a reduction of
// whole-row products), 0 for padding, written at [b, j - b*L] for 2-D.
// CHECK-LABEL: func @bag_psw_grad_2d
// CHECK: scf.for {{.*}} -> (tensor<?x?xf32>)
// CHECK:   scf.for
// CHECK:     arith.mulf {{.*}} : vector<16xf32>
// CHECK:     vector.reduction <add>
// CHECK:     arith.select
// CHECK:     tensor.insert {{.*}} : tensor<?x?xf32>
func.func @bag_psw_grad_2d(%g: tensor<?x16xf32>, %w: tensor<?x16xf32>, %x: tensor<?x?xi64>) -> tensor<?x?xf32> {
  %0 = emb.bag_psw_grad %g, %w[%x] {padding_idx = 0 : i64}
      : tensor<?x16xf32>, tensor<?x16xf32>[tensor<?x?xi64>] -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----

// Max, bf16: the B*D elements are keyed by the gW element they add to
// (max_indices * D + column), sorted and summed in f32 like rows of one
// lane, then reshaped to [V, D].
// CHECK-LABEL: func @bag_grad_max_bf16
// CHECK: arith.remui
// CHECK: arith.shrui
// CHECK: scf.while {{.*}} -> (index, tensor<40x1xbf16>)
// CHECK: tensor.expand_shape {{.*}} : tensor<40xbf16> into tensor<10x4xbf16>
func.func @bag_grad_max_bf16(%g: tensor<2x4xbf16>, %x: tensor<2x3xi64>, %m: tensor<2x4xi64>) -> tensor<10x4xbf16> {
  %0 = emb.bag_grad max %g[%x] max_indices(%m : tensor<2x4xi64>) {num_embeddings = 10 : i64}
      : tensor<2x4xbf16>[tensor<2x3xi64>] -> tensor<10x4xbf16>
  return %0 : tensor<10x4xbf16>
}

// -----

// With a row window, only the window's rows are kept (keys shifted by its
// first row), sorted and written, into a [count, D] result.
// CHECK-LABEL: func @lookup_grad_window
// CHECK-SAME: %[[FIRST:[^:]*]]: index, %[[COUNT:[^:]*]]: index
// CHECK: arith.cmpi sge
// CHECK: arith.cmpi slt
// CHECK: arith.subi
// CHECK: scf.if
// CHECK: tensor.empty(%[[COUNT]]) : tensor<?x8xf32>
func.func @lookup_grad_window(%g: tensor<?x8xf32>, %x: tensor<?xi64>, %first: index, %count: index) -> tensor<?x8xf32> {
  %0 = emb.lookup_grad %g[%x] rows(%first, %count) {num_embeddings = 300 : i64}
      : tensor<?x8xf32>[tensor<?xi64>] -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
