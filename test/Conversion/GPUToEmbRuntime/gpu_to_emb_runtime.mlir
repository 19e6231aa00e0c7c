// convert-gpu-to-emb-runtime: the host side of GPU kernels becomes calls
// through the @__emb_gpu_runtime table (launch, alloc, free, copy) that the
// runtime fills at load; binaries and kernel names become constants.
// RUN: emb-opt %s --split-input-file --convert-gpu-to-emb-runtime --verify-diagnostics | FileCheck %s

// CHECK: llvm.mlir.global external @__emb_gpu_runtime() {{.*}} : !llvm.array<4 x ptr>
// CHECK: llvm.mlir.zero : !llvm.array<4 x ptr>
// PTX is stored with a terminating NUL (the driver reads a C string).
// CHECK: llvm.mlir.global internal constant @__emb_gpu_binary_k("PTX TEXT\00")
// CHECK: llvm.mlir.global internal constant @__emb_gpu_kernel_k_gather("gather\00")
// CHECK: llvm.mlir.global internal @__emb_gpu_cache_k_gather() {{.*}} : !llvm.ptr
// CHECK-NOT: gpu.binary
// CHECK-LABEL: func.func @host
// The scratch buffer: its bytes (n * 8) from table[1].
// CHECK: %[[TABLE:.*]] = llvm.mlir.addressof @__emb_gpu_runtime
// CHECK: %[[SLOT1:.*]] = llvm.getelementptr %[[TABLE]][0, 1]
// CHECK: %[[ALLOC:.*]] = llvm.load %[[SLOT1]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[SCRATCH:.*]] = llvm.call %[[ALLOC]](%{{.*}}) : !llvm.ptr, (i64) -> !llvm.ptr
// The parameters: the memref<?x4xf32> as 7 fields, the index, the scratch
// memref as 5 fields; one stack struct, and the array of their addresses.
// CHECK: %[[FIELDS:.*]] = llvm.alloca %{{.*}} x !llvm.struct<(ptr, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, i64, i64, i64)>
// CHECK: %[[PARAMS:.*]] = llvm.alloca %{{.*}} x !llvm.ptr
// CHECK: %[[SLOT0:.*]] = llvm.getelementptr %{{.*}}[0, 0] : (!llvm.ptr) -> !llvm.ptr, !llvm.array<4 x ptr>
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT0]]
// CHECK: llvm.call %[[LAUNCH]](%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[PARAMS]], %{{.*}}) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i64, !llvm.ptr, i64, i64, i64, i64, i64, i64, !llvm.ptr, i32) -> ()
// CHECK: %[[SLOT2:.*]] = llvm.getelementptr %{{.*}}[0, 2]
// CHECK: %[[FREE:.*]] = llvm.load %[[SLOT2]]
// CHECK: llvm.call %[[FREE]](%{{.*}}) : !llvm.ptr, (!llvm.ptr) -> ()
// CHECK-NOT: gpu.launch_func
module attributes {gpu.container_module} {
  gpu.binary @k [#gpu.object<#nvvm.target<chip = "sm_90">, assembly = "PTX TEXT">]
  func.func @host(%buf: memref<?x4xf32>, %n: index) {
    %c1 = arith.constant 1 : index
    %s = gpu.alloc (%n) : memref<?xi64>
    gpu.launch_func @k::@gather blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%buf : memref<?x4xf32>, %n : index, %s : memref<?xi64>)
    gpu.dealloc %s : memref<?xi64>
    return
  }
}

// -----

// A cubin is stored as it is.
// CHECK: llvm.mlir.global internal constant @__emb_gpu_binary_c("\7FELF")
module attributes {gpu.container_module} {
  gpu.binary @c [#gpu.object<#nvvm.target<chip = "sm_90">, bin = "\7FELF">]
  func.func @host(%n: index) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @c::@f blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%n : index)
    return
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.binary @k [#gpu.object<#nvvm.target<chip = "sm_90">, assembly = "PTX">]
  func.func @host_memory(%n: index) {
    %c1 = arith.constant 1 : index
    %h = memref.alloc (%n) : memref<?xf32>
    // expected-error @+1 {{a kernel operand is host memory (memref.alloc): GPU kernels can only use device buffers}}
    gpu.launch_func @k::@k blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%h : memref<?xf32>)
    return
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.binary @k [#gpu.object<#nvvm.target<chip = "sm_90">, assembly = "PTX">]
  func.func @async(%n: index) {
    %c1 = arith.constant 1 : index
    %t = gpu.wait async
    // expected-error @+1 {{async launches are not supported by the emb runtime}}
    %t2 = gpu.launch_func async [%t] @k::@k blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%n : index)
    return
  }
}

// -----

module attributes {gpu.container_module} {
  // expected-error @+1 {{needs exactly one object (one chip) for the emb runtime, got 2}}
  gpu.binary @k [#gpu.object<#nvvm.target<chip = "sm_80">, assembly = "A">, #gpu.object<#nvvm.target<chip = "sm_90">, assembly = "B">]
  func.func @two(%n: index) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @k::@k blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%n : index)
    return
  }
}

// -----

// Copies (a size read back to the host, a result copied into the caller's
// buffer) become table[3](dst, src, bytes), from the first elements.
// CHECK-LABEL: func.func @copies
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %{{.*}}[0, 3] : (!llvm.ptr) -> !llvm.ptr, !llvm.array<4 x ptr>
// CHECK: %[[COPY:.*]] = llvm.load %[[SLOT]]
// CHECK: llvm.call %[[COPY]](%{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i64) -> ()
// CHECK: llvm.getelementptr %{{.*}}[0, 3]
// CHECK: llvm.call %{{.*}}(%{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, !llvm.ptr, i64) -> ()
// CHECK-NOT: memref.copy
module attributes {gpu.container_module} {
  gpu.binary @k [#gpu.object<#nvvm.target<chip = "sm_90">, assembly = "PTX">]
  func.func @copies(%dev: memref<?xi64>, %out: memref<?x8xf32>, %res: memref<?x8xf32>, %i: index) -> i64 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %host = memref.alloca() : memref<1xi64>
    %last = memref.subview %dev[%i] [1] [1] : memref<?xi64> to memref<1xi64, strided<[1], offset: ?>>
    gpu.memcpy %host, %last : memref<1xi64>, memref<1xi64, strided<[1], offset: ?>>
    memref.copy %res, %out : memref<?x8xf32> to memref<?x8xf32>
    gpu.launch_func @k::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%i : index)
    %m = memref.load %host[%c0] : memref<1xi64>
    return %m : i64
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.binary @k [#gpu.object<#nvvm.target<chip = "sm_90">, assembly = "PTX">]
  func.func @strided_copy(%a: memref<4x8xf32>, %b: memref<4x4xf32>, %n: index) {
    %c1 = arith.constant 1 : index
    %v = memref.subview %a[0, 0] [4, 4] [1, 1] : memref<4x8xf32> to memref<4x4xf32, strided<[8, 1]>>
    // expected-error @+1 {{copies of non-contiguous memrefs are not supported by the emb runtime}}
    memref.copy %v, %b : memref<4x4xf32, strided<[8, 1]>> to memref<4x4xf32>
    gpu.launch_func @k::@k blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%n : index)
    return
  }
}
