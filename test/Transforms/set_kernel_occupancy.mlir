// emb-set-kernel-occupancy: every outlined kernel with a known block size
// states the blocks per SM that keep min-resident-threads threads resident
// (nvvm.minctasm, PTX .minnctapersm), so that ptxas sizes its registers for
// that occupancy instead of the full one .maxntid alone makes it aim at; at
// most 16 blocks (1024 / 32 would be 32).
// RUN: emb-opt %s --emb-set-kernel-occupancy | FileCheck %s
// RUN: emb-opt %s --emb-set-kernel-occupancy="min-resident-threads=1536" | FileCheck %s --check-prefix=SIX
// RUN: not emb-opt %s --emb-set-kernel-occupancy="min-resident-threads=4096" 2>&1 | FileCheck %s --check-prefix=BAD

// CHECK-LABEL: gpu.func @block_256
// CHECK-SAME: nvvm.minctasm = 4 : i32
// CHECK-LABEL: gpu.func @block_96
// CHECK-SAME: nvvm.minctasm = 11 : i32
// CHECK-LABEL: gpu.func @block_32
// CHECK-SAME: nvvm.minctasm = 16 : i32
// CHECK-LABEL: gpu.func @stated
// CHECK-SAME: nvvm.minctasm = 2 : i32
// CHECK-LABEL: gpu.func @unknown_block
// CHECK-NOT: nvvm.minctasm
// CHECK-LABEL: gpu.func @not_a_kernel
// CHECK-NOT: nvvm.minctasm
// SIX-LABEL: gpu.func @block_256
// SIX-SAME: nvvm.minctasm = 6 : i32
// BAD: min-resident-threads must be in [1, 2048]
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @block_256() kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
      gpu.return
    }
    gpu.func @block_96() kernel attributes {known_block_size = array<i32: 32, 3, 1>} {
      gpu.return
    }
    gpu.func @block_32() kernel attributes {known_block_size = array<i32: 32, 1, 1>} {
      gpu.return
    }
    gpu.func @stated() kernel attributes {known_block_size = array<i32: 256, 1, 1>, nvvm.minctasm = 2 : i32} {
      gpu.return
    }
    gpu.func @unknown_block() kernel {
      gpu.return
    }
    gpu.func @not_a_kernel() {
      gpu.return
    }
  }
}
