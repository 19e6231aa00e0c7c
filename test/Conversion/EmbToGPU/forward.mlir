// convert-emb-to-gpu, Forward.cpp: one gpu.launch per op, a thread group per row or bag,
// 16-byte vector loads, f32 accumulation for f16, results written straight
// into the destination buffer of materialize_in_destination.
// RUN: emb-opt %s --convert-emb-to-gpu --split-input-file --verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @lookup_into_destination
// CHECK-SAME: (%[[W:.*]]: memref<1000x128xf32>, %[[X:.*]]: memref<?xi64>, %[[OUT:.*]]: memref<?x128xf32>)
// CHECK: %[[N:.*]] = memref.dim
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
// CHECK-NOT: materialize_in_destination
// CHECK: return
func.func @lookup_into_destination(%w: memref<1000x128xf32>, %x: memref<?xi64>, %out: memref<?x128xf32>) {
  %tw = bufferization.to_tensor %w restrict : memref<1000x128xf32> to tensor<1000x128xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.lookup %tw[%tx] : tensor<1000x128xf32>[tensor<?xi64>] -> tensor<?x128xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x128xf32>, memref<?x128xf32>) -> ()
  return
}

// -----

// A result used otherwise goes to a new buffer; D = 17 takes one element
// at a time; zero padding selects zeros.
// CHECK-LABEL: func.func @lookup_padding_odd_dim
// CHECK: %[[BUF:.*]] = memref.alloc({{.*}}) : memref<?x17xf32>
// CHECK: gpu.launch
// CHECK: arith.cmpi eq
// CHECK: vector.load {{.*}} {alignment = 4 : i64} : memref<50x17xf32>, vector<1xf32>
// CHECK: arith.select
// CHECK: bufferization.to_tensor %[[BUF]] restrict writable
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

// Both results of a max bag go straight into their destinations (the JIT's
// kernel form): the materialisation of the output between the op and that
// of max_indices writes another restrict buffer. (A host memref.alloc here
// cannot be launched on: convert-gpu-to-emb-runtime rejects it.)
// CHECK-LABEL: func.func @bag_max_into_destinations
// CHECK-NOT: memref.alloc
// CHECK: gpu.launch
// CHECK: vector.store {{.*}} %arg3{{.*}} : memref<?x32xf32>, vector<4xf32>
// CHECK: vector.store {{.*}} %arg4{{.*}} : memref<?x32xi64>, vector<4xi64>
// CHECK-NOT: bufferization.materialize_in_destination
func.func @bag_max_into_destinations(%w: tensor<100x32xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>, %out: memref<?x32xf32>, %idx: memref<?x32xi64>) {
  %r, %m = emb.bag max %w[%x] offsets(%o : tensor<?xi64>) : tensor<100x32xf32>[tensor<?xi64>] -> tensor<?x32xf32>, tensor<?x32xi64>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<?x32xf32>, memref<?x32xf32>) -> ()
  bufferization.materialize_in_destination %m in restrict writable %idx : (tensor<?x32xi64>, memref<?x32xi64>) -> ()
  return
}

// -----

// A destination that is not a plain row-major buffer (a strided subview),
// or one read before the materialisation, is not written in place: the
// kernel writes its own buffer, which is then materialised.
// CHECK-LABEL: func.func @strided_destination
// CHECK: %[[BUF:.*]] = memref.alloc() : memref<4x3x8xf32>
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %{{.*}} {alignment = 16 : i64} : memref<12x8xf32>, vector<4xf32>
// CHECK: %[[T:.*]] = bufferization.to_tensor %[[BUF]]
// CHECK: bufferization.materialize_in_destination %[[T]] in restrict writable %{{.*}} : (tensor<4x3x8xf32>, memref<4x3x8xf32, strided<[27, 9, 1]>>)
func.func @strided_destination(%w: tensor<10x8xf32>, %x: tensor<4x3xi64>, %big: memref<4x3x9xf32>) {
  %r = emb.lookup %w[%x] : tensor<10x8xf32>[tensor<4x3xi64>] -> tensor<4x3x8xf32>
  %sub = memref.subview %big[0, 0, 0] [4, 3, 8] [1, 1, 1] : memref<4x3x9xf32> to memref<4x3x8xf32, strided<[27, 9, 1]>>
  bufferization.materialize_in_destination %r in restrict writable %sub : (tensor<4x3x8xf32>, memref<4x3x8xf32, strided<[27, 9, 1]>>) -> ()
  return
}

// CHECK-LABEL: func.func @destination_read_in_between
// CHECK: memref.alloc
// CHECK: gpu.launch
// CHECK: memref.load %{{.*}}[%c0, %c0]
// CHECK: materialize_in_destination
func.func @destination_read_in_between(%w: tensor<10x8xf32>, %x: tensor<2xi64>, %out: memref<2x8xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %r = emb.lookup %w[%x] : tensor<10x8xf32>[tensor<2xi64>] -> tensor<2x8xf32>
  %old = memref.load %out[%c0, %c0] : memref<2x8xf32>
  bufferization.materialize_in_destination %r in restrict writable %out : (tensor<2x8xf32>, memref<2x8xf32>) -> ()
  return %old : f32
}

// -----

// Renorm, in place (the JIT's form: the result goes back into the weight's
// buffer): row flags zeroed, then one thread per position claims its row
// once (atomic or) and rescales it.
// CHECK-LABEL: func.func @renorm_in_place
// CHECK-SAME: (%[[W:.*]]: memref<100x8xf32>, %[[X:.*]]: memref<?xi64>)
// CHECK: %[[SEEN:.*]] = gpu.alloc {{ *}}({{.*}}) : memref<?xi32>
// CHECK: gpu.launch
// CHECK: gpu.launch
// CHECK: memref.atomic_rmw ori {{.*}}, %[[SEEN]]
// CHECK: math.sqrt
// CHECK: arith.cmpf ogt
// CHECK: vector.store {{.*}}, %[[W]]
// CHECK: gpu.dealloc {{ *}}%[[SEEN]]
// CHECK-NOT: materialize_in_destination
func.func @renorm_in_place(%w: memref<100x8xf32>, %x: memref<?xi64>) {
  %tw = bufferization.to_tensor %w restrict writable : memref<100x8xf32> to tensor<100x8xf32>
  %tx = bufferization.to_tensor %x restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.renorm %tw[%tx] {max_norm = 1.0 : f64} : tensor<100x8xf32>[tensor<?xi64>] -> tensor<100x8xf32>
  bufferization.materialize_in_destination %r in restrict writable %w : (tensor<100x8xf32>, memref<100x8xf32>) -> ()
  return
}

// -----

// On a tensor with no buffer to reuse: a copy first.
// CHECK-LABEL: func.func @renorm_copy
// CHECK: %[[T:.*]] = memref.alloc() : memref<100x8xf32>
// CHECK: gpu.launch
// CHECK: vector.store {{.*}}, %[[T]]
// CHECK: math.powf
func.func @renorm_copy(%w: tensor<100x8xf32>, %x: tensor<?xi64>) -> tensor<100x8xf32> {
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
