// emb-emulate-gpu-on-host{trace-memory=true}: every global load, store and
// atomic of the emulated kernel first reports its site, block, thread,
// byte address and size through the table @__emb_memory_trace; the launch
// is announced with its kernel, its sites and its sizes, and closed after
// the loops. Private (alloca) memory is not traced.
// RUN: emb-opt %s --split-input-file --verify-diagnostics --emb-emulate-gpu-on-host=trace-memory=true | FileCheck %s

// CHECK: llvm.mlir.global external @__emb_memory_trace() {{.*}} : !llvm.array<3 x ptr>
// CHECK-LABEL: func.func @host
// The launch: table[0](kernel, sites, grid x y z, block x y z).
// CHECK: %[[T0:.*]] = llvm.mlir.addressof @__emb_memory_trace
// CHECK: %[[E0:.*]] = llvm.getelementptr %[[T0]][0, 0]
// CHECK: %[[F0:.*]] = llvm.load %[[E0]]
// CHECK: llvm.call %[[F0]]({{.*}}) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i64, i64, i64, i64, i64, i64) -> ()
// CHECK: scf.for
// CHECK: scf.for %[[TX:.*]] = %c0 to %c64
// The thread's linear ids, then site 0: the vector load of 16 bytes at
// byte (offset + row * stride + col) * 4 of the table's aligned pointer.
// CHECK: %[[BASE:.*]], %[[OFF:.*]], %{{.*}}:2, %[[STRIDES:.*]]:2 = memref.extract_strided_metadata %arg0
// CHECK: %[[R:.*]] = arith.muli %{{.*}}, %[[STRIDES]]#0
// CHECK: %[[RO:.*]] = arith.addi %[[OFF]], %[[R]]
// CHECK: %[[C:.*]] = arith.muli %{{.*}}, %[[STRIDES]]#1
// CHECK: %[[LIN:.*]] = arith.addi %[[RO]], %[[C]]
// CHECK: %[[PTR:.*]] = memref.extract_aligned_pointer_as_index %arg0
// CHECK: %[[PTR64:.*]] = arith.index_cast %[[PTR]] : index to i64
// CHECK: %[[BYTE:.*]] = arith.muli %[[LIN]], %c4
// CHECK: %[[BYTE64:.*]] = arith.index_cast %[[BYTE]] : index to i64
// CHECK: %[[SITE0:.*]] = arith.constant 0 : i64
// CHECK: %[[BYTES0:.*]] = arith.constant 16 : i64
// CHECK: %[[E1:.*]] = llvm.getelementptr %{{.*}}[0, 1]
// CHECK: llvm.call %{{.*}}(%[[SITE0]], %{{.*}}, %{{.*}}, %[[PTR64]], %[[BYTE64]], %[[BYTES0]]) : !llvm.ptr, (i64, i64, i64, i64, i64, i64) -> ()
// CHECK: vector.load %arg0
// Site 1: the store of 4 bytes.
// CHECK: %[[SITE1:.*]] = arith.constant 1 : i64
// CHECK: %[[BYTES1:.*]] = arith.constant 4 : i64
// CHECK: llvm.call %{{.*}}(%[[SITE1]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[BYTES1]])
// CHECK: memref.store
// Not the alloca's load and store.
// CHECK-NOT: llvm.call %{{.*}}(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (i64
// CHECK: llvm.getelementptr %{{.*}}[0, 2]
// CHECK: llvm.call %{{.*}}() : !llvm.ptr, () -> ()
// CHECK: llvm.mlir.global internal constant @__emb_trace_kernel("kernels::gather\00")
// CHECK: llvm.mlir.global internal constant @__emb_trace_sites("load 16 vector.load memref<?x8xf32>\0Astore 4 memref.store memref<?xf32>\00")
module attributes {gpu.container_module} {
  func.func @host(%table: memref<?x8xf32>, %out: memref<?xf32>, %grid: index) {
    %c1 = arith.constant 1 : index
    %c64 = arith.constant 64 : index
    gpu.launch_func @kernels::@gather blocks in (%grid, %c1, %c1) threads in (%c64, %c1, %c1) args(%table : memref<?x8xf32>, %out : memref<?xf32>)
    return
  }
  gpu.module @kernels {
    gpu.func @gather(%table: memref<?x8xf32>, %out: memref<?xf32>) kernel {
      %bx = gpu.block_id x
      %tx = gpu.thread_id x
      %c0 = arith.constant 0 : index
      %v = vector.load %table[%bx, %c0] : memref<?x8xf32>, vector<4xf32>
      %s = vector.reduction <add>, %v : vector<4xf32> into f32
      %tmp = memref.alloca() : memref<1xf32>
      memref.store %s, %tmp[%c0] : memref<1xf32>
      %t = memref.load %tmp[%c0] : memref<1xf32>
      memref.store %t, %out[%tx] : memref<?xf32>
      gpu.return
    }
  }
}

// -----

// A memory operation the trace cannot describe is an error, not a gap.
module attributes {gpu.container_module} {
  func.func @host(%a: memref<4xf32>, %b: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @kernels::@copy blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4xf32>, %b : memref<4xf32>)
    return
  }
  gpu.module @kernels {
    gpu.func @copy(%a: memref<4xf32>, %b: memref<4xf32>) kernel {
      // expected-error @below {{'memref.copy' op accesses memory in a way the memory trace does not describe}}
      memref.copy %a, %b : memref<4xf32> to memref<4xf32>
      gpu.return
    }
  }
}
