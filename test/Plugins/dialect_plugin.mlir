// The stock mlir-opt of the LLVM installation reads, verifies and prints emb
// ops through the dialect plugin, and reports verifier errors as usual.
// RUN: %stock_mlir_opt --load-dialect-plugin=%emb_libs/EmbDialectPlugin.so %s | FileCheck %s
// RUN: %stock_mlir_opt --load-dialect-plugin=%emb_libs/EmbDialectPlugin.so %s --canonicalize | FileCheck %s --check-prefix=CANON
// RUN: %stock_mlir_opt --load-dialect-plugin=%emb_libs/EmbDialectPlugin.so %S/../Dialect/Emb/invalid.mlir -split-input-file -verify-diagnostics

// CHECK-LABEL: func @bag
// CHECK: emb.bag sum %{{.*}}[%{{.*}}] offsets(%{{.*}} : tensor<?xi32>) {padding_idx = -1 : i64} : tensor<100x16xf32>[tensor<?xi64>] -> tensor<?x16xf32>
// CANON: emb.bag sum {{.*}} {padding_idx = 99 : i64}
func.func @bag(%w: tensor<100x16xf32>, %x: tensor<?xi64>, %o: tensor<?xi32>) -> tensor<?x16xf32> {
  %0 = emb.bag sum %w[%x] offsets(%o : tensor<?xi32>) {padding_idx = -1 : i64}
      : tensor<100x16xf32>[tensor<?xi64>] -> tensor<?x16xf32>
  return %0 : tensor<?x16xf32>
}
