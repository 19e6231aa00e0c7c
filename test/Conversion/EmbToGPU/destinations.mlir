// Which buffers the GPU kernels write: convert-emb-to-gpu gives every op's
// results as the inits of an emb.on_buffers op (new results: tensor.empty;
// renorm and the fused step: the tensors they update), and upstream
// bufferisation decides, as emb-nvptx-pipeline runs it: a result
// materialised in a `restrict` buffer is written straight into it
// (eliminate-empty-tensors), an update is in place unless the old tensor
// is read later (One-Shot Bufferize), anything else gets a new buffer.
// RUN: emb-opt %s --split-input-file --convert-emb-to-gpu --eliminate-empty-tensors --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --canonicalize | FileCheck %s

// The JIT's form: the kernel stores into the caller's buffer; no buffer
// of its own, no copy.
// CHECK-LABEL: func.func @lookup_into_destination
// CHECK-SAME: %[[OUT:[^:]*]]: memref<?x128xf32>)
// CHECK-NOT: memref.alloc
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %[[OUT]]{{.*}} {alignment = 16 : i64} : memref<?x128xf32>, vector<4xf32>
// CHECK-NOT: memref.copy
// CHECK: return
func.func @lookup_into_destination(%w: memref<1000x128xf32>, %x: memref<?xi64>, %out: memref<?x128xf32>) {
  %tw = bufferization.to_tensor %w restrict : memref<1000x128xf32> to tensor<1000x128xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.lookup %tw[%tx] : tensor<1000x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x128xf32>, memref<?x128xf32>) -> ()
  return
}

// -----

// A returned result goes to a new buffer.
// CHECK-LABEL: func.func @lookup_returned
// CHECK: %[[BUF:.*]] = memref.alloc({{.*}}) {{.*}}: memref<?x17xf32>
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %[[BUF]]
// CHECK: return %[[BUF]]
func.func @lookup_returned(%w: tensor<50x17xf32>, %x: tensor<?xi32>) -> tensor<?x17xf32> {
  %r = emb.lookup %w[%x] : tensor<50x17xf32>[tensor<?xi32>] -> tensor<?x17xf32>
  return %r : tensor<?x17xf32>
}

// -----

// Both results of a max bag go straight into their destinations. (A host
// memref.alloc here cannot be launched on: convert-gpu-to-emb-runtime
// rejects it.)
// CHECK-LABEL: func.func @bag_max_into_destinations
// CHECK-NOT: memref.alloc
// CHECK: gpu.launch
// CHECK: vector.store {{.*}} %arg3{{.*}} : memref<?x32xf32>, vector<4xf32>
// CHECK: vector.store {{.*}} %arg4{{.*}} : memref<?x32xi64>, vector<4xi64>
// CHECK-NOT: memref.copy
// CHECK: return
func.func @bag_max_into_destinations(%w: tensor<100x32xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>, %out: memref<?x32xf32>, %idx: memref<?x32xi64>) {
  %r, %m = emb.bag max %w[%x] offsets(%o : tensor<?xi64>) : tensor<100x32xf32>[tensor<?xi64>] -> tensor<?x32xf32>, tensor<?x32xi64>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x32xf32>, memref<?x32xf32>) -> ()
  bufferization.materialize_in_destination %m in restrict writable %idx : (tensor<?x32xi64>, memref<?x32xi64>) -> ()
  return
}

// -----

// A destination that is not row-major (a strided subview): the kernel
// writes a row-major buffer (emb.on_buffers's bufferisation), copied into
// the view after it.
// CHECK-LABEL: func.func @strided_destination
// CHECK: %[[VIEW:.*]] = memref.subview
// CHECK: %[[BUF:.*]] = memref.alloc() {{.*}}: memref<4x3x8xf32>
// CHECK: %[[ROWS:.*]] = memref.collapse_shape %[[BUF]]
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %[[ROWS]]{{.*}} {alignment = 16 : i64} : memref<12x8xf32>, vector<4xf32>
// CHECK: memref.copy %[[BUF]], %[[VIEW]] : memref<4x3x8xf32> to memref<4x3x8xf32, strided<[27, 9, 1]>>
// CHECK-NOT: memref.copy
// CHECK: return
func.func @strided_destination(%w: tensor<10x8xf32>, %x: tensor<4x3xi64>, %big: memref<4x3x9xf32>) {
  %r = emb.lookup %w[%x] : tensor<10x8xf32>[tensor<4x3xi64>] -> tensor<4x3x8xf32>
  %sub = memref.subview %big[0, 0, 0] [4, 3, 8] [1, 1, 1] : memref<4x3x9xf32> to memref<4x3x8xf32, strided<[27, 9, 1]>>
  bufferization.materialize_in_destination %r in restrict writable %sub : (tensor<4x3x8xf32>, memref<4x3x8xf32, strided<[27, 9, 1]>>) -> ()
  return
}

// -----

// A destination that is not `restrict` may be read elsewhere (here before
// the materialisation): the kernel writes its own buffer, then copied.
// CHECK-LABEL: func.func @destination_not_restrict
// CHECK: %[[BUF:.*]] = memref.alloc() {{.*}}: memref<2x8xf32>
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %[[BUF]]
// CHECK: memref.copy %[[BUF]], %arg2
func.func @destination_not_restrict(%w: tensor<10x8xf32>, %x: tensor<2xi64>, %out: memref<2x8xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %r = emb.lookup %w[%x] : tensor<10x8xf32>[tensor<2xi64>] -> tensor<2x8xf32>
  %old = memref.load %out[%c0, %c0] : memref<2x8xf32>
  bufferization.materialize_in_destination %r in writable %out : (tensor<2x8xf32>, memref<2x8xf32>) -> ()
  return %old : f32
}

// -----

// Renorm in place (the JIT's form: the result goes back into the weight's
// buffer): the rows are rescaled in the caller's table, no copy.
// CHECK-LABEL: func.func @renorm_in_place
// CHECK-SAME: (%[[W:.*]]: memref<100x8xf32>, %[[X:.*]]: memref<?xi64>)
// CHECK-NOT: memref.alloc
// CHECK: gpu.launch
// CHECK: gpu.launch
// CHECK: memref.atomic_rmw ori
// CHECK: vector.store {{.*}}, %[[W]]
// CHECK-NOT: memref.copy
// CHECK: return
func.func @renorm_in_place(%w: memref<100x8xf32>, %x: memref<?xi64>) {
  %tw = bufferization.to_tensor %w restrict writable : memref<100x8xf32> to tensor<100x8xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.renorm %tw[%tx] {max_norm = 1.0 : f64} : tensor<100x8xf32>[tensor<?xi64>] -> tensor<100x8xf32>
  bufferization.materialize_in_destination %r in restrict writable %w : (tensor<100x8xf32>, memref<100x8xf32>) -> ()
  return
}

// -----

// The old table is read after the renorm (a lookup of it): the renorm
// works on a copy, and the lookup reads the original.
// CHECK-LABEL: func.func @renorm_copy
// CHECK-SAME: (%[[W:.*]]: memref<100x8xf32>, %{{.*}}: memref<?xi64>)
// CHECK: %[[T:.*]] = memref.alloc() {{.*}}: memref<100x8xf32>
// CHECK: memref.copy %[[W]], %[[T]]
// CHECK: gpu.launch
// CHECK: math.powf
// CHECK: vector.store {{.*}}, %[[T]]
// CHECK: gpu.launch
// CHECK: vector.load %[[W]]
// CHECK: return %[[T]]
func.func @renorm_copy(%w: tensor<100x8xf32>, %x: tensor<?xi64>) -> (tensor<100x8xf32>, tensor<?x8xf32>) {
  %r = emb.renorm %w[%x] {max_norm = 1.0 : f64, norm_type = 3.0 : f64} : tensor<100x8xf32>[tensor<?xi64>] -> tensor<100x8xf32>
  %old = emb.lookup %w[%x] : tensor<100x8xf32>[tensor<?xi64>] -> tensor<?x8xf32>
  return %r, %old : tensor<100x8xf32>, tensor<?x8xf32>
}

// -----

// The fused optimizer step updates the caller's table and state in place
// (bag_update.mlir checks the kernels).
// CHECK-LABEL: func.func @bag_update_in_place
// CHECK-SAME: %[[W:arg2]]: memref<300x8xf32>, %[[H:arg3]]: memref<300xf32>
// CHECK-NOT: memref.alloc() {{.*}}: memref<300x8xf32>
// CHECK: memref.store {{.*}}, %[[H]][{{.*}}] : memref<300xf32>
// CHECK: vector.store {{.*}}, %[[W]][{{.*}}] {alignment = 16 : i64} : memref<300x8xf32>, vector<4xf32>
// CHECK-NOT: memref.copy
// CHECK: return
func.func @bag_update_in_place(%g: tensor<?x8xf32>, %x: tensor<?x3xi64>, %w: memref<300x8xf32>, %h: memref<300xf32>, %lr: f64) {
  %tw = bufferization.to_tensor %w restrict writable : memref<300x8xf32> to tensor<300x8xf32>
  %th = bufferization.to_tensor %h restrict writable : memref<300xf32> to tensor<300xf32>
  %0:2 = emb.bag_update rowwise_adagrad sum %g[%x] weight(%tw : tensor<300x8xf32>) states(%th : tensor<300xf32>) lr(%lr)
      {num_embeddings = 300 : i64}
      : tensor<?x8xf32>[tensor<?x3xi64>] -> tensor<300x8xf32>, tensor<300xf32>
  bufferization.materialize_in_destination %0#0 in restrict writable %w : (tensor<300x8xf32>, memref<300x8xf32>) -> ()
  bufferization.materialize_in_destination %0#1 in restrict writable %h : (tensor<300xf32>, memref<300xf32>) -> ()
  return
}

// -----

// A table that is not writable (a read-only to_tensor) is updated on
// copies of the table and the state; the untouched rows come with them.
// CHECK-LABEL: func.func @bag_update_on_copies
// CHECK-SAME: %[[W:arg2]]: memref<300x8xf32>, %[[H:arg3]]: memref<300xf32>
// CHECK-DAG: %[[WC:.*]] = memref.alloc() {{.*}}: memref<300x8xf32>
// CHECK-DAG: memref.copy %[[W]], %[[WC]]
// CHECK-DAG: %[[HC:.*]] = memref.alloc() {{.*}}: memref<300xf32>
// CHECK-DAG: memref.copy %[[H]], %[[HC]]
// CHECK: memref.store {{.*}}, %[[HC]][{{.*}}] : memref<300xf32>
// CHECK: vector.store {{.*}}, %[[WC]][{{.*}}] {alignment = 16 : i64} : memref<300x8xf32>, vector<4xf32>
// CHECK: return %[[WC]], %[[HC]]
func.func @bag_update_on_copies(%g: tensor<?x8xf32>, %x: tensor<?x3xi64>, %w: memref<300x8xf32>, %h: memref<300xf32>, %lr: f64) -> (tensor<300x8xf32>, tensor<300xf32>) {
  %tw = bufferization.to_tensor %w restrict : memref<300x8xf32> to tensor<300x8xf32>
  %th = bufferization.to_tensor %h restrict : memref<300xf32> to tensor<300xf32>
  %0:2 = emb.bag_update rowwise_adagrad sum %g[%x] weight(%tw : tensor<300x8xf32>) states(%th : tensor<300xf32>) lr(%lr)
      {num_embeddings = 300 : i64}
      : tensor<?x8xf32>[tensor<?x3xi64>] -> tensor<300x8xf32>, tensor<300xf32>
  return %0#0, %0#1 : tensor<300x8xf32>, tensor<300xf32>
}

// -----

// A dense gradient into its destination: the accumulation (zeros, then
// atomics) is in the caller's buffer.
// CHECK-LABEL: func.func @lookup_grad_into_destination
// CHECK-SAME: %[[OUT:[^:]*]]: memref<1000x64xf32>)
// CHECK-NOT: memref.alloc
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %[[OUT]]
// CHECK: gpu.launch
// CHECK: memref.atomic_rmw addf {{.*}}, %[[OUT]]
// CHECK-NOT: memref.copy
// CHECK: return
func.func @lookup_grad_into_destination(%g: tensor<?x64xf32>, %x: tensor<?xi64>, %out: memref<1000x64xf32>) {
  %r = emb.lookup_grad %g[%x] {num_embeddings = 1000 : i64} : tensor<?x64xf32>[tensor<?xi64>] -> tensor<1000x64xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<1000x64xf32>, memref<1000x64xf32>) -> ()
  return
}

// -----

// A result materialised into a tensor its own kernels read (here the
// gradient into the incoming gradient): the reads are the op's inputs, so
// the analysis writes out of place, and the copy comes after the kernels.
// (Before the inputs were operands, the scatter zeroed %g in place and then
// read it: zeros.)
// CHECK-LABEL: func.func @grad_into_own_grad
// CHECK-SAME: (%[[G:.*]]: memref<16x8xf32>,
// CHECK: %[[BUF:.*]] = memref.alloc() {{.*}}: memref<16x8xf32>
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %[[BUF]]
// CHECK: gpu.launch
// CHECK: memref.load %[[G]]
// CHECK: memref.atomic_rmw addf {{.*}}, %[[BUF]]
// CHECK: memref.copy %[[BUF]], %[[G]]
func.func @grad_into_own_grad(%g: tensor<16x8xf32>, %x: tensor<16xi64>) -> tensor<16x8xf32> {
  %r = emb.lookup_grad %g[%x] {num_embeddings = 16 : i64} : tensor<16x8xf32>[tensor<16xi64>] -> tensor<16x8xf32>
  %u = bufferization.materialize_in_destination %r in %g : (tensor<16x8xf32>, tensor<16x8xf32>) -> tensor<16x8xf32>
  return %u : tensor<16x8xf32>
}

// -----

// An update whose gradient is the table itself (the JIT's form): the
// table is updated on a copy while the gradient is read from the original.
// CHECK-LABEL: func.func @grad_is_weight
// CHECK-SAME: (%[[W:.*]]: memref<4x8xf32>,
// CHECK: %[[C:.*]] = memref.alloc() {{.*}}: memref<4x8xf32>
// CHECK: memref.copy %[[W]], %[[C]]
// CHECK: vector.load %[[W]]
// CHECK: vector.store {{.*}}, %[[C]]
// CHECK: memref.copy %[[C]], %[[W]]
func.func @grad_is_weight(%w: memref<4x8xf32>, %x: memref<4x1xi64>, %lr: f64) {
  %tw = bufferization.to_tensor %w restrict writable : memref<4x8xf32> to tensor<4x8xf32>
  %tx = bufferization.to_tensor %x restrict : memref<4x1xi64> to tensor<4x1xi64>
  %0 = emb.bag_update sgd sum %tw[%tx] weight(%tw : tensor<4x8xf32>) lr(%lr)
      {num_embeddings = 4 : i64}
      : tensor<4x8xf32>[tensor<4x1xi64>] -> tensor<4x8xf32>
  bufferization.materialize_in_destination %0 in restrict writable %w : (tensor<4x8xf32>, memref<4x8xf32>) -> ()
  return
}
