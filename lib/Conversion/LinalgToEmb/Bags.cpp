//===- Bags.cpp - raise linalg bag reductions to emb.bag ------------------===//
//
// torch-mlir's embedding_bag generic (in any loop order), and a gather
// reduced over the sequence (torch-mlir's gather + sum [+ divide], IREE's
// fused reduction) as emb.bag sum / mean.
//
//===----------------------------------------------------------------------===//

#include "Matchers.h"

#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::raising;

namespace {

//===----------------------------------------------------------------------===//
// torch-mlir's embedding_bag (sum mode)
//===----------------------------------------------------------------------===//
//
// TorchToLinalg lowers aten._embedding_bag (mode sum, no
// include_last_offset) to one generic over (bag, index, column):
//
//   %r = linalg.generic {indexing_maps = [(d0,d1,d2) -> (d1), (d0,d1,d2) ->
//   (d0),
//                                         (d0,d1,d2) -> (d0,d2)],
//                        iterator_types = [parallel, reduction, parallel]}
//       ins(%indices, %offsets) outs(%zeros) {
//   ^bb0(%in: i64, %off: i64, %out: f32):
//     ... %within = (%off <= index 1) and (index 1 < next offset or len)
//     %e = tensor.extract %weight[index_cast(%in), linalg.index 2]
//     %sum = arith.addf %e, %out
//     linalg.yield (arith.select %within, %sum, %out)
//   }
//   ==>
//   %r = emb.bag sum %weight[%indices] offsets(%offsets) : ... -> tensor<BxD>
//
// The output must start from zeros (linalg.fill 0), and the window
// condition must read the bag's offset, loop index 1 and the offsets
// tensor: a generic that accumulates into other values, or selects by
// anything else, is left unchanged.

/// Whether `v` depends on `target` through ops of the generic's body.
bool dependsOn(Value v, Value target, int depth = 0) {
  if (v == target)
    return true;
  Operation *def = v.getDefiningOp();
  if (!def || depth > 8)
    return false;
  return llvm::any_of(def->getOperands(),
                      [&](Value o) { return dependsOn(o, target, depth + 1); });
}

bool isLinalgIndex(Value v, int64_t dim) {
  auto index = v.getDefiningOp<linalg::IndexOp>();
  return index && index.getDim() == static_cast<uint64_t>(dim);
}

/// Whether `v` reads loop index `dim` (directly or through casts).
bool readsLoopIndex(Value v, int64_t dim, int depth = 0) {
  if (isLinalgIndex(v, dim))
    return true;
  Operation *def = v.getDefiningOp();
  if (!def || depth > 8)
    return false;
  return llvm::any_of(def->getOperands(), [&](Value o) {
    return readsLoopIndex(o, dim, depth + 1);
  });
}

bool isZeroFill(Value init) {
  auto fill = init.getDefiningOp<linalg::FillOp>();
  if (!fill)
    return false;
  Attribute value;
  if (!matchPattern(fill.getInputs()[0], m_Constant(&value)))
    return false;
  auto f = dyn_cast<FloatAttr>(value);
  return f && f.getValue().isZero();
}

/// The loops of a bag's reduction generic: its output is [bag, column],
/// its first input (the indices) [entry] (indicesRank 1) or [bag, entry]
/// (rank 2), and `entry` is the one reduction loop. Any loop order.
/// Whether the output's columns can be the table's whole rows: a bag
/// reads every column, so a generic over fewer (or more) columns than the
/// table has is not one.
bool sameRowWidth(RankedTensorType weight, RankedTensorType out) {
  return weight.isDynamicDim(1) || out.isDynamicDim(1) ||
         weight.getDimSize(1) == out.getDimSize(1);
}

/// A bag generic's read of a whole row: `tensor.extract %weight[
/// index_cast(%in), linalg.index column]` of a 2-D table defined outside,
/// of the output's element type and row width.
struct RowRead {
  Value weight;
  Operation *extract, *cast, *column;
  bool contains(Operation *o) const {
    return o == extract || o == cast || o == column;
  }
};

std::optional<RowRead> matchRowRead(linalg::GenericOp op, Value v, Value in,
                                    unsigned column) {
  auto extract = v ? v.getDefiningOp<tensor::ExtractOp>() : nullptr;
  if (!extract || extract.getIndices().size() != 2)
    return std::nullopt;
  Value weight = extract.getTensor();
  auto wType = dyn_cast<RankedTensorType>(weight.getType());
  auto outType = cast<RankedTensorType>(op->getResult(0).getType());
  auto castOp = extract.getIndices()[0].getDefiningOp<arith::IndexCastOp>();
  Value col = extract.getIndices()[1];
  if (!wType || wType.getRank() != 2 ||
      wType.getElementType() != outType.getElementType() ||
      op.getRegion().isAncestor(weight.getParentRegion()) || !castOp ||
      castOp.getIn() != in || !isLinalgIndex(col, column) ||
      !sameRowWidth(wType, outType))
    return std::nullopt;
  return RowRead{weight, extract, castOp, col.getDefiningOp()};
}

struct BagLoops {
  unsigned bag, entry, column;
};

FailureOr<BagLoops> matchBagLoops(linalg::GenericOp op, int64_t indicesRank,
                                  std::optional<AffineMap> indicesMap = {}) {
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  auto iters = op.getIteratorTypesArray();
  if (op.getNumLoops() != 3 || maps.empty())
    return failure();
  AffineMap outMap = maps.back(),
            idxMap = indicesMap ? *indicesMap : maps.front();
  auto dimOf = [](AffineExpr e) -> std::optional<unsigned> {
    if (auto d = dyn_cast<AffineDimExpr>(e))
      return d.getPosition();
    return std::nullopt;
  };
  if (outMap.getNumResults() != 2 || idxMap.getNumResults() != indicesRank)
    return failure();
  auto bag = dimOf(outMap.getResult(0)), column = dimOf(outMap.getResult(1));
  auto entry = dimOf(idxMap.getResult(indicesRank - 1));
  if (!bag || !column || !entry || *bag == *column || *entry == *bag ||
      *entry == *column)
    return failure();
  if (indicesRank == 2 && dimOf(idxMap.getResult(0)) != bag)
    return failure();
  for (unsigned d = 0; d < 3; ++d)
    if ((iters[d] == utils::IteratorType::reduction) != (d == *entry))
      return failure();
  return BagLoops{*bag, *entry, *column};
}

struct RaiseEmbeddingBagSum : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not an embedding_bag generic");
    Value indices = op.getDpsInputs()[0], offsets = op.getDpsInputs()[1];
    auto idxType = dyn_cast<RankedTensorType>(indices.getType());
    auto offType = dyn_cast<RankedTensorType>(offsets.getType());
    auto outType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
    auto isIndex = [](Type t) {
      return t.isSignlessInteger(32) || t.isSignlessInteger(64);
    };
    if (!idxType || !offType || !outType || idxType.getRank() != 1 ||
        offType.getRank() != 1 || outType.getRank() != 2 ||
        !isIndex(idxType.getElementType()) ||
        !isIndex(offType.getElementType()) ||
        !isEmbFloat(outType.getElementType()))
      return rewriter.notifyMatchFailure(op, "unsupported types");
    MLIRContext *ctx = op.getContext();
    // The loops in any order (IREE's dispatch-creation permutes them): the
    // output [bag, column], the offsets [bag], the indices [entry], the
    // entry loop the one reduction.
    FailureOr<BagLoops> loops = matchBagLoops(op, /*indicesRank=*/1);
    if (failed(loops))
      return rewriter.notifyMatchFailure(op, "not the embedding_bag loops");
    AffineMap offMap = op.getIndexingMapsArray()[1];
    if (offMap.getNumResults() != 1 ||
        offMap.getResult(0) != getAffineDimExpr(loops->bag, ctx))
      return rewriter.notifyMatchFailure(op, "offsets not indexed by bag");
    if (!isZeroFill(op.getDpsInits()[0]))
      return rewriter.notifyMatchFailure(op, "output does not start at zero");

    Block &body = op.getRegion().front();
    Value in = body.getArgument(0), off = body.getArgument(1),
          out = body.getArgument(2);
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    auto select = yield.getValues()[0].getDefiningOp<arith::SelectOp>();
    if (!select || select.getFalseValue() != out)
      return rewriter.notifyMatchFailure(op, "not a masked accumulation");
    auto add = select.getTrueValue().getDefiningOp<arith::AddFOp>();
    if (!add)
      return rewriter.notifyMatchFailure(op, "not a sum");
    Value other = add.getLhs() == out   ? add.getRhs()
                  : add.getRhs() == out ? add.getLhs()
                                        : Value();
    std::optional<RowRead> read = matchRowRead(op, other, in, loops->column);
    if (!read)
      return rewriter.notifyMatchFailure(op, "not a read of weight[in, d]");
    Value weight = read->weight;
    // The bag window: reads the bag's offset, loop index 1 and the offsets.
    Value cond = select.getCondition();
    bool readsOffsets = false;
    body.walk([&](tensor::ExtractOp e) {
      if (e.getTensor() == offsets && dependsOn(cond, e.getResult()))
        readsOffsets = true;
    });
    if (!cond.getDefiningOp<arith::AndIOp>() || !dependsOn(cond, off) ||
        !readsLoopIndex(cond, loops->entry) || !readsOffsets)
      return rewriter.notifyMatchFailure(op, "not the offsets window");

    rewriter.replaceOpWithNewOp<emb::BagOp>(
        op, outType, Type(), emb::BagModeAttr::get(ctx, emb::BagMode::sum),
        weight, indices, offsets, Value(), UnitAttr(), IntegerAttr(),
        emb::QuantizationAttr());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// A gather reduced over the sequence: embedding followed by sum / mean
//===----------------------------------------------------------------------===//
//
// torch-mlir lowers `embedding(ids [B, L]).sum(1)` (or `.mean(1)`) to the
// gather generic, then a [B, L, D] -> [B, D] sum into zeros (then a divide
// by L); IREE fuses the two into one reduction generic that reads
// weight[ids[b, l], d] and adds it to its output. Either is a 2-D bag:
//
//   %r = emb.lookup %w[%ids] ; %s = generic sum over l of %r (into zeros)
//   %s = generic sum over l of %w[index_cast(%ids[b, l]), d] (into zeros)
//     ==> %s = emb.bag sum %w[%ids]
//   %m = generic %s / L (L the static bag length)   (after either)
//     ==> %m = emb.bag mean %w[%ids]
//
// A lookup with a padding row that it keeps is not a bag's (a bag skips
// it); one used elsewhere too stays, and so does any other body.

/// Whether `v` is `a + b` in either order.
bool isSumOf(Value v, Value a, Value b) {
  auto add = v.getDefiningOp<arith::AddFOp>();
  return add && ((add.getLhs() == a && add.getRhs() == b) ||
                 (add.getLhs() == b && add.getRhs() == a));
}

struct RaiseGatherSum : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1 ||
        !isZeroFill(op.getDpsInits()[0]))
      return rewriter.notifyMatchFailure(op, "not a sum into zeros");
    auto outType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
    Value input = op.getDpsInputs()[0];
    auto inType = dyn_cast<RankedTensorType>(input.getType());
    if (!outType || !inType || !isEmbFloat(outType.getElementType()))
      return rewriter.notifyMatchFailure(op, "unsupported types");
    Block &body = op.getRegion().front();
    Value in = body.getArgument(0), out = body.getArgument(1);
    Value yielded = cast<linalg::YieldOp>(body.getTerminator()).getValues()[0];
    Value weight, indices;
    if (auto lookup = input.getDefiningOp<emb::LookupOp>()) {
      // The raised gather [B, L, D], summed over L.
      AffineMap inMap = op.getIndexingMapsArray()[0];
      FailureOr<BagLoops> loops =
          inMap.getNumResults() == 3
              ? matchBagLoops(op, 2, inMap.getMajorSubMap(2))
              : FailureOr<BagLoops>(failure());
      if (failed(loops) ||
          inMap.getResult(2) != getAffineDimExpr(loops->column, getContext()))
        return rewriter.notifyMatchFailure(op, "not a sum over the sequence");
      if (!lookup->hasOneUse() ||
          cast<RankedTensorType>(lookup.getIndices().getType()).getRank() !=
              2 ||
          (lookup.getPaddingIdx() &&
           lookup.getPaddingMode() != emb::PaddingMode::zero))
        return rewriter.notifyMatchFailure(op, "not a bag's lookup");
      if (!isSumOf(yielded, in, out) || body.getOperations().size() != 2)
        return rewriter.notifyMatchFailure(op, "not a plain sum");
      weight = lookup.getWeight();
      indices = lookup.getIndices();
      auto bag = emb::BagOp::create(
          rewriter, op.getLoc(), outType, Type(),
          emb::BagModeAttr::get(getContext(), emb::BagMode::sum), weight,
          indices, Value(), Value(), UnitAttr(), lookup.getPaddingIdxAttr(),
          emb::QuantizationAttr());
      rewriter.replaceOp(op, bag.getOutput());
      rewriter.eraseOp(lookup);
      return success();
    }
    // IREE's fused form: ids [B, L] in, weight[ids[b, l], d] added.
    FailureOr<BagLoops> loops = matchBagLoops(op, 2);
    if (failed(loops) || inType.getRank() != 2 ||
        !(inType.getElementType().isSignlessInteger(32) ||
          inType.getElementType().isSignlessInteger(64)))
      return rewriter.notifyMatchFailure(op, "not a gather over 2-D ids");
    auto add = yielded.getDefiningOp<arith::AddFOp>();
    Value row = !add                  ? Value()
                : add.getRhs() == out ? add.getLhs()
                : add.getLhs() == out ? add.getRhs()
                                      : Value();
    std::optional<RowRead> read = matchRowRead(op, row, in, loops->column);
    if (!read)
      return rewriter.notifyMatchFailure(op, "not a read of weight[in, d]");
    weight = read->weight;
    // Nothing else but bounds checks of the index (IREE keeps torch-mlir's
    // asserts in the fused body); they are kept before the bag.
    SmallVector<cf::AssertOp> asserts;
    llvm::SmallPtrSet<Operation *, 8> checks;
    for (Operation &o : body)
      if (auto a = dyn_cast<cf::AssertOp>(o)) {
        if (failed(collectBoundChecks(a.getArg(), cast<BlockArgument>(in),
                                      weight, checks)))
          return rewriter.notifyMatchFailure(op, "an assert of another check");
        asserts.push_back(a);
      }
    for (Operation &o : body)
      if (!isa<arith::ConstantOp, linalg::YieldOp, cf::AssertOp>(o) &&
          &o != add && !read->contains(&o) && !checks.contains(&o))
        return rewriter.notifyMatchFailure(op, "more than a gather and a sum");
    emitBoundChecks(rewriter, op.getLoc(), weight, input, asserts);
    rewriter.replaceOpWithNewOp<emb::BagOp>(
        op, outType, Type(),
        emb::BagModeAttr::get(getContext(), emb::BagMode::sum), weight, input,
        Value(), Value(), UnitAttr(), IntegerAttr(), emb::QuantizationAttr());
    return success();
  }
};

/// `%bag / L` elementwise, `%bag` a sum of 2-D bags of static length L
/// without padding or weights (each bag divides by its L entries): a mean.
struct RaiseBagMean : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not an elementwise divide");
    auto bag = op.getDpsInputs()[0].getDefiningOp<emb::BagOp>();
    if (!bag || !bag->hasOneUse() || bag.getMode() != emb::BagMode::sum ||
        bag.getOffsets() || bag.getPerSampleWeights() || bag.getPaddingIdx() ||
        bag.getQuantized() || bag.getMaxIndices())
      return rewriter.notifyMatchFailure(op, "not a plain 2-D sum bag");
    auto idxType = cast<RankedTensorType>(bag.getIndices().getType());
    if (idxType.getRank() != 2 || idxType.isDynamicDim(1) ||
        op->getResult(0).getType() != bag.getOutput().getType())
      return rewriter.notifyMatchFailure(op, "no static bag length");
    AffineMap id = AffineMap::getMultiDimIdentityMap(2, getContext());
    if (op.getIndexingMapsArray() != SmallVector<AffineMap>{id, id} ||
        !llvm::all_of(op.getIteratorTypesArray(), [](utils::IteratorType t) {
          return t == utils::IteratorType::parallel;
        }))
      return rewriter.notifyMatchFailure(op, "not elementwise");
    Block &body = op.getRegion().front();
    Value yielded = cast<linalg::YieldOp>(body.getTerminator()).getValues()[0];
    auto div = yielded.getDefiningOp<arith::DivFOp>();
    FloatAttr length;
    if (!div || div.getLhs() != body.getArgument(0) ||
        !matchPattern(div.getRhs(), m_Constant(&length)) ||
        length.getValueAsDouble() != static_cast<double>(idxType.getDimSize(1)))
      return rewriter.notifyMatchFailure(op, "not a divide by the length");
    for (Operation &o : body)
      if (!isa<arith::ConstantOp, linalg::YieldOp>(o) && &o != div)
        return rewriter.notifyMatchFailure(op, "more than a divide");
    rewriter.replaceOpWithNewOp<emb::BagOp>(
        op, bag.getOutput().getType(), Type(),
        emb::BagModeAttr::get(getContext(), emb::BagMode::mean),
        bag.getWeight(), bag.getIndices(), Value(), Value(), UnitAttr(),
        IntegerAttr(), emb::QuantizationAttr());
    rewriter.eraseOp(bag);
    return success();
  }
};

} // namespace

void raising::populateBagPatterns(RewritePatternSet &patterns) {
  patterns.add<RaiseEmbeddingBagSum, RaiseGatherSum, RaiseBagMean>(
      patterns.getContext());
}
