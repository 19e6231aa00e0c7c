//===- DenseGrad.cpp - dense gradients to scf -----------------------------===//
//
// emb.lookup_grad, emb.bag_grad (sum / mean / sqrtn, and max) and
// emb.bag_psw_grad:
// a stable radix sort of the positions by row, then one f32 accumulation
// per row in input order (SortAndScan.h): deterministic, no V-sized
// scratch (docs/backward-design.md).
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"
#include "SortAndScan.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::cpu_lowering;

namespace {

// %gw = emb.lookup_grad %g[%x] {num_embeddings = V, ...}
//   ==>  sortByRow(flat x) ; accumulateRuns(grad rows = flat g, source =
//   position)
struct LookupGradToSCF final : CPUPattern<LookupGradOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(LookupGradOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    int64_t numEmbeddings = op.getNumEmbeddings();
    Value flatIdx = flatten(b, op.getIndices());
    Value grad =
        gradientAsRows(b, op.getGrad(),
                       cast<RankedTensorType>(flatIdx.getType()).getDimSize(0));
    Value pad = staticPaddingRow(b, op.getPaddingIdx(), numEmbeddings);
    SortedRows sorted = sortByRow(b, flatIdx, pad, numEmbeddings,
                                  op.getRowOffset(), op.getRowCount());
    Value gw = accumulateRuns(b, config, sorted, grad, Value(), Value(),
                              numEmbeddings, dim, op.getScaleGradByFreq(),
                              op.getGradScale().convertToDouble(),
                              gType.getElementType(), op.getRowCount());
    rewriter.replaceOp(op, castToResult(b, gw, op.getType()));
    return success();
  }
};

// %gw = emb.bag_grad max %g[%x] max_indices(%m), f32 / f64
//   ==> zero gW, then gW[m[b, d], d] += g[b, d] in bag order.
struct BagGradMaxScatterToSCF final : CPUPattern<BagGradOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagGradOp op,
                                PatternRewriter &rewriter) const override {
    Type element =
        cast<RankedTensorType>(op.getGrad().getType()).getElementType();
    if (op.getMode() != BagMode::max || element != accumulatorType(element))
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    int64_t dim = gType.getDimSize(1);
    if (ShapedType::isDynamic(dim))
      return op.emitOpError("CPU lowering needs a static embedding_dim");
    int64_t numEmbeddings = op.getNumEmbeddings();
    // f32 / f64: gW is its own accumulator. Zero it, then add the elements
    // in bag order: the same order, hence the same bits, every time.
    //   for b, d: if m[b, d] >= 0: gW[m[b, d], d] += g[b, d] * grad_scale
    Value rowOffset = op.getRowOffset(), rowCount = op.getRowCount();
    Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
    Value gw, numRows;
    if (rowCount) {
      gw = tensor::EmptyOp::create(b,
                                   ArrayRef<int64_t>{ShapedType::kDynamic, dim},
                                   element, ValueRange{rowCount});
      numRows = rowCount;
    } else {
      gw = tensor::EmptyOp::create(b, ArrayRef<int64_t>{numEmbeddings, dim},
                                   element);
      numRows = cIndex(b, numEmbeddings);
      rowOffset = c0;
    }
    Value first64 = arith::IndexCastOp::create(b, b.getI64Type(), rowOffset);
    Value count64 = arith::IndexCastOp::create(b, b.getI64Type(), numRows);
    gw = scf::ForOp::create(
             b, c0, numRows, c1, ValueRange{gw},
             [&](OpBuilder &nb, Location loc, Value r, ValueRange it) {
               ImplicitLocOpBuilder ib(loc, nb);
               auto zero = [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                               int64_t lanes,
                               ValueRange t) -> SmallVector<Value> {
                 return {writeRow(
                     db, splat(db, VectorType::get({lanes}, element), 0.0),
                     t[0], r, d0)};
               };
               scf::YieldOp::create(ib, forEachDBlock(ib, dim, bytesOf(element),
                                                      config, it[0], zero));
             })
             .getResult(0);
    Value numBags = tensor::DimOp::create(b, op.getGrad(), 0);
    Value scale = arith::ConstantOp::create(
        b, b.getFloatAttr(element, op.getGradScale().convertToDouble()));
    gw =
        scf::ForOp::create(
            b, c0, numBags, c1, ValueRange{gw},
            [&](OpBuilder &nb, Location loc, Value bag, ValueRange it) {
              ImplicitLocOpBuilder ib(loc, nb);
              auto inner = scf::ForOp::create(
                  ib, cIndex(ib, 0), cIndex(ib, dim), cIndex(ib, 1), it,
                  [&](OpBuilder &db, Location dl, Value d, ValueRange t) {
                    ImplicitLocOpBuilder xb(dl, db);
                    Value absRow = tensor::ExtractOp::create(
                        xb, op.getMaxIndices(), ValueRange{bag, d});
                    // -1 (nothing) and rows outside the window fall out of
                    // [0, count) after the shift.
                    Value row = arith::SubIOp::create(xb, absRow, first64);
                    Value any = arith::AndIOp::create(
                        xb,
                        arith::CmpIOp::create(xb, arith::CmpIPredicate::sge,
                                              absRow, c64(xb, 0)),
                        arith::AndIOp::create(
                            xb,
                            arith::CmpIOp::create(xb, arith::CmpIPredicate::sge,
                                                  row, c64(xb, 0)),
                            arith::CmpIOp::create(xb, arith::CmpIPredicate::slt,
                                                  row, count64)));
                    auto add = scf::IfOp::create(
                        xb, any,
                        [&](OpBuilder &ab, Location al) {
                          ImplicitLocOpBuilder yb(al, ab);
                          Value r = arith::IndexCastOp::create(
                              yb, yb.getIndexType(), row);
                          Value old = tensor::ExtractOp::create(
                              yb, t[0], ValueRange{r, d});
                          Value g = tensor::ExtractOp::create(
                              yb, op.getGrad(), ValueRange{bag, d});
                          Value sum = arith::AddFOp::create(
                              yb, old, arith::MulFOp::create(yb, g, scale));
                          scf::YieldOp::create(
                              yb, ValueRange{tensor::InsertOp::create(
                                      yb, sum, t[0], ValueRange{r, d})});
                        },
                        [&](OpBuilder &eb, Location el) {
                          scf::YieldOp::create(eb, el, t);
                        });
                    scf::YieldOp::create(xb, add.getResults());
                  });
              scf::YieldOp::create(ib, inner.getResults());
            })
            .getResult(0);
    rewriter.replaceOp(op, castToResult(b, gw, op.getType()));
    return success();
  }
};

// %gw = emb.bag_grad max %g[%x] max_indices(%m), f16 / bf16
//   ==> the sort and accumulation of the sum over the B*D elements of %g
//       (f32 sums, one rounding), keyed by the element of gW they add to:
//       key(b, d) = m[b, d] * D + d (-1 in m: no contribution), as a
//       [V*D, 1] gradient reshaped to [V, D]. The contributions to one
//       element are summed in bag order.
struct BagGradMaxSortedToSCF final : CPUPattern<BagGradOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagGradOp op,
                                PatternRewriter &rewriter) const override {
    Type element =
        cast<RankedTensorType>(op.getGrad().getType()).getElementType();
    if (op.getMode() != BagMode::max || element == accumulatorType(element))
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    int64_t dim = gType.getDimSize(1);
    if (ShapedType::isDynamic(dim))
      return op.emitOpError("CPU lowering needs a static embedding_dim");
    int64_t numEmbeddings = op.getNumEmbeddings();
    // f16 / bf16: accumulate in f32 through the sort, one rounding per element.
    auto flatType = [&](Type t) {
      return RankedTensorType::get({ShapedType::kDynamic}, t);
    };
    SmallVector<ReassociationIndices> all = {{0, 1}};
    // Dynamic leading sizes, so that the collapsed shapes are dynamic too.
    auto dynRows = [&](Value v, Type elt) -> Value {
      auto t = RankedTensorType::get({ShapedType::kDynamic, dim}, elt);
      return v.getType() == t ? v : (Value)tensor::CastOp::create(b, t, v);
    };
    Value g = tensor::CollapseShapeOp::create(
        b, flatType(element), dynRows(op.getGrad(), element), all);
    Value n = tensor::DimOp::create(b, g, 0);
    Value gRows = tensor::ExpandShapeOp::create(
        b, RankedTensorType::get({ShapedType::kDynamic, 1}, element), g, all,
        ArrayRef<OpFoldResult>{n, b.getIndexAttr(1)});
    Value m = tensor::CollapseShapeOp::create(
        b, flatType(b.getI64Type()),
        dynRows(op.getMaxIndices(), b.getI64Type()), all);
    Value keys0 =
        tensor::EmptyOp::create(b, ArrayRef<int64_t>{ShapedType::kDynamic},
                                b.getI64Type(), ValueRange{n});
    Value keys =
        scf::ForOp::create(
            b, cIndex(b, 0), n, cIndex(b, 1), ValueRange{keys0},
            [&](OpBuilder &nb, Location loc, Value e, ValueRange it) {
              ImplicitLocOpBuilder ib(loc, nb);
              Value row = tensor::ExtractOp::create(ib, m, e);
              Value d = arith::IndexCastOp::create(
                  ib, ib.getI64Type(),
                  arith::RemUIOp::create(ib, e, cIndex(ib, dim)));
              Value key = arith::AddIOp::create(
                  ib, arith::MulIOp::create(ib, row, c64(ib, dim)), d);
              Value none = arith::CmpIOp::create(ib, arith::CmpIPredicate::slt,
                                                 row, c64(ib, 0));
              key = arith::SelectOp::create(ib, none, c64(ib, -1), key);
              scf::YieldOp::create(
                  ib, ValueRange{tensor::InsertOp::create(ib, key, it[0], e)});
            })
            .getResult(0);
    Value elemOffset, elemCount;
    if (op.getRowOffset()) {
      Value d = cIndex(b, dim);
      elemOffset = arith::MulIOp::create(b, op.getRowOffset(), d);
      elemCount = arith::MulIOp::create(b, op.getRowCount(), d);
    }
    SortedRows sorted = sortByRow(b, keys, cIndex(b, -1), numEmbeddings * dim,
                                  elemOffset, elemCount);
    Value gw = accumulateRuns(
        b, config, sorted, gRows, Value(), Value(), numEmbeddings * dim, 1,
        /*byFreq=*/false, op.getGradScale().convertToDouble(), element,
        elemCount);
    int64_t rows = elemCount ? ShapedType::kDynamic : numEmbeddings;
    int64_t elems = elemCount ? ShapedType::kDynamic : numEmbeddings * dim;
    Value flat = tensor::CollapseShapeOp::create(
        b, RankedTensorType::get({elems}, element), gw, all);
    SmallVector<OpFoldResult> shape{elemCount ? OpFoldResult(op.getRowCount())
                                              : b.getIndexAttr(numEmbeddings),
                                    b.getIndexAttr(dim)};
    Value result = tensor::ExpandShapeOp::create(
        b, RankedTensorType::get({rows, dim}, element), flat, all, shape);
    rewriter.replaceOp(op, castToResult(b, result, op.getType()));
    return success();
  }
};

// %gw = emb.bag_grad sum|mean|sqrtn %g[%x] offsets(...) per_sample_weights(...)
//   ==>  per position j: source[j] = bag(j), factor[j] = psw_j /
//        denominator(bag(j)) (mean, sqrtn), then sortByRow + accumulateRuns
//        over the bag gradients.
struct BagGradToSCF final : CPUPattern<BagGradOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagGradOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getMode() == BagMode::max)
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    int64_t dim = gType.getDimSize(1);
    if (ShapedType::isDynamic(dim))
      return op.emitOpError("CPU lowering needs a static embedding_dim");
    Type element = gType.getElementType();
    int64_t numEmbeddings = op.getNumEmbeddings();
    Value flat = flatten(b, op.getIndices());
    Value psw = op.getPerSampleWeights() ? flatten(b, op.getPerSampleWeights())
                                         : Value();
    Value pad = staticPaddingRow(b, op.getPaddingIdx(), numEmbeddings);
    auto [source, factor] = bagPositions(
        b, op.getIndices(), flat, op.getOffsets(), psw,
        op.getIncludeLastOffset(), op.getMode(), pad, accumulatorType(element));
    SortedRows sorted = sortByRow(b, flat, pad, numEmbeddings,
                                  op.getRowOffset(), op.getRowCount());
    Value gw = accumulateRuns(b, config, sorted, op.getGrad(), source, factor,
                              numEmbeddings, dim, op.getScaleGradByFreq(),
                              op.getGradScale().convertToDouble(), element,
                              op.getRowCount());
    rewriter.replaceOp(op, castToResult(b, gw, op.getType()));
    return success();
  }
};

// %gp = emb.bag_psw_grad %g, %w[%x] offsets(...)
//   ==>
// for each bag b, for each entry j of b:
//   %gp[j] = x_j == P ? 0 : dot(%g[b, :], %w[x_j, :])   (f32, f64 for f64)
// (for 2-D indices, %gp[b, j - b*L]).
struct BagPswGradToSCF final : CPUPattern<BagPswGradOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagPswGradOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value weight = op.getWeight();
    FailureOr<int64_t> staticD = staticDim(op, weight, "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    auto wType = cast<RankedTensorType>(weight.getType());
    Type element = wType.getElementType();
    Type accType = accumulatorType(element);
    auto idxType = cast<RankedTensorType>(op.getIndices().getType());
    bool twoD = idxType.getRank() == 2;
    bool includeLast = op.getIncludeLastOffset();
    Value flat = flatten(b, op.getIndices());
    Value pad = paddingRow(b, op.getPaddingIdx(), weight);
    BagStructure bags(b, flat, indices2D(op.getIndices()), op.getOffsets(),
                      includeLast);
    Value numBags = bags.numBags;
    // The result has the shape of the indices; it is written entry by entry
    // (no reshape, so that bufferisation writes into the destination).
    auto resultType = cast<RankedTensorType>(op.getType());
    SmallVector<Value> dynSizes;
    for (int64_t i = 0; i < resultType.getRank(); ++i)
      if (resultType.isDynamicDim(i))
        dynSizes.push_back(tensor::DimOp::create(b, op.getIndices(), i));
    Value init = emptyLike(b, resultType, dynSizes);
    Value c1 = cIndex(b, 1);
    auto loop = scf::ForOp::create(
        b, cIndex(b, 0), numBags, c1, ValueRange{init},
        [&](OpBuilder &nb, Location loc, Value bag, ValueRange it) {
          ImplicitLocOpBuilder ib(loc, nb);
          auto bounds = bags.bounds(ib, bag);
          Value start = bounds.first, end = bounds.second;
          auto inner = scf::ForOp::create(
              ib, start, end, c1, it,
              [&](OpBuilder &jb, Location jl, Value j, ValueRange t) {
                ImplicitLocOpBuilder xb(jl, jb);
                Value r = loadIndex(xb, flat, j);
                // The blocks' dot products, summed left to right.
                auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                                 int64_t lanes,
                                 ValueRange sum) -> SmallVector<Value> {
                  Value g = readRow(db, op.getGrad(), bag, d0, lanes, accType);
                  Value w = readRow(db, weight, r, d0, lanes, accType);
                  Value part = vector::ReductionOp::create(
                      db, vector::CombiningKind::ADD,
                      arith::MulFOp::create(db, g, w));
                  return {arith::AddFOp::create(db, sum[0], part)};
                };
                Value acc = arith::ConstantOp::create(
                    xb, xb.getFloatAttr(accType, 0.0));
                acc =
                    forEachDBlock(xb, dim, bytesOf(accType), config, acc, block,
                                  0, cpu::kReductionBlocksPerIteration)[0];
                if (pad) {
                  Value isPad = arith::CmpIOp::create(
                      xb, arith::CmpIPredicate::eq, r, pad);
                  acc = arith::SelectOp::create(
                      xb, isPad,
                      arith::ConstantOp::create(xb,
                                                xb.getFloatAttr(accType, 0.0)),
                      acc);
                }
                if (accType != element)
                  acc = arith::TruncFOp::create(xb, element, acc);
                SmallVector<Value> at{j};
                if (twoD)
                  at = {bag, arith::SubIOp::create(xb, j, start)};
                scf::YieldOp::create(xb, ValueRange{tensor::InsertOp::create(
                                             xb, acc, t[0], at)});
              });
          scf::YieldOp::create(ib, inner.getResults());
        });
    rewriter.replaceOp(op, loop.getResult(0));
    return success();
  }
};

} // namespace

void mlir::emb::cpu_lowering::populateDenseGradPatterns(
    RewritePatternSet &patterns, const cpu::CPULoweringConfig &config) {
  patterns.add<LookupGradToSCF, BagGradToSCF, BagGradMaxScatterToSCF,
               BagGradMaxSortedToSCF, BagPswGradToSCF>(patterns.getContext(),
                                                       config);
}
