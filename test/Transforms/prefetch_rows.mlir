// emb-prefetch-rows: a row read of a gather loop gets a prefetch of the row
// `distance` indices ahead, one per cache line of the read columns.
// RUN: emb-opt %s -emb-prefetch-rows=distance=8 -split-input-file | FileCheck %s

// CHECK-LABEL: func @gather_loop
// CHECK-SAME: (%[[W:.*]]: memref<?x32xf32>, %[[IDX:.*]]: memref<?xi64>
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:   %[[N:.*]] = memref.dim %[[IDX]], %{{.*}}
// CHECK:   %[[LAST:.*]] = arith.subi %[[N]], %{{.*}}
// CHECK:   %[[AHEAD:.*]] = arith.addi %[[J]], %{{.*}}
// CHECK:   %[[NEXT:.*]] = arith.minsi %[[AHEAD]], %[[LAST]]
// CHECK:   %[[RAW:.*]] = memref.load %[[IDX]][%[[NEXT]]]
// CHECK:   %[[ROW:.*]] = arith.index_cast %[[RAW]] : i64 to index
// CHECK:   memref.prefetch %[[W]][%[[ROW]], %{{.*}}], read, locality<3>, data
// CHECK:   memref.prefetch %[[W]][%[[ROW]], %{{.*}}], read, locality<3>, data
// CHECK-NOT: memref.prefetch
// CHECK:   vector.transfer_read %[[W]]
func.func @gather_loop(%w: memref<?x32xf32>, %idx: memref<?xi64>, %lo: index, %hi: index) -> vector<32xf32> {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %pad = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<32xf32>
  %r = scf.for %j = %lo to %hi step %c1 iter_args(%acc = %zero) -> vector<32xf32> {
    %x = memref.load %idx[%j] : memref<?xi64>
    %row = arith.index_cast %x : i64 to index
    %v = vector.transfer_read %w[%row, %c0], %pad {in_bounds = [true]} : memref<?x32xf32>, vector<32xf32>
    %s = arith.addf %acc, %v : vector<32xf32>
    scf.yield %s : vector<32xf32>
  }
  return %r : vector<32xf32>
}

// -----

// A read whose row does not come from the index buffer at the induction
// variable is left alone.
// CHECK-LABEL: func @not_a_gather
// CHECK-NOT: memref.prefetch
func.func @not_a_gather(%w: memref<?x32xf32>, %lo: index, %hi: index) -> vector<32xf32> {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %pad = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<32xf32>
  %r = scf.for %j = %lo to %hi step %c1 iter_args(%acc = %zero) -> vector<32xf32> {
    %v = vector.transfer_read %w[%j, %c0], %pad {in_bounds = [true]} : memref<?x32xf32>, vector<32xf32>
    %s = arith.addf %acc, %v : vector<32xf32>
    scf.yield %s : vector<32xf32>
  }
  return %r : vector<32xf32>
}
