//===- EmbOps.cpp - emb dialect ops: verifiers and canonicalisation -------===//
//
// The verifiers reject everything SEMANTICS.md §5 forbids that is visible
// statically. Each message names the operand or attribute at fault and the
// offending value, in MLIR's style (lower-case start, no trailing period).
//
//===----------------------------------------------------------------------===//

#include "emb/Dialect/EmbDialect.h"
#include "emb/Core/Types.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/TypeUtilities.h"

#include <cmath>

using namespace mlir;
using namespace mlir::emb;

//===----------------------------------------------------------------------===//
// custom<BagMode>: the bag mode as a bare keyword
//===----------------------------------------------------------------------===//

static ParseResult parseBagMode(OpAsmParser &parser, BagModeAttr &mode) {
  StringRef keyword;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<BagMode> value = symbolizeBagMode(keyword);
  if (!value)
    return parser.emitError(loc)
           << "expected bag mode 'sum', 'mean', 'max' or 'sqrtn', got '" << keyword
           << "'";
  mode = BagModeAttr::get(parser.getContext(), *value);
  return success();
}

static void printBagMode(OpAsmPrinter &printer, Operation *, BagModeAttr mode) {
  printer << stringifyBagMode(mode.getValue());
}

#define GET_OP_CLASSES
#include "emb/Dialect/EmbOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Shared checks
//===----------------------------------------------------------------------===//

namespace {

constexpr int64_t kDynamic = ShapedType::kDynamic;

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
                               std::optional<int64_t> rank = std::nullopt) {
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
                               std::optional<int64_t> rank = std::nullopt) {
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
                                   int64_t dim, bool windowed = false) {
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

} // namespace

//===----------------------------------------------------------------------===//
// LookupOp
//===----------------------------------------------------------------------===//

LogicalResult LookupOp::verify() {
  RankedTensorType weight = getWeight().getType(),
                   indices = getIndices().getType(),
                   result = getResult().getType();
  if (failed(checkFloatTensor(*this, "weight", weight, 2)) ||
      failed(checkIndexTensor(*this, "indices", indices)) ||
      failed(checkFloatTensor(*this, "result", result)) ||
      failed(checkSameElement(*this, "result", result.getElementType(),
                              "weight", weight.getElementType())) ||
      failed(checkLookupShape(*this, "result", result, indices,
                              weight.getDimSize(1))))
    return failure();
  return checkPaddingIdx(*this, getPaddingIdx(), weight.getDimSize(0));
}

LogicalResult LookupOp::canonicalize(LookupOp op, PatternRewriter &rewriter) {
  // Without a padding row, the padding mode means nothing: drop it.
  if (!op.getPaddingIdx() && op.getPaddingMode() != PaddingMode::keep) {
    rewriter.modifyOpInPlace(op, [&] { op.setPaddingMode(PaddingMode::keep); });
    return success();
  }
  return normalizePaddingIdx(op, op.getWeight().getType().getDimSize(0),
                             rewriter);
}

//===----------------------------------------------------------------------===//
// BagOp
//===----------------------------------------------------------------------===//

int64_t BagOp::getEmbeddingDim() {
  if (getQuantized())
    return getOutput().getType().getDimSize(1);
  return getWeight().getType().getDimSize(1);
}

/// The bytes of a quantised row of `dim` elements (docs/semantics.md §6.2),
/// as the runtime's vocabulary defines them.
int64_t mlir::emb::quantizedRowBytes(Quantization q, int64_t dim) {
  return ::emb::quantizedRowBytes(q == Quantization::int8
                                      ? ::emb::Quantization::int8
                                      : ::emb::Quantization::int4,
                                  dim);
}

/// The rules of a quantised table: i8 rows of the bytes D needs, an f32 or
/// f16 output and per_sample_weights, no max_indices.
static LogicalResult verifyQuantizedBag(BagOp op, Quantization q) {
  RankedTensorType weight = op.getWeight().getType(),
                   output = op.getOutput().getType();
  if (weight.getRank() != 2 || !weight.getElementType().isSignlessInteger(8))
    return op.emitOpError() << "'weight' of a quantised bag must be a 2-D "
                               "tensor of i8 (the packed rows), got "
                            << weight;
  Type element = output.getElementType();
  if (output.getRank() != 2 || !(element.isF32() || element.isF16()))
    return op.emitOpError() << "'output' of a quantised bag must be a 2-D "
                               "tensor of f32 or f16, got "
                            << output;
  int64_t dim = output.getDimSize(1);
  if (ShapedType::isDynamic(dim))
    return op.emitOpError()
           << "a quantised bag needs a static embedding dimension (the "
              "output's dimension 1)";
  int64_t rowBytes = quantizedRowBytes(q, dim);
  if (failed(checkDim(op, "'weight' dimension 1 (bytes per row)",
                      weight.getDimSize(1),
                      (std::string(stringifyQuantization(q)) +
                       " rows of D = " + std::to_string(dim))
                          .c_str(),
                      rowBytes)))
    return failure();
  if (op.getMaxIndices())
    return op.emitOpError()
           << "'max_indices' is not allowed with a quantised table (it has "
              "no gradient)";
  return success();
}

LogicalResult BagOp::verify() {
  RankedTensorType weight = getWeight().getType(),
                   output = getOutput().getType();
  if (std::optional<Quantization> q = getQuantized()) {
    FailureOr<int64_t> numBags =
        checkBagStructure(*this, getIndices().getType(),
                          rankedOrNull(getOffsets()), getIncludeLastOffset());
    if (failed(numBags) || failed(verifyQuantizedBag(*this, *q)) ||
        failed(checkPerSampleWeights(
            *this, rankedOrNull(getPerSampleWeights()), getMode(),
            getIndices().getType(), "output", output.getElementType())) ||
        failed(checkBagRows(*this, "output", output, *numBags,
                            output.getDimSize(1), "its embedding dimension")))
      return failure();
    return checkPaddingIdx(*this, getPaddingIdx(), weight.getDimSize(0));
  }
  if (failed(checkFloatTensor(*this, "weight", weight, 2)))
    return failure();
  FailureOr<int64_t> numBags =
      checkBagStructure(*this, getIndices().getType(),
                        rankedOrNull(getOffsets()), getIncludeLastOffset());
  if (failed(numBags) ||
      failed(checkPerSampleWeights(*this, rankedOrNull(getPerSampleWeights()),
                                   getMode(), getIndices().getType(), "weight",
                                   weight.getElementType())) ||
      failed(checkBagRows(*this, "output", output, *numBags,
                          weight.getDimSize(1), "embedding_dim of 'weight'")) ||
      failed(checkSameElement(*this, "output", output.getElementType(),
                              "weight", weight.getElementType())))
    return failure();
  if (RankedTensorType maxIndices = rankedOrNull(getMaxIndices())) {
    if (getMode() != BagMode::max)
      return emitOpError()
             << "'max_indices' result is only allowed with mode 'max', got '"
             << stringifyBagMode(getMode()) << "'";
    if (!maxIndices.getElementType().isSignlessInteger(64) ||
        failed(verifyCompatibleShape(maxIndices, output)))
      return emitOpError() << "'max_indices' must be a tensor of i64 with the "
                              "shape of 'output' ("
                           << output << "), got " << maxIndices;
  }
  return checkPaddingIdx(*this, getPaddingIdx(), weight.getDimSize(0));
}

LogicalResult BagOp::canonicalize(BagOp op, PatternRewriter &rewriter) {
  return normalizePaddingIdx(op, op.getWeight().getType().getDimSize(0),
                             rewriter);
}

//===----------------------------------------------------------------------===//
// MultiBagOp
//===----------------------------------------------------------------------===//

LogicalResult MultiBagOp::verify() {
  int64_t numTables = getTables().size();
  if (numTables == 0)
    return emitOpError() << "needs at least one table";
  if (static_cast<int64_t>(getModes().size()) != numTables ||
      static_cast<int64_t>(getPaddingIdx().size()) != numTables)
    return emitOpError() << "needs one mode and one padding_idx per table ("
                         << numTables << "), got " << getModes().size()
                         << " and " << getPaddingIdx().size();
  Type element;
  int64_t totalDim = 0;
  bool anyMax = false;
  for (auto [t, table] : llvm::enumerate(getTables())) {
    auto type = cast<RankedTensorType>(table.getType());
    std::string name = "table " + std::to_string(t);
    if (failed(checkFloatTensor(*this, name, type, 2)))
      return failure();
    if (!element)
      element = type.getElementType();
    else if (failed(checkSameElement(*this, name, type.getElementType(),
                                     "table 0", element)))
      return failure();
    if (type.isDynamicDim(1))
      return emitOpError() << "'" << name
                           << "' needs a static embedding dimension";
    totalDim += type.getDimSize(1);
    int64_t pad = getPaddingIdx()[t];
    int64_t rows = type.getDimSize(0);
    if (pad < -1 || (!ShapedType::isDynamic(rows) && pad >= rows))
      return emitOpError() << "'padding_idx' of table " << t << " (" << pad
                           << ") is not -1 or a row of the table";
    anyMax |= cast<BagModeAttr>(getModes()[t]).getValue() == BagMode::max;
  }
  RankedTensorType indices = getIndices().getType(),
                   offsets = getOffsets().getType(),
                   output = getOutput().getType();
  if (failed(checkIndexTensor(*this, "indices", indices, 1)) ||
      failed(checkIndexTensor(*this, "offsets", offsets, 1)))
    return failure();
  int64_t numOffsets = offsets.getDimSize(0);
  if (!ShapedType::isDynamic(numOffsets) &&
      (numOffsets < 1 || (numOffsets - 1) % numTables != 0))
    return emitOpError() << "'offsets' has " << numOffsets
                         << " entries, not T * B + 1 for T = " << numTables;
  if (RankedTensorType psw = rankedOrNull(getPerSampleWeights())) {
    if (anyMax)
      return emitOpError() << "'per_sample_weights' are not allowed when a "
                              "table's mode is 'max'";
    if (failed(checkFloatTensor(*this, "per_sample_weights", psw)) ||
        failed(checkSameElement(*this, "per_sample_weights",
                                psw.getElementType(), "table 0", element)))
      return failure();
    if (failed(verifyCompatibleShape(psw, indices)))
      return emitOpError() << "'per_sample_weights' type " << psw
                           << " must have the shape of 'indices' ("
                           << indices << ")";
  }
  if (static_cast<bool>(getBagOffset()) != static_cast<bool>(getBagCount()))
    return emitOpError() << "'bag_offset' and 'bag_count' go together";
  int64_t numBags = ShapedType::kDynamic;
  if (!getBagOffset() && !ShapedType::isDynamic(numOffsets))
    numBags = (numOffsets - 1) / numTables;
  if (failed(checkFloatTensor(*this, "output", output, 2)) ||
      failed(checkSameElement(*this, "output", output.getElementType(),
                              "table 0", element)) ||
      failed(checkBagRows(*this, "output", output, numBags, totalDim,
                          "the sum of the tables' embedding dimensions")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// RenormOp
//===----------------------------------------------------------------------===//

LogicalResult RenormOp::verify() {
  RankedTensorType weight = getWeight().getType();
  if (failed(checkFloatTensor(*this, "weight", weight, 2)) ||
      failed(checkIndexTensor(*this, "indices", getIndices().getType())))
    return failure();
  if (getResult().getType() != weight)
    return emitOpError() << "result type " << getResult().getType()
                         << " must be the type of 'weight' (" << weight << ")";
  if (std::isnan(getMaxNorm().convertToDouble()))
    return emitOpError() << "'max_norm' must not be NaN";
  if (std::isnan(getNormType().convertToDouble()))
    return emitOpError() << "'norm_type' must not be NaN";
  return success();
}

//===----------------------------------------------------------------------===//
// LookupGradOp
//===----------------------------------------------------------------------===//

LogicalResult LookupGradOp::verify() {
  RankedTensorType grad = getGrad().getType(), indices = getIndices().getType();
  if (failed(checkFloatTensor(*this, "grad", grad)) ||
      failed(checkIndexTensor(*this, "indices", indices)) ||
      failed(checkNumEmbeddings(*this, getNumEmbeddings())) ||
      failed(
          checkFinite(*this, "grad_scale", getGradScale().convertToDouble())))
    return failure();
  if (grad.getRank() < 1)
    return emitOpError() << "'grad' must have rank >= 1, got " << grad;
  int64_t dim = grad.getDimSize(grad.getRank() - 1);
  if (failed(checkLookupShape(*this, "grad", grad, indices, dim)) ||
      failed(checkDenseGradResult(*this, getResult().getType(),
                                  grad.getElementType(), getNumEmbeddings(),
                                  dim, static_cast<bool>(getRowOffset()))))
    return failure();
  if (static_cast<bool>(getRowOffset()) != static_cast<bool>(getRowCount()))
    return emitOpError() << "'row_offset' and 'row_count' go together";
  return checkPaddingIdx(*this, getPaddingIdx(), getNumEmbeddings());
}

LogicalResult LookupGradOp::canonicalize(LookupGradOp op,
                                         PatternRewriter &rewriter) {
  return normalizePaddingIdx(op, op.getNumEmbeddings(), rewriter);
}

//===----------------------------------------------------------------------===//
// BagGradOp
//===----------------------------------------------------------------------===//

LogicalResult BagGradOp::verify() {
  RankedTensorType grad = getGrad().getType();
  if (failed(checkFloatTensor(*this, "grad", grad, 2)) ||
      failed(checkNumEmbeddings(*this, getNumEmbeddings())) ||
      failed(
          checkFinite(*this, "grad_scale", getGradScale().convertToDouble())))
    return failure();
  FailureOr<int64_t> numBags =
      checkBagStructure(*this, getIndices().getType(),
                        rankedOrNull(getOffsets()), getIncludeLastOffset());
  int64_t dim = grad.getDimSize(1);
  if (failed(numBags) ||
      failed(checkBagRows(*this, "grad", grad, *numBags, dim,
                          "embedding_dim of 'grad'")) ||
      failed(checkPerSampleWeights(*this, rankedOrNull(getPerSampleWeights()),
                                   getMode(), getIndices().getType(), "grad",
                                   grad.getElementType())) ||
      failed(checkDenseGradResult(*this, getResult().getType(),
                                  grad.getElementType(), getNumEmbeddings(),
                                  dim, static_cast<bool>(getRowOffset()))))
    return failure();
  if (static_cast<bool>(getRowOffset()) != static_cast<bool>(getRowCount()))
    return emitOpError() << "'row_offset' and 'row_count' go together";
  RankedTensorType maxIndices = rankedOrNull(getMaxIndices());
  if (getMode() == BagMode::max) {
    if (!maxIndices)
      return emitOpError() << "mode 'max' needs the 'max_indices' operand";
    if (getScaleGradByFreq())
      return emitOpError() << "'scale_grad_by_freq' is not allowed with mode "
                              "'max'";
    if (!maxIndices.getElementType().isSignlessInteger(64) ||
        failed(verifyCompatibleShape(maxIndices, grad)))
      return emitOpError() << "'max_indices' must be a tensor of i64 with the "
                              "shape of 'grad' ("
                           << grad << "), got " << maxIndices;
  } else if (maxIndices) {
    return emitOpError()
           << "'max_indices' operand is only allowed with mode 'max', got '"
           << stringifyBagMode(getMode()) << "'";
  }
  return checkPaddingIdx(*this, getPaddingIdx(), getNumEmbeddings());
}

LogicalResult BagGradOp::canonicalize(BagGradOp op, PatternRewriter &rewriter) {
  return normalizePaddingIdx(op, op.getNumEmbeddings(), rewriter);
}

//===----------------------------------------------------------------------===//
// BagPswGradOp
//===----------------------------------------------------------------------===//

LogicalResult BagPswGradOp::verify() {
  RankedTensorType grad = getGrad().getType(), weight = getWeight().getType(),
                   indices = getIndices().getType(),
                   result = getResult().getType();
  if (failed(checkFloatTensor(*this, "grad", grad, 2)) ||
      failed(checkFloatTensor(*this, "weight", weight, 2)) ||
      failed(checkSameElement(*this, "grad", grad.getElementType(), "weight",
                              weight.getElementType())))
    return failure();
  FailureOr<int64_t> numBags = checkBagStructure(
      *this, indices, rankedOrNull(getOffsets()), getIncludeLastOffset());
  if (failed(numBags) ||
      failed(checkBagRows(*this, "grad", grad, *numBags, weight.getDimSize(1),
                          "embedding_dim of 'weight'")) ||
      failed(checkFloatTensor(*this, "result", result)) ||
      failed(checkSameElement(*this, "result", result.getElementType(),
                              "weight", weight.getElementType())))
    return failure();
  if (failed(verifyCompatibleShape(result, indices)))
    return emitOpError() << "'result' type " << result
                         << " must have the shape of 'indices' (" << indices
                         << ")";
  return checkPaddingIdx(*this, getPaddingIdx(), weight.getDimSize(0));
}

LogicalResult BagPswGradOp::canonicalize(BagPswGradOp op,
                                         PatternRewriter &rewriter) {
  return normalizePaddingIdx(op, op.getWeight().getType().getDimSize(0),
                             rewriter);
}

//===----------------------------------------------------------------------===//
// LookupSparseGradOp
//===----------------------------------------------------------------------===//

LogicalResult LookupSparseGradOp::verify() {
  RankedTensorType grad = getGrad().getType(), indices = getIndices().getType();
  if (failed(checkFloatTensor(*this, "grad", grad)) ||
      failed(checkIndexTensor(*this, "indices", indices)) ||
      failed(checkNumEmbeddings(*this, getNumEmbeddings())) ||
      failed(
          checkFinite(*this, "grad_scale", getGradScale().convertToDouble())))
    return failure();
  if (grad.getRank() < 1)
    return emitOpError() << "'grad' must have rank >= 1, got " << grad;
  int64_t dim = grad.getDimSize(grad.getRank() - 1);
  if (failed(checkLookupShape(*this, "grad", grad, indices, dim)) ||
      failed(checkSparseGradResults(*this, getRows().getType(),
                                    getValues().getType(),
                                    grad.getElementType(), dim)))
    return failure();
  return checkPaddingIdx(*this, getPaddingIdx(), getNumEmbeddings());
}

LogicalResult LookupSparseGradOp::canonicalize(LookupSparseGradOp op,
                                               PatternRewriter &rewriter) {
  return normalizePaddingIdx(op, op.getNumEmbeddings(), rewriter);
}

//===----------------------------------------------------------------------===//
// BagSparseGradOp
//===----------------------------------------------------------------------===//

LogicalResult BagSparseGradOp::verify() {
  RankedTensorType grad = getGrad().getType();
  if (getMode() == BagMode::max)
    return emitOpError() << "sparse gradients are not supported with mode "
                            "'max'";
  if (failed(checkFloatTensor(*this, "grad", grad, 2)) ||
      failed(checkNumEmbeddings(*this, getNumEmbeddings())) ||
      failed(
          checkFinite(*this, "grad_scale", getGradScale().convertToDouble())))
    return failure();
  FailureOr<int64_t> numBags =
      checkBagStructure(*this, getIndices().getType(),
                        rankedOrNull(getOffsets()), getIncludeLastOffset());
  int64_t dim = grad.getDimSize(1);
  if (failed(numBags) ||
      failed(checkBagRows(*this, "grad", grad, *numBags, dim,
                          "embedding_dim of 'grad'")) ||
      failed(checkPerSampleWeights(*this, rankedOrNull(getPerSampleWeights()),
                                   getMode(), getIndices().getType(), "grad",
                                   grad.getElementType())) ||
      failed(checkSparseGradResults(*this, getRows().getType(),
                                    getValues().getType(),
                                    grad.getElementType(), dim)))
    return failure();
  return checkPaddingIdx(*this, getPaddingIdx(), getNumEmbeddings());
}

LogicalResult BagSparseGradOp::canonicalize(BagSparseGradOp op,
                                            PatternRewriter &rewriter) {
  return normalizePaddingIdx(op, op.getNumEmbeddings(), rewriter);
}
