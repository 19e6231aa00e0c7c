// convert-emb-to-linalg: emb's forward ops as linalg.generic on tensors,
// which stock mlir-opt lowers with its own pipeline (no emb pass after the
// conversion) and stock mlir-runner runs; the printed values are
// docs/semantics.md's (worked by hand below each call, and equal to torch's
// F.embedding / F.embedding_bag for the torch modes).
// RUN: emb-opt %s -convert-emb-to-linalg | FileCheck %s --check-prefix=IR
// RUN: emb-opt %s -convert-emb-to-linalg \
// RUN:   | %stock_mlir_opt -one-shot-bufferize="bufferize-function-boundaries" \
// RUN:       -convert-linalg-to-loops -convert-scf-to-cf -expand-strided-metadata \
// RUN:       -lower-affine -convert-to-llvm -reconcile-unrealized-casts \
// RUN:   | %stock_mlir_runner -e main -entry-point-result=void \
// RUN:       -shared-libs=%runner_utils_lib -shared-libs=%c_runner_utils_lib \
// RUN:   | FileCheck %s
// The lookup is torch-mlir's form, which raise-linalg-to-emb takes back.
// RUN: emb-opt %s -convert-emb-to-linalg -raise-linalg-to-emb \
// RUN:   | FileCheck %s --check-prefix=RAISED

// IR-LABEL: func.func @lookup
// IR-NOT: emb.
// IR: linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}], iterator_types = ["parallel", "parallel", "parallel"]} ins(%{{.*}} : tensor<2x2xi32>)
// IR: arith.index_cast
// IR: linalg.index 2
// IR: tensor.extract
// IR: linalg.yield
// RAISED-LABEL: func.func @lookup
// RAISED: emb.lookup
func.func @lookup(%w: tensor<5x3xf32>, %x: tensor<2x2xi32>) -> tensor<2x2x3xf32> {
  %0 = emb.lookup %w[%x] : tensor<5x3xf32>[tensor<2x2xi32>] -> tensor<2x2x3xf32>
  return %0 : tensor<2x2x3xf32>
}

// padding_mode zero: the padding row (-1 is row 4) reads as zeros.
// IR-LABEL: func.func @lookup_zero_padding
// IR: %[[EQ:.*]] = arith.cmpi eq
// IR: arith.select %[[EQ]], %cst
func.func @lookup_zero_padding(%w: tensor<5x3xf32>, %x: tensor<2x2xi32>) -> tensor<2x2x3xf32> {
  %0 = emb.lookup %w[%x] {padding_idx = -1 : i64, padding_mode = #emb.padding_mode<zero>}
      : tensor<5x3xf32>[tensor<2x2xi32>] -> tensor<2x2x3xf32>
  return %0 : tensor<2x2x3xf32>
}

// A bag is one parallel generic over [B, D]; its entries reduce in an
// scf.for from the bag's first offset to the next one.
// IR-LABEL: func.func @bags
// IR-NOT: emb.
// IR: linalg.generic {indexing_maps = [#{{.*}}], iterator_types = ["parallel", "parallel"]} outs(
// IR: scf.for
func.func @bags(%w: tensor<5x3xf32>, %x: tensor<6xi64>, %o: tensor<3xi64>, %p: tensor<6xf32>)
    -> (tensor<3x3xf32>, tensor<3x3xf32>, tensor<2x3xf32>, tensor<3x3xf32>, tensor<3x3xi64>, tensor<3x3xf32>) {
  %sum = emb.bag sum %w[%x] offsets(%o : tensor<3xi64>) {padding_idx = 4 : i64}
      : tensor<5x3xf32>[tensor<6xi64>] -> tensor<3x3xf32>
  %mean = emb.bag mean %w[%x] offsets(%o : tensor<3xi64>) {padding_idx = 4 : i64}
      : tensor<5x3xf32>[tensor<6xi64>] -> tensor<3x3xf32>
  %last = emb.bag sum %w[%x] offsets(%o : tensor<3xi64>) {include_last_offset}
      : tensor<5x3xf32>[tensor<6xi64>] -> tensor<2x3xf32>
  %wsqrtn = emb.bag sqrtn %w[%x] offsets(%o : tensor<3xi64>) per_sample_weights(%p : tensor<6xf32>)
      : tensor<5x3xf32>[tensor<6xi64>] -> tensor<3x3xf32>
  %max, %arg = emb.bag max %w[%x] offsets(%o : tensor<3xi64>) {padding_idx = 4 : i64}
      : tensor<5x3xf32>[tensor<6xi64>] -> tensor<3x3xf32>, tensor<3x3xi64>
  %wmean = emb.bag mean %w[%x] offsets(%o : tensor<3xi64>) per_sample_weights(%p : tensor<6xf32>)
      : tensor<5x3xf32>[tensor<6xi64>] -> tensor<3x3xf32>
  return %sum, %mean, %last, %wsqrtn, %arg, %wmean
      : tensor<3x3xf32>, tensor<3x3xf32>, tensor<2x3xf32>, tensor<3x3xf32>, tensor<3x3xi64>, tensor<3x3xf32>
}

// 2-D indices (a bag per row), an f16 table accumulated in f32.
// IR-LABEL: func.func @bag_2d_f16
// IR: arith.extf {{.*}} : f16 to f32
// IR: arith.truncf {{.*}} : f32 to f16
func.func @bag_2d_f16(%w: tensor<5x3xf16>, %x: tensor<2x2xi64>) -> tensor<2x3xf16> {
  %0 = emb.bag mean %w[%x] : tensor<5x3xf16>[tensor<2x2xi64>] -> tensor<2x3xf16>
  return %0 : tensor<2x3xf16>
}

// Many tables: one bag per table, inserted into its columns; a sequence
// table's rows side by side.
// IR-LABEL: func.func @tables
// IR-NOT: emb.
func.func @tables(%t0: tensor<5x3xf32>, %t1: tensor<4x2xf32>, %x: tensor<6xi64>, %o: tensor<5xi64>)
    -> tensor<2x7xf32> {
  %0 = emb.multi_bag %t0, %t1[%x] offsets(%o : tensor<5xi64>)
      {modes = [#emb.mode<sum>, #emb.mode<none>], padding_idx = array<i64: -1, 0>,
       sequence_lengths = array<i64: 0, 2>}
      : (tensor<5x3xf32>, tensor<4x2xf32>)[tensor<6xi64>] -> tensor<2x7xf32>
  return %0 : tensor<2x7xf32>
}

func.func private @printMemrefF32(memref<*xf32>)
func.func private @printMemrefI64(memref<*xi64>)

func.func @print2(%t: tensor<?x?xf32>) {
  %b = bufferization.to_buffer %t : tensor<?x?xf32> to memref<?x?xf32>
  %u = memref.cast %b : memref<?x?xf32> to memref<*xf32>
  call @printMemrefF32(%u) : (memref<*xf32>) -> ()
  return
}

func.func @main() {
  %w = arith.constant dense<[[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0], [2.0, -2.0, 0.0],
                             [0.25, 8.0, -3.0], [9.0, 9.0, 9.0]]> : tensor<5x3xf32>
  %xi = arith.constant dense<[[1, 4], [3, 0]]> : tensor<2x2xi32>
  %l = call @lookup(%w, %xi) : (tensor<5x3xf32>, tensor<2x2xi32>) -> tensor<2x2x3xf32>
  %lc = tensor.collapse_shape %l [[0, 1], [2]] : tensor<2x2x3xf32> into tensor<4x3xf32>
  %lcd = tensor.cast %lc : tensor<4x3xf32> to tensor<?x?xf32>
  call @print2(%lcd) : (tensor<?x?xf32>) -> ()
  // CHECK: [-1,   0.5,   4]
  // CHECK-NEXT: [9,   9,   9]
  // CHECK-NEXT: [0.25,   8,   -3]
  // CHECK-NEXT: [1,   2,   3]
  %z = call @lookup_zero_padding(%w, %xi) : (tensor<5x3xf32>, tensor<2x2xi32>) -> tensor<2x2x3xf32>
  %zc = tensor.collapse_shape %z [[0, 1], [2]] : tensor<2x2x3xf32> into tensor<4x3xf32>
  %zcd = tensor.cast %zc : tensor<4x3xf32> to tensor<?x?xf32>
  call @print2(%zcd) : (tensor<?x?xf32>) -> ()
  // CHECK: [-1,   0.5,   4]
  // CHECK-NEXT: [0,   0,   0]
  // CHECK-NEXT: [0.25,   8,   -3]
  // CHECK-NEXT: [1,   2,   3]

  // Bags {1, 4, 2}, {} and {3, 0, 4}; row 4 is the padding row.
  %x = arith.constant dense<[1, 4, 2, 3, 0, 4]> : tensor<6xi64>
  %o = arith.constant dense<[0, 3, 3]> : tensor<3xi64>
  %p = arith.constant dense<[1.0, 2.0, 2.0, 3.0, 4.0, 0.0]> : tensor<6xf32>
  %sum, %mean, %last, %wsqrtn, %arg, %wmean = call @bags(%w, %x, %o, %p)
      : (tensor<5x3xf32>, tensor<6xi64>, tensor<3xi64>, tensor<6xf32>)
      -> (tensor<3x3xf32>, tensor<3x3xf32>, tensor<2x3xf32>, tensor<3x3xf32>, tensor<3x3xi64>, tensor<3x3xf32>)
  %s = tensor.cast %sum : tensor<3x3xf32> to tensor<?x?xf32>
  call @print2(%s) : (tensor<?x?xf32>) -> ()
  // sum without the padding row: rows 1 + 2, nothing, rows 3 + 0
  // CHECK: [1,   -1.5,   4]
  // CHECK-NEXT: [0,   0,   0]
  // CHECK-NEXT: [1.25,   10,   0]
  %m = tensor.cast %mean : tensor<3x3xf32> to tensor<?x?xf32>
  call @print2(%m) : (tensor<?x?xf32>) -> ()
  // mean over the live entries: / 2, empty bag 0, / 2
  // CHECK: [0.5,   -0.75,   2]
  // CHECK-NEXT: [0,   0,   0]
  // CHECK-NEXT: [0.625,   5,   0]
  %la = tensor.cast %last : tensor<2x3xf32> to tensor<?x?xf32>
  call @print2(%la) : (tensor<?x?xf32>) -> ()
  // include_last_offset: bags {1, 4, 2} and {}; no padding row here
  // CHECK: [10,   7.5,   13]
  // CHECK-NEXT: [0,   0,   0]
  %q = tensor.cast %wsqrtn : tensor<3x3xf32> to tensor<?x?xf32>
  call @print2(%q) : (tensor<?x?xf32>) -> ()
  // sqrtn, weighted: (1 r1 + 2 r4 + 2 r2) / 3; bag 2: (3 r3 + 4 r0 + 0 r4) / 5
  // CHECK: [7,   4.83333,   7.33333]
  // CHECK-NEXT: [0,   0,   0]
  // CHECK-NEXT: [0.95,   6.4,   0.6]
  %ab = bufferization.to_buffer %arg : tensor<3x3xi64> to memref<3x3xi64>
  %au = memref.cast %ab : memref<3x3xi64> to memref<*xi64>
  call @printMemrefI64(%au) : (memref<*xi64>) -> ()
  // max's argmax rows (padding skipped, empty bag -1)
  // CHECK: [2,   1,   1]
  // CHECK-NEXT: [-1,   -1,   -1]
  // CHECK-NEXT: [0,   3,   0]
  %wm = tensor.cast %wmean : tensor<3x3xf32> to tensor<?x?xf32>
  call @print2(%wm) : (tensor<?x?xf32>) -> ()
  // weighted mean: (1 r1 + 2 r4 + 2 r2) / 5; (3 r3 + 4 r0) / 7
  // CHECK: [4.2,   2.9,   4.4]
  // CHECK-NEXT: [0,   0,   0]
  // CHECK-NEXT: [0.678571,   4.57143,   0.428571]

  %xh = arith.constant dense<[[1, 2], [3, 3]]> : tensor<2x2xi64>
  %wh = arith.constant dense<[[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0], [2.0, -2.0, 0.0],
                              [0.25, 8.0, -3.0], [9.0, 9.0, 9.0]]> : tensor<5x3xf16>
  %h = call @bag_2d_f16(%wh, %xh) : (tensor<5x3xf16>, tensor<2x2xi64>) -> tensor<2x3xf16>
  %he = tensor.empty() : tensor<2x3xf32>
  %hf = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                        iterator_types = ["parallel", "parallel"]}
      ins(%h : tensor<2x3xf16>) outs(%he : tensor<2x3xf32>) {
  ^bb0(%v: f16, %unused: f32):
    %e = arith.extf %v : f16 to f32
    linalg.yield %e : f32
  } -> tensor<2x3xf32>
  %hd = tensor.cast %hf : tensor<2x3xf32> to tensor<?x?xf32>
  call @print2(%hd) : (tensor<?x?xf32>) -> ()
  // CHECK: [0.5,   -0.75,   2]
  // CHECK-NEXT: [0.25,   8,   -3]

  // Table 0 (sum): bags {1, 2}, {}; table 1 (rows of 2, padding row 0,
  // sequences of 2): {3, 0}, {2, 1}.
  %t1 = arith.constant dense<[[5.0, 5.0], [1.0, -1.0], [2.0, 3.0], [0.5, 0.25]]> : tensor<4x2xf32>
  %tx = arith.constant dense<[1, 2, 3, 0, 2, 1]> : tensor<6xi64>
  %to = arith.constant dense<[0, 2, 2, 4, 6]> : tensor<5xi64>
  %t = call @tables(%w, %t1, %tx, %to) : (tensor<5x3xf32>, tensor<4x2xf32>, tensor<6xi64>, tensor<5xi64>) -> tensor<2x7xf32>
  %td = tensor.cast %t : tensor<2x7xf32> to tensor<?x?xf32>
  call @print2(%td) : (tensor<?x?xf32>) -> ()
  // CHECK: [1,   -1.5,   4,   0.5,   0.25,   0,   0]
  // CHECK-NEXT: [0,   0,   0,   2,   3,   1,   -1]
  return
}
