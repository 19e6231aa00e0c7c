// convert-emb-to-gpu, Forward.cpp: one gpu.launch per op, a thread group per row or bag,
// 16-byte vector loads, f32 accumulation for f16; the kernels write the
// buffers of an emb.on_buffers op, new results from a tensor.empty init
// (which buffers those are is bufferisation's choice: destinations.mlir).
// RUN: emb-opt %s --convert-emb-to-gpu --split-input-file --verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @lookup_into_destination
// CHECK-SAME: (%[[W:.*]]: memref<1000x128xf32>, %[[X:.*]]: memref<?xi64>, %[[DEST:.*]]: memref<?x128xf32>)
// CHECK: %[[N:.*]] = memref.dim
// CHECK: %[[E:.*]] = tensor.empty
// The tensors the kernels read are the op's inputs (the bufferisation
// analysis sees the reads there).
// CHECK: %[[R:.*]] = emb.on_buffers ins(%{{.*}}, %{{.*}} : tensor<?xi64>, tensor<1000x128xf32>) outs(%[[E]] : tensor<?x128xf32>) {
// CHECK-NEXT: ^bb0(%[[OUT:.*]]: memref<?x128xf32>):
// CHECK: %[[ANY:.*]] = arith.cmpi sgt, %[[N]]
// CHECK: scf.if %[[ANY]]
// D = 128 f32: 32 threads of one float4 per row, 8 rows per 256-thread block.
// CHECK: %[[GRID:.*]] = arith.ceildivui %[[N]], %c8
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[GRID]], {{.*}}) threads({{.*}}) in ({{.*}} = %c256
// CHECK: arith.divui %{{.*}}, %c32
// CHECK: memref.load {{.*}} {alignment = 8 : i64} : memref<?xi64>
// CHECK: scf.for
// CHECK: vector.load {{.*}} {alignment = 16 : i64} : memref<1000x128xf32>, vector<4xf32>
// CHECK: vector.store {{.*}}, %[[OUT]]{{.*}} {alignment = 16 : i64} : memref<?x128xf32>, vector<4xf32>
// CHECK: gpu.terminator
// CHECK: } -> tensor<?x128xf32>
// CHECK: bufferization.materialize_in_destination %[[R]] in restrict writable %[[DEST]]
func.func @lookup_into_destination(%w: memref<1000x128xf32>, %x: memref<?xi64>, %out: memref<?x128xf32>) {
  %tw = bufferization.to_tensor %w restrict : memref<1000x128xf32> to tensor<1000x128xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.lookup %tw[%tx] : tensor<1000x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x128xf32>, memref<?x128xf32>) -> ()
  return
}

// -----

// D = 17 takes one element at a time; zero padding selects zeros.
// CHECK-LABEL: func.func @lookup_padding_odd_dim
// CHECK: %[[R:.*]] = emb.on_buffers ins({{.*}}) outs(%{{.*}} : tensor<?x17xf32>)
// CHECK: gpu.launch
// CHECK: arith.cmpi eq
// CHECK: vector.load {{.*}} {alignment = 4 : i64} : memref<50x17xf32>, vector<1xf32>
// CHECK: arith.select
// CHECK: return %[[R]]
func.func @lookup_padding_odd_dim(%w: tensor<50x17xf32>, %x: tensor<?xi32>) -> tensor<?x17xf32> {
  %r = emb.lookup %w[%x] {padding_idx = 2 : i64, padding_mode = #emb.padding_mode<zero>} : tensor<50x17xf32>[tensor<?xi32>] -> tensor<?x17xf32>
  return %r : tensor<?x17xf32>
}

// -----

// CHECK-LABEL: func.func @bag_mean_f16
// D = 64 f16: 8 threads of 8 halves (16 bytes) per bag, 32 bags per block.
// Entries 4 at a time (GPUConfig.h, kEntriesInFlight): the 4 indices, the
// 4 rows, then the 4 updates in entry order, a padding entry's discarded
// by a select; the last (end - start) % 4 entries one at a time.
// CHECK: arith.ceildivui %{{.*}}, %c32
// CHECK: gpu.launch
// CHECK: %[[LATER:.*]] = arith.cmpi sgt
// CHECK: %[[SPAN:.*]] = arith.select %[[LATER]]
// CHECK: %[[REM:.*]] = arith.remui %[[SPAN]], %c4
// CHECK: %[[GROUPS_END:.*]] = arith.subi %{{.*}}, %[[REM]]
// CHECK: %[[GROUPS:.*]]:2 = scf.for %[[J:.*]] = %{{.*}} to %[[GROUPS_END]] step %c4{{.*}} iter_args({{.*}}) -> (vector<8xf32>, index)
// CHECK-COUNT-4: memref.load {{.*}} : memref<?xi64>
// CHECK-COUNT-4: vector.load {{.*}} : memref<1000x64xf16>, vector<8xf16>
// CHECK-NOT: vector.load
// CHECK-COUNT-4: arith.select {{.*}} : vector<8xf32>
// CHECK: scf.yield
// CHECK: scf.for %{{.*}} = %[[GROUPS_END]] to %{{.*}} step %c1{{.*}} iter_args(%{{.*}} = %[[GROUPS]]#0, %{{.*}} = %[[GROUPS]]#1) -> (vector<8xf32>, index)
// CHECK: vector.load {{.*}} : memref<1000x64xf16>, vector<8xf16>
// CHECK: arith.extf {{.*}} : vector<8xf16> to vector<8xf32>
// CHECK: arith.divf
// CHECK: arith.truncf {{.*}} : vector<8xf32> to vector<8xf16>
// CHECK: vector.store
func.func @bag_mean_f16(%w: tensor<1000x64xf16>, %x: tensor<?xi64>, %o: tensor<?xi64>) -> tensor<?x64xf16> {
  %r = emb.bag mean %w[%x] offsets(%o : tensor<?xi64>) {padding_idx = 3 : i64} : tensor<1000x64xf16>[tensor<?xi64>] -> tensor<?x64xf16>
  return %r : tensor<?x64xf16>
}

// -----

// sqrtn with weights (docs/semantics.md §6.1): each thread sums its chunk
// and the squared weights, then divides by their square root (zeros when
// it is 0).
// CHECK-LABEL: func.func @bag_sqrtn_psw
// CHECK: gpu.launch
// CHECK: scf.for {{.*}} -> (vector<4xf32>, index, f32)
// CHECK:   %[[P:.*]] = memref.load {{.*}} : memref<?xf32>
// CHECK:   arith.mulf %[[P]], %[[P]] : f32
// CHECK: %[[ROOT:.*]] = math.sqrt %{{.*}} : f32
// CHECK: %[[ZERO:.*]] = arith.cmpf oeq, %[[ROOT]]
// CHECK: %[[Q:.*]] = arith.divf %{{.*}} : vector<4xf32>
// CHECK: arith.select %[[ZERO]], %{{.*}}, %[[Q]] : vector<4xf32>
// CHECK: vector.store
func.func @bag_sqrtn_psw(%w: tensor<1000x64xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>, %p: tensor<?xf32>) -> tensor<?x64xf32> {
  %r = emb.bag sqrtn %w[%x] offsets(%o : tensor<?xi64>) per_sample_weights(%p : tensor<?xf32>) : tensor<1000x64xf32>[tensor<?xi64>] -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// Max with max_indices: the first entry sets, later ones replace where
// greater (ties keep the first).
// CHECK-LABEL: func.func @bag_max_2d
// CHECK: gpu.launch
// CHECK: arith.cmpf ogt
// CHECK: arith.ori
// CHECK: arith.select
// CHECK: vector.store {{.*}} : memref<?x32xi64>, vector<4xi64>
func.func @bag_max_2d(%w: tensor<100x32xf32>, %x: tensor<?x5xi64>) -> (tensor<?x32xf32>, tensor<?x32xi64>) {
  %r, %m = emb.bag max %w[%x] : tensor<100x32xf32>[tensor<?x5xi64>] -> tensor<?x32xf32>, tensor<?x32xi64>
  return %r, %m : tensor<?x32xf32>, tensor<?x32xi64>
}

// -----

// Renorm: the table is the init of an emb.on_buffers op that updates it
// (in place or on a copy: destinations.mlir); row flags zeroed, then one
// thread per position claims its row once (atomic or) and rescales it.
// CHECK-LABEL: func.func @renorm
// CHECK: %[[R:.*]] = emb.on_buffers updates ins(%{{.*}} : tensor<?xi64>) outs(%{{.*}} : tensor<100x8xf32>) {
// CHECK-NEXT: ^bb0(%[[W:.*]]: memref<100x8xf32>):
// CHECK: %[[SEEN:.*]] = gpu.alloc {{ *}}({{.*}}) : memref<?xi32>
// CHECK: gpu.launch
// CHECK: gpu.launch
// CHECK: memref.atomic_rmw ori {{.*}}, %[[SEEN]]
// CHECK: math.powf
// CHECK: arith.cmpf ogt
// CHECK: vector.store {{.*}}, %[[W]]
// CHECK: gpu.dealloc {{ *}}%[[SEEN]]
// CHECK: return %[[R]]
func.func @renorm(%w: tensor<100x8xf32>, %x: tensor<?xi64>) -> tensor<100x8xf32> {
  %r = emb.renorm %w[%x] {max_norm = 1.0 : f64, norm_type = 3.0 : f64} : tensor<100x8xf32>[tensor<?xi64>] -> tensor<100x8xf32>
  return %r : tensor<100x8xf32>
}

// -----

// A quantised int8 table, D = 128: rows of 136 bytes are 8-byte aligned, so
// a thread reads 8 elements as one 8-byte load (16 threads per row), and
// the row's scale and bias as one 8-byte load after its D bytes.
// CHECK-LABEL: func.func @bag_int8
// CHECK: gpu.launch
// CHECK: scf.for {{.*}} -> (vector<8xf32>, index)
// CHECK:   %[[TAIL:.*]] = vector.load %{{.*}}[%{{.*}}, %c128{{.*}}] {alignment = 8 : i64} : memref<1000x136xi8>, vector<8xi8>
// CHECK:   vector.bitcast %[[TAIL]] : vector<8xi8> to vector<2xf32>
// CHECK:   %[[Q:.*]] = vector.load %{{.*}} {alignment = 8 : i64} : memref<1000x136xi8>, vector<8xi8>
// CHECK:   arith.uitofp %[[Q]] : vector<8xi8> to vector<8xf32>
// CHECK:   vector.fma
// CHECK: vector.store {{.*}} : memref<?x128xf32>, vector<8xf32>
func.func @bag_int8(%w: tensor<1000x136xi8>, %x: tensor<?xi64>, %o: tensor<?xi64>) -> tensor<?x128xf32> {
  %r = emb.bag sum %w[%x] offsets(%o : tensor<?xi64>) {quantized = #emb.quantized<int8>} : tensor<1000x136xi8>[tensor<?xi64>] -> tensor<?x128xf32>
  return %r : tensor<?x128xf32>
}

// -----

// D = 36 f16 (72-byte rows): not a multiple of 16 bytes, so each thread
// moves 4 halves (8 bytes) at a time, not single elements.
// CHECK-LABEL: func.func @lookup_f16_narrow_vectors
// CHECK: gpu.launch
// CHECK: vector.load {{.*}} {alignment = 8 : i64} : memref<100x36xf16>, vector<4xf16>
// CHECK: vector.store {{.*}} {alignment = 8 : i64} : memref<?x36xf16>, vector<4xf16>
func.func @lookup_f16_narrow_vectors(%w: tensor<100x36xf16>, %x: tensor<?xi64>) -> tensor<?x36xf16> {
  %r = emb.lookup %w[%x] : tensor<100x36xf16>[tensor<?xi64>] -> tensor<?x36xf16>
  return %r : tensor<?x36xf16>
}
