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
