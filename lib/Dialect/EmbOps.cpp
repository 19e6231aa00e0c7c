//===- EmbOps.cpp - emb dialect ops: verifiers and canonicalisation -------===//
//
// The verifiers reject everything SEMANTICS.md §5 forbids that is visible
// statically. Each message names the operand or attribute at fault and the
// offending value, in MLIR's style (lower-case start, no trailing period).
//
//===----------------------------------------------------------------------===//

#include "Checks.h"

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

static ParseResult parseOptimizer(OpAsmParser &parser, OptimizerAttr &opt) {
  StringRef keyword;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<Optimizer> value = symbolizeOptimizer(keyword);
  if (!value)
    return parser.emitError(loc) << "expected optimizer 'sgd', 'adagrad', "
                                    "'rowwise_adagrad' or 'adam', got '"
                                 << keyword << "'";
  opt = OptimizerAttr::get(parser.getContext(), *value);
  return success();
}

static void printOptimizer(OpAsmPrinter &printer, Operation *,
                           OptimizerAttr opt) {
  printer << stringifyOptimizer(opt.getValue());
}

#define GET_OP_CLASSES
#include "emb/Dialect/EmbOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Shared checks
//===----------------------------------------------------------------------===//

using namespace mlir::emb::checks;

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
  if (failed(checkPoolingMode(*this, getMode())))
    return failure();
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

namespace {
/// The `sequence_lengths` of a many-table op with `modes`: L_t >= 0 for a
/// `none` table, 0 for a pooled one. Returns L_t per table (0 when absent).
FailureOr<SmallVector<int64_t>>
verifySequenceLengths(Operation *op, ArrayAttr modes,
                      std::optional<ArrayRef<int64_t>> lengths) {
  int64_t numTables = modes.size();
  SmallVector<int64_t> result(numTables, 0);
  if (lengths && static_cast<int64_t>(lengths->size()) != numTables)
    return op->emitOpError() << "needs one sequence length per table ("
                             << numTables << "), got " << lengths->size();
  for (int64_t t = 0; t < numTables; ++t) {
    bool none = cast<BagModeAttr>(modes[t]).getValue() == BagMode::none;
    int64_t length = lengths ? (*lengths)[t] : 0;
    if (none && !lengths)
      return op->emitOpError() << "table " << t << " is 'none' (a sequence "
                                  "table) and needs 'sequence_lengths'";
    if (length < 0 || (!none && length != 0))
      return op->emitOpError()
             << "'sequence_lengths' of table " << t << " (" << length
             << ") must be " << (none ? ">= 0" : "0 (the table pools)");
    result[t] = length;
  }
  return result;
}

/// Adds the columns table `t` fills (D_t, or L_t * D_t for a sequence
/// table) to `total`; fails, naming the table, when that overflows.
LogicalResult addTableColumns(Operation *op, ArrayAttr modes,
                              ArrayRef<int64_t> lengths, int64_t t,
                              int64_t dim, int64_t &total) {
  int64_t columns = dim;
  if (cast<BagModeAttr>(modes[t]).getValue() == BagMode::none &&
      __builtin_mul_overflow(lengths[t], dim, &columns))
    return op->emitOpError() << "table " << t << ": its sequence length "
                             << lengths[t] << " times its dimension " << dim
                             << " overflows";
  if (__builtin_add_overflow(total, columns, &total))
    return op->emitOpError() << "the tables' columns overflow at table " << t;
  return success();
}

/// The tables of a many-table op, their modes and padding rows, its
/// indices, offsets (T * B + 1) and per_sample_weights: returns the tables'
/// element type and the sum of their dims.
FailureOr<std::pair<Type, int64_t>>
verifyTables(Operation *op, ValueRange tables, ArrayAttr modes,
             ArrayRef<int64_t> paddingIdx,
             std::optional<ArrayRef<int64_t>> sequenceLengths,
             RankedTensorType indices, RankedTensorType offsets,
             RankedTensorType psw) {
  int64_t numTables = tables.size();
  if (numTables == 0)
    return op->emitOpError() << "needs at least one table";
  if (static_cast<int64_t>(modes.size()) != numTables ||
      static_cast<int64_t>(paddingIdx.size()) != numTables)
    return op->emitOpError()
           << "needs one mode and one padding_idx per table (" << numTables
           << "), got " << modes.size() << " and " << paddingIdx.size();
  auto lengths = verifySequenceLengths(op, modes, sequenceLengths);
  if (failed(lengths))
    return failure();
  Type element;
  int64_t totalDim = 0;
  bool anyMax = false;
  for (auto [t, table] : llvm::enumerate(tables)) {
    auto type = cast<RankedTensorType>(table.getType());
    std::string name = "table " + std::to_string(t);
    if (failed(checkFloatTensor(op, name, type, 2)))
      return failure();
    if (!element)
      element = type.getElementType();
    else if (failed(checkSameElement(op, name, type.getElementType(),
                                     "table 0", element)))
      return failure();
    if (type.isDynamicDim(1))
      return op->emitOpError()
             << "'" << name << "' needs a static embedding dimension";
    if (failed(addTableColumns(op, modes, *lengths, t, type.getDimSize(1),
                               totalDim)))
      return failure();
    int64_t pad = paddingIdx[t];
    int64_t rows = type.getDimSize(0);
    if (pad < -1 || (!ShapedType::isDynamic(rows) && pad >= rows))
      return op->emitOpError() << "'padding_idx' of table " << t << " ("
                               << pad << ") is not -1 or a row of the table";
    anyMax |= cast<BagModeAttr>(modes[t]).getValue() == BagMode::max;
  }
  if (failed(checkIndexTensor(op, "indices", indices, 1)) ||
      failed(checkIndexTensor(op, "offsets", offsets, 1)))
    return failure();
  int64_t numOffsets = offsets.getDimSize(0);
  if (!ShapedType::isDynamic(numOffsets) &&
      (numOffsets < 1 || (numOffsets - 1) % numTables != 0))
    return op->emitOpError() << "'offsets' has " << numOffsets
                             << " entries, not T * B + 1 for T = "
                             << numTables;
  if (psw) {
    if (anyMax)
      return op->emitOpError() << "'per_sample_weights' are not allowed when "
                                  "a table's mode is 'max'";
    if (failed(checkFloatTensor(op, "per_sample_weights", psw)) ||
        failed(checkSameElement(op, "per_sample_weights", psw.getElementType(),
                                "table 0", element)))
      return failure();
    if (failed(verifyCompatibleShape(psw, indices)))
      return op->emitOpError()
             << "'per_sample_weights' type " << psw
             << " must have the shape of 'indices' (" << indices << ")";
  }
  return std::make_pair(element, totalDim);
}
} // namespace

LogicalResult MultiBagOp::verify() {
  int64_t numTables = getTables().size();
  auto checked = verifyTables(*this, getTables(), getModes(), getPaddingIdx(),
                              getSequenceLengths(), getIndices().getType(),
                              getOffsets().getType(),
                              rankedOrNull(getPerSampleWeights()));
  if (failed(checked))
    return failure();
  auto [element, totalDim] = *checked;
  RankedTensorType output = getOutput().getType();
  int64_t numOffsets = getOffsets().getType().getDimSize(0);
  if (static_cast<bool>(getBagOffset()) != static_cast<bool>(getBagCount()))
    return emitOpError() << "'bag_offset' and 'bag_count' go together";
  int64_t numBags = ShapedType::kDynamic;
  if (!getBagOffset() && !ShapedType::isDynamic(numOffsets))
    numBags = (numOffsets - 1) / numTables;
  if (failed(checkFloatTensor(*this, "output", output, 2)) ||
      failed(checkSameElement(*this, "output", output.getElementType(),
                              "table 0", element)) ||
      failed(checkBagRows(*this, "output", output, numBags, totalDim,
                          "the sum of the tables' columns")))
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
  if (failed(checkPoolingMode(*this, getMode())))
    return failure();
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
  if (failed(checkMaxIndices(*this, getMode(), rankedOrNull(getMaxIndices()),
                             grad, getScaleGradByFreq())))
    return failure();
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
  if (failed(checkPoolingMode(*this, getMode())))
    return failure();
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

//===----------------------------------------------------------------------===//
// BagUpdateOp
//===----------------------------------------------------------------------===//

unsigned BagUpdateOp::numStates(Optimizer optimizer) {
  switch (optimizer) {
  case Optimizer::sgd:
    return 0;
  case Optimizer::adagrad:
  case Optimizer::rowwise_adagrad:
    return 1;
  case Optimizer::adam:
    return 2;
  }
  return 0;
}

namespace {
/// The hyper-parameters of a fused step: finite, weight_decay and eps not
/// negative, betas in [0, 1), the step operand exactly with adam.
LogicalResult verifyOptimizer(Operation *op, Optimizer opt, double weightDecay,
                              double eps, double beta1, double beta2,
                              bool hasStep) {
  for (auto [name, value] : {std::pair<StringRef, double>{"weight_decay",
                                                          weightDecay},
                             {"eps", eps},
                             {"beta1", beta1},
                             {"beta2", beta2}})
    if (failed(checkFinite(op, name, value)))
      return failure();
  if (weightDecay < 0 || eps < 0)
    return op->emitOpError() << "'weight_decay' and 'eps' must be non-negative";
  for (double beta : {beta1, beta2})
    if (beta < 0 || beta >= 1)
      return op->emitOpError() << "'beta1' and 'beta2' must be in [0, 1), got "
                               << beta;
  if (hasStep != (opt == Optimizer::adam))
    return op->emitOpError() << "'step' is an operand of 'adam' only";
  return success();
}

/// The state of `optimizer` for a table of `rows` x `dim` of `element`:
/// [rows, dim] (rowwise_adagrad: [rows]) of f32, f64 for an f64 table.
LogicalResult verifyState(Operation *op, Optimizer opt, RankedTensorType type,
                          int64_t rows, int64_t dim, Type element) {
  Type stateElement = element.isF64()
                          ? Type(Float64Type::get(op->getContext()))
                          : Type(Float32Type::get(op->getContext()));
  SmallVector<int64_t> shape{rows};
  if (opt != Optimizer::rowwise_adagrad)
    shape.push_back(dim);
  if (type.getElementType() == stateElement &&
      succeeded(verifyCompatibleShape(type.getShape(), shape)))
    return success();
  return op->emitOpError() << "the state of '" << stringifyOptimizer(opt)
                           << "' must be "
                           << RankedTensorType::get(shape, stateElement)
                           << ", got " << type;
}
} // namespace

LogicalResult BagUpdateOp::verify() {
  if (failed(checkPoolingMode(*this, getMode())))
    return failure();
  RankedTensorType grad = getGrad().getType(), weight = getWeight().getType();
  Optimizer opt = getOptimizer();
  StringRef optName = stringifyOptimizer(opt);
  if (failed(checkFinite(*this, "grad_scale",
                         getGradScale().convertToDouble())) ||
      failed(verifyOptimizer(*this, opt, getWeightDecay().convertToDouble(),
                             getEps().convertToDouble(),
                             getBeta1().convertToDouble(),
                             getBeta2().convertToDouble(),
                             static_cast<bool>(getStep()))))
    return failure();
  if (failed(checkFloatTensor(*this, "grad", grad, 2)) ||
      failed(checkNumEmbeddings(*this, getNumEmbeddings())))
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
                                   grad.getElementType())))
    return failure();
  // The weight: the table, or with rows(...) a window of it.
  bool windowed = static_cast<bool>(getRowOffset());
  if (windowed != static_cast<bool>(getRowCount()))
    return emitOpError() << "'row_offset' and 'row_count' go together";
  if (failed(checkFloatTensor(*this, "weight", weight, 2)) ||
      failed(checkSameElement(*this, "weight", weight.getElementType(), "grad",
                              grad.getElementType())) ||
      failed(checkDim(*this, "'weight' dimension 1", weight.getDimSize(1),
                      "embedding_dim of 'grad'", dim)))
    return failure();
  int64_t rows = weight.getDimSize(0);
  if (!windowed && failed(checkDim(*this, "'weight' dimension 0", rows,
                                   "'num_embeddings'", getNumEmbeddings())))
    return failure();
  if (windowed && !ShapedType::isDynamic(rows) &&
      rows > static_cast<int64_t>(getNumEmbeddings()))
    return emitOpError() << "'weight' dimension 0 (" << rows
                         << ") exceeds 'num_embeddings' ("
                         << getNumEmbeddings() << ")";
  // The states: f32 (f64 for an f64 table), the weight's rows.
  unsigned want = numStates(opt);
  if (getStates().size() != want)
    return emitOpError() << "optimizer '" << optName << "' keeps " << want
                         << " state tensor(s), got " << getStates().size();
  for (Value state : getStates())
    if (failed(verifyState(*this, opt,
                           cast<RankedTensorType>(state.getType()), rows, dim,
                           weight.getElementType())))
      return failure();
  // The results: the new weight and states.
  SmallVector<Type> expected{weight};
  for (Value state : getStates())
    expected.push_back(state.getType());
  if (TypeRange(getResults().getTypes()) != TypeRange(expected))
    return emitOpError() << "the results must have the types of 'weight' and "
                            "the states";
  if (failed(checkMaxIndices(*this, getMode(), rankedOrNull(getMaxIndices()),
                             grad, getScaleGradByFreq())))
    return failure();
  return checkPaddingIdx(*this, getPaddingIdx(), getNumEmbeddings());
}

LogicalResult BagUpdateOp::canonicalize(BagUpdateOp op,
                                        PatternRewriter &rewriter) {
  return normalizePaddingIdx(op, op.getNumEmbeddings(), rewriter);
}

//===----------------------------------------------------------------------===//
// MultiBagUpdateOp
//===----------------------------------------------------------------------===//

LogicalResult MultiBagUpdateOp::verify() {
  Optimizer opt = getOptimizer();
  if (failed(verifyOptimizer(*this, opt, getWeightDecay().convertToDouble(),
                             getEps().convertToDouble(),
                             getBeta1().convertToDouble(),
                             getBeta2().convertToDouble(),
                             static_cast<bool>(getStep()))))
    return failure();
  ArrayRef<int64_t> shapes = getTableShapes();
  int64_t numTables = shapes.size() / 2;
  if (shapes.empty() || shapes.size() % 2 != 0)
    return emitOpError() << "'table_shapes' must list V and D of at least one "
                            "table, got "
                         << shapes.size() << " values";
  if (static_cast<int64_t>(getModes().size()) != numTables ||
      static_cast<int64_t>(getPaddingIdx().size()) != numTables)
    return emitOpError() << "needs one mode and one padding_idx per table ("
                         << numTables << "), got " << getModes().size()
                         << " and " << getPaddingIdx().size();
  auto lengths = verifySequenceLengths(*this, getModes(), getSequenceLengths());
  if (failed(lengths))
    return failure();
  int64_t elements = 0, rows = 0, totalDim = 0;
  for (int64_t t = 0; t < numTables; ++t) {
    int64_t v = shapes[2 * t], d = shapes[2 * t + 1], pad = getPaddingIdx()[t];
    if (v < 0 || d < 0)
      return emitOpError() << "table " << t << " has a negative size";
    if (pad < -1 || pad >= v)
      return emitOpError() << "'padding_idx' of table " << t << " (" << pad
                           << ") is not -1 or a row of the table";
    if (cast<BagModeAttr>(getModes()[t]).getValue() == BagMode::max)
      return emitOpError() << "table " << t << " is 'max', which has no "
                              "many-table fused step (it needs the forward's "
                              "max_indices: use emb.bag_update)";
    elements += v * d;
    rows += v;
    if (failed(addTableColumns(*this, getModes(), *lengths, t, d, totalDim)))
      return failure();
  }
  RankedTensorType weights = getWeights().getType(), grad = getGrad().getType();
  if (failed(checkFloatTensor(*this, "weights", weights, 1)) ||
      failed(checkDim(*this, "'weights' dimension 0", weights.getDimSize(0),
                      "the tables' elements", elements)) ||
      failed(checkFloatTensor(*this, "grad", grad, 2)) ||
      failed(checkSameElement(*this, "grad", grad.getElementType(), "weights",
                              weights.getElementType())) ||
      failed(checkDim(*this, "'grad' dimension 1", grad.getDimSize(1),
                      "the sum of the tables' columns",
                      totalDim)) ||
      failed(checkIndexTensor(*this, "indices", getIndices().getType(), 1)) ||
      failed(checkIndexTensor(*this, "offsets", getOffsets().getType(), 1)))
    return failure();
  if (RankedTensorType psw = rankedOrNull(getPerSampleWeights()))
    if (failed(checkFloatTensor(*this, "per_sample_weights", psw, 1)) ||
        failed(checkSameElement(*this, "per_sample_weights",
                                psw.getElementType(), "weights",
                                weights.getElementType())))
      return failure();
  if (static_cast<bool>(getRowOffset()) != static_cast<bool>(getRowCount()))
    return emitOpError() << "'row_offset' and 'row_count' go together";
  if (std::optional<int64_t> parts = getRowParts()) {
    if (!getRowOffset())
      return emitOpError() << "'row_parts' divides the rows of 'rows()', "
                              "which is absent";
    // floor(P * V_t / P) must not overflow: V_t * P < 2^63.
    int64_t largest = 0;
    for (size_t i = 0; i < shapes.size(); i += 2)
      largest = std::max(largest, shapes[i]);
    int64_t product;
    if (*parts < 1 || __builtin_mul_overflow(largest, *parts, &product))
      return emitOpError() << "'row_parts' must be at least 1, and times the "
                              "largest table's rows fit in 64 bits, got "
                           << *parts;
  }
  unsigned want = BagUpdateOp::numStates(opt);
  if (getStates().size() != want)
    return emitOpError() << "optimizer '" << stringifyOptimizer(opt)
                         << "' keeps " << want << " state tensor(s), got "
                         << getStates().size();
  bool rowwise = opt == Optimizer::rowwise_adagrad;
  SmallVector<Type> expected{weights};
  for (Value state : getStates()) {
    auto type = cast<RankedTensorType>(state.getType());
    Type stateElement = weights.getElementType().isF64()
                            ? Type(Float64Type::get(getContext()))
                            : Type(Float32Type::get(getContext()));
    if (type.getRank() != 1 || type.getElementType() != stateElement ||
        failed(checkDim(*this, "a state's dimension 0", type.getDimSize(0),
                        rowwise ? "the tables' rows" : "the tables' elements",
                        rowwise ? rows : elements)))
      return type.getRank() == 1 && type.getElementType() == stateElement
                 ? failure()
                 : emitOpError() << "the states of '"
                                 << stringifyOptimizer(opt) << "' must be 1-D "
                                 << stateElement << " tensors, got " << type;
    expected.push_back(type);
  }
  if (TypeRange(getResults().getTypes()) != TypeRange(expected))
    return emitOpError() << "the results must have the types of 'weights' "
                            "and the states";
  return success();
}
