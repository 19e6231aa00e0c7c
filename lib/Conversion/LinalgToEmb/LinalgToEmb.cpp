//===- LinalgToEmb.cpp - raise torch-mlir's linalg gather to emb.lookup ---===//
//
// torch-mlir (TorchToLinalg) lowers aten.embedding to
//
//   %r = linalg.generic {indexing_maps = [(d0..dk) -> (d0..dk-1), identity],
//                        iterator_types = [parallel x (k+1)]}
//       ins(%indices : tensor<...xi64>) outs(%init : tensor<...xDxf32>) {
//   ^bb0(%in: i64, %out: f32):
//     %i = arith.index_cast %in : i64 to index
//     %j = linalg.index k : index
//     %lt = arith.cmpi slt, %i, %V : index                         (optional)
//     cf.assert %lt, "index must be smaller than dim size"          (optional)
//     %ge = arith.cmpi sge, %in, %c0 : i64                          (optional)
//     cf.assert %ge, "index must be larger or equal to 0"           (optional)
//     %e = tensor.extract %weight[%i, %j] : tensor<VxDxf32>
//     linalg.yield %e : f32
//   }
//   ==>
//   scf.for over the indices asserting 0 <= x < V          (if there were
//   asserts) %r = emb.lookup %weight[%indices] : ... -> tensor<...xDxf32>
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::emb {
#define GEN_PASS_DEF_RAISELINALGTOEMB
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

bool isEmbFloat(Type t) {
  return t.isF32() || t.isF64() || t.isF16() || t.isBF16();
}

/// The table of a torch-mlir embedding gather, and its bounds checks.
struct GatherMatch {
  Value weight;
  SmallVector<cf::AssertOp> asserts;
};

/// Whether `v` is the gathered index `in`, or a cast of it.
bool isGatheredIndex(Value v, BlockArgument in) {
  while (Operation *op = v.getDefiningOp()) {
    if (!isa<arith::IndexCastOp, arith::ExtSIOp>(op))
      break;
    v = op->getOperand(0);
  }
  return v == in;
}

/// Whether `v` is the table's row count: its static size, or tensor.dim of
/// it along 0.
bool isRowCount(Value v, Value weight) {
  while (Operation *op = v.getDefiningOp()) {
    if (!isa<arith::IndexCastOp, arith::ExtSIOp>(op))
      break;
    v = op->getOperand(0);
  }
  APInt c;
  auto wType = cast<RankedTensorType>(weight.getType());
  if (matchPattern(v, m_ConstantInt(&c)))
    return !wType.isDynamicDim(0) && c.getSExtValue() == wType.getDimSize(0);
  auto dim = v.getDefiningOp<tensor::DimOp>();
  std::optional<int64_t> d = dim ? dim.getConstantIndex() : std::nullopt;
  return dim && dim.getSource() == weight && d && *d == 0;
}

bool isConstant(Value v, int64_t value) {
  APInt c;
  return matchPattern(v, m_ConstantInt(&c)) && c.getSExtValue() == value;
}

/// Whether `cmp` is true exactly when the index is in its half of [0, V):
/// x < V, x >= 0, x > -1, or x <u V (both at once); either operand order.
bool isBoundCheck(arith::CmpIOp cmp, BlockArgument in, Value weight) {
  using P = arith::CmpIPredicate;
  Value lhs = cmp.getLhs(), rhs = cmp.getRhs();
  P pred = cmp.getPredicate();
  if (!isGatheredIndex(lhs, in)) { // c <op> x: as x <swapped op> c
    std::swap(lhs, rhs);
    switch (pred) {
    case P::sgt: pred = P::slt; break;
    case P::ugt: pred = P::ult; break;
    case P::sle: pred = P::sge; break;
    case P::slt: pred = P::sgt; break;
    default: return false;
    }
    if (!isGatheredIndex(lhs, in))
      return false;
  }
  switch (pred) {
  case P::slt:
  case P::ult:
    return isRowCount(rhs, weight);
  case P::sge:
    return isConstant(rhs, 0);
  case P::sgt:
    return isConstant(rhs, -1);
  default:
    return false;
  }
}

/// Adds to `checks` the ops computing an assert's condition when it is a
/// conjunction (arith.andi) of bound checks of the gathered index.
LogicalResult collectBoundChecks(Value condition, BlockArgument in,
                                 Value weight,
                                 llvm::SmallPtrSetImpl<Operation *> &checks) {
  Operation *op = condition.getDefiningOp();
  if (auto andi = dyn_cast_or_null<arith::AndIOp>(op)) {
    checks.insert(andi);
    return success(succeeded(collectBoundChecks(andi.getLhs(), in, weight,
                                                checks)) &&
                   succeeded(collectBoundChecks(andi.getRhs(), in, weight,
                                                checks)));
  }
  auto cmp = dyn_cast_or_null<arith::CmpIOp>(op);
  if (!cmp || !isBoundCheck(cmp, in, weight))
    return failure();
  checks.insert(cmp);
  for (Value operand : cmp->getOperands()) // the casts of x and of V
    for (Operation *def = operand.getDefiningOp();
         def && isa<arith::IndexCastOp, arith::ExtSIOp>(def);
         def = def->getOperand(0).getDefiningOp())
      checks.insert(def);
  return success();
}

FailureOr<GatherMatch> matchGather(linalg::GenericOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1)
    return failure();
  auto idxType = dyn_cast<RankedTensorType>(op.getDpsInputs()[0].getType());
  auto outType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  if (!idxType || !outType || outType.getRank() != idxType.getRank() + 1 ||
      !isEmbFloat(outType.getElementType()) ||
      !(idxType.getElementType().isSignlessInteger(32) ||
        idxType.getElementType().isSignlessInteger(64)))
    return failure();
  int64_t k = idxType.getRank();
  if (!llvm::all_of(op.getIteratorTypesArray(), [](utils::IteratorType t) {
        return t == utils::IteratorType::parallel;
      }))
    return failure();
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  MLIRContext *ctx = op.getContext();
  if (maps[1] != AffineMap::getMultiDimIdentityMap(k + 1, ctx) ||
      maps[0] !=
          AffineMap::getMultiDimIdentityMap(k + 1, ctx).getMajorSubMap(k))
    return failure();

  Block &body = op.getRegion().front();
  BlockArgument in = body.getArgument(0), out = body.getArgument(1);
  if (!out.use_empty())
    return failure();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto extract = yield.getValues()[0].getDefiningOp<tensor::ExtractOp>();
  if (!extract || extract.getIndices().size() != 2)
    return failure();
  Value weight = extract.getTensor();
  auto wType = dyn_cast<RankedTensorType>(weight.getType());
  if (!wType || wType.getElementType() != outType.getElementType() ||
      weight.getParentRegion()->isAncestor(&op.getRegion()) == false)
    return failure();
  if (wType.getRank() != 2 ||
      (!wType.isDynamicDim(1) && !outType.isDynamicDim(k) &&
       wType.getDimSize(1) != outType.getDimSize(k)))
    return failure();
  auto cast = extract.getIndices()[0].getDefiningOp<arith::IndexCastOp>();
  auto index = extract.getIndices()[1].getDefiningOp<linalg::IndexOp>();
  if (!cast || cast.getIn() != in || !index ||
      index.getDim() != static_cast<uint64_t>(k))
    return failure();

  // Nothing else in the body but bounds checks of that index, each one of
  // 0 <= x, x < V (or both, as one unsigned compare), in any of their usual
  // forms: one assert per compare (torch-mlir), or compares joined by
  // arith.andi under one assert (IREE). A check of any other bound is not
  // an embedding's: the generic is left alone.
  GatherMatch match{weight, {}};
  llvm::SmallPtrSet<Operation *, 8> checks;
  for (Operation &o : body)
    if (auto a = dyn_cast<cf::AssertOp>(o)) {
      if (failed(collectBoundChecks(a.getArg(), in, weight, checks)))
        return failure();
      match.asserts.push_back(a);
    }
  for (Operation &o : body) {
    if (&o == extract.getOperation() || &o == cast.getOperation() ||
        &o == index.getOperation() || &o == yield.getOperation() ||
        isa<arith::ConstantOp, cf::AssertOp>(o) || checks.contains(&o))
      continue;
    return failure();
  }
  return match;
}

struct RaiseEmbeddingGather : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<GatherMatch> match = matchGather(op);
    if (failed(match))
      return rewriter.notifyMatchFailure(op, "not an embedding gather");
    Location loc = op.getLoc();
    Value indices = op.getDpsInputs()[0];
    auto idxType = cast<RankedTensorType>(indices.getType());

    if (!match->asserts.empty()) {
      // Keep torch-mlir's bounds checks: 0 <= x < V for every index.
      SmallVector<std::string> messages;
      for (cf::AssertOp a : match->asserts)
        messages.push_back(a.getMsg().str());
      std::string tooLarge =
          messages.size() > 0 ? messages[0] : "index out of range";
      std::string negative = messages.size() > 1 ? messages[1] : tooLarge;
      Value v = tensor::DimOp::create(rewriter, loc, match->weight, 0);
      Value flat = indices;
      if (idxType.getRank() != 1) {
        int64_t n = idxType.hasStaticShape() ? idxType.getNumElements()
                                             : ShapedType::kDynamic;
        auto flatType = RankedTensorType::get({n}, idxType.getElementType());
        ReassociationIndices all;
        for (int64_t i = 0; i < idxType.getRank(); ++i)
          all.push_back(i);
        flat = idxType.getRank() == 0
                   ? (Value)tensor::ExpandShapeOp::create(
                         rewriter, loc, flatType, indices,
                         ArrayRef<ReassociationIndices>{})
                   : (Value)tensor::CollapseShapeOp::create(
                         rewriter, loc, flatType, indices,
                         ArrayRef<ReassociationIndices>{all});
      }
      Value c0 = arith::ConstantIndexOp::create(rewriter, loc, 0);
      Value c1 = arith::ConstantIndexOp::create(rewriter, loc, 1);
      Value n = tensor::DimOp::create(rewriter, loc, flat, 0);
      scf::ForOp::create(
          rewriter, loc, c0, n, c1, ValueRange{},
          [&](OpBuilder &b, Location l, Value p, ValueRange) {
            Value x = tensor::ExtractOp::create(b, l, flat, p);
            Value xi = arith::IndexCastOp::create(b, l, b.getIndexType(), x);
            Value lt =
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, xi, v);
            cf::AssertOp::create(b, l, lt, tooLarge);
            Value zero = arith::ConstantOp::create(
                b, l, b.getIntegerAttr(x.getType(), 0));
            Value ge =
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, x, zero);
            cf::AssertOp::create(b, l, ge, negative);
            scf::YieldOp::create(b, l);
          });
    }
    rewriter.replaceOpWithNewOp<emb::LookupOp>(
        op, op->getResult(0).getType(), match->weight, indices, IntegerAttr(),
        emb::PaddingModeAttr::get(rewriter.getContext(),
                                  emb::PaddingMode::keep));
    return success();
  }
};

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
    AffineExpr d0 = getAffineDimExpr(0, ctx), d1 = getAffineDimExpr(1, ctx),
               d2 = getAffineDimExpr(2, ctx);
    SmallVector<AffineMap> want = {AffineMap::get(3, 0, {d1}, ctx),
                                   AffineMap::get(3, 0, {d0}, ctx),
                                   AffineMap::get(3, 0, {d0, d2}, ctx)};
    auto iters = op.getIteratorTypesArray();
    if (op.getIndexingMapsArray() != want || iters.size() != 3 ||
        iters[0] != utils::IteratorType::parallel ||
        iters[1] != utils::IteratorType::reduction ||
        iters[2] != utils::IteratorType::parallel)
      return rewriter.notifyMatchFailure(op, "not the embedding_bag loops");
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
    auto extract = other ? other.getDefiningOp<tensor::ExtractOp>() : nullptr;
    if (!extract || extract.getIndices().size() != 2)
      return rewriter.notifyMatchFailure(op, "not a row read");
    Value weight = extract.getTensor();
    auto wType = dyn_cast<RankedTensorType>(weight.getType());
    auto cast = extract.getIndices()[0].getDefiningOp<arith::IndexCastOp>();
    if (!wType || wType.getRank() != 2 ||
        wType.getElementType() != outType.getElementType() ||
        op.getRegion().isAncestor(weight.getParentRegion()) || !cast ||
        cast.getIn() != in || !isLinalgIndex(extract.getIndices()[1], 2))
      return rewriter.notifyMatchFailure(op, "not a read of weight[in, d2]");
    // The bag window: reads the bag's offset, loop index 1 and the offsets.
    Value cond = select.getCondition();
    bool readsOffsets = false;
    body.walk([&](tensor::ExtractOp e) {
      if (e.getTensor() == offsets && dependsOn(cond, e.getResult()))
        readsOffsets = true;
    });
    if (!cond.getDefiningOp<arith::AndIOp>() || !dependsOn(cond, off) ||
        !readsLoopIndex(cond, 1) || !readsOffsets)
      return rewriter.notifyMatchFailure(op, "not the offsets window");

    rewriter.replaceOpWithNewOp<emb::BagOp>(
        op, outType, Type(), emb::BagModeAttr::get(ctx, emb::BagMode::sum),
        weight, indices, offsets, Value(), UnitAttr(), IntegerAttr(),
        emb::QuantizationAttr());
    return success();
  }
};

struct RaiseLinalgToEmbPass
    : emb::impl::RaiseLinalgToEmbBase<RaiseLinalgToEmbPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseEmbeddingGather, RaiseEmbeddingBagSum>(&getContext());
    // One walk, no folding: IR that does not match stays exactly as it was.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
