// The fused optimizer step as the JIT builds its kernel (KernelBuilder):
// the window's rows of the table and of the state are updated in place in
// the caller's buffers. Its allocations are the sort's index arrays and one
// scratch row; no table-sized buffer, no copy of the table.
// RUN: emb-opt %s -emb-cpu-pipeline --mlir-print-ir-before=convert-scf-to-cf 2>&1 >/dev/null | FileCheck %s

// CHECK-LABEL: func.func @rowwise
// CHECK-NOT: memref.alloc({{.*}}) {{.*}} : memref<?x16xf32>
// CHECK-NOT: memref.copy {{.*}} : memref<?x16xf32> to memref<?x16xf32>
// CHECK-NOT: memref.copy {{.*}} : memref<?xf32> to memref<?xf32>
// CHECK: memref.alloc() {alignment = 64 : i64} : memref<1x16xf32>
// CHECK-NOT: memref.alloc({{.*}}) {{.*}} : memref<?x16xf32>
// CHECK: memref.store {{.*}} : memref<?xf32>
// CHECK: vector.transfer_write {{.*}} : vector<16xf32>, memref<?x16xf32>
// CHECK-NOT: memref.copy {{.*}} : memref<?x16xf32> to memref<?x16xf32>
// CHECK: return
func.func @rowwise(%g: memref<?x16xf32>, %x: memref<?xi64>, %o: memref<?xi64>, %win: memref<2xi64>, %w: memref<?x16xf32>, %h: memref<?xf32>, %hyper: memref<2xf64>) attributes {llvm.emit_c_interface} {
  %tg = bufferization.to_tensor %g restrict : memref<?x16xf32> to tensor<?x16xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %o restrict : memref<?xi64> to tensor<?xi64>
  %tw = bufferization.to_tensor %w restrict writable : memref<?x16xf32> to tensor<?x16xf32>
  %th = bufferization.to_tensor %h restrict writable : memref<?xf32> to tensor<?xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %first64 = memref.load %win[%c0] : memref<2xi64>
  %count64 = memref.load %win[%c1] : memref<2xi64>
  %first = arith.index_cast %first64 : i64 to index
  %count = arith.index_cast %count64 : i64 to index
  %lr = memref.load %hyper[%c0] : memref<2xf64>
  %w2, %h2 = emb.bag_update rowwise_adagrad sum %tg[%tx] offsets(%to : tensor<?xi64>) rows(%first, %count) weight(%tw : tensor<?x16xf32>) states(%th : tensor<?xf32>) lr(%lr) {num_embeddings = 1000 : i64, weight_decay = 0.01 : f64}
     : tensor<?x16xf32>[tensor<?xi64>] -> tensor<?x16xf32>, tensor<?xf32>
  bufferization.materialize_in_destination %w2 in restrict writable %w : (tensor<?x16xf32>, memref<?x16xf32>) -> ()
  bufferization.materialize_in_destination %h2 in restrict writable %h : (tensor<?xf32>, memref<?xf32>) -> ()
  return
}
