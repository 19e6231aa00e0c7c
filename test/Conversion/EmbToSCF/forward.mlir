// convert-emb-to-scf, Forward.cpp: lookup, bag, renorm become scf loops over whole-row vectors.
// RUN: emb-opt %s -convert-emb-to-scf -split-input-file -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func @lookup_zero_padding
// CHECK-SAME: (%[[W:.*]]: tensor<?x16xf32>, %[[X:.*]]: tensor<4x8xi32>)
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[X]] {{\[\[}}0, 1]] : tensor<4x8xi32> into tensor<32xi32>
// CHECK: %[[V:.*]] = tensor.dim %[[W]], %{{.*}}
// CHECK: %[[PAD:.*]] = arith.addi %[[V]], %{{.*}}
// CHECK: %[[LOOP:.*]] = scf.for %[[I:.*]] = {{.*}} iter_args(%[[O:.*]] = %{{.*}}) -> (tensor<32x16xf32>)
// CHECK:   %[[RAW:.*]] = tensor.extract %[[FLAT]][%[[I]]]
// CHECK:   %[[R:.*]] = arith.index_cast %[[RAW]] : i32 to index
// CHECK:   %[[ISPAD:.*]] = arith.cmpi eq, %[[R]], %[[PAD]]
// CHECK:   %[[ROW:.*]] = vector.transfer_read %[[W]][%[[R]], %{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<?x16xf32>, vector<16xf32>
// CHECK:   %[[BITS:.*]] = arith.bitcast %[[ROW]] : vector<16xf32> to vector<16xi32>
// CHECK:   %[[SEL:.*]] = arith.select %[[ISPAD]], %{{.*}}, %[[BITS]] : vector<16xi32>
// CHECK:   %[[BACK:.*]] = arith.bitcast %[[SEL]] : vector<16xi32> to vector<16xf32>
// CHECK:   vector.transfer_write %[[BACK]], %[[O]][%[[I]], %{{.*}}] {in_bounds = [true]}
// CHECK: tensor.expand_shape %[[LOOP]] {{\[\[}}0, 1], [2]] output_shape [4, 8, 16]
// CHECK-NOT: emb.
func.func @lookup_zero_padding(%w: tensor<?x16xf32>, %x: tensor<4x8xi32>) -> tensor<4x8x16xf32> {
  %0 = emb.lookup %w[%x] {padding_idx = -1 : i64, padding_mode = #emb.padding_mode<zero>}
      : tensor<?x16xf32>[tensor<4x8xi32>] -> tensor<4x8x16xf32>
  return %0 : tensor<4x8x16xf32>
}

// -----

// The torch padding mode (keep) reads the padding row like any other.
// CHECK-LABEL: func @lookup_scalar_keep_padding
// CHECK: tensor.expand_shape %{{.*}} [] output_shape [1] : tensor<i64> into tensor<1xi64>
// CHECK-NOT: arith.select
// CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0, 1]] : tensor<1x3xbf16> into tensor<3xbf16>
func.func @lookup_scalar_keep_padding(%w: tensor<10x3xbf16>, %x: tensor<i64>) -> tensor<3xbf16> {
  %0 = emb.lookup %w[%x] {padding_idx = 2 : i64} : tensor<10x3xbf16>[tensor<i64>] -> tensor<3xbf16>
  return %0 : tensor<3xbf16>
}

// -----

// Sum with per-sample weights: one FMA of a whole row per index, f16 rows
// accumulated in f32 and rounded once on store.
// CHECK-LABEL: func @bag_sum_psw_f16
// CHECK: scf.for %[[B:.*]] = {{.*}} iter_args(%[[O:.*]] = %{{.*}}) -> (tensor<?x64xf16>)
// CHECK:   %[[ACC:.*]]:2 = scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[A:.*]] = %{{.*}}, %{{.*}} = %{{.*}}) -> (vector<64xf32>, index)
// CHECK:     %[[ROW:.*]] = vector.transfer_read {{.*}} : tensor<?x64xf16>, vector<64xf16>
// CHECK:     %[[EXT:.*]] = arith.extf %[[ROW]] : vector<64xf16> to vector<64xf32>
// CHECK:     %[[P:.*]] = tensor.extract %{{.*}}[%[[J]]] : tensor<?xf16>
// CHECK:     %[[PF:.*]] = arith.extf %[[P]] : f16 to f32
// CHECK:     %[[PV:.*]] = vector.broadcast %[[PF]] : f32 to vector<64xf32>
// CHECK:     vector.fma %[[EXT]], %[[PV]], %[[A]] : vector<64xf32>
// CHECK-NOT: vector.gather
// CHECK:   %[[TR:.*]] = arith.truncf %[[ACC]]#0 : vector<64xf32> to vector<64xf16>
// CHECK:   vector.transfer_write %[[TR]], %[[O]][%[[B]], %{{.*}}]
func.func @bag_sum_psw_f16(%w: tensor<?x64xf16>, %x: tensor<?xi64>, %off: tensor<?xi64>, %p: tensor<?xf16>) -> tensor<?x64xf16> {
  %0 = emb.bag sum %w[%x] offsets(%off : tensor<?xi64>) per_sample_weights(%p : tensor<?xf16>)
      : tensor<?x64xf16>[tensor<?xi64>] -> tensor<?x64xf16>
  return %0 : tensor<?x64xf16>
}

// -----

// Without include_last_offset the last bag ends at len(indices).
// CHECK-LABEL: func @bag_mean_padding
// CHECK: %[[N:.*]] = tensor.dim %{{.*}}, %{{.*}} : tensor<?xi64>
// CHECK: scf.for
// CHECK:   %[[HASNEXT:.*]] = arith.cmpi ult
// CHECK:   %[[END:.*]] = arith.select %[[HASNEXT]], %{{.*}}, %[[N]] : index
// CHECK:   scf.for %{{.*}} = %{{.*}} to %[[END]]
// CHECK:     %[[NOTPAD:.*]] = arith.cmpi ne, %{{.*}}, %{{.*}} : index
// CHECK:     scf.if %[[NOTPAD]] -> (vector<32xf32>, index)
// CHECK:   %[[N:.*]] = arith.uitofp
// CHECK:   %[[EMPTY:.*]] = arith.cmpf oeq, %[[N]], %{{.*}} : f32
// CHECK:   %[[Q:.*]] = arith.divf %{{.*}}, %{{.*}} : vector<32xf32>
// CHECK:   arith.select %[[EMPTY]], %{{.*}}, %[[Q]] : vector<32xf32>
func.func @bag_mean_padding(%w: tensor<100x32xf32>, %x: tensor<?xi64>, %off: tensor<?xi32>) -> tensor<?x32xf32> {
  %0 = emb.bag mean %w[%x] offsets(%off : tensor<?xi32>) {padding_idx = 0 : i64}
      : tensor<100x32xf32>[tensor<?xi64>] -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

// sqrtn with weights (docs/semantics.md §6.1): the squared weights are summed
// next to the row sum, and the bag is divided by their square root once; a
// zero divisor stores zeros.
// CHECK-LABEL: func @bag_sqrtn_weighted
// CHECK: %[[SUMS:.*]]:3 = scf.for {{.*}} -> (vector<32xf32>, index, f32) {
// CHECK:   %[[P:.*]] = tensor.extract %{{.*}}[%{{.*}}] : tensor<?xf32>
// CHECK:   vector.fma
// CHECK:   %[[SQ:.*]] = arith.mulf %[[P]], %[[P]] : f32
// CHECK:   %[[S:.*]] = arith.addf %{{.*}}, %[[SQ]] : f32
// CHECK:   scf.yield %{{.*}}, %{{.*}}, %[[S]]
// CHECK: %[[ROOT:.*]] = math.sqrt %[[SUMS]]#2 : f32
// CHECK: %[[ZERO:.*]] = arith.cmpf oeq, %[[ROOT]], %{{.*}} : f32
// CHECK: %[[DIV:.*]] = arith.select %[[ZERO]], %{{.*}}, %[[ROOT]] : f32
// CHECK: %[[DV:.*]] = vector.broadcast %[[DIV]] : f32 to vector<32xf32>
// CHECK: %[[Q:.*]] = arith.divf %[[SUMS]]#0, %[[DV]] : vector<32xf32>
// CHECK: arith.select %[[ZERO]], %{{.*}}, %[[Q]] : vector<32xf32>
func.func @bag_sqrtn_weighted(%w: tensor<100x32xf32>, %x: tensor<?xi64>, %off: tensor<?xi64>, %p: tensor<?xf32>) -> tensor<?x32xf32> {
  %0 = emb.bag sqrtn %w[%x] offsets(%off : tensor<?xi64>) per_sample_weights(%p : tensor<?xf32>)
      : tensor<100x32xf32>[tensor<?xi64>] -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

// The weighted mean divides by the summed weights; sqrtn without weights by
// the square root of the count of live entries.
// CHECK-LABEL: func @bag_weighted_mean_and_sqrtn
// CHECK: scf.for {{.*}} -> (vector<16xf32>, index, f32) {
// CHECK:   %[[P:.*]] = arith.extf %{{.*}} : bf16 to f32
// CHECK:   arith.addf %{{.*}}, %[[P]] : f32
// CHECK: arith.divf %{{.*}} : vector<16xf32>
// CHECK: scf.for {{.*}} -> (vector<16xf32>, index) {
// CHECK: %[[N:.*]] = arith.uitofp %{{.*}} : i64 to f32
// CHECK: math.sqrt %[[N]] : f32
func.func @bag_weighted_mean_and_sqrtn(%w: tensor<100x16xbf16>, %x: tensor<?x4xi32>, %p: tensor<?x4xbf16>)
    -> (tensor<?x16xbf16>, tensor<?x16xbf16>) {
  %0 = emb.bag mean %w[%x] per_sample_weights(%p : tensor<?x4xbf16>)
      : tensor<100x16xbf16>[tensor<?x4xi32>] -> tensor<?x16xbf16>
  %1 = emb.bag sqrtn %w[%x] : tensor<100x16xbf16>[tensor<?x4xi32>] -> tensor<?x16xbf16>
  return %0, %1 : tensor<?x16xbf16>, tensor<?x16xbf16>
}

// -----

// Max: the first entry of a bag is taken as it is (a scalar branch), later
// ones lane by lane when strictly greater (ties to the first). The argmax
// lanes hold i32 positions in the bag, -1 while nothing is taken; after the
// loop the rows taken are gathered from the indices. A bag longer than
// 2^31 - 1 entries is taken in segments of that many (the else branch;
// test/Pipelines/max_segments.mlir runs it).
// CHECK-LABEL: func @bag_max_2d
// CHECK: scf.for %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (tensor<?x8xf64>, tensor<?x8xi64>)
// CHECK:   %[[START:.*]] = arith.muli
// CHECK:   %[[END:.*]] = arith.addi %[[START]]
// CHECK:   %[[SEG:.*]] = arith.constant 2147483647 : index
// CHECK:   %[[NONE:.*]] = arith.constant dense<-1> : vector<8xi64>
// CHECK:   %[[LEN:.*]] = arith.subi %[[END]], %[[START]]
// CHECK:   %[[FITS:.*]] = arith.cmpi sle, %[[LEN]], %[[SEG]]
// CHECK:   scf.if %[[FITS]] -> (vector<8xf64>, index, vector<8xi64>)
// CHECK:     %[[NEG:.*]] = arith.constant dense<-1> : vector<8xi32>
// CHECK:     %[[POSS:.*]]:3 = scf.for %[[J:.*]] = %[[START]] to %[[END]] {{.*}} iter_args(%[[A:.*]] = %{{.*}}, %[[C:.*]] = %{{.*}}, %[[ARG:.*]] = %[[NEG]])
// CHECK:       %[[REL:.*]] = arith.subi %[[J]], %[[START]] : index
// CHECK:       %[[POS:.*]] = arith.index_cast %[[REL]] : index to i32
// CHECK:       %[[FIRST:.*]] = arith.cmpi eq, %[[C]], %{{.*}} : index
// CHECK:       %[[RV:.*]] = vector.broadcast %[[POS]] : i32 to vector<8xi32>
// CHECK:       scf.if %[[FIRST]] -> (vector<8xf64>, vector<8xi32>)
// CHECK:         scf.yield %{{.*}}, %[[RV]]
// CHECK:       } else {
// CHECK:         %[[GT:.*]] = arith.cmpf ogt, %{{.*}}, %[[A]] : vector<8xf64>
// CHECK:         arith.select %[[GT]], %{{.*}}, %[[A]]
// CHECK:         arith.select %[[GT]], %[[RV]], %[[ARG]]
// CHECK:     %[[TAKEN:.*]] = arith.cmpi sge, %[[POSS]]#2, %{{.*}} : vector<8xi32>
// CHECK:     %[[G:.*]] = vector.gather %{{.*}}[%[[START]]] [%[[POSS]]#2], %[[TAKEN]], %{{.*}} : tensor<?xi64>, vector<8xi32>, vector<8xi1>, vector<8xi64> into vector<8xi64>
// CHECK:     arith.select %[[TAKEN]], %[[G]], %[[NONE]] : vector<8xi1>, vector<8xi64>
// CHECK:   } else {
// CHECK:     scf.for %{{.*}} = %[[START]] to %[[END]] step %[[SEG]]
// CHECK:       vector.gather
// CHECK:   vector.transfer_write {{.*}} : vector<8xf64>, tensor<?x8xf64>
// CHECK:   vector.transfer_write {{.*}} : vector<8xi64>, tensor<?x8xi64>
func.func @bag_max_2d(%w: tensor<?x8xf64>, %x: tensor<?x5xi64>) -> (tensor<?x8xf64>, tensor<?x8xi64>) {
  %0, %1 = emb.bag max %w[%x] : tensor<?x8xf64>[tensor<?x5xi64>] -> tensor<?x8xf64>, tensor<?x8xi64>
  return %0, %1 : tensor<?x8xf64>, tensor<?x8xi64>
}

// -----

// A D wider than one accumulator block (512 f32 lanes) is processed in
// blocks, rerunning the index loop for each.
// CHECK-LABEL: func @bag_sum_wide
// CHECK: scf.for
// CHECK: scf.for {{.*}} -> (vector<512xf32>, index)
// CHECK: scf.for {{.*}} -> (vector<488xf32>, index)
func.func @bag_sum_wide(%w: tensor<?x1000xf32>, %x: tensor<?xi64>, %off: tensor<?xi64>) -> tensor<?x1000xf32> {
  %0 = emb.bag sum %w[%x] offsets(%off : tensor<?xi64>) {include_last_offset}
      : tensor<?x1000xf32>[tensor<?xi64>] -> tensor<?x1000xf32>
  return %0 : tensor<?x1000xf32>
}

// -----

// Renorm updates the weight in place (it is the loop's iteration tensor);
// a V-byte scratch, zeroed first, marks the rows already visited so that a
// repeated row is rescaled once.
// CHECK-LABEL: func @renorm_inf
// CHECK-SAME: (%[[W:.*]]: tensor<10x4xf32>
// CHECK: %[[MARKS0:.*]] = tensor.empty(%{{.*}}) : tensor<?xi8>
// CHECK: %[[MARKS:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[MARKS0]]) -> (tensor<?xi8>)
// CHECK: scf.for {{.*}} iter_args(%[[T:.*]] = %[[W]], %[[SEEN:.*]] = %[[MARKS]]) -> (tensor<10x4xf32>, tensor<?xi8>)
// CHECK:   %[[MARK:.*]] = tensor.extract %[[SEEN]]
// CHECK:   %[[FIRST:.*]] = arith.cmpi eq, %[[MARK]]
// CHECK:   tensor.insert %{{.*}} into %[[SEEN]]
// CHECK:   arith.extf {{.*}} : vector<4xf32> to vector<4xf64>
// CHECK:   math.absf
// CHECK:   vector.reduction <maximumf>
// CHECK:   %[[OVER:.*]] = arith.cmpf ogt
// CHECK:   %[[TOO:.*]] = arith.andi %[[OVER]], %[[FIRST]]
// CHECK:   scf.if %[[TOO]] -> (tensor<10x4xf32>)
// CHECK:     arith.mulf {{.*}} : vector<4xf32>
// CHECK:     vector.transfer_write {{.*}}, %[[T]]
func.func @renorm_inf(%w: tensor<10x4xf32>, %x: tensor<?xi64>) -> tensor<10x4xf32> {
  %0 = emb.renorm %w[%x] {max_norm = 1.0 : f64, norm_type = 0x7FF0000000000000 : f64}
      : tensor<10x4xf32>[tensor<?xi64>] -> tensor<10x4xf32>
  return %0 : tensor<10x4xf32>
}

// -----

// CHECK-LABEL: func @renorm_p2
// CHECK: arith.mulf {{.*}} : vector<4xf64>
// CHECK: vector.reduction <add>
// CHECK: math.sqrt
func.func @renorm_p2(%w: tensor<10x4xf32>, %x: tensor<?xi64>) -> tensor<10x4xf32> {
  %0 = emb.renorm %w[%x] {max_norm = 1.0 : f64} : tensor<10x4xf32>[tensor<?xi64>] -> tensor<10x4xf32>
  return %0 : tensor<10x4xf32>
}

// -----

func.func @dynamic_dim(%w: tensor<10x?xf32>, %x: tensor<3xi64>) -> tensor<3x?xf32> {
  // expected-error @+1 {{'emb.lookup' op CPU lowering needs a static embedding_dim}}
  %0 = emb.lookup %w[%x] : tensor<10x?xf32>[tensor<3xi64>] -> tensor<3x?xf32>
  return %0 : tensor<3x?xf32>
}

// -----

// Without the max_indices result no argmax is tracked.
// CHECK-LABEL: func @bag_max_values_only
// CHECK-NOT: xi64>
// CHECK: return
func.func @bag_max_values_only(%w: tensor<?x8xf32>, %x: tensor<?x5xi32>) -> tensor<?x8xf32> {
  %0 = emb.bag max %w[%x] : tensor<?x8xf32>[tensor<?x5xi32>] -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}

// -----

// A quantised int8 table (docs/semantics.md §6.2): per entry, the row's
// scale and bias (two f32 after its D bytes) and its bytes, widened and
// scaled by one fma, feed the accumulator as a float row would.
// CHECK-LABEL: func @bag_int8
// CHECK: scf.for {{.*}} -> (vector<32xf32>, index) {
// CHECK:   %[[TAIL:.*]] = vector.transfer_read %{{.*}}[%[[R:.*]], %c32{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<100x40xi8>, vector<8xi8>
// CHECK:   %[[SB:.*]] = vector.bitcast %[[TAIL]] : vector<8xi8> to vector<2xf32>
// CHECK:   %[[Q:.*]] = vector.transfer_read %{{.*}}[%[[R]], %c0{{.*}}], %{{.*}} {in_bounds = [true]} : tensor<100x40xi8>, vector<32xi8>
// CHECK:   %[[QF:.*]] = arith.uitofp %[[Q]] : vector<32xi8> to vector<32xf32>
// CHECK:   %[[V:.*]] = vector.fma %[[QF]], %{{.*}}, %{{.*}} : vector<32xf32>
// CHECK:   arith.addf %{{.*}}, %[[V]] : vector<32xf32>
func.func @bag_int8(%w: tensor<100x40xi8>, %x: tensor<?xi64>, %off: tensor<?xi64>) -> tensor<?x32xf32> {
  %0 = emb.bag sum %w[%x] offsets(%off : tensor<?xi64>) {quantized = #emb.quantized<int8>}
      : tensor<100x40xi8>[tensor<?xi64>] -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

// int4, odd D = 15: the scale and bias are f16 after the ceil(15/2) = 8
// bytes; element 2k is the low nibble of byte k, 2k+1 the high one (the
// last high nibble is unused).
// CHECK-LABEL: func @bag_int4_odd
// CHECK:   %[[TAIL:.*]] = vector.transfer_read %{{.*}}[%{{.*}}, %c8{{.*}}], %{{.*}} : tensor<100x12xi8>, vector<4xi8>
// CHECK:   vector.bitcast %[[TAIL]] : vector<4xi8> to vector<2xf16>
// CHECK:   %[[B:.*]] = vector.transfer_read %{{.*}}[%{{.*}}, %c0{{.*}}], %{{.*}} : tensor<100x12xi8>, vector<8xi8>
// CHECK:   %[[LO:.*]] = arith.andi %[[B]], %{{.*}} : vector<8xi8>
// CHECK:   %[[HI:.*]] = arith.shrui %[[B]], %{{.*}} : vector<8xi8>
// CHECK:   %[[E:.*]] = vector.shuffle %[[LO]], %[[HI]] [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7] : vector<8xi8>, vector<8xi8>
// CHECK:   arith.uitofp %[[E]] : vector<15xi8> to vector<15xf32>
func.func @bag_int4_odd(%w: tensor<100x12xi8>, %x: tensor<?x3xi32>) -> tensor<?x15xf16> {
  %0 = emb.bag max %w[%x] {quantized = #emb.quantized<int4>}
      : tensor<100x12xi8>[tensor<?x3xi32>] -> tensor<?x15xf16>
  return %0 : tensor<?x15xf16>
}
