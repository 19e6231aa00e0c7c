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

/// The incoming gradient `grad` ([..., D]) as a [N, D] tensor; `rowsHint`
/// is N when the caller knows it statically and `grad`'s shape does not.
Value gradientAsRows(ImplicitLocOpBuilder &b, Value grad,
                     int64_t rowsHint = ShapedType::kDynamic);

} // namespace mlir::emb::lowering

#endif // EMB_LIB_CONVERSION_EMBCOMMON_OPSTRUCTURE_H
