// The many-table bag (docs/semantics.md §6.3) lowers as one emb.bag per
// table over its slice of the offsets (include_last_offset: the next
// table's first offset closes its last bag), each written into its columns
// of the output: one function for every table.
// RUN: emb-opt %s -convert-emb-to-scf | FileCheck %s
// RUN: emb-opt %s -emb-cpu-pipeline | FileCheck %s --check-prefix=LLVM

// CHECK-LABEL: func @multi_bag
// CHECK-SAME: (%[[T0:.*]]: tensor<100x16xf32>, %[[T1:.*]]: tensor<?x8xf32>, %[[X:.*]]: tensor<?xi64>, %[[O:.*]]: tensor<?xi32>, %[[A:.*]]: index, %[[N:.*]]: index)
// CHECK: %[[DIM:.*]] = tensor.dim %[[O]]
// CHECK: %[[M:.*]] = arith.subi %[[DIM]]
// CHECK: %[[B:.*]] = arith.divui %[[M]], %c2
// CHECK: %[[N1:.*]] = arith.addi %[[N]], %c1
// CHECK: %[[OUT:.*]] = tensor.empty(%[[N]]) : tensor<?x24xf32>
// CHECK: %[[S0:.*]] = arith.addi %{{.*}}, %[[A]]
// CHECK: %[[O0:.*]] = tensor.extract_slice %[[O]][%[[S0]]] [%[[N1]]] [1]
// CHECK: %[[R0:.*]] = scf.for
// CHECK: %[[OUT0:.*]] = tensor.insert_slice %[[R0]] into %[[OUT]][0, 0] [%[[N]], 16] [1, 1]
// CHECK: %[[O1:.*]] = tensor.extract_slice %[[O]]
// CHECK: %[[R1:.*]] = scf.for
// CHECK: tensor.insert_slice %[[R1]] into %[[OUT0]][0, 16] [%[[N]], 8] [1, 1]
// LLVM-LABEL: llvm.func @multi_bag
func.func @multi_bag(%t0: tensor<100x16xf32>, %t1: tensor<?x8xf32>, %x: tensor<?xi64>, %o: tensor<?xi32>,
                     %a: index, %n: index) -> tensor<?x24xf32> {
  %0 = emb.multi_bag %t0, %t1[%x] offsets(%o : tensor<?xi32>) bags(%a, %n)
      {modes = [#emb.mode<sum>, #emb.mode<max>], padding_idx = array<i64: -1, 3>}
      : (tensor<100x16xf32>, tensor<?x8xf32>)[tensor<?xi64>] -> tensor<?x24xf32>
  return %0 : tensor<?x24xf32>
}

// A sequence table (mode none, L = 3) looks up its n * 3 entries from its
// first offset as one-entry bags (2-D indices, so a padding entry gives a
// zero row and psw scale the rows) and lays them out as n x (3 * 8) columns.
// CHECK-LABEL: func @sequence_table
// CHECK-SAME: (%[[T0:.*]]: tensor<100x16xf32>, %[[T1:.*]]: tensor<50x8xf32>, %[[X:.*]]: tensor<?xi64>, %[[O:.*]]: tensor<?xi64>, %[[P:.*]]: tensor<?xf32>)
// CHECK: %[[FIRST:.*]] = tensor.extract %[[O]]
// CHECK: %[[LO:.*]] = arith.index_cast %[[FIRST]]
// CHECK: %[[N:.*]] = arith.muli %{{.*}}, %c3
// CHECK: %[[PS:.*]] = tensor.extract_slice %[[P]][%[[LO]]] [%[[N]]] [1]
// CHECK: tensor.expand_shape %[[PS]] {{\[\[}}0, 1]] output_shape [%[[N]], 1] : tensor<?xf32> into tensor<?x1xf32>
// CHECK: %[[XS:.*]] = tensor.extract_slice %[[X]][%[[LO]]] [%[[N]]] [1]
// CHECK: tensor.expand_shape %[[XS]] {{\[\[}}0, 1]] output_shape [%[[N]], 1] : tensor<?xi64> into tensor<?x1xi64>
// CHECK: %[[ROWS:.*]] = scf.for
// CHECK: %[[SPLIT:.*]] = tensor.expand_shape %[[ROWS]] {{\[\[}}0, 1], [2]] output_shape [%{{.*}}, 3, 8] : tensor<?x8xf32> into tensor<?x3x8xf32>
// CHECK: %[[COLS:.*]] = tensor.collapse_shape %[[SPLIT]] {{\[\[}}0], [1, 2]] : tensor<?x3x8xf32> into tensor<?x24xf32>
// CHECK: tensor.insert_slice %[[COLS]] into %{{.*}}[0, 16] [%{{.*}}, 24] [1, 1]
// LLVM-LABEL: llvm.func @sequence_table
func.func @sequence_table(%t0: tensor<100x16xf32>, %t1: tensor<50x8xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>,
                          %p: tensor<?xf32>) -> tensor<?x40xf32> {
  %0 = emb.multi_bag %t0, %t1[%x] offsets(%o : tensor<?xi64>) per_sample_weights(%p : tensor<?xf32>)
      {modes = [#emb.mode<mean>, #emb.mode<none>], padding_idx = array<i64: -1, 0>, sequence_lengths = array<i64: 0, 3>}
      : (tensor<100x16xf32>, tensor<50x8xf32>)[tensor<?xi64>] -> tensor<?x40xf32>
  return %0 : tensor<?x40xf32>
}
