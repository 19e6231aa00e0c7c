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

// -----

// A long row's D-block loop around the gather loop: the column is the block
// loop's induction variable, known before the gather loop, so the prefetch
// goes at it and at it + each line (32 f32 lanes: two lines).
// CHECK-LABEL: func @block_loop_column
// CHECK-SAME: (%[[W:.*]]: memref<?x4096xf32>
// CHECK: scf.for %[[D0:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:   scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:     %[[ROW:.*]] = arith.index_cast
// CHECK:     memref.prefetch %[[W]][%[[ROW]], %[[D0]]], read
// CHECK:     %[[C16:.*]] = arith.constant 16 : index
// CHECK:     %[[COL:.*]] = arith.addi %[[D0]], %[[C16]]
// CHECK:     memref.prefetch %[[W]][%[[ROW]], %[[COL]]], read
// CHECK-NOT: memref.prefetch
// CHECK:     vector.transfer_read %[[W]]
func.func @block_loop_column(%w: memref<?x4096xf32>, %idx: memref<?xi64>, %lo: index, %hi: index, %out: memref<4096xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  %c4096 = arith.constant 4096 : index
  %pad = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<32xf32>
  scf.for %d0 = %c0 to %c4096 step %c32 {
    %r = scf.for %j = %lo to %hi step %c1 iter_args(%acc = %zero) -> vector<32xf32> {
      %x = memref.load %idx[%j] : memref<?xi64>
      %row = arith.index_cast %x : i64 to index
      %v = vector.transfer_read %w[%row, %d0], %pad {in_bounds = [true]} : memref<?x4096xf32>, vector<32xf32>
      %s = arith.addf %acc, %v : vector<32xf32>
      scf.yield %s : vector<32xf32>
    }
    vector.transfer_write %r, %out[%d0] {in_bounds = [true]} : vector<32xf32>, memref<4096xf32>
  }
  return
}

// -----

// A column computed inside the gather loop is not known ahead: no prefetch.
// CHECK-LABEL: func @column_varies_in_the_loop
// CHECK-NOT: memref.prefetch
func.func @column_varies_in_the_loop(%w: memref<?x4096xf32>, %idx: memref<?xi64>, %lo: index, %hi: index) -> vector<32xf32> {
  %c1 = arith.constant 1 : index
  %pad = arith.constant 0.0 : f32
  %zero = arith.constant dense<0.0> : vector<32xf32>
  %r = scf.for %j = %lo to %hi step %c1 iter_args(%acc = %zero) -> vector<32xf32> {
    %x = memref.load %idx[%j] : memref<?xi64>
    %row = arith.index_cast %x : i64 to index
    %v = vector.transfer_read %w[%row, %j], %pad {in_bounds = [true]} : memref<?x4096xf32>, vector<32xf32>
    %s = arith.addf %acc, %v : vector<32xf32>
    scf.yield %s : vector<32xf32>
  }
  return %r : vector<32xf32>
}

// -----

// A long row's D-block loop inside the gather loop (a lookup, renorm): the
// columns are the inner loop's induction variable (plus a constant), so
// one loop of prefetches covers every column the block loops read, [0,
// 4096) here, and a static read inside that range needs none of its own.
// CHECK-LABEL: func @block_loop_inside
// CHECK-SAME: (%[[W:[a-z0-9_]+]]: memref<?x4096xf32>
// CHECK: scf.for %[[J:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK:   %[[ROW:[a-z0-9_]+]] = arith.index_cast
// CHECK:   %[[C0:[a-z0-9_]+]] = arith.constant 0 : index
// CHECK:   %[[C4096:[a-z0-9_]+]] = arith.constant 4096 : index
// CHECK:   %[[C16:[a-z0-9_]+]] = arith.constant 16 : index
// CHECK:   scf.for %[[COL:[a-z0-9_]+]] = %[[C0]] to %[[C4096]] step %[[C16]] {
// CHECK:     memref.prefetch %[[W]][%[[ROW]], %[[COL]]], read
// CHECK:   }
// CHECK-NOT: memref.prefetch
// CHECK: return
func.func @block_loop_inside(%w: memref<?x4096xf32>, %idx: memref<?xi64>, %lo: index, %hi: index, %out: memref<?x4096xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c32 = arith.constant 32 : index
  %c4096 = arith.constant 4096 : index
  %pad = arith.constant 0.0 : f32
  scf.for %j = %lo to %hi step %c1 {
    %x = memref.load %idx[%j] : memref<?xi64>
    %row = arith.index_cast %x : i64 to index
    %first = vector.transfer_read %w[%row, %c0], %pad {in_bounds = [true]} : memref<?x4096xf32>, vector<32xf32>
    vector.transfer_write %first, %out[%j, %c0] {in_bounds = [true]} : vector<32xf32>, memref<?x4096xf32>
    scf.for %d0 = %c0 to %c4096 step %c64 {
      %a = vector.transfer_read %w[%row, %d0], %pad {in_bounds = [true]} : memref<?x4096xf32>, vector<32xf32>
      %d1 = arith.addi %d0, %c32 : index
      %b = vector.transfer_read %w[%row, %d1], %pad {in_bounds = [true]} : memref<?x4096xf32>, vector<32xf32>
      %s = arith.addf %a, %b : vector<32xf32>
      vector.transfer_write %s, %out[%j, %d0] {in_bounds = [true]} : vector<32xf32>, memref<?x4096xf32>
    }
  }
  return
}

// -----

// A quantised int8 row (D = 128 bytes, then 8 bytes of scale and bias) is
// read at two columns; both prefetches look ahead by the whole row's 136
// bytes: 2048 / 136 = 15 rows (bytes-ahead=2048), not 2048 / 8 (the tail
// alone, clamped to 64) for the tail's.
// RUN: emb-opt %s -emb-prefetch-rows="distance=4 bytes-ahead=2048" -split-input-file | FileCheck %s --check-prefix=PACKED
// PACKED-LABEL: func @quantized_row
// PACKED-DAG: %[[C15:.*]] = arith.constant 15 : index
// PACKED-DAG: %[[C15B:.*]] = arith.constant 15 : index
// PACKED-NOT: arith.constant 64 : index
// PACKED: vector.transfer_read
func.func @quantized_row(%w: memref<?x136xi8>, %idx: memref<?xi64>, %lo: index, %hi: index) -> vector<8xi8> {
  %c1 = arith.constant 1 : index
  %c0 = arith.constant 0 : index
  %c128 = arith.constant 128 : index
  %pad = arith.constant 0 : i8
  %zero = arith.constant dense<0> : vector<8xi8>
  %r = scf.for %j = %lo to %hi step %c1 iter_args(%acc = %zero) -> vector<8xi8> {
    %x = memref.load %idx[%j] : memref<?xi64>
    %row = arith.index_cast %x : i64 to index
    %tail = vector.transfer_read %w[%row, %c128], %pad {in_bounds = [true]} : memref<?x136xi8>, vector<8xi8>
    %q = vector.transfer_read %w[%row, %c0], %pad {in_bounds = [true]} : memref<?x136xi8>, vector<128xi8>
    %part = vector.extract_strided_slice %q {offsets = [0], sizes = [8], strides = [1]} : vector<128xi8> to vector<8xi8>
    %s = arith.addi %acc, %tail : vector<8xi8>
    %t = arith.addi %s, %part : vector<8xi8>
    scf.yield %t : vector<8xi8>
  }
  return %r : vector<8xi8>
}
