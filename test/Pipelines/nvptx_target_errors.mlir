// emb-nvptx-pipeline rejects an unknown chip and a PTX version the chip
// does not support with a message, instead of LLVM's abort.
// RUN: not emb-opt %s --emb-nvptx-pipeline="chip=sm_99" 2>&1 | FileCheck %s --check-prefix=CHIP
// RUN: not emb-opt %s --emb-nvptx-pipeline="chip=sm_90 ptx=70" 2>&1 | FileCheck %s --check-prefix=OLD
// RUN: not emb-opt %s --emb-nvptx-pipeline="chip=sm_80 ptx=99" 2>&1 | FileCheck %s --check-prefix=NEW
// RUN: not emb-opt %s --emb-nvptx-pipeline="chip=sm_90 ptx=79" 2>&1 | FileCheck %s --check-prefix=TYPO
// RUN: emb-opt %s --emb-nvptx-pipeline="chip=sm_90 ptx=90" | FileCheck %s --check-prefix=PTX90
// RUN: not emb-opt %s --emb-check-nvptx-target="chip=gfx90a" 2>&1 | FileCheck %s --check-prefix=AMD

// CHIP: error: unknown NVIDIA chip 'sm_99' (expected one of sm_70, sm_72, sm_75, sm_80, sm_86, sm_87, sm_89, sm_90, sm_90a, sm_100, sm_100a, sm_120, sm_120a)
// OLD: error: PTX ISA 7.0 does not support sm_90 (it needs PTX 7.8 or newer)
// NEW: error: PTX ISA 9.9 is newer than LLVM's NVPTX backend supports (PTX 9.0)
// TYPO: error: there is no PTX ISA 7.9
// PTX90: .version 9.0
// AMD: error: unknown NVIDIA chip 'gfx90a'

func.func @lookup(%w: tensor<10x4xf32>, %x: tensor<?xi64>) -> tensor<?x4xf32> {
  %r = emb.lookup %w[%x] : tensor<10x4xf32>[tensor<?xi64>] -> tensor<?x4xf32>
  return %r : tensor<?x4xf32>
}
