// The many-table fused step as the JIT builds it (its window counts parts
// of every table: row_parts): every table flat in one
// buffer. The decomposition takes each table out of the flat tensors and
// puts it back before the next one (and an empty row window stands for a
// table outside the thread's window), so bufferisation updates the
// caller's buffers in place: no copy of a table, nor of a table's columns
// of the gradient.
// RUN: emb-opt %s -emb-cpu-pipeline --mlir-print-ir-before=convert-scf-to-cf 2>&1 >/dev/null | FileCheck %s

// CHECK-LABEL: func.func @k
// CHECK-NOT: memref.copy {{.*}}xf32
// CHECK: memref.alloc() {alignment = 64 : i64} : memref<1x8xf32>
// CHECK-NOT: memref.copy {{.*}}xf32
// CHECK: memref.alloc() {alignment = 64 : i64} : memref<1x4xf32>
// CHECK-NOT: memref.copy {{.*}}xf32
// CHECK: return
func.func @k(%g: memref<?x12xf32>, %x: memref<?xi64>, %o: memref<?xi64>, %win: memref<2xi64>, %w: memref<?xf32>, %h: memref<?xf32>, %hyper: memref<2xf64>) attributes {llvm.emit_c_interface} {
  %tg = bufferization.to_tensor %g restrict : memref<?x12xf32> to tensor<?x12xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %o restrict : memref<?xi64> to tensor<?xi64>
  %tw = bufferization.to_tensor %w restrict writable : memref<?xf32> to tensor<?xf32>
  %th = bufferization.to_tensor %h restrict writable : memref<?xf32> to tensor<?xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %a64 = memref.load %win[%c0] : memref<2xi64>
  %n64 = memref.load %win[%c1] : memref<2xi64>
  %a = arith.index_cast %a64 : i64 to index
  %n = arith.index_cast %n64 : i64 to index
  %lr = memref.load %hyper[%c0] : memref<2xf64>
  %r:2 = emb.multi_bag_update rowwise_adagrad %tg, %tw[%tx] offsets(%to : tensor<?xi64>) rows(%a, %n) states(%th : tensor<?xf32>) lr(%lr)
      {table_shapes = array<i64: 100, 8, 50, 4>, modes = [#emb.mode<sum>, #emb.mode<mean>], padding_idx = array<i64: -1, 0>, row_parts = 1024 : i64}
      : tensor<?x12xf32>, tensor<?xf32>[tensor<?xi64>] -> tensor<?xf32>, tensor<?xf32>
  bufferization.materialize_in_destination %r#0 in restrict writable %w : (tensor<?xf32>, memref<?xf32>) -> ()
  bufferization.materialize_in_destination %r#1 in restrict writable %h : (tensor<?xf32>, memref<?xf32>) -> ()
  return
}

// A sequence table (mode none, L = 2) takes its gradient rows from its
// L * D columns: a strided [B, L, D] view that is not one [B * L, D]
// buffer, so bufferisation copies that slice of the gradient (B * L * D
// elements, once per call). Still no copy of a table or of its states.
// CHECK-LABEL: func.func @sequence
// CHECK-NOT: memref.copy {{.*}}xf32
// CHECK: memref.alloc() {alignment = 64 : i64} : memref<1x8xf32>
// CHECK: memref.copy %{{.*}}, %{{.*}} : memref<?x2x4xf32, strided<[16, 4, 1], offset: 8>> to memref<?x2x4xf32>
// CHECK-NOT: memref.copy {{.*}}xf32
// CHECK: return
func.func @sequence(%g: memref<?x16xf32>, %x: memref<?xi64>, %o: memref<?xi64>, %win: memref<2xi64>, %w: memref<?xf32>, %h: memref<?xf32>, %hyper: memref<2xf64>) attributes {llvm.emit_c_interface} {
  %tg = bufferization.to_tensor %g restrict : memref<?x16xf32> to tensor<?x16xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %o restrict : memref<?xi64> to tensor<?xi64>
  %tw = bufferization.to_tensor %w restrict writable : memref<?xf32> to tensor<?xf32>
  %th = bufferization.to_tensor %h restrict writable : memref<?xf32> to tensor<?xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %a64 = memref.load %win[%c0] : memref<2xi64>
  %n64 = memref.load %win[%c1] : memref<2xi64>
  %a = arith.index_cast %a64 : i64 to index
  %n = arith.index_cast %n64 : i64 to index
  %lr = memref.load %hyper[%c0] : memref<2xf64>
  %r:2 = emb.multi_bag_update rowwise_adagrad %tg, %tw[%tx] offsets(%to : tensor<?xi64>) rows(%a, %n) states(%th : tensor<?xf32>) lr(%lr)
      {table_shapes = array<i64: 100, 8, 50, 4>, modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, 0>, sequence_lengths = array<i64: 0, 2>}
      : tensor<?x16xf32>, tensor<?xf32>[tensor<?xi64>] -> tensor<?xf32>, tensor<?xf32>
  bufferization.materialize_in_destination %r#0 in restrict writable %w : (tensor<?xf32>, memref<?xf32>) -> ()
  bufferization.materialize_in_destination %r#1 in restrict writable %h : (tensor<?xf32>, memref<?xf32>) -> ()
  return
}
