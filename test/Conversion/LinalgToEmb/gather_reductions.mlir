// A gather reduced over the sequence is a 2-D bag (docs/integration.md):
// torch-mlir's gather + sum (+ divide by L) and IREE's fused reduction
// generic, in any loop order, become emb.bag sum / mean; IREE's permuted
// embedding_bag generic becomes emb.bag sum with offsets. Near misses stay.
// RUN: emb-opt %s -split-input-file -raise-linalg-to-emb | FileCheck %s

#g = affine_map<(d0, d1, d2) -> (d0, d1)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red = affine_map<(d0, d1, d2) -> (d0, d2)>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
// torch-mlir: embedding(ids).mean(1) as gather, sum, divide.
// CHECK-LABEL: func @gather_sum_divide
// CHECK-SAME: (%[[W:.*]]: tensor<100x8xf32>, %[[X:.*]]: tensor<?x4xi64>)
// CHECK-NOT: linalg.generic
// CHECK: %[[M:.*]] = emb.bag mean %[[W]][%[[X]]] : tensor<100x8xf32>[tensor<?x4xi64>] -> tensor<?x8xf32>
// CHECK-NEXT: return %[[M]]
func.func @gather_sum_divide(%w: tensor<100x8xf32>, %x: tensor<?x4xi64>) -> tensor<?x8xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %four = arith.constant 4.0 : f32
  %b = tensor.dim %x, %c0 : tensor<?x4xi64>
  %e = tensor.empty(%b) : tensor<?x4x8xf32>
  %rows = linalg.generic {indexing_maps = [#g, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : tensor<?x4xi64>) outs(%e : tensor<?x4x8xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x8xf32>
    linalg.yield %v : f32
  } -> tensor<?x4x8xf32>
  %se = tensor.empty(%b) : tensor<?x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<?x8xf32>) -> tensor<?x8xf32>
  %sum = linalg.generic {indexing_maps = [#id3, #red], iterator_types = ["parallel", "reduction", "parallel"]} ins(%rows : tensor<?x4x8xf32>) outs(%sz : tensor<?x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<?x8xf32>
  %me = tensor.empty(%b) : tensor<?x8xf32>
  %mean = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%sum : tensor<?x8xf32>) outs(%me : tensor<?x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %q = arith.divf %in, %four : f32
    linalg.yield %q : f32
  } -> tensor<?x8xf32>
  return %mean : tensor<?x8xf32>
}

// -----

// Divided by something else than L: the sum is a bag, the divide stays.
#g = affine_map<(d0, d1, d2) -> (d0, d1)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red = affine_map<(d0, d1, d2) -> (d0, d2)>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-LABEL: func @divided_by_another_number
// CHECK: %[[S:.*]] = emb.bag sum
// CHECK: linalg.generic {{.*}} ins(%[[S]]
// CHECK: arith.divf
func.func @divided_by_another_number(%w: tensor<100x8xf32>, %x: tensor<2x4xi32>) -> tensor<2x8xf32> {
  %zero = arith.constant 0.0 : f32
  %three = arith.constant 3.0 : f32
  %e = tensor.empty() : tensor<2x4x8xf32>
  %rows = linalg.generic {indexing_maps = [#g, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : tensor<2x4xi32>) outs(%e : tensor<2x4x8xf32>) {
  ^bb0(%in: i32, %out: f32):
    %i = arith.index_cast %in : i32 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x8xf32>
    linalg.yield %v : f32
  } -> tensor<2x4x8xf32>
  %se = tensor.empty() : tensor<2x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8xf32>) -> tensor<2x8xf32>
  %sum = linalg.generic {indexing_maps = [#id3, #red], iterator_types = ["parallel", "reduction", "parallel"]} ins(%rows : tensor<2x4x8xf32>) outs(%sz : tensor<2x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %acc, %in : f32
    linalg.yield %a : f32
  } -> tensor<2x8xf32>
  %me = tensor.empty() : tensor<2x8xf32>
  %mean = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%sum : tensor<2x8xf32>) outs(%me : tensor<2x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %q = arith.divf %in, %three : f32
    linalg.yield %q : f32
  } -> tensor<2x8xf32>
  return %mean : tensor<2x8xf32>
}

// -----

// The gathered rows used twice (the sum and the return): the lookup stays,
// and so does its sum.
#g = affine_map<(d0, d1, d2) -> (d0, d1)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func @rows_used_twice
// CHECK: emb.lookup
// CHECK: linalg.generic
// CHECK-NOT: emb.bag
func.func @rows_used_twice(%w: tensor<100x8xf32>, %x: tensor<2x4xi64>) -> (tensor<2x8xf32>, tensor<2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x4x8xf32>
  %rows = linalg.generic {indexing_maps = [#g, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : tensor<2x4xi64>) outs(%e : tensor<2x4x8xf32>) {
  ^bb0(%in: i64, %out: f32):
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x8xf32>
    linalg.yield %v : f32
  } -> tensor<2x4x8xf32>
  %se = tensor.empty() : tensor<2x8xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%se : tensor<2x8xf32>) -> tensor<2x8xf32>
  %sum = linalg.generic {indexing_maps = [#id3, #red], iterator_types = ["parallel", "reduction", "parallel"]} ins(%rows : tensor<2x4x8xf32>) outs(%sz : tensor<2x8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %in, %acc : f32
    linalg.yield %a : f32
  } -> tensor<2x8xf32>
  return %sum, %rows : tensor<2x8xf32>, tensor<2x4x8xf32>
}

// -----

// IREE's fused form, its loops permuted: (column, bag, entry), the entry
// loop the reduction; ids [bag, entry], output [bag, column].
#ids = affine_map<(d0, d1, d2) -> (d1, d2)>
#out = affine_map<(d0, d1, d2) -> (d1, d0)>
// CHECK-LABEL: func @fused_gather_sum_permuted
// CHECK-SAME: (%[[W:.*]]: tensor<?x16xf16>, %[[X:.*]]: tensor<?x?xi32>
// CHECK: %[[S:.*]] = emb.bag sum %[[W]][%[[X]]] : tensor<?x16xf16>[tensor<?x?xi32>] -> tensor<?x16xf16>
// CHECK-NOT: linalg.generic
// CHECK: return %[[S]]
func.func @fused_gather_sum_permuted(%w: tensor<?x16xf16>, %x: tensor<?x?xi32>, %b: index) -> tensor<?x16xf16> {
  %zero = arith.constant 0.0 : f16
  %e = tensor.empty(%b) : tensor<?x16xf16>
  %z = linalg.fill ins(%zero : f16) outs(%e : tensor<?x16xf16>) -> tensor<?x16xf16>
  %s = linalg.generic {indexing_maps = [#ids, #out], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<?x?xi32>) outs(%z : tensor<?x16xf16>) {
  ^bb0(%in: i32, %acc: f16):
    %i = arith.index_cast %in : i32 to index
    %d = linalg.index 0 : index
    %v = tensor.extract %w[%i, %d] : tensor<?x16xf16>
    %a = arith.addf %v, %acc : f16
    linalg.yield %a : f16
  } -> tensor<?x16xf16>
  return %s : tensor<?x16xf16>
}

// -----

// The fused form reading the wrong column (the bag's loop): left alone.
#ids = affine_map<(d0, d1, d2) -> (d0, d1)>
#out = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func @fused_gather_wrong_column
// CHECK: linalg.generic
// CHECK-NOT: emb.bag
func.func @fused_gather_wrong_column(%w: tensor<100x16xf32>, %x: tensor<4x3xi64>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %s = linalg.generic {indexing_maps = [#ids, #out], iterator_types = ["parallel", "reduction", "parallel"]} ins(%x : tensor<4x3xi64>) outs(%z : tensor<4x16xf32>) {
  ^bb0(%in: i64, %acc: f32):
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 0 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x16xf32>
    %a = arith.addf %v, %acc : f32
    linalg.yield %a : f32
  } -> tensor<4x16xf32>
  return %s : tensor<4x16xf32>
}

// -----

// The fused form taking the max, not the sum: left alone.
#ids = affine_map<(d0, d1, d2) -> (d0, d1)>
#out = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func @fused_gather_max
// CHECK: linalg.generic
// CHECK-NOT: emb.bag
func.func @fused_gather_max(%w: tensor<100x16xf32>, %x: tensor<4x3xi64>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %s = linalg.generic {indexing_maps = [#ids, #out], iterator_types = ["parallel", "reduction", "parallel"]} ins(%x : tensor<4x3xi64>) outs(%z : tensor<4x16xf32>) {
  ^bb0(%in: i64, %acc: f32):
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x16xf32>
    %a = arith.maximumf %v, %acc : f32
    linalg.yield %a : f32
  } -> tensor<4x16xf32>
  return %s : tensor<4x16xf32>
}

// -----

// IREE's dispatch-creation form of torch-mlir's embedding_bag: the same
// generic with its loops permuted to (bag, column, entry): maps (d2), (d0),
// (d0, d1), iterators [parallel, parallel, reduction].
#x = affine_map<(d0, d1, d2) -> (d2)>
#o = affine_map<(d0, d1, d2) -> (d0)>
#out = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func @permuted_embedding_bag
// CHECK-SAME: (%[[W:.*]]: tensor<?x?xf32>, %[[X:.*]]: tensor<?xi64>, %[[O:.*]]: tensor<?xi64>)
// CHECK: %[[R:.*]] = emb.bag sum %[[W]][%[[X]]] offsets(%[[O]] : tensor<?xi64>)
// CHECK-NOT: linalg.generic
// CHECK: return %[[R]]
func.func @permuted_embedding_bag(%weight: tensor<?x?xf32>, %indices: tensor<?xi64>, %offsets: tensor<?xi64>) -> tensor<?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %dim = tensor.dim %weight, %c1 : tensor<?x?xf32>
  %dim_0 = tensor.dim %offsets, %c0 : tensor<?xi64>
  %cst = arith.constant 0.000000e+00 : f32
  %0 = tensor.empty(%dim_0, %dim) : tensor<?x?xf32>
  %1 = linalg.fill ins(%cst : f32) outs(%0 : tensor<?x?xf32>) -> tensor<?x?xf32>
  %dim_2 = tensor.dim %indices, %c0 : tensor<?xi64>
  %2 = linalg.generic {indexing_maps = [#x, #o, #out], iterator_types = ["parallel", "parallel", "reduction"]} ins(%indices, %offsets : tensor<?xi64>, tensor<?xi64>) outs(%1 : tensor<?x?xf32>) {
  ^bb0(%in: i64, %in_3: i64, %out: f32):
    %3 = linalg.index 0 : index
    %4 = arith.index_cast %3 : index to i64
    %c1_i64 = arith.constant 1 : i64
    %5 = arith.addi %4, %c1_i64 : i64
    %6 = arith.index_cast %5 : i64 to index
    %7 = arith.index_cast %dim_0 : index to i64
    %8 = arith.cmpi eq, %7, %5 : i64
    %9 = arith.index_cast %dim_2 : index to i64
    %extracted = tensor.extract %offsets[%6] : tensor<?xi64>
    %10 = arith.select %8, %9, %extracted : i64
    %11 = linalg.index 2 : index
    %12 = arith.index_cast %11 : index to i64
    %13 = arith.cmpi sle, %in_3, %12 : i64
    %16 = arith.cmpi slt, %12, %10 : i64
    %17 = arith.andi %13, %16 : i1
    %18 = arith.index_cast %in : i64 to index
    %19 = linalg.index 1 : index
    %extracted_4 = tensor.extract %weight[%18, %19] : tensor<?x?xf32>
    %20 = arith.addf %extracted_4, %out : f32
    %21 = arith.select %17, %20, %out : f32
    linalg.yield %21 : f32
  } -> tensor<?x?xf32>
  return %2 : tensor<?x?xf32>
}

// -----

// The fused form over 8 of the table's 16 columns: a bag reads whole rows,
// so this is not one (left alone, not an invalid emb.bag).
#ids = affine_map<(d0, d1, d2) -> (d0, d1)>
#out = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func @fused_gather_part_of_the_row
// CHECK: linalg.generic
// CHECK-NOT: emb.bag
func.func @fused_gather_part_of_the_row(%w: tensor<100x16xf32>, %x: tensor<4x3xi64>) -> tensor<4x8xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %s = linalg.generic {indexing_maps = [#ids, #out], iterator_types = ["parallel", "reduction", "parallel"]} ins(%x : tensor<4x3xi64>) outs(%z : tensor<4x8xf32>) {
  ^bb0(%in: i64, %acc: f32):
    %i = arith.index_cast %in : i64 to index
    %d = linalg.index 2 : index
    %v = tensor.extract %w[%i, %d] : tensor<100x16xf32>
    %a = arith.addf %v, %acc : f32
    linalg.yield %a : f32
  } -> tensor<4x8xf32>
  return %s : tensor<4x8xf32>
}

// -----

// torch-mlir's embedding_bag generic over 8 of the table's 16 columns: left
// alone too.
#x = affine_map<(d0, d1, d2) -> (d1)>
#o = affine_map<(d0, d1, d2) -> (d0)>
#out = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func @bag_part_of_the_row
// CHECK: linalg.generic
// CHECK-NOT: emb.bag
func.func @bag_part_of_the_row(%weight: tensor<100x16xf32>, %indices: tensor<6xi64>, %offsets: tensor<2xi64>) -> tensor<2x8xf32> {
  %c2 = arith.constant 2 : i64
  %c6 = arith.constant 6 : i64
  %c0 = arith.constant 0 : index
  %cst = arith.constant 0.000000e+00 : f32
  %0 = tensor.empty() : tensor<2x8xf32>
  %1 = linalg.fill ins(%cst : f32) outs(%0 : tensor<2x8xf32>) -> tensor<2x8xf32>
  %2 = linalg.generic {indexing_maps = [#x, #o, #out], iterator_types = ["parallel", "reduction", "parallel"]} ins(%indices, %offsets : tensor<6xi64>, tensor<2xi64>) outs(%1 : tensor<2x8xf32>) {
  ^bb0(%in: i64, %off: i64, %out: f32):
    %3 = linalg.index 0 : index
    %4 = arith.index_cast %3 : index to i64
    %c1_i64 = arith.constant 1 : i64
    %5 = arith.addi %4, %c1_i64 : i64
    %6 = arith.index_cast %5 : i64 to index
    %7 = arith.cmpi eq, %5, %c2 : i64
    %8 = arith.select %7, %c0, %6 : index
    %extracted = tensor.extract %offsets[%8] : tensor<2xi64>
    %9 = arith.select %7, %c6, %extracted : i64
    %10 = linalg.index 1 : index
    %11 = arith.index_cast %10 : index to i64
    %12 = arith.cmpi sle, %off, %11 : i64
    %15 = arith.cmpi slt, %11, %9 : i64
    %16 = arith.andi %12, %15 : i1
    %17 = arith.index_cast %in : i64 to index
    %18 = linalg.index 2 : index
    %extracted_2 = tensor.extract %weight[%17, %18] : tensor<100x16xf32>
    %19 = arith.addf %extracted_2, %out : f32
    %20 = arith.select %16, %19, %out : f32
    linalg.yield %20 : f32
  } -> tensor<2x8xf32>
  return %2 : tensor<2x8xf32>
}
