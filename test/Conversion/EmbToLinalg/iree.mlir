// IREE takes convert-emb-to-linalg's output as is: iree-compile builds it
// for the CPU and iree-run-module runs it (the values of forward.mlir).
// Runs where IREE's tools are found (PATH or $EMB_IREE_BIN; from PyPI:
// iree-base-compiler and iree-base-runtime), else it is reported
// unsupported.
// REQUIRES: iree
// RUN: emb-opt %s -convert-emb-to-linalg \
// RUN:   | %iree_compile - --iree-hal-target-device=local \
// RUN:       --iree-hal-local-target-device-backends=llvm-cpu \
// RUN:       --iree-llvmcpu-target-cpu=generic -o %t.vmfb
// RUN: %iree_run_module --module=%t.vmfb --device=local-task --function=bag \
// RUN:     --input="5x3xf32=[1 2 3][-1 0.5 4][2 -2 0][0.25 8 -3][9 9 9]" \
// RUN:     --input="6xi64=1 4 2 3 0 4" --input="3xi64=0 3 3" \
// RUN:     --input="6xf32=1 2 2 3 4 0" | FileCheck %s --check-prefix=BAG
// RUN: %iree_run_module --module=%t.vmfb --device=local-task --function=tables \
// RUN:     --input="5x3xf32=[1 2 3][-1 0.5 4][2 -2 0][0.25 8 -3][9 9 9]" \
// RUN:     --input="4x2xf32=[5 5][1 -1][2 3][0.5 0.25]" \
// RUN:     --input="6xi64=1 2 3 0 2 1" --input="5xi64=0 2 2 4 6" \
// RUN:   | FileCheck %s --check-prefix=TABLES

// Weighted mean, row 4 the padding row: (1 r1 + 2 r2) / 3, an empty bag,
// (3 r3 + 4 r0) / 7.
// BAG: 3x3xf32=[1 -1.16667 1.33333][0 0 0][0.678571 4.57143 0.428571]
func.func @bag(%w: tensor<5x3xf32>, %x: tensor<6xi64>, %o: tensor<3xi64>, %p: tensor<6xf32>) -> tensor<3x3xf32> {
  %0 = emb.bag mean %w[%x] offsets(%o : tensor<3xi64>) per_sample_weights(%p : tensor<6xf32>) {padding_idx = 4 : i64}
      : tensor<5x3xf32>[tensor<6xi64>] -> tensor<3x3xf32>
  return %0 : tensor<3x3xf32>
}

// A sum table and a sequence table (padding row 0, L = 2).
// TABLES: 2x7xf32=[1 -1.5 4 0.5 0.25 0 0][0 0 0 2 3 1 -1]
func.func @tables(%t0: tensor<5x3xf32>, %t1: tensor<4x2xf32>, %x: tensor<6xi64>, %o: tensor<5xi64>)
    -> tensor<2x7xf32> {
  %0 = emb.multi_bag %t0, %t1[%x] offsets(%o : tensor<5xi64>)
      {modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, 0>,
       sequence_lengths = array<i64: 0, 2>}
      : (tensor<5x3xf32>, tensor<4x2xf32>)[tensor<6xi64>] -> tensor<2x7xf32>
  return %0 : tensor<2x7xf32>
}
