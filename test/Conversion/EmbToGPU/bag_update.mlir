// convert-emb-to-gpu, BagUpdate.cpp: the backward fused with an optimizer.
// RUN: emb-opt %s --convert-emb-to-gpu --eliminate-empty-tensors --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" | FileCheck %s

// The deterministic gradients' sort (keys, bags' entries, the radix passes),
// then a thread per row (row-wise Adagrad: h[r] from the whole row) that
// finds its entries and, when it has any, updates the caller's table and
// state in place: no atomics, no copy of the table.
// CHECK-LABEL: func.func @rowwise
// CHECK-SAME: %[[W:arg2]]: memref<300x8xf32>, %[[H:arg3]]: memref<300xf32>
// CHECK-NOT: memref.atomic_rmw
// CHECK-NOT: memref.alloc() : memref<300x8xf32>
// CHECK: scf.for
// CHECK-COUNT-5: gpu.launch
// CHECK: scf.yield
// CHECK: gpu.launch
// CHECK:   scf.while
// CHECK:   scf.if
// CHECK:     vector.reduction <add>
// CHECK:     memref.store {{.*}}, %[[H]][{{.*}}] : memref<300xf32>
// CHECK:     math.sqrt {{.*}} : vector<4xf32>
// CHECK:     vector.store {{.*}}, %[[W]][{{.*}}] {alignment = 16 : i64} : memref<300x8xf32>, vector<4xf32>
// CHECK-NOT: bufferization.materialize_in_destination
// CHECK: return
func.func @rowwise(%g: tensor<?x8xf32>, %x: tensor<?x3xi64>, %w: memref<300x8xf32>, %h: memref<300xf32>, %lr: f64) {
  %tw = bufferization.to_tensor %w restrict writable : memref<300x8xf32> to tensor<300x8xf32>
  %th = bufferization.to_tensor %h restrict writable : memref<300xf32> to tensor<300xf32>
  %0:2 = emb.bag_update rowwise_adagrad sum %g[%x] weight(%tw : tensor<300x8xf32>) states(%th : tensor<300xf32>) lr(%lr)
      {num_embeddings = 300 : i64}
      : tensor<?x8xf32>[tensor<?x3xi64>] -> tensor<300x8xf32>, tensor<300xf32>
  bufferization.materialize_in_destination %0#0 in restrict writable %w : (tensor<300x8xf32>, memref<300x8xf32>) -> ()
  bufferization.materialize_in_destination %0#1 in restrict writable %h : (tensor<300xf32>, memref<300xf32>) -> ()
  return
}
