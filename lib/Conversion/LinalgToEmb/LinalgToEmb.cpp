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
  if (!cast || cast.getIn() != in || !index || index.getDim() != k)
    return failure();

  // Nothing else in the body but bounds checks.
  GatherMatch match{weight, {}};
  for (Operation &o : body) {
    if (&o == extract.getOperation() || &o == cast.getOperation() ||
        &o == index.getOperation() || &o == yield.getOperation() ||
        isa<arith::ConstantOp>(o))
      continue;
    if (auto a = dyn_cast<cf::AssertOp>(o)) {
      match.asserts.push_back(a);
      continue;
    }
    auto cmp = dyn_cast<arith::CmpIOp>(o);
    if (cmp && llvm::all_of(cmp->getUsers(),
                            [](Operation *u) { return isa<cf::AssertOp>(u); }))
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

struct RaiseLinalgToEmbPass
    : emb::impl::RaiseLinalgToEmbBase<RaiseLinalgToEmbPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseEmbeddingGather>(&getContext());
    // One walk, no folding: IR that does not match stays exactly as it was.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
