//===- MultiBagToBags.cpp - emb.multi_bag as one emb.bag per table --------===//

#include "Conversion/EmbCommon/MultiBagToBags.h"
#include "Conversion/EmbCommon/LoweringUtils.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::lowering;

namespace {

// %out = emb.multi_bag %t0, ..., %tT-1 [%x] offsets(%o) bags(%first, %n)
//   ==>
// B = (dim(%o) - 1) / T; without bags(): %first = 0, %n = B
// for each table t (D_t columns from c_t = sum_{s<t} D_s):
//   %o_t = tensor.extract_slice %o[t * B + %first] [%n + 1] [1]
//   %r_t = emb.bag mode_t %t_t[%x] offsets(%o_t) per_sample_weights(%p)
//            {include_last_offset, padding_idx = P_t}
//   %out = tensor.insert_slice %r_t into %out[0, c_t] [%n, D_t] [1, 1]
struct MultiBagToBags final : OpRewritePattern<MultiBagOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MultiBagOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    int64_t numTables = op.getTables().size();
    Value offsets = op.getOffsets();
    Value numOffsets = tensor::DimOp::create(b, offsets, 0);
    Value numBags = arith::DivUIOp::create(
        b, arith::SubIOp::create(b, numOffsets, cIndex(b, 1)),
        cIndex(b, numTables));
    Value first = op.getBagOffset() ? op.getBagOffset() : cIndex(b, 0);
    Value count = op.getBagCount() ? op.getBagCount() : numBags;
    Value countPlusOne = arith::AddIOp::create(b, count, cIndex(b, 1));

    auto outType = op.getOutput().getType();
    Type element = outType.getElementType();
    int64_t rows = outType.getDimSize(0);
    Value out = tensor::EmptyOp::create(
        b, outType.getShape(), element,
        outType.isDynamicDim(0) ? ValueRange{count} : ValueRange{});
    auto offsetsType = RankedTensorType::get(
        {ShapedType::kDynamic},
        cast<RankedTensorType>(offsets.getType()).getElementType());
    int64_t column = 0;
    for (auto [t, table] : llvm::enumerate(op.getTables())) {
      int64_t dim = cast<RankedTensorType>(table.getType()).getDimSize(1);
      Value start = arith::AddIOp::create(
          b,
          arith::MulIOp::create(b, cIndex(b, static_cast<int64_t>(t)),
                                numBags),
          first);
      Value slice = tensor::ExtractSliceOp::create(
          b, offsetsType, offsets, ValueRange{start}, ValueRange{countPlusOne},
          ValueRange{}, b.getDenseI64ArrayAttr({ShapedType::kDynamic}),
          b.getDenseI64ArrayAttr({ShapedType::kDynamic}),
          b.getDenseI64ArrayAttr({1}));
      int64_t pad = op.getPaddingIdx()[t];
      auto bag = BagOp::create(
          b, RankedTensorType::get({rows, dim}, element), Type(),
          cast<BagModeAttr>(op.getModes()[t]), table, op.getIndices(), slice,
          op.getPerSampleWeights(), b.getUnitAttr(),
          pad >= 0 ? b.getI64IntegerAttr(pad) : IntegerAttr(),
          QuantizationAttr());
      SmallVector<OpFoldResult> at{b.getIndexAttr(0), b.getIndexAttr(column)};
      SmallVector<OpFoldResult> sizes{
          outType.isDynamicDim(0) ? OpFoldResult(count)
                                  : OpFoldResult(b.getIndexAttr(rows)),
          b.getIndexAttr(dim)};
      SmallVector<OpFoldResult> strides{b.getIndexAttr(1), b.getIndexAttr(1)};
      out = tensor::InsertSliceOp::create(b, bag.getOutput(), out, at, sizes,
                                          strides);
      column += dim;
    }
    rewriter.replaceOp(op, out);
    return success();
  }
};

} // namespace

void mlir::emb::lowering::populateMultiBagDecompositionPatterns(
    RewritePatternSet &patterns) {
  patterns.add<MultiBagToBags>(patterns.getContext());
}
