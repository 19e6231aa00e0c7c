// RUN: emb-opt %s -split-input-file -emb-forward-allocs-to-copy-targets | FileCheck %s

// A result built in scratch memory and copied into a view of the caller's
// buffer of the same size: built in the view.
// CHECK-LABEL: func @forwarded
// CHECK-SAME: (%[[N:.*]]: index, %[[OUT:.*]]: memref<?x4xf32>, %[[V:.*]]: vector<4xf32>)
// CHECK-NOT: memref.alloc
// CHECK: %[[VIEW:.*]] = memref.reinterpret_cast %[[OUT]] to offset: [0], sizes: [%[[N]], 4], strides: [4, 1]
// CHECK: scf.for %[[I:.*]] =
// CHECK:   vector.transfer_write %[[V]], %[[VIEW]][%[[I]], %{{.*}}]
// CHECK-NOT: memref.copy
// CHECK: return
func.func @forwarded(%n: index, %out: memref<?x4xf32>, %v: vector<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %a = memref.alloc(%n) : memref<?x4xf32>
  scf.for %i = %c0 to %n step %c1 {
    vector.transfer_write %v, %a[%i, %c0] {in_bounds = [true]} : vector<4xf32>, memref<?x4xf32>
  }
  %view = memref.reinterpret_cast %out to offset: [0], sizes: [%n, 4], strides: [4, 1] : memref<?x4xf32> to memref<?x4xf32>
  memref.copy %a, %view : memref<?x4xf32> to memref<?x4xf32>
  return
}

// -----

// The caller's buffer is read before the copy: left alone.
// CHECK-LABEL: func @target_read
// CHECK: memref.alloc
// CHECK: memref.copy
func.func @target_read(%n: index, %out: memref<?xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %x = memref.load %out[%c0] : memref<?xf32>
  %a = memref.alloc(%n) : memref<?xf32>
  memref.store %x, %a[%c0] : memref<?xf32>
  %view = memref.reinterpret_cast %out to offset: [0], sizes: [%n], strides: [1] : memref<?xf32> to memref<?xf32>
  memref.copy %a, %view : memref<?xf32> to memref<?xf32>
  return %x : f32
}

// -----

// The view's size is known only after the allocation: left alone.
// CHECK-LABEL: func @size_after_alloc
// CHECK: memref.alloc
// CHECK: memref.copy
func.func @size_after_alloc(%n: index, %out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %a = memref.alloc(%n) : memref<?xf32>
  %m = memref.dim %a, %c0 : memref<?xf32>
  %view = memref.reinterpret_cast %out to offset: [0], sizes: [%m], strides: [1] : memref<?xf32> to memref<?xf32>
  memref.copy %a, %view : memref<?xf32> to memref<?xf32>
  return
}

// -----

// A view of another shape, and a copy from something not allocated here:
// left alone.
// CHECK-LABEL: func @not_the_same
// CHECK-COUNT-2: memref.copy
func.func @not_the_same(%n: index, %in: memref<?xf32>, %out: memref<?xf32>, %out2: memref<?x2xf32>) {
  %a = memref.alloc(%n) : memref<?xf32>
  %view = memref.reinterpret_cast %out to offset: [0], sizes: [%n], strides: [1] : memref<?xf32> to memref<?xf32>
  memref.copy %in, %view : memref<?xf32> to memref<?xf32>
  %b = memref.alloc(%n) : memref<?x2xf32>
  %view2 = memref.reinterpret_cast %out2 to offset: [0], sizes: [%n, 2], strides: [1, 1] : memref<?x2xf32> to memref<?x2xf32, strided<[1, 1]>>
  memref.copy %b, %view2 : memref<?x2xf32> to memref<?x2xf32, strided<[1, 1]>>
  return
}
