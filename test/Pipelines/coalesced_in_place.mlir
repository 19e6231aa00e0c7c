// A coalesced sparse gradient as the JIT builds its kernel (KernelBuilder):
// the result, whose size only the kernel knows, is materialised in views
// of the caller's buffers of that size. emb-cpu-pipeline builds it in
// those views (emb-forward-allocs-to-copy-targets): no scratch [rows, D]
// buffer and no copy at the end.
// RUN: emb-opt %s -emb-cpu-pipeline --mlir-print-ir-after=emb-forward-allocs-to-copy-targets 2>&1 >/dev/null | FileCheck %s

// CHECK-LABEL: func.func @coalesced
// CHECK-SAME: %[[ROWS:arg3]]: memref<?xi64>, %[[VALUES:arg4]]: memref<?x16xf32>
// CHECK-NOT: memref.alloc({{.*}}) {{.*}} : memref<?x16xf32>
// CHECK-DAG: memref.reinterpret_cast %[[ROWS]]
// CHECK-DAG: memref.reinterpret_cast %[[VALUES]]
// CHECK-NOT: memref.copy {{.*}} : memref<?x16xf32> to memref<?x16xf32>
// CHECK: return
func.func @coalesced(%arg0: memref<?x16xf32>, %arg1: memref<?xi64>, %arg2: memref<?xi64>, %arg3: memref<?xi64>, %arg4: memref<?x16xf32>, %arg5: memref<1xi64>) attributes {llvm.emit_c_interface} {
  %0 = bufferization.to_tensor %arg0 restrict : memref<?x16xf32> to tensor<?x16xf32>
  %1 = bufferization.to_tensor %arg1 restrict : memref<?xi64> to tensor<?xi64>
  %2 = bufferization.to_tensor %arg2 restrict : memref<?xi64> to tensor<?xi64>
  %rows, %values = emb.bag_sparse_grad sum %0[%1] offsets(%2 : tensor<?xi64>) {coalesced, num_embeddings = 1000 : i64} : tensor<?x16xf32>[tensor<?xi64>] -> tensor<?xi64>, tensor<?x16xf32>
  %c0 = arith.constant 0 : index
  %dim = tensor.dim %rows, %c0 : tensor<?xi64>
  %3 = arith.index_cast %dim : index to i64
  %view = memref.reinterpret_cast %arg3 to offset: [0], sizes: [%dim], strides: [1] : memref<?xi64> to memref<?xi64>
  bufferization.materialize_in_destination %rows in restrict writable %view : (tensor<?xi64>, memref<?xi64>) -> ()
  %view2 = memref.reinterpret_cast %arg4 to offset: [0], sizes: [%dim, 16], strides: [16, 1] : memref<?x16xf32> to memref<?x16xf32>
  bufferization.materialize_in_destination %values in restrict writable %view2 : (tensor<?x16xf32>, memref<?x16xf32>) -> ()
  memref.store %3, %arg5[%c0] : memref<1xi64>
  return
}
