//===- DenseGrad.cpp - dense gradients with atomics on the GPU
//--------------===//
//
// emb.lookup_grad and emb.bag_grad without `deterministic`: a zero pass
// (and counts for scale_grad_by_freq) then an atomic scatter in the shape
// of the forward, into an f32 scratch table for f16 / bf16 (Utils.h:
// GradTarget). emb.bag_psw_grad: one thread per bag, fixed-order dot
// products. The deterministic forms are in DeterministicGrad.cpp.
//
//===----------------------------------------------------------------------===//
#include "PopulatePatterns.h"
#include "Utils.h"

#include <cmath>

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::gpu_lowering;

namespace {

// %gw = emb.lookup_grad %g[%x] {padding_idx = P, grad_scale = s} rows(f, n)
//   ==>
// launch over n rows:  acc[row, :] = 0      (acc: gw, or f32 scratch)
// scale_grad_by_freq:  counts = 0; launch over N positions: counts[x - f] += 1
// launch over N positions (a thread group each, as the forward):
//   r = x[i]; if r != P and f <= r < f + n:
//     for each chunk c of the lane, element e (column c + e, or with
//     D % (tpr * vec) == 0 lane-interleaved: GradTarget::column):
//       atomic acc[r - f, col] += s * g[i, col] (/ counts[r - f])
// f16 / bf16: launch over n rows: gw = round(acc)
struct LookupGradAtomicToGPU final : GPUPattern<LookupGradOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(LookupGradOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getDeterministic()) // DeterministicGrad.cpp
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    Type element = gType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    double scale = op.getGradScale().convertToDouble();

    LookupGradInputs in = lookupGradInputs(b, op);
    Value grad = in.grad, indices = in.indices, n = in.n, first = in.first,
          count = in.count, pad = in.pad;
    KernelResults results(b, in.resultInit);
    GradTarget target(b, config, results.buffers[0], element, dim, first, count,
                      op.getScaleGradByFreq());
    target.countRows(b, indices, pad);
    int64_t vec = target.vec, tpr = target.tpr;
    auto vecType = VectorType::get({vec}, element);
    launchRows(
        b, config, n, tpr, [&](ImplicitLocOpBuilder &ib, Value i, Value lane) {
          Value r = loadIndex(ib, indices, i);
          auto body = [&](ImplicitLocOpBuilder &pb) {
            forEachChunk(
                pb, lane, dim, vec, tpr,
                [&](ImplicitLocOpBuilder &cb, Value c) {
                  Value v = target.loadChunk(cb, vecType, grad, i, c, lane);
                  target.add(cb,
                             scaleRow(cb, v, target.accElement, scale, Value()),
                             r, c, lane);
                });
          };
          if (!pad) {
            body(ib);
            return;
          }
          Value live =
              arith::CmpIOp::create(ib, arith::CmpIPredicate::ne, r, pad);
          scf::IfOp::create(ib, live, [&](OpBuilder &nb, Location loc) {
            ImplicitLocOpBuilder pb(loc, nb);
            body(pb);
            scf::YieldOp::create(pb);
          });
        });
    target.finish(b);
    results.replace(rewriter, op);
    return success();
  }
};

/// The atomic scatter of emb.bag_grad into a GradTarget: a thread group
/// per bag, in the shape of the forward.
struct BagGradScatter {
  GPULaunchConfig config;
  GradTarget &target;
  const BagStructure &form;
  Value grad, psw, maxIdx, pad;
  int64_t dim;
  double scale;
  VectorType vecType;

  /// max: for each chunk c, lane element e: k = max_indices[bag, c + e];
  /// if k != -1 (and in the window): atomic acc[k - f, c + e] += s * g.
  void max(ImplicitLocOpBuilder &b) {
    int64_t vec = target.vec, tpr = target.tpr;
    Type accElement = target.accElement;
    Value first = target.first, count = target.count;
    launchRows(
        b, config, form.numBags, tpr,
        [&](ImplicitLocOpBuilder &ib, Value bag, Value lane) {
          forEachChunk(
              ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
                Value g =
                    scaleRow(cb, loadRow(cb, vecType, grad, ValueRange{bag, c}),
                             accElement, scale, Value());
                for (int64_t e = 0; e < vec; ++e) {
                  Value col = arith::AddIOp::create(cb, c, cIndex(cb, e));
                  Value k = loadIndex(cb, maxIdx, bag, col);
                  Value x =
                      vector::ExtractOp::create(cb, g, ArrayRef<int64_t>{e});
                  Value local = arith::SubIOp::create(cb, k, first);
                  // -1 (an empty bag) is far outside every window, as
                  // unsigned.
                  Value ok = arith::CmpIOp::create(
                      cb, arith::CmpIPredicate::ult, local, count);
                  scf::IfOp::create(cb, ok, [&](OpBuilder &nb, Location loc) {
                    ImplicitLocOpBuilder ab(loc, nb);
                    memref::AtomicRMWOp::create(ab, arith::AtomicRMWKind::addf,
                                                x, target.acc,
                                                ValueRange{local, col});
                    scf::YieldOp::create(ab);
                  });
                }
              });
        });
  }

  /// sum / mean / sqrtn: m = 1 / (the bag's denominator) for mean and
  /// sqrtn, else 1; for each live entry j, each chunk c of the lane:
  ///   atomic acc[x[j] - f, c + e] += s * m * psw[j] * g[bag, c + e]
  void sumOrMean(ImplicitLocOpBuilder &b, BagMode mode) {
    int64_t vec = target.vec, tpr = target.tpr;
    Type accElement = target.accElement;
    launchRows(
        b, config, form.numBags, tpr,
        [&](ImplicitLocOpBuilder &ib, Value bag, Value lane) {
          Value start, end;
          std::tie(start, end) = form.bounds(ib, bag);
          auto isLive = [&](ImplicitLocOpBuilder &eb, Value r) -> Value {
            if (!pad)
              return Value();
            return arith::CmpIOp::create(eb, arith::CmpIPredicate::ne, r, pad);
          };
          // mean / sqrtn: 1 / the bag's denominator, computed once per bag.
          Value factor = dividesBag(mode)
                             ? bagGradientFactor(ib, mode, form.indices, psw,
                                                 start, end, pad, accElement)
                             : Value();
          forEachChunk(
              ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
                Value g = target.loadChunk(cb, vecType, grad, bag, c, lane);
                scf::ForOp::create(
                    cb, start, end, cIndex(cb, 1), ValueRange{},
                    [&](OpBuilder &nb, Location loc, Value j, ValueRange) {
                      ImplicitLocOpBuilder eb(loc, nb);
                      Value r = loadIndex(eb, form.indices, j);
                      auto add = [&](ImplicitLocOpBuilder &ab) {
                        Value f = factor;
                        if (psw) {
                          Value w = loadFloat(ab, psw, j, accElement);
                          f = f ? arith::MulFOp::create(ab, f, w) : w;
                        }
                        target.add(ab, scaleRow(ab, g, accElement, scale, f), r,
                                   c, lane);
                      };
                      Value live = isLive(eb, r);
                      if (!live) {
                        add(eb);
                      } else {
                        scf::IfOp::create(eb, live,
                                          [&](OpBuilder &ub, Location ul) {
                                            ImplicitLocOpBuilder ab(ul, ub);
                                            add(ab);
                                            scf::YieldOp::create(ab);
                                          });
                      }
                      scf::YieldOp::create(eb);
                    });
              });
        });
  }
};

// %gw = emb.bag_grad <mode> %g[%x] offsets(%o) per_sample_weights(%p)
//   ==>  as lookup_grad (zeros, counts, f16 / bf16 scratch), with the
// scatter in the shape of the forward:
// sum / mean / sqrtn: a thread group per bag:
//   m = 1 / (the bag's denominator) for mean and sqrtn, else 1
//   for each live entry j, each chunk c of the lane:
//     atomic acc[x[j] - f, c + e] += s * m * psw[j] * g[bag, c + e] (/ count)
// max: a thread group per bag: for each chunk c, lane element e:
//     k = max_indices[bag, c + e]; if k != -1: atomic acc[k - f, c + e] += s *
//     g
struct BagGradAtomicToGPU final : GPUPattern<BagGradOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(BagGradOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getDeterministic()) // DeterministicGrad.cpp
      return failure();
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    Type element = gType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    double scale = op.getGradScale().convertToDouble();
    BagMode mode = op.getMode();
    if (mode == BagMode::max && !op.getMaxIndices())
      return op.emitOpError("the max gradient needs 'max_indices'");

    Value grad = toBuffer(b, op.getGrad());
    BagStructure form = bagOnBuffers(b, op.getIndices(), op.getOffsets(),
                                     op.getIncludeLastOffset());
    Value psw = op.getPerSampleWeights()
                    ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                    : Value();
    Value maxIdx =
        op.getMaxIndices() ? toBuffer(b, op.getMaxIndices()) : Value();
    Value first, count;
    std::tie(first, count) = gradientRows(
        b, op.getRowOffset(), op.getRowCount(), op.getNumEmbeddings());
    Value pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
    KernelResults results(b, emptyLike(b, op.getResult(),
                                       op.getType().isDynamicDim(0)
                                           ? ValueRange{count}
                                           : ValueRange{}));
    GradTarget target(b, config, results.buffers[0], element, dim, first, count,
                      op.getScaleGradByFreq());
    target.countRows(b, form.indices, pad);
    auto vecType = VectorType::get({target.vec}, element);

    BagGradScatter scatter{config, target, form, grad,  psw,
                           maxIdx, pad,    dim,  scale, vecType};
    if (mode == BagMode::max)
      scatter.max(b);
    else
      scatter.sumOrMean(b, mode);
    target.finish(b);
    results.replace(rewriter, op);
    return success();
  }
};

// %gp = emb.bag_psw_grad %g, %w[%x] offsets(%o)
//   ==>  one thread per bag (no cross-thread reduction, so the kernel is
//   emulatable and every sum has a fixed order):
//     for each entry j of the bag:
//       gp[j] = x[j] == P ? 0 : sum over D of g[bag, :] * w[x[j], :]
//               (16-byte vectors, f32 accumulation, lanes summed in order)
struct BagPswGradToGPU final : GPUPattern<BagPswGradOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(BagPswGradOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto wType = cast<RankedTensorType>(op.getWeight().getType());
    Type element = wType.getElementType();
    Type accElement = accumulatorType(element);
    FailureOr<int64_t> staticD = staticDim(op, op.getWeight(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    int64_t vec = rowLayout(dim, element, config).first;
    Value weight = toBuffer(b, op.getWeight());
    Value grad = toBuffer(b, op.getGrad());
    BagStructure form = bagOnBuffers(b, op.getIndices(), op.getOffsets(),
                                     op.getIncludeLastOffset());
    auto resultType = cast<RankedTensorType>(op.getType());
    SmallVector<Value> dynSizes;
    for (int64_t i = 0; i < resultType.getRank(); ++i)
      if (resultType.isDynamicDim(i))
        dynSizes.push_back(tensor::DimOp::create(b, op.getIndices(), i));
    Value pad = paddingRow(b, op.getPaddingIdx(), weight);
    KernelResults results(b, emptyLike(b, op.getResult(), dynSizes));
    // The result has the shape of the indices: written through a 1-D view.
    Value out = results.buffers[0];
    auto outType = cast<MemRefType>(out.getType());
    if (outType.getRank() == 2)
      out = memref::CollapseShapeOp::create(
          b, out, ArrayRef<ReassociationIndices>{{0, 1}});
    auto vecType = VectorType::get({vec}, element);
    auto accType = VectorType::get({vec}, accElement);
    launchRows(
        b, config, form.numBags, /*threadsPerRow=*/1,
        [&](ImplicitLocOpBuilder &ib, Value bag, Value) {
          auto [start, end] = form.bounds(ib, bag);
          scf::ForOp::create(
              ib, start, end, cIndex(ib, 1), ValueRange{},
              [&](OpBuilder &nb, Location loc, Value j, ValueRange) {
                ImplicitLocOpBuilder eb(loc, nb);
                Value r = loadIndex(eb, form.indices, j);
                auto dot = scf::ForOp::create(
                    eb, cIndex(eb, 0), cIndex(eb, dim), cIndex(eb, vec),
                    ValueRange{
                        splat(eb, accType, eb.getFloatAttr(accElement, 0.0))},
                    [&](OpBuilder &cb, Location cl, Value c, ValueRange acc) {
                      ImplicitLocOpBuilder db(cl, cb);
                      Value w = extend(
                          db, loadRow(db, vecType, weight, ValueRange{r, c}),
                          accType);
                      Value g = extend(
                          db, loadRow(db, vecType, grad, ValueRange{bag, c}),
                          accType);
                      scf::YieldOp::create(
                          db,
                          ValueRange{arith::AddFOp::create(
                              db, acc[0], arith::MulFOp::create(db, w, g))});
                    });
                Value sum = vector::ExtractOp::create(eb, dot.getResult(0),
                                                      ArrayRef<int64_t>{0});
                for (int64_t e = 1; e < vec; ++e)
                  sum = arith::AddFOp::create(
                      eb, sum,
                      vector::ExtractOp::create(eb, dot.getResult(0),
                                                ArrayRef<int64_t>{e}));
                if (pad) {
                  Value isPad = arith::CmpIOp::create(
                      eb, arith::CmpIPredicate::eq, r, pad);
                  sum = arith::SelectOp::create(
                      eb, isPad,
                      arith::ConstantOp::create(
                          eb, eb.getFloatAttr(accElement, 0.0)),
                      sum);
                }
                if (sum.getType() != element)
                  sum = arith::TruncFOp::create(eb, element, sum);
                memref::StoreOp::create(
                    eb, sum, out, ValueRange{j}, /*nontemporal=*/false,
                    llvm::MaybeAlign(element.getIntOrFloatBitWidth() / 8));
                scf::YieldOp::create(eb);
              });
        });
    results.replace(rewriter, op);
    return success();
  }
};

} // namespace

void mlir::emb::gpu_lowering::populateDenseGradPatterns(
    RewritePatternSet &patterns, const gpu_config::GPULaunchConfig &config) {
  patterns.add<LookupGradAtomicToGPU, BagGradAtomicToGPU, BagPswGradToGPU>(
      patterns.getContext(), config);
}
