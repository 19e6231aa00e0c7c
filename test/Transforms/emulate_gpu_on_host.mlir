// emb-emulate-gpu-on-host: a gpu.launch_func becomes loops over grid x
// block around the kernel body; kernels that need threads to run together
// are reported.
// RUN: emb-opt %s --split-input-file --verify-diagnostics --emb-emulate-gpu-on-host | FileCheck %s

// CHECK-LABEL: func.func @host
// CHECK-NOT: gpu.
// CHECK: scf.for %[[BZ:.*]] = %c0 to %c1
// CHECK: scf.for %[[BY:.*]] = %c0 to %c1
// CHECK: scf.for %[[BX:.*]] = %c0 to %[[GRID:.*]] step
// CHECK: scf.for %[[TZ:.*]] = %c0 to %c1
// CHECK: scf.for %[[TY:.*]] = %c0 to %c1
// CHECK: scf.for %[[TX:.*]] = %c0 to %c64
// CHECK: %[[I:.*]] = arith.muli %[[BX]], %c64
// CHECK: arith.addi %[[I]], %[[TX]]
// CHECK: memref.store
// CHECK-NOT: gpu.module
module attributes {gpu.container_module} {
  func.func @host(%buf: memref<?xf32>, %grid: index) {
    %c1 = arith.constant 1 : index
    %c64 = arith.constant 64 : index
    gpu.launch_func @kernels::@fill blocks in (%grid, %c1, %c1) threads in (%c64, %c1, %c1) args(%buf : memref<?xf32>)
    return
  }
  gpu.module @kernels {
    gpu.func @fill(%buf: memref<?xf32>) kernel {
      %bx = gpu.block_id x
      %tx = gpu.thread_id x
      %bd = gpu.block_dim x
      %i = arith.muli %bx, %bd : index
      %j = arith.addi %i, %tx : index
      %f = arith.constant 1.0 : f32
      memref.store %f, %buf[%j] : memref<?xf32>
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  func.func @host(%buf: memref<?xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @kernels::@sync blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%buf : memref<?xf32>)
    return
  }
  gpu.module @kernels {
    gpu.func @sync(%buf: memref<?xf32>) kernel {
      // expected-error @below {{'gpu.barrier' op cannot be emulated on the host: threads run one after another}}
      gpu.barrier
      gpu.return
    }
  }
}

// -----

// Queries inside regions of the kernel are replaced too.
// CHECK-LABEL: func.func @nested
// CHECK-NOT: gpu.thread_id
// CHECK: scf.for %[[TX:.*]] = %c0 to %c8
// CHECK: scf.if
// CHECK: memref.store %{{.*}}, %{{.*}}[%[[TX]]]
module attributes {gpu.container_module} {
  func.func @nested(%buf: memref<?xf32>, %flag: i1) {
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    gpu.launch_func @kernels::@k blocks in (%c1, %c1, %c1) threads in (%c8, %c1, %c1) args(%buf : memref<?xf32>, %flag : i1)
    return
  }
  gpu.module @kernels {
    gpu.func @k(%buf: memref<?xf32>, %flag: i1) kernel {
      scf.if %flag {
        %tx = gpu.thread_id x
        %f = arith.constant 1.0 : f32
        memref.store %f, %buf[%tx] : memref<?xf32>
      }
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  func.func @host(%buf: memref<?xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @kernels::@nv blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%buf : memref<?xf32>)
    return
  }
  gpu.module @kernels {
    gpu.func @nv(%buf: memref<?xf32>) kernel {
      // expected-error @below {{'nvvm.barrier0' op cannot be emulated on the host: threads run one after another}}
      nvvm.barrier0
      gpu.return
    }
  }
}

// -----

// Device memory is host memory: gpu.alloc becomes memref.alloc, gpu.dealloc
// goes (the buffer deallocation pipeline frees it).
// CHECK-LABEL: func.func @scratch
// CHECK: %[[M:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK-NOT: gpu.alloc
// CHECK: memref.store {{.*}}, %[[M]]
// CHECK-NOT: gpu.dealloc
module attributes {gpu.container_module} {
  func.func @scratch(%n: index) {
    %c1 = arith.constant 1 : index
    %m = gpu.alloc (%n) : memref<?xf32>
    gpu.launch_func @kernels::@fill blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : memref<?xf32>)
    gpu.dealloc %m : memref<?xf32>
    return
  }
  gpu.module @kernels {
    gpu.func @fill(%m: memref<?xf32>) kernel {
      %c0 = arith.constant 0 : index
      %f = arith.constant 1.0 : f32
      memref.store %f, %m[%c0] : memref<?xf32>
      gpu.return
    }
  }
}

// -----

// gpu.memcpy (a size read back to the host) is a memref.copy here.
// CHECK-LABEL: func.func @read_back
// CHECK: memref.copy %{{.*}}, %[[HOST:.*]] : memref<1xi64> to memref<1xi64>
// CHECK-NOT: gpu.memcpy
module attributes {gpu.container_module} {
  func.func @read_back(%d: memref<1xi64>) -> i64 {
    %c0 = arith.constant 0 : index
    %h = memref.alloca() : memref<1xi64>
    gpu.memcpy %h, %d : memref<1xi64>, memref<1xi64>
    %v = memref.load %h[%c0] : memref<1xi64>
    return %v : i64
  }
}
