// emb-cpu-pipeline: a kernel in the form the JIT emits (memrefs at the
// boundary, emb ops on tensors inside) becomes LLVM dialect that loads whole
// rows, writes straight into the caller's output and allocates nothing.
// RUN: emb-opt %s --emb-cpu-pipeline | FileCheck %s

// CHECK-LABEL: llvm.func @bag_sum
// CHECK-NOT: llvm.call @malloc
// CHECK-NOT: masked.gather
// CHECK: llvm.intr.prefetch
// CHECK: llvm.load %{{.*}} {alignment = 4 : i64} : !llvm.ptr -> vector<128xf32>
// CHECK: llvm.fadd %{{.*}} : vector<128xf32>
// CHECK: llvm.store %{{.*}} : vector<128xf32>, !llvm.ptr
// CHECK-NOT: llvm.call @malloc
// CHECK: llvm.func @_mlir_ciface_bag_sum
func.func @bag_sum(%w: memref<?x128xf32>, %idx: memref<?xi64>, %off: memref<?xi64>, %out: memref<?x128xf32>)
    attributes {llvm.emit_c_interface} {
  %tw = bufferization.to_tensor %w restrict : memref<?x128xf32> to tensor<?x128xf32>
  %ti = bufferization.to_tensor %idx restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %off restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.bag sum %tw[%ti] offsets(%to : tensor<?xi64>) : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x128xf32>, memref<?x128xf32>) -> ()
  return
}

// CHECK-LABEL: llvm.func @lookup
// CHECK-NOT: llvm.call @malloc
// CHECK: llvm.load %{{.*}} : !llvm.ptr -> vector<64xbf16>
// CHECK: llvm.store %{{.*}} : vector<64xbf16>, !llvm.ptr
func.func @lookup(%w: memref<?x64xbf16>, %idx: memref<?xi32>, %out: memref<?x64xbf16>)
    attributes {llvm.emit_c_interface} {
  %tw = bufferization.to_tensor %w restrict : memref<?x64xbf16> to tensor<?x64xbf16>
  %ti = bufferization.to_tensor %idx restrict : memref<?xi32> to tensor<?xi32>
  %r = emb.lookup %tw[%ti] : tensor<?x64xbf16>[tensor<?xi32>] -> tensor<?x64xbf16>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x64xbf16>, memref<?x64xbf16>) -> ()
  return
}

// Renorm writes the caller's table in place: no copy of the table; its only
// allocation is the V-byte scratch of visited rows, freed before returning.
// CHECK-LABEL: llvm.func @renorm
// CHECK-NOT: llvm.intr.memcpy
// CHECK: llvm.call @malloc
// CHECK-NOT: llvm.intr.memcpy
// CHECK: llvm.intr.vector.reduce.fadd
// CHECK: llvm.intr.sqrt
// CHECK: llvm.store %{{.*}} : vector<16xf32>, !llvm.ptr
// CHECK: llvm.call @free
// CHECK-NOT: llvm.intr.memcpy
// CHECK: llvm.func @_mlir_ciface_renorm
func.func @renorm(%w: memref<?x16xf32>, %idx: memref<?xi64>) attributes {llvm.emit_c_interface} {
  %tw = bufferization.to_tensor %w restrict writable : memref<?x16xf32> to tensor<?x16xf32>
  %ti = bufferization.to_tensor %idx restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.renorm %tw[%ti] {max_norm = 1.0 : f64} : tensor<?x16xf32>[tensor<?xi64>] -> tensor<?x16xf32>
  bufferization.materialize_in_destination %r in restrict writable %w : (tensor<?x16xf32>, memref<?x16xf32>) -> ()
  return
}
