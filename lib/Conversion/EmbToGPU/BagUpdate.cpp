//===- BagUpdate.cpp - the backward fused with an optimizer on the GPU ----===//
//
// emb.bag_update: the entries sorted by row (SortAndScan.h, as the
// deterministic gradients sort them), then a thread group per row of the
// window: [lo, hi) = its entries; when there are any, each lane sums the
// contributions to its column chunks in input order, scales them, and
// updates its chunks of the table row and of the state rows in place
// (EmbCommon/OptimizerStep.h). Row-wise Adagrad needs the sum of squares of
// the whole row before any element moves: one thread per row, no barrier
// (the kernels stay emulatable). Untouched rows are not written; the
// result is the same bits for any launch configuration.
//
//===----------------------------------------------------------------------===//

#include "Conversion/EmbCommon/OptimizerStep.h"
#include "PopulatePatterns.h"
#include "SortAndScan.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::gpu_lowering;

namespace {

// %w', %s' = emb.bag_update <opt> <mode> %g[%x] ... rows(f, n)
//   ==>
// keys[e] = the row of entry e in the window (n: none), vals[e] = e; sort
//   (sum / mean / sqrtn: e an entry of the indices, with its bag and
//   factor; max: e = bag * D + col, keyed by max_indices[bag, col])
// a thread group per row r of [0, n): [lo, hi) = its entries; if any:
//   per chunk c: g = scale * sum over k in [lo, hi) of contribution(vals[k], c)
//   update W[r, c..] and the states' [r, c..] (rowwise: h[r] first, from
//   the whole row's g)
struct BagUpdateToGPU final : GPUPattern<BagUpdateOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(BagUpdateOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    Type element = gType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    Type acc = accumulatorType(element);
    bool max = op.getMode() == BagMode::max;
    bool rowwise = op.getOptimizer() == Optimizer::rowwise_adagrad;

    Value grad = toBuffer(b, op.getGrad());
    BagStructure form = bagOnBuffers(b, op.getIndices(), op.getOffsets(),
                                     op.getIncludeLastOffset());
    Value first, count;
    std::tie(first, count) = gradientRows(
        b, op.getRowOffset(), op.getRowCount(), op.getNumEmbeddings());

    // The table and the states, updated in place when bufferisation can
    // (the JIT's kernels), else on copies it makes.
    SmallVector<Value> inits{op.getWeight()};
    llvm::append_range(inits, op.getStates());
    KernelResults results(b, inits, /*updates=*/true);
    ArrayRef<Value> buffers = results.buffers;
    Value table = buffers[0];

    // The entries, sorted by row.
    Value psw = op.getPerSampleWeights()
                    ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                    : Value();
    Value pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
    std::optional<BagEntries> entries;
    std::optional<SortedEntries> sorted;
    Value maxIdx = max ? toBuffer(b, op.getMaxIndices()) : Value();
    if (max) {
      Value n = arith::MulIOp::create(b, form.numBags, cIndex(b, dim));
      sorted.emplace(b, config, n, count, [&](Value keys, Value vals) {
        launchRows(b, config, n, 1,
                   [&](ImplicitLocOpBuilder &ib, Value e, Value) {
                     Value bag = arith::DivUIOp::create(ib, e, cIndex(ib, dim));
                     Value col = arith::RemUIOp::create(ib, e, cIndex(ib, dim));
                     Value local = arith::SubIOp::create(
                         ib, loadIndex(ib, maxIdx, bag, col), first);
                     // -1 is far outside every window, as unsigned.
                     Value ok = arith::CmpIOp::create(
                         ib, arith::CmpIPredicate::ult, local, count);
                     Value key = arith::SelectOp::create(ib, ok, local, count);
                     storeI64(ib, key, keys, e);
                     storeI64(ib, e, vals, e);
                   });
      });
    } else {
      Value n = form.numIndices;
      entries.emplace(b, config, form, op.getMode(), pad, psw, element);
      sorted.emplace(b, config, n, count, [&](Value keys, Value vals) {
        launchRows(b, config, n, 1,
                   [&](ImplicitLocOpBuilder &ib, Value e, Value) {
                     storeI64(ib, count, keys, e);
                     storeI64(ib, e, vals, e);
                   });
        entries->launch(b, [&](ImplicitLocOpBuilder &lb, Value j) {
          storeEntryKey(lb, loadIndex(lb, form.indices, j), j, first, count,
                        pad, keys, vals);
        });
      });
    }

    OptimizerScalars scalars(b, op, op.getLr(), op.getStep(), acc);
    double gradScale = op.getGradScale().convertToDouble();
    bool byFreq = op.getScaleGradByFreq();
    int64_t vec, tpr;
    std::tie(vec, tpr) = rowLayout(dim, element, config);
    if (rowwise)
      tpr = 1; // h[r] is read and written once per row: one thread
    auto vecType = VectorType::get({vec}, element);
    auto accType = VectorType::get({vec}, acc);
    auto stateType = VectorType::get({vec}, acc);
    launchRows(b, config, count, tpr, [&](ImplicitLocOpBuilder &ib, Value row,
                                          Value lane) {
      Value lo, hi;
      std::tie(lo, hi) = sorted->segment(ib, row);
      Value any = arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, lo, hi);
      scf::IfOp::create(ib, any, [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder tb(loc, nb);
        Value scale =
            arith::ConstantOp::create(tb, tb.getFloatAttr(acc, gradScale));
        if (byFreq)
          scale = arith::DivFOp::create(
              tb, scale,
              arith::UIToFPOp::create(
                  tb, acc,
                  arith::IndexCastOp::create(tb, tb.getI64Type(),
                                             arith::SubIOp::create(tb, hi, lo))));
        // The decayed gradient of chunk c (columns [c, c + vec)) of the
        // row, summed in input order, and the table's chunk `w`.
        auto gradient = [&](ImplicitLocOpBuilder &cb, Value c,
                            Value w) -> Value {
          Value zero = splat(cb, accType, cb.getFloatAttr(acc, 0.0));
          Value sum = forRange(
              cb, lo, hi, zero,
              [&](ImplicitLocOpBuilder &lb, Value k, Value s) -> Value {
                Value e = arith::IndexCastOp::create(
                    lb, lb.getIndexType(), loadI64(lb, sorted->vals, k));
                if (!max)
                  return arith::AddFOp::create(
                      lb, s,
                      scaleRow(lb,
                               loadRow(lb, vecType, grad,
                                       ValueRange{entries->bagOf(lb, e), c}),
                               acc, 1.0, entries->weight(lb, e)));
                // One element g[e / D, e % D], in its lane if in the chunk.
                Value bag = arith::DivUIOp::create(lb, e, cIndex(lb, dim));
                Value col = arith::RemUIOp::create(lb, e, cIndex(lb, dim));
                Value g = memref::LoadOp::create(lb, grad, ValueRange{bag, col});
                if (g.getType() != acc)
                  g = arith::ExtFOp::create(lb, acc, g);
                // (A constant for the lanes: the NVPTX pipeline does not
                // lower vector.step.)
                auto i64Vec = VectorType::get({vec}, lb.getI64Type());
                SmallVector<int64_t> iota(vec);
                for (int64_t i = 0; i < vec; ++i)
                  iota[i] = i;
                auto i64 = [&](Value v) -> Value {
                  return arith::IndexCastOp::create(lb, lb.getI64Type(), v);
                };
                Value lanes = arith::AddIOp::create(
                    lb,
                    arith::ConstantOp::create(
                        lb, DenseElementsAttr::get(i64Vec, ArrayRef(iota))),
                    vector::BroadcastOp::create(lb, i64Vec, i64(c)));
                Value mine = arith::CmpIOp::create(
                    lb, arith::CmpIPredicate::eq, lanes,
                    vector::BroadcastOp::create(lb, i64Vec, i64(col)));
                return arith::SelectOp::create(
                    lb, mine,
                    arith::AddFOp::create(
                        lb, s, vector::BroadcastOp::create(lb, accType, g)),
                    s);
              });
          sum = arith::MulFOp::create(
              cb, sum, vector::BroadcastOp::create(cb, accType, scale));
          return decayedGradient(cb, scalars, sum, w);
        };
        Value rowState;
        if (rowwise) {
          // h[r] += mean(g^2), over the whole row, chunk by chunk.
          Value zero = arith::ConstantOp::create(tb, tb.getFloatAttr(acc, 0.0));
          auto loop = scf::ForOp::create(
              tb, cIndex(tb, 0), cIndex(tb, dim), cIndex(tb, vec),
              ValueRange{zero},
              [&](OpBuilder &fb, Location fl, Value c, ValueRange it) {
                ImplicitLocOpBuilder lb(fl, fb);
                Value w = extend(lb, loadRow(lb, vecType, table,
                                             ValueRange{row, c}),
                                 accType);
                Value g = gradient(lb, c, w);
                Value part = vector::ReductionOp::create(
                    lb, vector::CombiningKind::ADD,
                    arith::MulFOp::create(lb, g, g));
                scf::YieldOp::create(
                    lb, ValueRange{arith::AddFOp::create(lb, it[0], part)});
              });
          Value h = memref::LoadOp::create(tb, buffers[1], ValueRange{row});
          rowState = rowwiseState(tb, scalars, h, loop.getResult(0), dim);
          memref::StoreOp::create(tb, rowState, buffers[1], ValueRange{row});
        }
        forEachChunk(tb, lane, dim, vec, tpr,
                     [&](ImplicitLocOpBuilder &cb, Value c) {
                       Value w = extend(
                           cb, loadRow(cb, vecType, table, ValueRange{row, c}),
                           accType);
                       Value g = gradient(cb, c, w);
                       SmallVector<Value> old;
                       if (rowwise)
                         old.push_back(
                             vector::BroadcastOp::create(cb, accType, rowState));
                       else
                         for (size_t k = 1; k < buffers.size(); ++k)
                           old.push_back(loadRow(cb, stateType, buffers[k],
                                                 ValueRange{row, c}));
                       ElementUpdate u = updateElements(cb, scalars, g, w, old);
                       storeRow(cb, truncate(cb, u.weight, vecType), table,
                                ValueRange{row, c});
                       for (auto [k, v] : llvm::enumerate(u.states))
                         storeRow(cb, v, buffers[k + 1], ValueRange{row, c});
                     });
        scf::YieldOp::create(tb);
      });
    });
    sorted->free(b);
    if (entries)
      entries->free(b);
    results.replace(rewriter, op);
    return success();
  }
};

} // namespace

void mlir::emb::gpu_lowering::populateBagUpdatePatterns(
    RewritePatternSet &patterns, const gpu_config::GPULaunchConfig &config) {
  patterns.add<BagUpdateToGPU>(patterns.getContext(), config);
}
