// convert-tosa-to-emb: a single-batch tosa.gather of floats is an embedding
// lookup; anything else is left unchanged.
// RUN: emb-opt %s -convert-tosa-to-emb -split-input-file | FileCheck %s

// CHECK-LABEL: func @gather
// CHECK-SAME: (%[[V:.*]]: tensor<1x1000x64xf32>, %[[I:.*]]: tensor<1x32xi32>)
// CHECK: %[[T:.*]] = tensor.collapse_shape %[[V]] {{\[\[}}0, 1], [2]] : tensor<1x1000x64xf32> into tensor<1000x64xf32>
// CHECK: %[[R:.*]] = emb.lookup %[[T]][%[[I]]] : tensor<1000x64xf32>[tensor<1x32xi32>] -> tensor<1x32x64xf32>
// CHECK: return %[[R]]
// CHECK-NOT: tosa.gather
func.func @gather(%v: tensor<1x1000x64xf32>, %i: tensor<1x32xi32>) -> tensor<1x32x64xf32> {
  %0 = tosa.gather %v, %i : (tensor<1x1000x64xf32>, tensor<1x32xi32>) -> tensor<1x32x64xf32>
  return %0 : tensor<1x32x64xf32>
}

// -----

// CHECK-LABEL: func @gather_dynamic_bf16
// CHECK: emb.lookup %{{.*}}[%{{.*}}] : tensor<?x?xbf16>[tensor<1x?xi32>] -> tensor<1x?x?xbf16>
func.func @gather_dynamic_bf16(%v: tensor<1x?x?xbf16>, %i: tensor<1x?xi32>) -> tensor<1x?x?xbf16> {
  %0 = tosa.gather %v, %i : (tensor<1x?x?xbf16>, tensor<1x?xi32>) -> tensor<1x?x?xbf16>
  return %0 : tensor<1x?x?xbf16>
}

// -----

// Several batches: each has its own table; not an embedding lookup.
// CHECK-LABEL: func @two_batches
// CHECK: tosa.gather
// CHECK-NOT: emb.lookup
func.func @two_batches(%v: tensor<2x10x4xf32>, %i: tensor<2x3xi32>) -> tensor<2x3x4xf32> {
  %0 = tosa.gather %v, %i : (tensor<2x10x4xf32>, tensor<2x3xi32>) -> tensor<2x3x4xf32>
  return %0 : tensor<2x3x4xf32>
}

// -----

// Integer values are not an emb table.
// CHECK-LABEL: func @int_values
// CHECK: tosa.gather
// CHECK-NOT: emb.lookup
func.func @int_values(%v: tensor<1x10x4xi8>, %i: tensor<1x3xi32>) -> tensor<1x3x4xi8> {
  %0 = tosa.gather %v, %i : (tensor<1x10x4xi8>, tensor<1x3xi32>) -> tensor<1x3x4xi8>
  return %0 : tensor<1x3x4xi8>
}
