// convert-emb-to-gpu, MultiBag.cpp: a many-table bag is one gpu.launch for
// every table. Each table owns a range of blocks laid out for its D (the
// block id picks the table through scf.index_switch), reads its rows where
// they are (the JIT's flat buffer, at the table's start) and writes its
// columns of the destination directly: no buffer per table, no copy.
// RUN: emb-opt %s --convert-emb-to-gpu --eliminate-empty-tensors --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" --canonicalize --cse --split-input-file | FileCheck %s

// A weighted mean (padding row 5; D = 64: 16 threads of a float4 per bag,
// 16 bags a block) and a sequence table (L = 3, D = 16: 4 threads per
// entry, 64 entries a block) out of one flat buffer.
// CHECK-LABEL: func.func @jit_tables
// CHECK-SAME: (%[[W:.*]]: memref<?xf32>, %[[X:.*]]: memref<?xi64>, %[[O:.*]]: memref<?xi64>, %[[P:.*]]: memref<?xf32>, %[[OUT:.*]]: memref<?x112xf32>)
// CHECK-NOT: memref.alloc
// CHECK: %[[B:.*]] = arith.divui %{{.*}}, %c2
// CHECK: %[[END0:.*]] = arith.ceildivui %[[B]], %c16
// CHECK: %[[ENTRIES:.*]] = arith.muli %[[B]], %c3
// CHECK: %[[BLOCKS1:.*]] = arith.ceildivui %[[ENTRIES]], %c64
// CHECK: %[[GRID:.*]] = arith.addi %[[END0]], %[[BLOCKS1]]
// CHECK: gpu.launch blocks(%[[BID:[^,]*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %[[GRID]], {{.*}}) threads(%{{.*}}) in
// CHECK: %[[PAST0:.*]] = arith.cmpi uge, %[[BID]], %[[END0]]
// CHECK: %[[T:.*]] = arith.select %[[PAST0]], %c1, %c0
// CHECK: scf.index_switch %[[T]]
// CHECK: case 0 {
// CHECK: %[[BAG:.*]] = arith.addi
// CHECK: arith.cmpi ult, %[[BAG]], %[[B]]
// CHECK: memref.load %[[O]]
// CHECK: scf.for {{.*}} step %c4 iter_args({{.*}}) -> (vector<4xf32>, index, f32)
// CHECK-COUNT-4: vector.load %[[W]][{{.*}}] {alignment = 16 : i64} : memref<?xf32>, vector<4xf32>
// CHECK: arith.cmpi ne, %{{.*}}, %c5
// CHECK: memref.load %[[P]]
// CHECK: arith.divf
// CHECK: vector.store %{{.*}}, %[[OUT]][%[[BAG]], %{{.*}}] {alignment = 16 : i64} : memref<?x112xf32>, vector<4xf32>
// CHECK: case 1 {
// CHECK: %[[LOCAL:.*]] = arith.subi %[[BID]], %[[END0]]
// CHECK: %[[ENTRY:.*]] = arith.addi
// CHECK: arith.cmpi ult, %[[ENTRY]], %[[ENTRIES]]
// CHECK: %[[LO:.*]] = memref.load %[[O]][%[[B]]]
// CHECK: %[[SEQBAG:.*]] = arith.divui %[[ENTRY]], %c3
// CHECK: %[[K:.*]] = arith.remui %[[ENTRY]], %c3
// CHECK: %[[COLS:.*]] = arith.muli %[[K]], %c16
// CHECK: %[[COL:.*]] = arith.addi %[[COLS]], %c64
// The table's rows start at element 6400 of the flat buffer.
// CHECK: arith.addi %{{.*}}, %c6400
// CHECK: vector.load %[[W]]
// CHECK: arith.mulf
// CHECK: vector.store %{{.*}}, %[[OUT]][%[[SEQBAG]], %{{.*}}] {alignment = 16 : i64}
// CHECK: default {
// CHECK: gpu.terminator
// CHECK-NOT: gpu.launch
// CHECK-NOT: materialize_in_destination
// CHECK: return
func.func @jit_tables(%w: memref<?xf32>, %x: memref<?xi64>, %o: memref<?xi64>, %p: memref<?xf32>, %out: memref<?x112xf32>) {
  %tw = bufferization.to_tensor %w restrict : memref<?xf32> to tensor<?xf32>
  %s0 = tensor.extract_slice %tw[0] [6400] [1] : tensor<?xf32> to tensor<6400xf32>
  %t0 = tensor.expand_shape %s0 [[0, 1]] output_shape [100, 64] : tensor<6400xf32> into tensor<100x64xf32>
  %s1 = tensor.extract_slice %tw[6400] [320] [1] : tensor<?xf32> to tensor<320xf32>
  %t1 = tensor.expand_shape %s1 [[0, 1]] output_shape [20, 16] : tensor<320xf32> into tensor<20x16xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %o restrict : memref<?xi64> to tensor<?xi64>
  %tp = bufferization.to_tensor %p restrict : memref<?xf32> to tensor<?xf32>
  %r = emb.multi_bag %t0, %t1[%tx] offsets(%to : tensor<?xi64>) per_sample_weights(%tp : tensor<?xf32>)
      {modes = [#emb.mode<mean>, #emb.mode<none>], padding_idx = array<i64: 5, -1>, sequence_lengths = array<i64: 0, 3>}
      : (tensor<100x64xf32>, tensor<20x16xf32>)[tensor<?xi64>] -> tensor<?x112xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x112xf32>, memref<?x112xf32>) -> ()
  return
}

// -----

// Tables of their own (each read through its buffer, as 1-D), a window of
// bags (bags(%a, %n): table t's bag b is offsets[t * B + %a + b]), and 24
// columns: the max table at column 16 stores 4 floats (16 bytes).
// The result goes to a new buffer.
// CHECK-LABEL: func.func @own_tables
// CHECK-SAME: (%[[W0:.*]]: memref<100x16xf32>, %[[W1:.*]]: memref<?x8xf32>, %{{.*}}: memref<?xi64>, %[[O:.*]]: memref<?xi32>, %[[A:.*]]: index, %[[N:.*]]: index)
// CHECK: %[[C0:.*]] = memref.collapse_shape %[[W0]] {{\[\[}}0, 1]] : memref<100x16xf32> into memref<1600xf32>
// CHECK: %[[C1:.*]] = memref.collapse_shape %[[W1]] {{\[\[}}0, 1]] : memref<?x8xf32> into memref<?xf32>
// CHECK: %[[BUF:.*]] = memref.alloc(%[[N]]) {{.*}}: memref<?x24xf32>
// CHECK: gpu.launch
// CHECK: scf.index_switch
// CHECK: case 0 {
// CHECK: arith.cmpi ult, %{{.*}}, %[[N]]
// CHECK: vector.load %[[C0]]
// CHECK: vector.store %{{.*}}, %[[BUF]]
// CHECK: case 1 {
// CHECK: arith.addi %{{.*}}, %[[A]]
// CHECK: memref.load %[[O]][%{{.*}}] {alignment = 4 : i64} : memref<?xi32>
// CHECK: vector.load %[[C1]]
// CHECK: arith.cmpf ogt, %{{.*}}, %{{.*}} : vector<4xf32>
// CHECK: vector.store %{{.*}}, %[[BUF]]{{.*}} : memref<?x24xf32>, vector<4xf32>
// CHECK: return %[[BUF]] : memref<?x24xf32>
func.func @own_tables(%w0: memref<100x16xf32>, %w1: memref<?x8xf32>, %x: memref<?xi64>, %o: memref<?xi32>,
                      %a: index, %n: index) -> tensor<?x24xf32> {
  %t0 = bufferization.to_tensor %w0 restrict : memref<100x16xf32> to tensor<100x16xf32>
  %t1 = bufferization.to_tensor %w1 restrict : memref<?x8xf32> to tensor<?x8xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %o restrict : memref<?xi32> to tensor<?xi32>
  %0 = emb.multi_bag %t0, %t1[%tx] offsets(%to : tensor<?xi32>) bags(%a, %n)
      {modes = [#emb.mode<sum>, #emb.mode<max>], padding_idx = array<i64: -1, 3>}
      : (tensor<100x16xf32>, tensor<?x8xf32>)[tensor<?xi64>] -> tensor<?x24xf32>
  return %0 : tensor<?x24xf32>
}

// -----

// Tables of one layout (D = 16 sums, padded) share one case: the block's
// table, its first element (0 or 1600), its first column (0 or 16) and its
// padding row (2 or 7) are selected by whether the block is past the first
// table's range.
// CHECK-LABEL: func.func @shared_layout
// CHECK: %[[END0:.*]] = arith.ceildivui
// CHECK: gpu.launch blocks(%[[BID:[^,]*]], %{{.*}}) in
// CHECK-NOT: scf.index_switch
// CHECK: %[[PAST:.*]] = arith.cmpi uge, %[[BID]], %[[END0]]
// CHECK: %[[T:.*]] = arith.select %[[PAST]], %c1, %c0
// CHECK: %[[AT:.*]] = arith.select %[[PAST]], %c1600, %c0
// CHECK: %[[COL:.*]] = arith.select %[[PAST]], %c16, %c0
// CHECK: %[[PAD:.*]] = arith.select %[[PAST]], %c7, %c2
// CHECK: %[[START:.*]] = arith.select %[[PAST]], %[[END0]], %c0
// CHECK: arith.subi %[[BID]], %[[START]]
// CHECK: arith.muli %[[T]]
// CHECK: arith.addi %{{.*}}, %[[AT]]
// CHECK: arith.cmpi ne, %{{.*}}, %[[PAD]]
// CHECK: arith.addi %{{.*}}, %[[COL]]
// CHECK-NOT: scf.index_switch
// CHECK: return
func.func @shared_layout(%w: memref<?xf32>, %x: memref<?xi64>, %o: memref<?xi64>, %out: memref<?x32xf32>) {
  %tw = bufferization.to_tensor %w restrict : memref<?xf32> to tensor<?xf32>
  %s0 = tensor.extract_slice %tw[0] [1600] [1] : tensor<?xf32> to tensor<1600xf32>
  %t0 = tensor.expand_shape %s0 [[0, 1]] output_shape [100, 16] : tensor<1600xf32> into tensor<100x16xf32>
  %s1 = tensor.extract_slice %tw[1600] [800] [1] : tensor<?xf32> to tensor<800xf32>
  %t1 = tensor.expand_shape %s1 [[0, 1]] output_shape [50, 16] : tensor<800xf32> into tensor<50x16xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %o restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.multi_bag %t0, %t1[%tx] offsets(%to : tensor<?xi64>)
      {modes = [#emb.mode<sum>, #emb.mode<sum>], padding_idx = array<i64: 2, 7>}
      : (tensor<100x16xf32>, tensor<50x16xf32>)[tensor<?xi64>] -> tensor<?x32xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x32xf32>, memref<?x32xf32>) -> ()
  return
}
