//===- TosaToEmb.cpp - raise tosa.gather lookups to emb.lookup ------------===//
//
// %out = tosa.gather %values, %indices
//     : (tensor<1xKxCxT>, tensor<1xWxI>) -> tensor<1xWxCxT>
//   ==>
// %table = tensor.collapse_shape %values [[0, 1], [2]] : ... into tensor<KxCxT>
// %out = emb.lookup %table[%indices] : tensor<KxCxT>[tensor<1xWxI>] ->
// tensor<1xWxCxT>
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::emb {
#define GEN_PASS_DEF_CONVERTTOSATOEMB
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

bool isEmbFloat(Type t) {
  return t.isF32() || t.isF64() || t.isF16() || t.isBF16();
}

struct RaiseTosaGather : OpRewritePattern<tosa::GatherOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(tosa::GatherOp op,
                                PatternRewriter &rewriter) const override {
    auto values = dyn_cast<RankedTensorType>(op.getValues().getType());
    auto indices = dyn_cast<RankedTensorType>(op.getIndices().getType());
    auto result = dyn_cast<RankedTensorType>(op.getType());
    if (!values || !indices || !result || values.getDimSize(0) != 1)
      return rewriter.notifyMatchFailure(op, "not a single-batch gather");
    if (!isEmbFloat(values.getElementType()) ||
        !(indices.getElementType().isSignlessInteger(32) ||
          indices.getElementType().isSignlessInteger(64)))
      return rewriter.notifyMatchFailure(op, "unsupported element types");
    auto table = RankedTensorType::get(
        {values.getDimSize(1), values.getDimSize(2)}, values.getElementType());
    Value collapsed = tensor::CollapseShapeOp::create(
        rewriter, op.getLoc(), table, op.getValues(),
        ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    rewriter.replaceOpWithNewOp<emb::LookupOp>(
        op, result, collapsed, op.getIndices(), IntegerAttr(),
        emb::PaddingModeAttr::get(rewriter.getContext(),
                                  emb::PaddingMode::keep));
    return success();
  }
};

struct ConvertTosaToEmbPass
    : emb::impl::ConvertTosaToEmbBase<ConvertTosaToEmbPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseTosaGather>(&getContext());
    // One walk, no folding: IR that does not match stays exactly as it was.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
