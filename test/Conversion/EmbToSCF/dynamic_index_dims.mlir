// A lookup whose indices have two dynamic sizes or more writes each row at
// its position in the result: expanding [N, D] rows to [?, ?, D] instead
// crashes MLIR 22's expand-strided-metadata in emb-cpu-pipeline (issue 16,
// item 6). One dynamic size keeps the expansion.
// RUN: emb-opt %s -convert-emb-to-scf -split-input-file | FileCheck %s
// RUN: emb-opt %s --emb-cpu-pipeline -split-input-file | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: func @two_dynamic
// CHECK-SAME: (%[[W:.*]]: tensor<100x16xf32>, %[[X:.*]]: tensor<?x?xi64>)
// CHECK: %[[A:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x?xi64>
// CHECK: %[[B:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x?xi64>
// CHECK: %[[INIT:.*]] = tensor.empty(%[[A]], %[[B]]) : tensor<?x?x16xf32>
// CHECK: scf.for %[[I:.*]] = {{.*}} iter_args(%[[O:.*]] = %[[INIT]]) -> (tensor<?x?x16xf32>)
// CHECK:   %[[J:.*]] = arith.remui %[[I]], %[[B]]
// CHECK:   %[[K:.*]] = arith.divui %[[I]], %[[B]]
// CHECK:   vector.transfer_write %{{.*}}, %[[O]][%[[K]], %[[J]], %{{.*}}]
// CHECK-NOT: tensor.expand_shape
// LLVM-LABEL: llvm.func @two_dynamic
func.func @two_dynamic(%w: tensor<100x16xf32>, %x: tensor<?x?xi64>) -> tensor<?x?x16xf32> {
  %0 = emb.lookup %w[%x] : tensor<100x16xf32>[tensor<?x?xi64>] -> tensor<?x?x16xf32>
  return %0 : tensor<?x?x16xf32>
}

// -----

// CHECK-LABEL: func @three_dims_two_dynamic
// CHECK: arith.remui
// CHECK: arith.divui
// CHECK: arith.remui
// CHECK: arith.divui
// CHECK: vector.transfer_write {{.*}} : vector<8xf16>, tensor<?x3x?x8xf16>
// CHECK-NOT: tensor.expand_shape
// LLVM-LABEL: llvm.func @three_dims_two_dynamic
func.func @three_dims_two_dynamic(%w: tensor<?x8xf16>, %x: tensor<?x3x?xi32>) -> tensor<?x3x?x8xf16> {
  %0 = emb.lookup %w[%x] {padding_idx = 0 : i64, padding_mode = #emb.padding_mode<zero>}
      : tensor<?x8xf16>[tensor<?x3x?xi32>] -> tensor<?x3x?x8xf16>
  return %0 : tensor<?x3x?x8xf16>
}

// -----

// CHECK-LABEL: func @one_dynamic
// CHECK: tensor.expand_shape
// LLVM-LABEL: llvm.func @one_dynamic
func.func @one_dynamic(%w: tensor<100x16xf32>, %x: tensor<?x4xi64>) -> tensor<?x4x16xf32> {
  %0 = emb.lookup %w[%x] : tensor<100x16xf32>[tensor<?x4xi64>] -> tensor<?x4x16xf32>
  return %0 : tensor<?x4x16xf32>
}
