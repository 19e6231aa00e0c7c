//===- OpStructure.h - what every lowering reads off an emb op --*- C++ -*-===//
//
// The rules of docs/semantics.md that both targets implement, written once
// over tensors (the CPU lowering) and memrefs (the GPU lowering): reads of
// index and per-sample-weight operands, the padding row, the bag structure
// (offsets or 2-D, include_last_offset) and the incoming gradient as rows.
// Private to lib/Conversion.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBCOMMON_OPSTRUCTURE_H
#define EMB_LIB_CONVERSION_EMBCOMMON_OPSTRUCTURE_H

#include "emb/Dialect/EmbDialect.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <optional>
#include <utility>

namespace mlir::emb::lowering {

/// Size `i` of a ranked tensor (tensor.dim) or memref (memref.dim).
Value dimOf(ImplicitLocOpBuilder &b, Value shaped, int64_t i);

/// Element `pos` of a 1-D i32 / i64 tensor or buffer, as an index
/// (sign-extended). Buffer loads state their natural alignment: without it
/// LLVM's NVPTX backend splits them into 4-byte pieces.
Value loadIndex(ImplicitLocOpBuilder &b, Value shaped, Value pos);

/// Element `pos` of a 1-D float tensor or buffer, extended to `to`: a
/// per_sample_weight in the accumulator type.
Value loadFloat(ImplicitLocOpBuilder &b, Value shaped, Value pos, Type to);

/// The padding row of a forward op as an index (a negative padding_idx
/// counts from V: a constant when the table's V is static, else
/// `dim(table, 0) + padding_idx`), or null without padding.
Value paddingRow(ImplicitLocOpBuilder &b, std::optional<int64_t> paddingIdx,
                 Value table);

/// The bags of a many-table op (emb.multi_bag) its lowering pools: B, the
/// bags per table of its table-major offsets (T * B + 1 entries, a tensor
/// or a buffer), and its window [first, first + count) of them (all B
/// without bags()).
struct TableBags {
  Value perTable, first, count;
};
TableBags tableBags(ImplicitLocOpBuilder &b, MultiBagOp op, Value offsets);

/// B of table-major offsets (T * B + 1 entries) of `numTables` tables.
Value bagsPerTable(ImplicitLocOpBuilder &b, Value offsets, int64_t numTables);

/// The padding row of a gradient op, whose V is an attribute, or null.
Value staticPaddingRow(ImplicitLocOpBuilder &b, std::optional<int64_t> p,
                       int64_t numEmbeddings);

/// The bag structure of a bag op: 1-D indices with offsets (with or
/// without include_last_offset) or 2-D indices [B, L]. Every value may be
/// a tensor or a buffer.
struct BagStructure {
  Value indices; // the flat indices [N]
  Value offsets, numIndices, numBags, bagLen, numOffsets;
  bool twoD = false, includeLast = false;

  /// `indices2D` is the [B, L] index operand of a 2-D bag, null for 1-D
  /// indices with `offsets`.
  BagStructure(ImplicitLocOpBuilder &b, Value flat, Value indices2D,
               Value offsets, bool includeLastOffset);

  /// [start, end) of bag `bag` in the flat indices. Without
  /// include_last_offset the last bag ends at len(indices): read a valid
  /// offset anyway and select, to keep the loop free of branches.
  std::pair<Value, Value> bounds(ImplicitLocOpBuilder &b, Value bag) const;
};

/// The index operand of a bag op if it is 2-D (for BagStructure), else null.
inline Value indices2D(Value indices) {
  return cast<ShapedType>(indices.getType()).getRank() == 2 ? indices : Value();
}

/// The bag combiners that divide their (weighted) sum by a denominator:
/// PyTorch's mean and docs/semantics.md §6.1's sqrtn and weighted mean.
/// Every lowering, forward and gradient, takes the denominator from here.
inline bool dividesBag(BagMode mode) {
  return mode == BagMode::mean || mode == BagMode::sqrtn;
}

/// Whether a bag of `mode` with (`weighted`) or without per_sample_weights
/// needs the sum of its live entries' weight terms (weightSumTerm), not
/// only their count, for its denominator.
inline bool needsWeightSum(BagMode mode, bool weighted) {
  return weighted && dividesBag(mode);
}

/// What one live entry of weight `w` adds to its bag's weight sum: `w` for
/// mean, `w * w` for sqrtn.
Value weightSumTerm(ImplicitLocOpBuilder &b, BagMode mode, Value w);

/// The denominator of a mean or sqrtn bag (a scalar `accElement`) from its
/// count of live entries `count` (an index) or, when needsWeightSum, its
/// weight sum: the count or the sum for mean, their square root for sqrtn.
Value bagDenominator(ImplicitLocOpBuilder &b, BagMode mode, Value count,
                     Value weightSum, Type accElement);

/// `acc` (a vector or scalar) divided by the scalar `denominator`; a zero
/// denominator gives zero (an empty bag, or weights that sum to 0).
Value divideByDenominator(ImplicitLocOpBuilder &b, Value acc,
                          Value denominator);

/// The factor each entry of a mean or sqrtn bag contributes to the weight
/// gradient with (times its psw): 1 / denominator, 0 where it is 0. A pass
/// over the bag's entries [start, end) of `indices` (and `psw`, or null)
/// counts the live ones. Tensors or buffers.
Value bagGradientFactor(ImplicitLocOpBuilder &b, BagMode mode, Value indices,
                        Value psw, Value start, Value end, Value pad,
                        Type accElement);

/// Row-wise quantised tables (docs/semantics.md §6.2), the part both
/// targets share: where the bytes of a row are, and their arithmetic. Each
/// target loads the bytes its own way (a transfer_read of a tensor, a
/// vector.load of a buffer).
///
/// The offset of the row's tail (scale, bias) in bytes: D for int8, ceil(D /
/// 2) for int4; and its size: two f32 (8 bytes) or two f16 (4 bytes).
inline int64_t quantizedTailOffset(Quantization q, int64_t dim) {
  return q == Quantization::int8 ? dim : (dim + 1) / 2;
}
inline int64_t quantizedTailBytes(Quantization q) {
  return q == Quantization::int8 ? 8 : 4;
}
/// The bytes that hold `lanes` elements (from an even element for int4).
inline int64_t quantizedBytesOf(Quantization q, int64_t lanes) {
  return q == Quantization::int8 ? lanes : (lanes + 1) / 2;
}
/// The byte of element `d0` (even for int4): d0, or d0 / 2.
Value quantizedByteOffset(ImplicitLocOpBuilder &b, Quantization q, Value d0);

/// (scale, bias) as f32 from the row's tail bytes (vector<8xi8> for int8,
/// vector<4xi8> for int4).
std::pair<Value, Value> quantizedScaleBias(ImplicitLocOpBuilder &b,
                                           Quantization q, Value tail);

/// The f32 values of `lanes` elements (vector<lanes x f32>) from their
/// bytes (vector<quantizedBytesOf(lanes) x i8>): q * scale + bias, q the
/// unsigned byte (int8) or nibble (int4: low nibble first).
Value dequantize(ImplicitLocOpBuilder &b, Quantization q, Value bytes,
                 int64_t lanes, Value scale, Value bias);

/// The incoming gradient `grad` ([..., D]) as a [N, D] tensor; `rowsHint`
/// is N when the caller knows it statically and `grad`'s shape does not.
Value gradientAsRows(ImplicitLocOpBuilder &b, Value grad,
                     int64_t rowsHint = ShapedType::kDynamic);

/// The p-norm of emb.renorm as torch.norm defines it, in the parts both
/// targets assemble (in f64): root(combine over the row of term(x)), where
/// combine is max (p = inf), min (p = -inf) or a sum.
/// The term of one element, or of each lane of a vector: |x| for p = +-inf
/// and 1, (x != 0) for p = 0, x * x for 2, |x|^p otherwise.
Value normTerm(ImplicitLocOpBuilder &b, Value x, double p);
/// Combines two (scalar) partial results of the terms.
Value normCombine(ImplicitLocOpBuilder &b, Value acc, Value term, double p);
/// The identity of normCombine (+inf for the min, else 0), as an f64.
Value normIdentity(ImplicitLocOpBuilder &b, double p);
/// The norm from the combined terms: sqrt for p = 2, ^(1/p) unless p is
/// 0, 1 or infinite.
Value normRoot(ImplicitLocOpBuilder &b, Value combined, double p);

} // namespace mlir::emb::lowering

#endif // EMB_LIB_CONVERSION_EMBCOMMON_OPSTRUCTURE_H
