// convert-emb-to-scf, BagUpdate.cpp: the backward fused with an optimizer
// sorts the entries by row (the dense gradient's radix sort), then per run
// of one row sums its contributions into one scratch row and updates the
// row of the table and its state once: no [V, D] gradient.
// RUN: emb-opt %s -convert-emb-to-scf -split-input-file | FileCheck %s

// rowwise_adagrad: h[r] += mean((g + wd W[r])^2) (one reduction per row),
// then W[r] -= lr g / (sqrt(h[r]) + eps). The table's row a few runs ahead
// and each entry's gradient row a few entries ahead are prefetched; the
// sort carries the entries' bags (sum, no weights).
// CHECK-LABEL: func @rowwise
// CHECK-SAME: %[[W:arg2]]: tensor<300x8xf32>, %[[H:arg3]]: tensor<300xf32>
// CHECK-COUNT-2: arith.shrui
// CHECK: %[[SCRATCH:.*]] = tensor.empty() : tensor<1x8xf32>
// CHECK-NOT: tensor<300x8xf32> = tensor.empty
// CHECK: scf.while ({{.*}} = %[[W]], {{.*}} = %[[H]], {{.*}} = %[[SCRATCH]]) : (index, tensor<300x8xf32>, tensor<300xf32>, tensor<1x8xf32>)
// CHECK:   memref.prefetch {{.*}}[{{.*}}], write, locality<3>, data : memref<300x8xf32, strided<[?, ?], offset: ?>>
// CHECK:   scf.while {{.*}} : (index, tensor<1x8xf32>) -> (index, tensor<1x8xf32>)
// CHECK:     memref.prefetch {{.*}}[{{.*}}], read, locality<3>, data : memref<?x8xf32, strided<[?, ?], offset: ?>>
// CHECK:     vector.transfer_read {{.*}} : tensor<?x8xf32>, vector<8xf32>
// CHECK:   vector.reduction <add>
// CHECK:   tensor.insert {{.*}} : tensor<300xf32>
// CHECK:   math.sqrt {{.*}} : vector<8xf32>
// CHECK:   vector.transfer_write {{.*}} : vector<8xf32>, tensor<300x8xf32>
func.func @rowwise(%g: tensor<?x8xf32>, %x: tensor<?x3xi64>, %w: tensor<300x8xf32>, %h: tensor<300xf32>, %lr: f64) -> (tensor<300x8xf32>, tensor<300xf32>) {
  %0:2 = emb.bag_update rowwise_adagrad sum %g[%x] weight(%w : tensor<300x8xf32>) states(%h : tensor<300xf32>) lr(%lr)
      {num_embeddings = 300 : i64, weight_decay = 0.5 : f64}
      : tensor<?x8xf32>[tensor<?x3xi64>] -> tensor<300x8xf32>, tensor<300xf32>
  return %0#0, %0#1 : tensor<300x8xf32>, tensor<300xf32>
}

// -----

// adam on a window of bf16 rows: f32 moments, the bias corrections from
// the step operand (by squaring, no libm), W rounded once on store.
// CHECK-LABEL: func @adam_window
// CHECK: scf.while {{.*}} : (i64, f64, f64) -> (i64, f64, f64)
// CHECK: scf.while {{.*}} : (index, tensor<?x4xbf16>, tensor<?x4xf32>, tensor<?x4xf32>, tensor<1x4xf32>)
// CHECK:   arith.extf {{.*}} : vector<4xbf16> to vector<4xf32>
// CHECK:   math.sqrt
// CHECK:   arith.truncf {{.*}} : vector<4xf32> to vector<4xbf16>
// CHECK:   vector.transfer_write {{.*}} : vector<4xbf16>, tensor<?x4xbf16>
// CHECK:   vector.transfer_write {{.*}} : vector<4xf32>, tensor<?x4xf32>
// CHECK:   vector.transfer_write {{.*}} : vector<4xf32>, tensor<?x4xf32>
func.func @adam_window(%g: tensor<?x4xbf16>, %x: tensor<?xi32>, %o: tensor<?xi64>, %w: tensor<?x4xbf16>,
                       %m: tensor<?x4xf32>, %s: tensor<?x4xf32>, %lr: f64, %t: i64, %a: index, %n: index)
    -> (tensor<?x4xbf16>, tensor<?x4xf32>, tensor<?x4xf32>) {
  %0:3 = emb.bag_update adam mean %g[%x] offsets(%o : tensor<?xi64>) rows(%a, %n)
      weight(%w : tensor<?x4xbf16>) states(%m, %s : tensor<?x4xf32>, tensor<?x4xf32>) lr(%lr) step(%t)
      {num_embeddings = 1000 : i64, padding_idx = 2 : i64}
      : tensor<?x4xbf16>[tensor<?xi32>] -> tensor<?x4xbf16>, tensor<?x4xf32>, tensor<?x4xf32>
  return %0#0, %0#1, %0#2 : tensor<?x4xbf16>, tensor<?x4xf32>, tensor<?x4xf32>
}

// -----

// max: one entry per element of max_indices (-1 left out of the sort), each
// adding one element of the gradient to the scratch row.
// CHECK-LABEL: func @sgd_max
// CHECK: tensor.collapse_shape {{.*}} : tensor<?x4xi64> into tensor<?xi64>
// CHECK: scf.while
// CHECK:   arith.divui
// CHECK:   arith.remui
// CHECK:   tensor.insert {{.*}} : tensor<1x4xf32>
func.func @sgd_max(%g: tensor<?x4xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>, %am: tensor<?x4xi64>, %w: tensor<50x4xf32>, %lr: f64) -> tensor<50x4xf32> {
  %0 = emb.bag_update sgd max %g[%x] offsets(%o : tensor<?xi64>) max_indices(%am : tensor<?x4xi64>)
      weight(%w : tensor<50x4xf32>) lr(%lr) {num_embeddings = 50 : i64}
      : tensor<?x4xf32>[tensor<?xi64>] -> tensor<50x4xf32>
  return %0 : tensor<50x4xf32>
}
