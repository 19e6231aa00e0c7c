//===- DeterministicGrad.cpp - ordered dense gradients on the GPU
//-----------===//
//
// emb.lookup_grad and emb.bag_grad with `deterministic`: the entries sorted
// by row (a stable radix sort), then one ordered sum per row
// (SortAndScan.h); bit-identical to the host kernels.
//
//===----------------------------------------------------------------------===//
#include "PopulatePatterns.h"
#include "SortAndScan.h"

#include <cmath>

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::gpu_lowering;

namespace {

// %gw = emb.lookup_grad %g[%x] rows(f, n) {deterministic, ...}
//   ==>
// keys[e] = x[e] - f (n for padding / other windows), vals[e] = e
// stable radix sort by key
// a thread group per row r of [0, n):
//   [lo, hi) = the entries of r;  for each chunk c of the lane:
//     acc = sum over k in [lo, hi) of g[vals[k], c..]
//     gw[r, c..] = round(acc * (s (/ (hi - lo))))
struct LookupGradDeterministicToGPU final : GPUPattern<LookupGradOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(LookupGradOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getDeterministic()) // DenseGrad.cpp: atomics
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    Type element = gType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    double scale = op.getGradScale().convertToDouble();
    Type accElement = accumulatorType(element);
    auto vecType =
        VectorType::get({rowLayout(dim, element, config).first}, element);

    LookupGradInputs in = lookupGradInputs(b, op);
    Value grad = in.grad, indices = in.indices, n = in.n, first = in.first,
          count = in.count, pad = in.pad;
    KernelResults results(b, in.resultInit);
    SortedEntries sorted(b, config, n, count, [&](Value keys, Value vals) {
      launchRows(b, config, n, 1,
                 [&](ImplicitLocOpBuilder &ib, Value e, Value) {
                   storeEntryKey(ib, loadIndex(ib, indices, e), e, first, count,
                                 pad, keys, vals);
                 });
    });
    sumSegments(b, sorted, results.buffers[0], count, element, dim, scale,
                op.getScaleGradByFreq(),
                [&](ImplicitLocOpBuilder &lb, Value e, Value c) {
                  return scaleRow(lb,
                                  loadRow(lb, vecType, grad, ValueRange{e, c}),
                                  accElement, 1.0, Value());
                });
    sorted.free(b);
    results.replace(rewriter, op);
    return success();
  }
};

/// emb.bag_grad max {deterministic}: an entry per (bag, column)
/// e = bag * D + col, keyed by (max_indices[bag, col] - f) * D + col (the
/// sentinel n * D for -1 and other windows), sorted; then a thread per (row,
/// col) of `out` sums s * g[e / D, col] over its bags in order.
void sortedMaxGrad(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
                   Value grad, Value maxIdx, const BagStructure &form,
                   Value first, Value count, Value out, Type element,
                   int64_t dim, double scale) {
  Type accElement = accumulatorType(element);
  Value d = cIndex(b, dim);
  Value n = arith::MulIOp::create(b, form.numBags, d);
  Value sentinel = arith::MulIOp::create(b, count, d);
  SortedEntries sorted(b, config, n, sentinel, [&](Value keys, Value vals) {
    launchRows(b, config, n, 1, [&](ImplicitLocOpBuilder &ib, Value e, Value) {
      Value bag = arith::DivUIOp::create(ib, e, cIndex(ib, dim));
      Value col = arith::RemUIOp::create(ib, e, cIndex(ib, dim));
      Value local =
          arith::SubIOp::create(ib, loadIndex(ib, maxIdx, bag, col), first);
      // -1 (an empty bag) is far outside every window, as unsigned.
      Value ok =
          arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, local, count);
      Value key = arith::AddIOp::create(
          ib, arith::MulIOp::create(ib, local, cIndex(ib, dim)), col);
      storeI64(ib, arith::SelectOp::create(ib, ok, key, sentinel), keys, e);
      storeI64(ib, e, vals, e);
    });
  });
  launchRows(
      b, config, sentinel, 1, [&](ImplicitLocOpBuilder &ib, Value item, Value) {
        Value row = arith::DivUIOp::create(ib, item, cIndex(ib, dim));
        Value col = arith::RemUIOp::create(ib, item, cIndex(ib, dim));
        auto [lo, hi] = sorted.segment(ib, item);
        Value zero =
            arith::ConstantOp::create(ib, ib.getFloatAttr(accElement, 0.0));
        Value acc = forRange(
            ib, lo, hi, zero,
            [&](ImplicitLocOpBuilder &lb, Value k, Value sum) {
              Value e = arith::IndexCastOp::create(lb, lb.getIndexType(),
                                                   loadI64(lb, sorted.vals, k));
              Value bag = arith::DivUIOp::create(lb, e, cIndex(lb, dim));
              Value g = memref::LoadOp::create(lb, grad, ValueRange{bag, col});
              if (g.getType() != accElement)
                g = arith::ExtFOp::create(lb, accElement, g);
              if (scale != 1.0)
                g = arith::MulFOp::create(
                    lb, g,
                    arith::ConstantOp::create(
                        lb, lb.getFloatAttr(accElement, scale)));
              return arith::AddFOp::create(lb, sum, g);
            });
        if (acc.getType() != element)
          acc = arith::TruncFOp::create(ib, element, acc);
        memref::StoreOp::create(ib, acc, out, ValueRange{row, col});
      });
  sorted.free(b);
}

// %gw = emb.bag_grad <mode> ... rows(f, n) {deterministic, ...}
//   ==>
// sum / mean / sqrtn: keys[e] = n (entries outside every bag); then a
//   thread per bag: for its entries j: keys[j] = x[j] - f (or n), vals[j] =
//   j, bag[j] = the bag, w[j] = 1 / denominator (mean, sqrtn) * psw[j];
//   sort; a thread group per row sums w[e] * g[bag[e], c..] in input
//   order, then scales (as lookup_grad).
// max: an entry per (bag, column) e = bag * D + col, keyed by
//   (max_indices[bag, col] - f) * D + col (n * D for -1 / other windows);
//   sort; a thread per (row, col) sums s * g[e / D, col] over its bags in
//   order.
struct BagGradDeterministicToGPU final : GPUPattern<BagGradOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(BagGradOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getDeterministic()) // DenseGrad.cpp: atomics
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    Type element = gType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    double scale = op.getGradScale().convertToDouble();
    Type accElement = accumulatorType(element);
    BagMode mode = op.getMode();
    if (mode == BagMode::max && !op.getMaxIndices())
      return op.emitOpError("the max gradient needs 'max_indices'");

    Value grad = toBuffer(b, op.getGrad());
    BagStructure form = bagOnBuffers(b, op.getIndices(), op.getOffsets(),
                                     op.getIncludeLastOffset());
    Value first, count;
    std::tie(first, count) = gradientRows(
        b, op.getRowOffset(), op.getRowCount(), op.getNumEmbeddings());
    Value init = emptyLike(b, op.getResult(),
                           op.getType().isDynamicDim(0) ? ValueRange{count}
                                                        : ValueRange{});

    if (mode == BagMode::max) {
      Value maxIdx = toBuffer(b, op.getMaxIndices());
      KernelResults results(b, init);
      sortedMaxGrad(b, config, grad, maxIdx, form, first, count,
                    results.buffers[0], element, dim, scale);
      results.replace(rewriter, op);
      return success();
    }

    Value psw = op.getPerSampleWeights()
                    ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                    : Value();
    KernelResults results(b, init);
    Value pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
    Value n = form.numIndices;
    BagEntries entries(b, config, form, mode, pad, psw, element);
    SortedEntries sorted(b, config, n, count, [&](Value keys, Value vals) {
      launchRows(b, config, n, 1,
                 [&](ImplicitLocOpBuilder &ib, Value e, Value) {
                   storeI64(ib, count, keys, e);
                   storeI64(ib, e, vals, e);
                 });
      entries.launch(b, [&](ImplicitLocOpBuilder &lb, Value j) {
        storeEntryKey(lb, loadIndex(lb, form.indices, j), j, first, count, pad,
                      keys, vals);
      });
    });
    auto vecType =
        VectorType::get({rowLayout(dim, element, config).first}, element);
    sumSegments(b, sorted, results.buffers[0], count, element, dim, scale,
                op.getScaleGradByFreq(),
                [&](ImplicitLocOpBuilder &lb, Value e, Value c) {
                  return scaleRow(lb,
                                  loadRow(lb, vecType, grad,
                                          ValueRange{entries.bagOf(lb, e), c}),
                                  accElement, 1.0, entries.weight(lb, e));
                });
    sorted.free(b);
    entries.free(b);
    results.replace(rewriter, op);
    return success();
  }
};

} // namespace

void mlir::emb::gpu_lowering::populateDeterministicGradPatterns(
    RewritePatternSet &patterns, const gpu_config::GPULaunchConfig &config) {
  patterns.add<LookupGradDeterministicToGPU, BagGradDeterministicToGPU>(
      patterns.getContext(), config);
}
