// convert-emb-to-scf nested on functions, which the multi-threaded pass
// manager runs in parallel: each function's diagnostics are its own (the
// driver counts only the errors of its own thread), once each.
// RUN: emb-opt %s --pass-pipeline="builtin.module(func.func(convert-emb-to-scf))" -split-input-file -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func @lowered
// CHECK-NOT: emb.
func.func @lowered(%w: tensor<?x16xf32>, %x: tensor<8xi64>) -> tensor<8x16xf32> {
  %0 = emb.lookup %w[%x] : tensor<?x16xf32>[tensor<8xi64>] -> tensor<8x16xf32>
  return %0 : tensor<8x16xf32>
}

// -----

// Two functions that fail in parallel: each reports its own error.
func.func @dynamic_dim(%w: tensor<10x?xf32>, %x: tensor<3xi64>) -> tensor<3x?xf32> {
  // expected-error @below {{CPU lowering needs a static embedding_dim}}
  %0 = emb.lookup %w[%x] : tensor<10x?xf32>[tensor<3xi64>] -> tensor<3x?xf32>
  return %0 : tensor<3x?xf32>
}

func.func @dynamic_dim_too(%w: tensor<10x?xf32>, %x: tensor<3xi64>) -> tensor<3x?xf32> {
  // expected-error @below {{CPU lowering needs a static embedding_dim}}
  %0 = emb.lookup %w[%x] : tensor<10x?xf32>[tensor<3xi64>] -> tensor<3x?xf32>
  return %0 : tensor<3x?xf32>
}
