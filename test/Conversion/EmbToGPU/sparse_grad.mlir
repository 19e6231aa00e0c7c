// convert-emb-to-gpu, SparseGrad.cpp: the COO gradients (compaction, or sorted runs).
// RUN: emb-opt %s --convert-emb-to-gpu --split-input-file --verify-diagnostics | FileCheck %s

// Sparse gradients: the live entries counted per chunk and scanned, the
// total read back to the host (the results' size depends on the data),
// then the rows and the scaled contributions written at their place.
// CHECK-LABEL: func.func @lookup_sparse_grad
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.launch
// CHECK: arith.cmpi ne
// CHECK: gpu.terminator
// CHECK: %[[HOST:.*]] = memref.alloca() : memref<1xi64>
// CHECK: gpu.memcpy  %[[HOST]], %{{.*}} : memref<1xi64>, memref<1xi64, strided<[1], offset: ?>>
// CHECK: %[[M:.*]] = memref.load %[[HOST]]
// CHECK: %[[MI:.*]] = arith.index_cast %[[M]]
// CHECK: %[[ROWS:.*]] = gpu.alloc  (%[[MI]]) : memref<?xi64>
// CHECK: gpu.alloc  (%[[MI]]) : memref<?x64xf32>
// CHECK: vector.store
// CHECK: bufferization.to_tensor
// CHECK-NOT: memref.atomic_rmw
// Returned results are the caller's: not freed.
// CHECK-NOT: gpu.dealloc %[[ROWS]]
// CHECK: return
func.func @lookup_sparse_grad(%g: tensor<?x64xf32>, %x: tensor<?xi64>) -> (tensor<?xi64>, tensor<?x64xf32>) {
  %r, %v = emb.lookup_sparse_grad %g[%x] {num_embeddings = 1000 : i64, padding_idx = 0 : i64} : tensor<?x64xf32>[tensor<?xi64>] -> tensor<?xi64>, tensor<?x64xf32>
  return %r, %v : tensor<?xi64>, tensor<?x64xf32>
}
