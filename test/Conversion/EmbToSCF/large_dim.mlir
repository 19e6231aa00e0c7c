// Rows of more than cpu::kMaxUnrolledDBlocks D-blocks (CPUConfig.h) are
// processed by an scf.for over the full blocks (%d0 = 0, lanes, 2 * lanes,
// ...) with one copy of the block's IR, plus the partial tail block, if any,
// unrolled: the IR, and the compile time, no longer grow with D. Up to the
// threshold the blocks are unrolled as before.
// RUN: emb-opt %s -convert-emb-to-scf -split-input-file | FileCheck %s

// D = 65536 f32: 128 blocks of 512 lanes, no tail. The block loop tells
// LLVM not to unroll it (unrolled, O3 also unrolled the row loop around it).
// CHECK: #[[UNROLL:.*]] = #llvm.loop_unroll<disable = true>
// CHECK: #[[ANN:.*]] = #llvm.loop_annotation<unroll = #[[UNROLL]]>
// CHECK-LABEL: func @lookup_d65536
// CHECK: scf.for %[[I:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[O:[a-z0-9_]+]] = %{{.*}})
// CHECK: %[[C65536:[a-z0-9_]+]] = arith.constant 65536 : index
// CHECK: %[[C512:[a-z0-9_]+]] = arith.constant 512 : index
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %[[C65536]] step %[[C512]] iter_args(%[[T:[a-z0-9_]+]] = %[[O]])
// CHECK:   %[[ROW:[a-z0-9_]+]] = vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:   vector.transfer_write %[[ROW]], %[[T]][%[[I]], %[[D0]]]
// CHECK:   scf.yield
// CHECK-NEXT: } {loop_annotation = #[[ANN]]}
// CHECK-NOT: vector.transfer_read
// CHECK-NOT: vector.transfer_write
// CHECK: return
func.func @lookup_d65536(%w: tensor<?x65536xf32>, %x: tensor<?xi64>) -> tensor<?x65536xf32> {
  %0 = emb.lookup %w[%x] : tensor<?x65536xf32>[tensor<?xi64>] -> tensor<?x65536xf32>
  return %0 : tensor<?x65536xf32>
}

// -----

// D = 5000 = 9 * 512 + 392: the loop over the 9 full blocks, then the tail.
// CHECK-LABEL: func @lookup_d5000
// CHECK: %[[C4608:[a-z0-9_]+]] = arith.constant 4608 : index
// CHECK: %[[LOOP:[a-z0-9_]+]] = scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %[[C4608]] step %{{.*}} iter_args
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:   vector.transfer_write
// CHECK:   scf.yield
// CHECK: %[[TAIL0:[a-z0-9_]+]] = arith.constant 4608 : index
// CHECK: vector.transfer_read %{{.*}}[%{{.*}}, %[[TAIL0]]], {{.*}} vector<392xf32>
// CHECK: vector.transfer_write %{{.*}}, %[[LOOP]]
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @lookup_d5000(%w: tensor<?x5000xf32>, %x: tensor<?xi64>) -> tensor<?x5000xf32> {
  %0 = emb.lookup %w[%x] : tensor<?x5000xf32>[tensor<?xi64>] -> tensor<?x5000xf32>
  return %0 : tensor<?x5000xf32>
}

// -----

// D = 2048 f32 sums: 4 blocks, the most that stay unrolled (static offsets,
// one pass over the bag each, no block loop).
// CHECK-LABEL: func @bag_sum_d2048
// CHECK: scf.for
// CHECK-COUNT-4: vector.transfer_read %{{.*}}[%{{.*}}, %c{{[0-9]+}}_{{[0-9]+}}], {{.*}} vector<512xf32>
// CHECK-NOT: vector.transfer_read
// CHECK-NOT: step %c512
// CHECK: return
func.func @bag_sum_d2048(%w: tensor<?x2048xf32>, %x: tensor<?xi64>, %off: tensor<?xi64>) -> tensor<?x2048xf32> {
  %0 = emb.bag sum %w[%x] offsets(%off : tensor<?xi64>) : tensor<?x2048xf32>[tensor<?xi64>] -> tensor<?x2048xf32>
  return %0 : tensor<?x2048xf32>
}

// -----

// D = 2049: 5 blocks, so the block loop over 4 and a 1-lane tail.
// CHECK-LABEL: func @bag_sum_d2049
// CHECK: scf.for %[[B:[a-z0-9_]+]] = {{.*}} iter_args
// CHECK: %[[C2048:[a-z0-9_]+]] = arith.constant 2048 : index
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %[[C2048]] step %{{.*}} iter_args
// CHECK:   scf.for %{{.*}} = {{.*}} iter_args({{.*}}) -> (vector<512xf32>, index)
// CHECK:     vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:   vector.transfer_write %{{.*}}, %{{.*}}[%[[B]], %[[D0]]]
// CHECK: scf.for %{{.*}} = {{.*}} iter_args({{.*}}) -> (vector<1xf32>, index)
// CHECK:   vector.transfer_read {{.*}} vector<1xf32>
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @bag_sum_d2049(%w: tensor<?x2049xf32>, %x: tensor<?xi64>, %off: tensor<?xi64>) -> tensor<?x2049xf32> {
  %0 = emb.bag sum %w[%x] offsets(%off : tensor<?xi64>) : tensor<?x2049xf32>[tensor<?xi64>] -> tensor<?x2049xf32>
  return %0 : tensor<?x2049xf32>
}

// -----

// max with its argmax: 12 bytes of state per lane, blocks of 128 lanes; the
// result and the argmax are threaded through the block loop.
// CHECK-LABEL: func @bag_max_d65536
// CHECK: %[[C128:[a-z0-9_]+]] = arith.constant 128 : index
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %[[C128]] iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (tensor<?x65536xf32>, tensor<?x65536xi64>)
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<128xf32>
// CHECK:   arith.cmpf ogt
// CHECK:   vector.transfer_write {{.*}}[%{{.*}}, %[[D0]]] {{.*}} vector<128xf32>
// CHECK:   vector.transfer_write {{.*}}[%{{.*}}, %[[D0]]] {{.*}} vector<128xi64>
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @bag_max_d65536(%w: tensor<?x65536xf32>, %x: tensor<?xi64>, %off: tensor<?xi64>) -> (tensor<?x65536xf32>, tensor<?x65536xi64>) {
  %0, %1 = emb.bag max %w[%x] offsets(%off : tensor<?xi64>) {padding_idx = 0 : i64}
      : tensor<?x65536xf32>[tensor<?xi64>] -> tensor<?x65536xf32>, tensor<?x65536xi64>
  return %0, %1 : tensor<?x65536xf32>, tensor<?x65536xi64>
}

// -----

// f16 mean, D = 70000 = 136 * 512 + 368: the tail is read and written in
// power-of-two pieces (256 + 64 + 32 + 16), as any odd f16 row.
// CHECK-LABEL: func @bag_mean_f16_d70000
// CHECK: %[[C69632:[a-z0-9_]+]] = arith.constant 69632 : index
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %[[C69632]] step %{{.*}} iter_args
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf16>
// CHECK:   arith.divf
// CHECK:   vector.transfer_write {{.*}} vector<512xf16>
// CHECK: vector.transfer_read {{.*}} vector<256xf16>
// CHECK: vector.transfer_read {{.*}} vector<64xf16>
// CHECK: vector.transfer_read {{.*}} vector<32xf16>
// CHECK: vector.transfer_read {{.*}} vector<16xf16>
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @bag_mean_f16_d70000(%w: tensor<?x70000xf16>, %x: tensor<?x3xi64>) -> tensor<?x70000xf16> {
  %0 = emb.bag mean %w[%x] : tensor<?x70000xf16>[tensor<?x3xi64>] -> tensor<?x70000xf16>
  return %0 : tensor<?x70000xf16>
}

// -----

// renorm: the first block's norm, then each later block's folded into the
// running norm in order (an f64 carried by the block loop: the same fold as
// the unrolled blocks, so the same bits). Blocks that end in an ordered
// reduction go 8 per iteration (CPUConfig.h: kReductionBlocksPerIteration),
// so that their chains of adds overlap: blocks 1-248 in the loop, 249-255
// after it. The rescale is a block loop too.
// CHECK-LABEL: func @renorm_d65536
// CHECK: vector.transfer_read %{{.*}}[%{{.*}}, %c0{{.*}}], {{.*}} vector<256xf32>
// CHECK: %[[FIRST:[a-z0-9_]+]] = math.sqrt
// CHECK: %[[C256:[a-z0-9_]+]] = arith.constant 256 : index
// CHECK: %[[C63744:[a-z0-9_]+]] = arith.constant 63744 : index
// CHECK: %[[C2048:[a-z0-9_]+]] = arith.constant 2048 : index
// CHECK: %[[NORM:[a-z0-9_]+]] = scf.for %[[D0:[a-z0-9_]+]] = %[[C256]] to %[[C63744]] step %[[C2048]] iter_args(%[[ACC:[a-z0-9_]+]] = %[[FIRST]]) -> (f64)
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<256xf32>
// CHECK:   %[[PART:[a-z0-9_]+]] = math.sqrt
// CHECK:   math.powf %[[ACC]]
// CHECK:   math.powf %[[PART]]
// CHECK:   %[[NEXT:[a-z0-9_]+]] = math.powf
// CHECK-COUNT-7: vector.transfer_read %{{.*}}[%{{.*}}, %{{[0-9]+}}], {{.*}} vector<256xf32>
// CHECK:   scf.yield %{{.*}} : f64
// CHECK: math.powf %[[NORM]]
// CHECK-COUNT-6: vector.transfer_read %{{.*}}[%{{.*}}, %c{{[0-9]+}}{{.*}}], {{.*}} vector<256xf32>
// CHECK: arith.cmpf ogt
// CHECK: scf.if
// CHECK:   scf.for %[[E0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:     vector.transfer_read %{{.*}}[%{{.*}}, %[[E0]]], {{.*}} vector<512xf32>
// CHECK:     arith.mulf
// CHECK:     vector.transfer_write
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @renorm_d65536(%w: tensor<?x65536xf32>, %x: tensor<?xi64>) -> tensor<?x65536xf32> {
  %0 = emb.renorm %w[%x] {max_norm = 1.0 : f64} : tensor<?x65536xf32>[tensor<?xi64>] -> tensor<?x65536xf32>
  return %0 : tensor<?x65536xf32>
}

// -----

// The dense gradient: the zeroing of gW and the ordered pass over the runs
// are both block loops, plus the 392-lane tail of each.
// CHECK-LABEL: func @lookup_grad_d5000
// CHECK: scf.for %[[R:[a-z0-9_]+]] = {{.*}} -> (tensor<300x5000xf32>)
// CHECK:   scf.for %[[Z0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:     vector.transfer_write %{{.*}}, %{{.*}}[%[[R]], %[[Z0]]] {{.*}} vector<512xf32>
// CHECK:   vector.transfer_write {{.*}} vector<392xf32>
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:   scf.while
// CHECK:     scf.while
// CHECK:       vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:     vector.transfer_write %{{.*}}, %{{.*}}[%{{.*}}, %[[D0]]]
// CHECK: scf.while
// CHECK:   scf.while
// CHECK:     vector.transfer_read {{.*}} vector<392xf32>
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @lookup_grad_d5000(%g: tensor<?x5000xf32>, %x: tensor<?xi64>) -> tensor<300x5000xf32> {
  %0 = emb.lookup_grad %g[%x] {num_embeddings = 300 : i64} : tensor<?x5000xf32>[tensor<?xi64>] -> tensor<300x5000xf32>
  return %0 : tensor<300x5000xf32>
}

// -----

// bag_grad max (f32): gW is zeroed by a block loop.
// CHECK-LABEL: func @bag_grad_max_d65536
// CHECK: scf.for %[[R:[a-z0-9_]+]] = {{.*}} -> (tensor<10x65536xf32>)
// CHECK:   scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %c512 iter_args
// CHECK:     vector.transfer_write %{{.*}}, %{{.*}}[%[[R]], %[[D0]]] {{.*}} vector<512xf32>
// CHECK-NOT: vector.transfer_write
// CHECK: return
func.func @bag_grad_max_d65536(%g: tensor<2x65536xf32>, %x: tensor<2x3xi64>, %m: tensor<2x65536xi64>) -> tensor<10x65536xf32> {
  %0 = emb.bag_grad max %g[%x] max_indices(%m : tensor<2x65536xi64>) {num_embeddings = 10 : i64}
      : tensor<2x65536xf32>[tensor<2x3xi64>] -> tensor<10x65536xf32>
  return %0 : tensor<10x65536xf32>
}

// -----

// The per_sample_weights gradient: the blocks' dot products summed left to
// right in an f32 carried by the block loop, 8 blocks per iteration.
// CHECK-LABEL: func @bag_psw_grad_d65536
// CHECK: %[[ZERO:[a-z0-9_]+]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[C4096:[a-z0-9_]+]] = arith.constant 4096 : index
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %[[C4096]] iter_args(%[[ACC:[a-z0-9_]+]] = %[[ZERO]]) -> (f32)
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:   %[[PART:[a-z0-9_]+]] = vector.reduction <add>
// CHECK:   %[[SUM:[a-z0-9_]+]] = arith.addf %[[ACC]], %[[PART]] : f32
// CHECK:   %[[C512:[a-z0-9_]+]] = arith.constant 512 : index
// CHECK:   %[[D1:[a-z0-9_]+]] = arith.addi %[[D0]], %[[C512]]
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D1]]], {{.*}} vector<512xf32>
// CHECK-COUNT-13: vector.transfer_read
// CHECK:   scf.yield %{{.*}} : f32
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @bag_psw_grad_d65536(%g: tensor<?x65536xf32>, %w: tensor<?x65536xf32>, %x: tensor<?x?xi64>) -> tensor<?x?xf32> {
  %0 = emb.bag_psw_grad %g, %w[%x] : tensor<?x65536xf32>, tensor<?x65536xf32>[tensor<?x?xi64>] -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----

// Sparse gradients, uncoalesced (one value row per position) and coalesced
// (one ordered pass over the runs per block).
// CHECK-LABEL: func @sparse_d65536
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (tensor<?x65536xf32>)
// CHECK:   vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:   vector.transfer_write %{{.*}}, %{{.*}}[%{{.*}}, %[[D0]]]
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @sparse_d65536(%g: tensor<3x65536xf32>, %x: tensor<3xi64>) -> (tensor<?xi64>, tensor<?x65536xf32>) {
  %r, %v = emb.lookup_sparse_grad %g[%x] {num_embeddings = 100 : i64}
      : tensor<3x65536xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x65536xf32>
  return %r, %v : tensor<?xi64>, tensor<?x65536xf32>
}

// -----

// CHECK-LABEL: func @sparse_coalesced_d65536
// CHECK: scf.for %[[D0:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (tensor<?xi64>, tensor<?x65536xf32>)
// CHECK:   scf.while
// CHECK:     scf.while
// CHECK:       vector.transfer_read %{{.*}}[%{{.*}}, %[[D0]]], {{.*}} vector<512xf32>
// CHECK:     vector.transfer_write %{{.*}}, %{{.*}}[%{{.*}}, %[[D0]]]
// CHECK-NOT: vector.transfer_read
// CHECK: return
func.func @sparse_coalesced_d65536(%g: tensor<3x65536xf32>, %x: tensor<3xi64>) -> (tensor<?xi64>, tensor<?x65536xf32>) {
  %r, %v = emb.lookup_sparse_grad %g[%x] {num_embeddings = 100 : i64, coalesced}
      : tensor<3x65536xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x65536xf32>
  return %r, %v : tensor<?xi64>, tensor<?x65536xf32>
}
