//===- EmbToLinalg.cpp - emb's forward ops as linalg on tensors -----------===//
//
// The way back to upstream dialects (convert-emb-to-linalg): every forward
// op becomes one linalg.generic on tensors, which stock mlir-opt, IREE or
// any linalg-based flow lowers with its own pipeline. The bodies compute
// what docs/semantics.md §2, §3 and §6.1 define, with the same helpers
// (OpStructure.h) as the emb lowerings, so the padding rule, the bag
// bounds and the mean / sqrtn denominators have one definition.
//
//===----------------------------------------------------------------------===//

#include "Conversion/EmbCommon/LoweringUtils.h"
#include "Conversion/EmbCommon/MultiBagToBags.h"
#include "Conversion/EmbCommon/OpStructure.h"
#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::emb {
#define GEN_PASS_DEF_CONVERTEMBTOLINALG
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::lowering;

namespace {

/// The accumulator type of a table of `element`: f32 for f16 / bf16 (and
/// f32), f64 for f64.
Type accumulatorOf(Type element) {
  return element.isF64() ? element : Float32Type::get(element.getContext());
}

Value extendTo(ImplicitLocOpBuilder &b, Value v, Type to) {
  return v.getType() == to ? v : (Value)arith::ExtFOp::create(b, to, v);
}

Value truncateTo(ImplicitLocOpBuilder &b, Value v, Type to) {
  return v.getType() == to ? v : (Value)arith::TruncFOp::create(b, to, v);
}

Value floatConstant(ImplicitLocOpBuilder &b, Type type, double v) {
  return arith::ConstantOp::create(b, b.getFloatAttr(type, v));
}

/// tensor.empty of `type`, its dynamic sizes from `sizes` (one per dim).
Value emptyOf(ImplicitLocOpBuilder &b, RankedTensorType type,
              ArrayRef<Value> sizes) {
  SmallVector<Value> dynamic;
  for (int64_t k = 0; k < type.getRank(); ++k)
    if (type.isDynamicDim(k))
      dynamic.push_back(sizes[k]);
  return tensor::EmptyOp::create(b, type.getShape(), type.getElementType(),
                                 dynamic);
}

/// A rank-2 (or higher) tensor collapsed to 1-D.
Value flatten(ImplicitLocOpBuilder &b, Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getRank() == 1)
    return v;
  ReassociationIndices all;
  for (int64_t k = 0; k < type.getRank(); ++k)
    all.push_back(k);
  return tensor::CollapseShapeOp::create(b, v,
                                         ArrayRef<ReassociationIndices>{all});
}

// %out = emb.lookup %w[%x] {padding_idx = P, padding_mode = M}
//   ==>
// %out = linalg.generic {maps = [(i.., d) -> (i..), (i.., d) -> (i.., d)],
//                        all parallel} ins(%x) outs(tensor.empty) {
// ^bb0(%xi, %o):
//   %r = arith.index_cast %xi ; %v = tensor.extract %w[%r, linalg.index k]
//   (M = zero: %v = select(%r == P, 0, %v))
//   linalg.yield %v
// }
struct LookupToLinalg final : OpRewritePattern<LookupOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LookupOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value weight = op.getWeight(), indices = op.getIndices();
    auto idxType = cast<RankedTensorType>(indices.getType());
    auto outType = cast<RankedTensorType>(op.getResult().getType());
    int64_t rank = idxType.getRank();
    SmallVector<Value> sizes;
    for (int64_t k = 0; k < rank; ++k)
      sizes.push_back(dimOf(b, indices, k));
    sizes.push_back(dimOf(b, weight, 1));
    Value init = emptyOf(b, outType, sizes);
    MLIRContext *ctx = op.getContext();
    AffineMap identity = AffineMap::getMultiDimIdentityMap(rank + 1, ctx);
    AffineMap ofIndices =
        AffineMap::get(rank + 1, 0, identity.getResults().drop_back(), ctx);
    SmallVector<utils::IteratorType> iterators(rank + 1,
                                               utils::IteratorType::parallel);
    Value pad = op.getPaddingMode() == PaddingMode::zero
                    ? paddingRow(b, op.getPaddingIdx(), weight)
                    : Value();
    auto generic = linalg::GenericOp::create(
        b, TypeRange{outType}, ValueRange{indices}, ValueRange{init},
        ArrayRef<AffineMap>{ofIndices, identity}, iterators,
        [&](OpBuilder &nb, Location loc, ValueRange args) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value r = arith::IndexCastOp::create(ib, ib.getIndexType(), args[0]);
          Value d = linalg::IndexOp::create(ib, rank);
          Value v = tensor::ExtractOp::create(ib, weight, ValueRange{r, d});
          if (pad) {
            Value isPad =
                arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, r, pad);
            v = arith::SelectOp::create(ib, isPad,
                                        floatConstant(ib, v.getType(), 0.0), v);
          }
          linalg::YieldOp::create(ib, v);
        });
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

// %out[, %argmax] = emb.bag MODE %w[%x] offsets(%o) per_sample_weights(%p)
//   ==>
// %out[, %argmax] = linalg.generic {maps = [(b, d) -> (b, d)]*, parallel}
//     outs(tensor.empty [B, D][, tensor.empty [B, D] i64]) {
//   %b = linalg.index 0, %d = linalg.index 1
//   %start, %end = bounds of bag %b    (offsets, or b * L for 2-D indices)
//   %acc, %cnt, %extra = scf.for %j = %start to %end
//       iter_args(0, 0, 0 | -1) {     (extra: weight sum, or the argmax)
//     %r = index_cast %x[%j]
//     scf.if %r != P {                 (with padding_idx only)
//       %v = ext(%w[%r, %d])
//       sum / mean / sqrtn: %acc + %v (* %p[%j]), weight sum + %p | %p^2
//       max: %cnt == 0 | %v > %acc ? (%v, %r) : (%acc, %arg)  (ties: first)
//       %cnt + 1
//     }
//   }
//   mean / sqrtn: %acc / denominator (0 where it is 0)
//   linalg.yield trunc(%acc)[, %arg]
// }
struct BagToLinalg final : OpRewritePattern<BagOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(BagOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getQuantized())
      return rewriter.notifyMatchFailure(op, "a quantised table");
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    BagMode mode = op.getMode();
    Value weight = op.getWeight();
    Value indices = op.getIndices();
    BagStructure bags(b, flatten(b, indices), indices2D(indices),
                      op.getOffsets(), op.getIncludeLastOffset());
    Value psw = op.getPerSampleWeights() ? flatten(b, op.getPerSampleWeights())
                                         : Value();
    Value pad = paddingRow(b, op.getPaddingIdx(), weight);
    auto outType = cast<RankedTensorType>(op.getOutput().getType());
    Type element = outType.getElementType();
    Type acc = accumulatorOf(element);
    bool withArgmax = static_cast<bool>(op.getMaxIndices());
    bool weighted = needsWeightSum(mode, static_cast<bool>(psw));
    SmallVector<Value> sizes{bags.numBags, dimOf(b, weight, 1)};
    SmallVector<Value> inits{emptyOf(b, outType, sizes)};
    SmallVector<Type> resultTypes{outType};
    if (withArgmax) {
      auto mType = cast<RankedTensorType>(op.getMaxIndices().getType());
      inits.push_back(emptyOf(b, mType, sizes));
      resultTypes.push_back(mType);
    }
    AffineMap identity = AffineMap::getMultiDimIdentityMap(2, op.getContext());
    SmallVector<AffineMap> maps(inits.size(), identity);
    SmallVector<utils::IteratorType> iterators(2,
                                               utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        b, resultTypes, ValueRange{}, inits, maps, iterators,
        [&](OpBuilder &nb, Location loc, ValueRange) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value bag = linalg::IndexOp::create(ib, 0);
          Value d = linalg::IndexOp::create(ib, 1);
          auto [start, end] = bags.bounds(ib, bag);
          Type i64 = ib.getI64Type();
          SmallVector<Value> init{floatConstant(ib, acc, 0.0), cIndex(ib, 0)};
          if (weighted)
            init.push_back(floatConstant(ib, acc, 0.0));
          if (withArgmax)
            init.push_back(
                arith::ConstantOp::create(ib, ib.getIntegerAttr(i64, -1)));
          auto loop = scf::ForOp::create(
              ib, start, end, cIndex(ib, 1), init,
              [&](OpBuilder &lb, Location l, Value j, ValueRange state) {
                ImplicitLocOpBuilder eb(l, lb);
                Value r = loadIndex(eb, bags.indices, j);
                auto update = [&](ImplicitLocOpBuilder &ub) {
                  Value v = extendTo(
                      ub,
                      tensor::ExtractOp::create(ub, weight, ValueRange{r, d}),
                      acc);
                  SmallVector<Value> next = llvm::to_vector(state);
                  next[1] = arith::AddIOp::create(ub, state[1], cIndex(ub, 1));
                  if (mode == BagMode::max) {
                    Value first = arith::CmpIOp::create(
                        ub, arith::CmpIPredicate::eq, state[1], cIndex(ub, 0));
                    Value greater = arith::CmpFOp::create(
                        ub, arith::CmpFPredicate::OGT, v, state[0]);
                    Value take = arith::OrIOp::create(ub, first, greater);
                    next[0] = arith::SelectOp::create(ub, take, v, state[0]);
                    if (withArgmax)
                      next.back() = arith::SelectOp::create(
                          ub, take, arith::IndexCastOp::create(ub, i64, r),
                          state.back());
                    return next;
                  }
                  if (!psw) {
                    next[0] = arith::AddFOp::create(ub, state[0], v);
                    return next;
                  }
                  Value w = loadFloat(ub, psw, j, acc);
                  next[0] = arith::AddFOp::create(
                      ub, state[0], arith::MulFOp::create(ub, v, w));
                  if (weighted)
                    next[2] = arith::AddFOp::create(ub, state[2],
                                                    weightSumTerm(ub, mode, w));
                  return next;
                };
                if (!pad) {
                  scf::YieldOp::create(eb, update(eb));
                  return;
                }
                Value live =
                    arith::CmpIOp::create(eb, arith::CmpIPredicate::ne, r, pad);
                auto ifOp = scf::IfOp::create(eb, TypeRange(state), live,
                                              /*withElse=*/true);
                {
                  OpBuilder::InsertionGuard guard(eb);
                  eb.setInsertionPointToStart(ifOp.thenBlock());
                  scf::YieldOp::create(eb, update(eb));
                  eb.setInsertionPointToStart(ifOp.elseBlock());
                  scf::YieldOp::create(eb, state);
                }
                scf::YieldOp::create(eb, ifOp.getResults());
              });
          Value result = loop.getResult(0);
          if (dividesBag(mode))
            result = divideByDenominator(
                ib, result,
                bagDenominator(ib, mode, loop.getResult(1),
                               weighted ? loop.getResult(2) : Value(), acc));
          SmallVector<Value> yields{truncateTo(ib, result, element)};
          if (withArgmax)
            yields.push_back(loop.getResults().back());
          linalg::YieldOp::create(ib, yields);
        });
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

struct ConvertEmbToLinalgPass
    : emb::impl::ConvertEmbToLinalgBase<ConvertEmbToLinalgPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMultiBagDecompositionPatterns(patterns);
    patterns.add<LookupToLinalg, BagToLinalg>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
    // What has no linalg form stays emb: name it, so that a pipeline does
    // not fail later with a legalisation error far from its cause.
    WalkResult left = getOperation()->walk([](Operation *op) {
      if (!isa_and_nonnull<EmbDialect>(op->getDialect()))
        return WalkResult::advance();
      op->emitError() << "convert-emb-to-linalg: '" << op->getName()
                      << "' has no linalg form (forward lookups and bags of "
                         "float tables only)";
      return WalkResult::interrupt();
    });
    if (left.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
