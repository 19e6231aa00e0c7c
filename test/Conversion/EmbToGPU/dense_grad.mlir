// convert-emb-to-gpu, DenseGrad.cpp: the dense gradients with atomics, and the per_sample_weights gradient.
// RUN: emb-opt %s --convert-emb-to-gpu --split-input-file --verify-diagnostics | FileCheck %s

// Dense gradients: a launch of zeros over the rows, then an atomic scatter
// (f32 / f64). The padding row is skipped; grad_scale multiplies.
// CHECK-LABEL: func.func @lookup_grad
// CHECK: gpu.launch
// CHECK: vector.store %{{.*}} {alignment = 16 : i64} : memref<1000x64xf32>, vector<4xf32>
// CHECK: gpu.terminator
// The scatter is lane-interleaved (16 lanes a row, 4 elements each): lane
// l reads and adds columns base + l + 16 e, e = 0..3, so that each load and
// each atomic of the group covers 16 consecutive floats.
// CHECK: gpu.launch
// CHECK: %[[LANE:[^ ]*]] = arith.remui %{{.*}}, %c16{{.*}} : index
// CHECK: arith.cmpi ne
// CHECK: scf.for
// CHECK: memref.load %{{.*}} : memref<?x64xf32>
// CHECK: arith.addi %[[LANE]], %c16
// CHECK: memref.load %{{.*}} : memref<?x64xf32>
// CHECK: arith.addi %[[LANE]], %c32
// CHECK: memref.load %{{.*}} : memref<?x64xf32>
// CHECK: arith.addi %[[LANE]], %c48
// CHECK: memref.load %{{.*}} : memref<?x64xf32>
// CHECK: vector.from_elements {{.*}} : vector<4xf32>
// CHECK: arith.mulf
// CHECK-COUNT-4: memref.atomic_rmw addf
// CHECK: gpu.terminator
func.func @lookup_grad(%g: tensor<?x64xf32>, %x: tensor<?xi64>) -> tensor<1000x64xf32> {
  %r = emb.lookup_grad %g[%x] {num_embeddings = 1000 : i64, padding_idx = 0 : i64, grad_scale = 5.000000e-01 : f64} : tensor<?x64xf32>[tensor<?xi64>] -> tensor<1000x64xf32>
  return %r : tensor<1000x64xf32>
}

// -----

// CHECK-LABEL: func.func @bag_grad_mean_window
// The row window: rows [%first, %first + %count) of the gradient.
// CHECK: %[[E:.*]] = tensor.empty(%{{.*}}) : tensor<?x32xf64>
// CHECK: emb.on_buffers ins({{.*}}) outs(%[[E]] : tensor<?x32xf64>)
// CHECK: gpu.launch
// CHECK: gpu.launch
// CHECK: arith.divf
// CHECK: arith.subi
// CHECK: arith.cmpi ult
// CHECK: memref.atomic_rmw addf
func.func @bag_grad_mean_window(%g: tensor<?x32xf64>, %x: tensor<?xi64>, %o: tensor<?xi64>, %first: index, %count: index) -> tensor<?x32xf64> {
  %r = emb.bag_grad mean %g[%x] offsets(%o : tensor<?xi64>) rows(%first, %count) {num_embeddings = 1000 : i64, padding_idx = 2 : i64} : tensor<?x32xf64>[tensor<?xi64>] -> tensor<?x32xf64>
  return %r : tensor<?x32xf64>
}

// CHECK-LABEL: func.func @bag_grad_max
// CHECK: gpu.launch
// CHECK: gpu.launch
// CHECK: memref.load {{.*}} {alignment = 8 : i64} : memref<?x32xi64>
// CHECK: arith.cmpi ult
// CHECK: memref.atomic_rmw addf
func.func @bag_grad_max(%g: tensor<?x32xf32>, %x: tensor<?x4xi64>, %m: tensor<?x32xi64>) -> tensor<100x32xf32> {
  %r = emb.bag_grad max %g[%x] max_indices(%m : tensor<?x32xi64>) {num_embeddings = 100 : i64} : tensor<?x32xf32>[tensor<?x4xi64>] -> tensor<100x32xf32>
  return %r : tensor<100x32xf32>
}

// -----

// f16: the atomics add into an f32 scratch table (device memory), rounded
// into the result by a last launch; scale_grad_by_freq counts the rows
// first. The scatter takes the f32 table's layout (4 elements a lane, 16
// lanes a row), interleaved.
// CHECK-LABEL: func.func @half_grad_by_freq
// CHECK: %[[ACC:.*]] = gpu.alloc {{ *}}({{.*}}) : memref<?x64xf32>
// CHECK: gpu.launch
// CHECK: %[[COUNTS:.*]] = gpu.alloc {{ *}}({{.*}}) : memref<?xi64>
// CHECK: gpu.launch
// CHECK: gpu.launch
// CHECK: memref.atomic_rmw addi {{.*}}, %[[COUNTS]]
// CHECK: gpu.launch
// CHECK: arith.extf {{.*}} : vector<4xf16> to vector<4xf32>
// CHECK: memref.load %[[COUNTS]]
// CHECK: memref.atomic_rmw addf {{.*}}, %[[ACC]]
// CHECK: gpu.launch
// CHECK: arith.truncf {{.*}} : vector<4xf32> to vector<4xf16>
// CHECK: gpu.dealloc {{ *}}%[[ACC]]
// CHECK: gpu.dealloc {{ *}}%[[COUNTS]]
func.func @half_grad_by_freq(%g: tensor<?x64xf16>, %x: tensor<?xi64>) -> tensor<1000x64xf16> {
  %r = emb.lookup_grad %g[%x] {num_embeddings = 1000 : i64, scale_grad_by_freq} : tensor<?x64xf16>[tensor<?xi64>] -> tensor<1000x64xf16>
  return %r : tensor<1000x64xf16>
}

// -----

// The per_sample_weights gradient: one thread per bag, a dot product of
// 16-byte vectors per entry, the lanes summed in order; 0 for padding.
// CHECK-LABEL: func.func @psw_grad_2d
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %{{.*}} {{\[}}[0, 1]] : memref<?x5xf32> into memref<?xf32>
// CHECK: arith.ceildivui %{{.*}}, %c256
// CHECK: gpu.launch
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<4xf32>)
// CHECK: arith.mulf {{.*}} : vector<4xf32>
// CHECK-COUNT-3: arith.addf {{.*}} : f32
// CHECK: arith.select
// CHECK: memref.store {{.*}}, %[[FLAT]]
func.func @psw_grad_2d(%g: tensor<?x64xf32>, %w: tensor<1000x64xf32>, %x: tensor<?x5xi64>) -> tensor<?x5xf32> {
  %r = emb.bag_psw_grad %g, %w[%x] {padding_idx = 1 : i64} : tensor<?x64xf32>, tensor<1000x64xf32>[tensor<?x5xi64>] -> tensor<?x5xf32>
  return %r : tensor<?x5xf32>
}
