//===- Checks.h - the verifiers' shared checks ------------------*- C++ -*-===//
//
// What the verifiers of the emb ops check in common (private to
// lib/Dialect). Each check emits one error naming the operand or attribute
// at fault and the offending value, in MLIR's style (lower-case start, no
// trailing period).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_DIALECT_CHECKS_H
#define EMB_LIB_DIALECT_CHECKS_H

#include "emb/Dialect/EmbDialect.h"

#include "mlir/IR/PatternMatch.h"

#include <optional>
#include <string>

namespace mlir::emb::checks {

constexpr int64_t kDynamic = ShapedType::kDynamic;

bool isFloatElement(Type t);

bool isIndexElement(Type t);

std::string dimStr(int64_t d);

/// Checks that `type` is a tensor of f32/f64/f16/bf16 (of rank `rank`, if
/// given).
LogicalResult checkFloatTensor(Operation *op, StringRef name,
                               RankedTensorType type,
                               std::optional<int64_t> rank = std::nullopt);

/// Checks that `type` is a tensor of i32 or i64 (of rank `rank`, if given).
LogicalResult checkIndexTensor(Operation *op, StringRef name,
                               RankedTensorType type,
                               std::optional<int64_t> rank = std::nullopt);

/// Checks that two sizes agree when both are static.
LogicalResult checkDim(Operation *op, StringRef what, int64_t actual,
                       StringRef expectedWhat, int64_t expected);

/// Checks that `name`'s element type is `expected` (the weight's or grad's).
LogicalResult checkSameElement(Operation *op, StringRef name, Type actual,
                               StringRef expectedName, Type expected);

/// Checks `padding_idx` against `[-V, V)` when V is static.
LogicalResult checkPaddingIdx(Operation *op, std::optional<int64_t> paddingIdx,
                              int64_t numEmbeddings);

LogicalResult checkNumEmbeddings(Operation *op, int64_t numEmbeddings);

LogicalResult checkFinite(Operation *op, StringRef name, double value);

/// Checks that `type` is `indices.shape + [D]` (the shape of a lookup's
/// result and of its incoming gradient).
LogicalResult checkLookupShape(Operation *op, StringRef name,
                               RankedTensorType type, RankedTensorType indices,
                               int64_t dim);

/// Checks a dense `[V, D]` weight gradient against `num_embeddings` and D
/// (with a row window, `[count, D]` and at most V rows).
LogicalResult checkDenseGradResult(Operation *op, RankedTensorType result,
                                   Type gradElement, int64_t numEmbeddings,
                                   int64_t dim, bool windowed = false);

/// Checks the COO results `rows` `[N]` (i64) and `values` `[N, D]`.
LogicalResult checkSparseGradResults(Operation *op, RankedTensorType rows,
                                     RankedTensorType values, Type gradElement,
                                     int64_t dim);

/// The bag structure shared by emb.bag and its gradients: 1-D `indices`
/// with 1-D `offsets`, or 2-D `indices` without. Returns the number of bags
/// B (kDynamic when it is not known statically).
FailureOr<int64_t> checkBagStructure(Operation *op, RankedTensorType indices,
                                     RankedTensorType offsets,
                                     bool includeLastOffset);

/// `mode` pools (mode `none` is only for emb.multi_bag's sequence tables).
LogicalResult checkPoolingMode(Operation *op, BagMode mode);

/// Checks `per_sample_weights`: not with max (sum, mean and sqrtn weigh
/// their entries), the shape of `indices`, the element type of the table.
LogicalResult checkPerSampleWeights(Operation *op, RankedTensorType psw,
                                    BagMode mode, RankedTensorType indices,
                                    StringRef elementName, Type element);

/// Checks a `[B, D]` tensor (a bag output or its gradient).
LogicalResult checkBagRows(Operation *op, StringRef name, RankedTensorType type,
                           int64_t numBags, int64_t dim, StringRef dimWhat);

RankedTensorType rankedOrNull(Value v);

/// The `max_indices` operand of a bag gradient: needed by `max` (with no
/// `scale_grad_by_freq`), i64 in the shape of `grad`; absent otherwise.
LogicalResult checkMaxIndices(Operation *op, BagMode mode,
                              RankedTensorType maxIndices,
                              RankedTensorType grad, bool byFreq);

/// Rewrites a negative `padding_idx` to `V + padding_idx` (V static).
template <typename OpT>
LogicalResult normalizePaddingIdx(OpT op, int64_t numEmbeddings,
                                  PatternRewriter &rewriter) {
  std::optional<int64_t> idx = op.getPaddingIdx();
  if (!idx || *idx >= 0 || ShapedType::isDynamic(numEmbeddings) ||
      *idx < -numEmbeddings)
    return failure();
  rewriter.modifyOpInPlace(op, [&] { op.setPaddingIdx(*idx + numEmbeddings); });
  return success();
}

} // namespace mlir::emb::checks

#endif // EMB_LIB_DIALECT_CHECKS_H
