// convert-emb-to-scf options pin the CPU heuristics (CPUConfig.h): here the
// bytes of loop-carried state per D-block.
// RUN: emb-opt %s -convert-emb-to-scf | FileCheck %s --check-prefix=DEFAULT
// RUN: emb-opt %s -convert-emb-to-scf=block-bytes=256 | FileCheck %s --check-prefix=PINNED
// RUN: not emb-opt %s -convert-emb-to-scf=block-bytes=-1 2>&1 | FileCheck %s --check-prefix=BAD

// D = 128 f32 sums: one 2 KiB block of 128 lanes by default; 256 bytes
// hold 64 lanes of f32, so two blocks, each its own pass over the bag.
// DEFAULT-LABEL: func @bag_sum_d128
// DEFAULT: vector.transfer_read {{.*}} : tensor<?x128xf32>, vector<128xf32>
// DEFAULT-NOT: vector<64xf32>
// PINNED-LABEL: func @bag_sum_d128
// PINNED-NOT: vector<128xf32>
// PINNED: vector.transfer_read {{.*}} : tensor<?x128xf32>, vector<64xf32>
// PINNED: vector.transfer_read {{.*}} : tensor<?x128xf32>, vector<64xf32>
// PINNED-NOT: vector<128xf32>
// BAD: block-bytes must be positive
func.func @bag_sum_d128(%w: tensor<?x128xf32>, %x: tensor<?xi64>, %off: tensor<?xi64>) -> tensor<?x128xf32> {
  %0 = emb.bag sum %w[%x] offsets(%off : tensor<?xi64>)
      : tensor<?x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}
