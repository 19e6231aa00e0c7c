// The PTX of every forward kernel form passes ptxas (through
// gpu-module-to-binary format=bin) for sm_80 and sm_90.
// REQUIRES: ptxas
// RUN: emb-opt %s --emb-nvptx-pipeline="chip=sm_80 format=bin" | FileCheck %s
// RUN: emb-opt %s --emb-nvptx-pipeline="chip=sm_90 format=bin" | FileCheck %s

// CHECK-COUNT-6: bin = "\7FELF

func.func @lookup_f32(%w: tensor<1000x128xf32>, %x: tensor<?x?xi32>) -> tensor<?x?x128xf32> {
  %r = emb.lookup %w[%x] {padding_idx = 0 : i64, padding_mode = #emb.padding_mode<zero>} : tensor<1000x128xf32>[tensor<?x?xi32>] -> tensor<?x?x128xf32>
  return %r : tensor<?x?x128xf32>
}
func.func @lookup_odd_bf16(%w: tensor<?x17xbf16>, %x: tensor<?xi64>) -> tensor<?x17xbf16> {
  %r = emb.lookup %w[%x] : tensor<?x17xbf16>[tensor<?xi64>] -> tensor<?x17xbf16>
  return %r : tensor<?x17xbf16>
}
func.func @bag_sum_psw(%w: tensor<?x256xf32>, %x: tensor<?xi64>, %o: tensor<?xi32>, %p: tensor<?xf32>) -> tensor<?x256xf32> {
  %r = emb.bag sum %w[%x] offsets(%o : tensor<?xi32>) per_sample_weights(%p : tensor<?xf32>) {include_last_offset} : tensor<?x256xf32>[tensor<?xi64>] -> tensor<?x256xf32>
  return %r : tensor<?x256xf32>
}
func.func @bag_mean_f16(%w: tensor<?x64xf16>, %x: tensor<?xi64>, %o: tensor<?xi64>) -> tensor<?x64xf16> {
  %r = emb.bag mean %w[%x] offsets(%o : tensor<?xi64>) {padding_idx = -1 : i64} : tensor<?x64xf16>[tensor<?xi64>] -> tensor<?x64xf16>
  return %r : tensor<?x64xf16>
}
func.func @bag_max_f64(%w: tensor<?x32xf64>, %x: tensor<?x8xi64>) -> (tensor<?x32xf64>, tensor<?x32xi64>) {
  %r, %m = emb.bag max %w[%x] : tensor<?x32xf64>[tensor<?x8xi64>] -> tensor<?x32xf64>, tensor<?x32xi64>
  return %r, %m : tensor<?x32xf64>, tensor<?x32xi64>
}
func.func @bag_max_bf16(%w: tensor<?x1000xbf16>, %x: tensor<?xi32>, %o: tensor<?xi32>) -> tensor<?x1000xbf16> {
  %r = emb.bag max %w[%x] offsets(%o : tensor<?xi32>) : tensor<?x1000xbf16>[tensor<?xi32>] -> tensor<?x1000xbf16>
  return %r : tensor<?x1000xbf16>
}
