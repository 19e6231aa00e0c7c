// Malformed input gives a located diagnostic and a non-zero exit, never a
// crash: parse errors in emb syntax, truncated files and garbage bytes.
// RUN: emb-opt %s -split-input-file -verify-diagnostics
// RUN: head -c 600 %S/roundtrip.mlir | not emb-opt 2>&1 | FileCheck %s --check-prefix=TRUNC
// RUN: head -c 1500 %S/roundtrip.mlir | not emb-opt 2>&1 | FileCheck %s --check-prefix=TRUNC
// RUN: head -c 3000 %S/roundtrip.mlir | not emb-opt 2>&1 | FileCheck %s --check-prefix=TRUNC
// RUN: printf 'func.func @f(%%%%w: tensor<10x4xf32>) {\n  %%%%0 = emb.bag sum %%%%w[' | not emb-opt 2>&1 | FileCheck %s --check-prefix=TRUNC
// RUN: printf '\x00\xff\xfe emb.lookup }}} ((' | not emb-opt 2>&1 | FileCheck %s --check-prefix=TRUNC
// RUN: printf '"emb.bag"() : () -> ()' | not emb-opt 2>&1 | FileCheck %s --check-prefix=GENERIC
// TRUNC: <stdin>:{{[0-9]+}}:{{[0-9]+}}: error:
// GENERIC: <stdin>:1:1: error: 'emb.bag' op

func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{expected bag mode 'sum', 'mean', 'max' or 'sqrtn', got 'median'}}
  %0 = emb.bag median %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{expected valid keyword}}
  %0 = emb.bag %w[%i] : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x4xf32>
  return
}

// -----

func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{expected '['}}
  %0 = emb.lookup %w, %i : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3x4xf32>
  return
}

// -----

// An unranked tensor is rejected by the op's type constraint.
func.func @f(%w: tensor<*xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{invalid kind of type specified: expected builtin.tensor, but found 'tensor<*xf32>'}}
  %0 = emb.lookup %w[%i] : tensor<*xf32>[tensor<2x3xi64>] -> tensor<2x3x4xf32>
  return
}

// -----

func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{expected '<'}}
  %0 = emb.lookup %w[%i] {padding_idx = 1 : i64, padding_mode = #emb.padding_mode} : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3x4xf32>
  return
}

// -----

func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+2 {{expected ::mlir::emb::PaddingMode to be one of: keep, zero}}
  // expected-error @+1 {{failed to parse Emb_PaddingModeAttr parameter 'value'}}
  %0 = emb.lookup %w[%i] {padding_idx = 1 : i64, padding_mode = #emb.padding_mode<drop>} : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3x4xf32>
  return
}

// -----

func.func @f(%w: tensor<10x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.lookup' op attribute 'padding_idx' failed to satisfy constraint: 64-bit signless integer attribute}}
  %0 = emb.lookup %w[%i] {padding_idx = 1.5 : f32} : tensor<10x4xf32>[tensor<2x3xi64>] -> tensor<2x3x4xf32>
  return
}

// -----

func.func @f(%g: tensor<2x4xf32>, %i: tensor<2x3xi64>) {
  // expected-error @+1 {{'emb.bag_grad' op requires attribute 'num_embeddings'}}
  %0 = emb.bag_grad sum %g[%i] : tensor<2x4xf32>[tensor<2x3xi64>] -> tensor<10x4xf32>
  return
}
