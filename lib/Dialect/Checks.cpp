//===- Checks.cpp - the verifiers' shared checks --------------------------===//

#include "Checks.h"

#include "mlir/IR/TypeUtilities.h"

#include <cmath>

namespace mlir::emb::checks {


bool isFloatElement(Type t) {
  return t.isF32() || t.isF64() || t.isF16() || t.isBF16();
}

bool isIndexElement(Type t) {
  return t.isSignlessInteger(32) || t.isSignlessInteger(64);
}

std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
}

/// Checks that `type` is a tensor of f32/f64/f16/bf16 (of rank `rank`, if
/// given).
LogicalResult checkFloatTensor(Operation *op, StringRef name,
                               RankedTensorType type,
                               std::optional<int64_t> rank) {
  if (isFloatElement(type.getElementType()) &&
      (!rank || type.getRank() == *rank))
    return success();
  auto diag = op->emitOpError() << "'" << name << "' must be a ";
  if (rank)
    diag << *rank << "-D ";
  diag << "tensor of f32, f64, f16 or bf16, got " << type;
  return diag;
}

/// Checks that `type` is a tensor of i32 or i64 (of rank `rank`, if given).
LogicalResult checkIndexTensor(Operation *op, StringRef name,
                               RankedTensorType type,
                               std::optional<int64_t> rank) {
  if (isIndexElement(type.getElementType()) &&
      (!rank || type.getRank() == *rank))
    return success();
  auto diag = op->emitOpError() << "'" << name << "' must be a ";
  if (rank)
    diag << *rank << "-D ";
  diag << "tensor of i32 or i64, got " << type;
  return diag;
}

/// Checks that two sizes agree when both are static.
LogicalResult checkDim(Operation *op, StringRef what, int64_t actual,
                       StringRef expectedWhat, int64_t expected) {
  if (ShapedType::isDynamic(actual) || ShapedType::isDynamic(expected) ||
      actual == expected)
    return success();
  return op->emitOpError() << what << " (" << actual << ") does not match "
                           << expectedWhat << " (" << expected << ")";
}

/// Checks that `name`'s element type is `expected` (the weight's or grad's).
LogicalResult checkSameElement(Operation *op, StringRef name, Type actual,
                               StringRef expectedName, Type expected) {
  if (actual == expected)
    return success();
  return op->emitOpError() << "'" << name << "' element type " << actual
                           << " does not match '" << expectedName
                           << "' element type " << expected;
}

/// Checks `padding_idx` against `[-V, V)` when V is static.
LogicalResult checkPaddingIdx(Operation *op, std::optional<int64_t> paddingIdx,
                              int64_t numEmbeddings) {
  if (!paddingIdx || ShapedType::isDynamic(numEmbeddings))
    return success();
  if (*paddingIdx >= -numEmbeddings && *paddingIdx < numEmbeddings)
    return success();
  return op->emitOpError() << "'padding_idx' " << *paddingIdx
                           << " is out of range [" << -numEmbeddings << ", "
                           << numEmbeddings << ")";
}

LogicalResult checkNumEmbeddings(Operation *op, int64_t numEmbeddings) {
  if (numEmbeddings >= 0)
    return success();
  return op->emitOpError() << "'num_embeddings' must be non-negative, got "
                           << numEmbeddings;
}

LogicalResult checkFinite(Operation *op, StringRef name, double value) {
  if (std::isfinite(value))
    return success();
  StringRef shown = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  return op->emitOpError() << "'" << name << "' must be finite, got " << shown;
}

/// Checks that `type` is `indices.shape + [D]` (the shape of a lookup's
/// result and of its incoming gradient).
LogicalResult checkLookupShape(Operation *op, StringRef name,
                               RankedTensorType type, RankedTensorType indices,
                               int64_t dim) {
  bool ok = type.getRank() == indices.getRank() + 1;
  for (int64_t i = 0; ok && i < indices.getRank(); ++i) {
    int64_t a = type.getDimSize(i), b = indices.getDimSize(i);
    ok = ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
  }
  int64_t last = ok ? type.getDimSize(type.getRank() - 1) : 0;
  ok = ok && (ShapedType::isDynamic(last) || ShapedType::isDynamic(dim) ||
              last == dim);
  if (ok)
    return success();
  return op->emitOpError() << "'" << name << "' type " << type
                           << " must have the shape of 'indices' (" << indices
                           << ") followed by embedding_dim " << dimStr(dim);
}

/// Checks a dense `[V, D]` weight gradient against `num_embeddings` and D
/// (with a row window, `[count, D]` and at most V rows).
LogicalResult checkDenseGradResult(Operation *op, RankedTensorType result,
                                   Type gradElement, int64_t numEmbeddings,
                                   int64_t dim, bool windowed) {
  if (windowed && !ShapedType::isDynamic(result.getDimSize(0)) &&
      result.getDimSize(0) > numEmbeddings)
    return op->emitOpError()
           << "'result' dimension 0 (" << result.getDimSize(0)
           << ") exceeds 'num_embeddings' (" << numEmbeddings << ")";
  if (failed(checkFloatTensor(op, "result", result, 2)) ||
      failed(checkSameElement(op, "result", result.getElementType(), "grad",
                              gradElement)) ||
      (!windowed &&
       failed(checkDim(op, "'result' dimension 0", result.getDimSize(0),
                       "'num_embeddings'", numEmbeddings))) ||
      failed(checkDim(op, "'result' dimension 1", result.getDimSize(1),
                      "embedding_dim of 'grad'", dim)))
    return failure();
  return success();
}

/// Checks the COO results `rows` `[N]` (i64) and `values` `[N, D]`.
LogicalResult checkSparseGradResults(Operation *op, RankedTensorType rows,
                                     RankedTensorType values, Type gradElement,
                                     int64_t dim) {
  if (!(rows.getRank() == 1 && rows.getElementType().isSignlessInteger(64)))
    return op->emitOpError()
           << "'rows' must be a 1-D tensor of i64, got " << rows;
  if (failed(checkFloatTensor(op, "values", values, 2)) ||
      failed(checkSameElement(op, "values", values.getElementType(), "grad",
                              gradElement)) ||
      failed(checkDim(op, "'values' dimension 0", values.getDimSize(0),
                      "'rows' dimension 0", rows.getDimSize(0))) ||
      failed(checkDim(op, "'values' dimension 1", values.getDimSize(1),
                      "embedding_dim of 'grad'", dim)))
    return failure();
  return success();
}

/// The bag structure shared by emb.bag and its gradients: 1-D `indices`
/// with 1-D `offsets`, or 2-D `indices` without. Returns the number of bags
/// B (kDynamic when it is not known statically).
FailureOr<int64_t> checkBagStructure(Operation *op, RankedTensorType indices,
                                     RankedTensorType offsets,
                                     bool includeLastOffset) {
  if (failed(checkIndexTensor(op, "indices", indices)))
    return failure();
  if (indices.getRank() == 2) {
    if (offsets)
      return op->emitOpError()
             << "'offsets' must be absent when 'indices' is 2-D (every row is "
                "a bag)";
    return indices.getDimSize(0);
  }
  if (indices.getRank() != 1)
    return op->emitOpError()
           << "'indices' of a bag must be 1-D (with 'offsets') or 2-D, got "
           << indices;
  if (!offsets)
    return op->emitOpError() << "1-D 'indices' need an 'offsets' operand";
  if (failed(checkIndexTensor(op, "offsets", offsets, 1)))
    return failure();
  int64_t n = offsets.getDimSize(0);
  if (ShapedType::isDynamic(n))
    return kDynamic;
  if (includeLastOffset && n == 0)
    return op->emitOpError()
           << "'include_last_offset' needs at least one entry in 'offsets'";
  return includeLastOffset ? n - 1 : n;
}

LogicalResult checkPoolingMode(Operation *op, BagMode mode) {
  if (mode == BagMode::none)
    return op->emitOpError() << "mode 'none' (no pooling) is only for the "
                                "sequence tables of emb.multi_bag";
  return success();
}

/// Checks `per_sample_weights`: not with max (sum, mean and sqrtn weigh
/// their entries), the shape of `indices`, the element type of the table.
LogicalResult checkPerSampleWeights(Operation *op, RankedTensorType psw,
                                    BagMode mode, RankedTensorType indices,
                                    StringRef elementName, Type element) {
  if (!psw)
    return success();
  if (mode == BagMode::max)
    return op->emitOpError()
           << "'per_sample_weights' is not allowed with mode 'max'";
  if (failed(checkFloatTensor(op, "per_sample_weights", psw)) ||
      failed(checkSameElement(op, "per_sample_weights", psw.getElementType(),
                              elementName, element)))
    return failure();
  if (failed(verifyCompatibleShape(psw, indices)))
    return op->emitOpError()
           << "'per_sample_weights' type " << psw
           << " must have the shape of 'indices' (" << indices << ")";
  return success();
}

/// Checks a `[B, D]` tensor (a bag output or its gradient).
LogicalResult checkBagRows(Operation *op, StringRef name, RankedTensorType type,
                           int64_t numBags, int64_t dim, StringRef dimWhat) {
  if (failed(checkFloatTensor(op, name, type, 2)) ||
      failed(checkDim(op, ("'" + name + "' dimension 0").str(),
                      type.getDimSize(0), "the number of bags", numBags)) ||
      failed(checkDim(op, ("'" + name + "' dimension 1").str(),
                      type.getDimSize(1), dimWhat, dim)))
    return failure();
  return success();
}

RankedTensorType rankedOrNull(Value v) {
  return v ? cast<RankedTensorType>(v.getType()) : RankedTensorType();
}

/// The `max_indices` operand of a bag gradient: needed by `max` (with no
/// `scale_grad_by_freq`), i64 in the shape of `grad`; absent otherwise.
LogicalResult checkMaxIndices(Operation *op, BagMode mode,
                              RankedTensorType maxIndices,
                              RankedTensorType grad, bool byFreq) {
  if (mode != BagMode::max) {
    if (!maxIndices)
      return success();
    return op->emitOpError()
           << "'max_indices' operand is only allowed with mode 'max', got '"
           << stringifyBagMode(mode) << "'";
  }
  if (!maxIndices)
    return op->emitOpError() << "mode 'max' needs the 'max_indices' operand";
  if (byFreq)
    return op->emitOpError()
           << "'scale_grad_by_freq' is not allowed with mode 'max'";
  if (!maxIndices.getElementType().isSignlessInteger(64) ||
      failed(verifyCompatibleShape(maxIndices, grad)))
    return op->emitOpError() << "'max_indices' must be a tensor of i64 with "
                                "the shape of 'grad' ("
                             << grad << "), got " << maxIndices;
  return success();
}

} // namespace mlir::emb::checks
