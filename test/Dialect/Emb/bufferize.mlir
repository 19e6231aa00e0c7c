// emb.on_buffers under One-Shot Bufferize: the body is inlined on the
// buffers bufferisation chose for the inits; a buffer that is not
// row-major is copied into one for the body (with `updates`) and back.
// RUN: emb-opt %s -split-input-file --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" | FileCheck %s

// In place: the body writes the caller's buffer.
// CHECK-LABEL: func @in_place
// CHECK-SAME: (%[[W:.*]]: memref<10x8xf32>,
// CHECK-NOT: memref.alloc
// CHECK-NOT: emb.on_buffers
// CHECK: memref.store %{{.*}}, %[[W]]
// CHECK: return
func.func @in_place(%w: tensor<10x8xf32>, %v: f32) -> tensor<10x8xf32> {
  %c0 = arith.constant 0 : index
  %0 = emb.on_buffers updates outs(%w : tensor<10x8xf32>) {
  ^bb0(%b: memref<10x8xf32>):
    memref.store %v, %b[%c0, %c0] : memref<10x8xf32>
  } -> tensor<10x8xf32>
  return %0 : tensor<10x8xf32>
}

// -----

// The old tensor is read after the update: the body updates a copy.
// CHECK-LABEL: func @old_read_later
// CHECK-SAME: (%[[W:.*]]: memref<10x8xf32>,
// CHECK: %[[C:.*]] = memref.alloc() {{.*}}: memref<10x8xf32>
// CHECK: memref.copy %[[W]], %[[C]]
// CHECK: memref.store %{{.*}}, %[[C]]
// CHECK: memref.load %[[W]]
func.func @old_read_later(%w: tensor<10x8xf32>, %v: f32) -> (tensor<10x8xf32>, f32) {
  %c0 = arith.constant 0 : index
  %0 = emb.on_buffers updates outs(%w : tensor<10x8xf32>) {
  ^bb0(%b: memref<10x8xf32>):
    memref.store %v, %b[%c0, %c0] : memref<10x8xf32>
  } -> tensor<10x8xf32>
  %old = tensor.extract %w[%c0, %c0] : tensor<10x8xf32>
  return %0, %old : tensor<10x8xf32>, f32
}

// -----

// An update of a strided slice: the body gets a row-major copy of it,
// copied back after; the result is the slice itself.
// CHECK-LABEL: func @strided_update
// CHECK-SAME: (%[[W:.*]]: memref<10x8xf32>,
// CHECK: %[[S:.*]] = memref.subview %[[W]][2, 0] [4, 4] [1, 1]
// CHECK: %[[C:.*]] = memref.alloc() {{.*}}: memref<4x4xf32>
// CHECK: memref.copy %[[S]], %[[C]]
// CHECK: memref.store %{{.*}}, %[[C]]
// CHECK: memref.copy %[[C]], %[[S]]
func.func @strided_update(%w: tensor<10x8xf32>, %v: f32) -> tensor<10x8xf32> {
  %c0 = arith.constant 0 : index
  %s = tensor.extract_slice %w[2, 0] [4, 4] [1, 1] : tensor<10x8xf32> to tensor<4x4xf32>
  %0 = emb.on_buffers updates outs(%s : tensor<4x4xf32>) {
  ^bb0(%b: memref<4x4xf32>):
    memref.store %v, %b[%c0, %c0] : memref<4x4xf32>
  } -> tensor<4x4xf32>
  %r = tensor.insert_slice %0 into %w[2, 0] [4, 4] [1, 1] : tensor<4x4xf32> into tensor<10x8xf32>
  return %r : tensor<10x8xf32>
}

// -----

// A new result (no `updates`) in a strided view: nothing is copied in.
// CHECK-LABEL: func @strided_new
// CHECK: %[[S:.*]] = memref.subview
// CHECK: %[[C:.*]] = memref.alloc() {{.*}}: memref<4x4xf32>
// CHECK-NOT: memref.copy %[[S]], %[[C]]
// CHECK: memref.store %{{.*}}, %[[C]]
// CHECK: memref.copy %[[C]], %[[S]]
func.func @strided_new(%w: tensor<10x8xf32>, %v: f32) -> tensor<10x8xf32> {
  %c0 = arith.constant 0 : index
  %s = tensor.extract_slice %w[2, 0] [4, 4] [1, 1] : tensor<10x8xf32> to tensor<4x4xf32>
  %0 = emb.on_buffers outs(%s : tensor<4x4xf32>) {
  ^bb0(%b: memref<4x4xf32>):
    memref.store %v, %b[%c0, %c0] : memref<4x4xf32>
  } -> tensor<4x4xf32>
  %r = tensor.insert_slice %0 into %w[2, 0] [4, 4] [1, 1] : tensor<4x4xf32> into tensor<10x8xf32>
  return %r : tensor<10x8xf32>
}
