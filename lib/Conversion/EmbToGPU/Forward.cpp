//===- Forward.cpp - emb.lookup, emb.bag, emb.renorm to gpu
//-----------------===//
//
// emb.lookup and emb.bag become one `gpu.launch` each, on buffers: every
// row (lookup) or bag gets a group of threads (GPUConfig.h) that moves
// vectors of up to 16 bytes and accumulates in f32 (f64 for f64), a bag
// several entries' rows at a time. The kernels write the buffers of an
// `emb.on_buffers` op (Utils.h: KernelResults); upstream bufferisation
// decides them (the buffer a result is materialised in, or a new one;
// renorm in place or on a copy). The grid is computed from the problem size at
// run time; a problem with no rows launches nothing. Renorm claims each
// distinct row once with an atomic flag.
//
//===----------------------------------------------------------------------===//
#include "BagChunk.h"
#include "PopulatePatterns.h"

#include <cmath>

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::gpu_lowering;

namespace {

//===----------------------------------------------------------------------===//
// emb.lookup
//===----------------------------------------------------------------------===//

// %out = emb.lookup %w[%x] {padding_idx = P, padding_mode = zero}
//   ==>
// scf.if N > 0 {
//   gpu.launch blocks(ceildiv(N, R)) threads(256) {
//     row = block_id * R + thread_id / T;  lane = thread_id % T
//     if row < N:
//       r = x[row]
//       for c = lane * vec; c < D; c += T * vec:
//         v = vector.load %w[r, c] : vector<vec x elt>   (16 bytes)
//         v = select(r == P, 0, v)                        (zero padding only)
//         vector.store v, %out[row, c]
//   }
// }
struct LookupToGPU final : GPUPattern<LookupOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(LookupOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto wType = cast<RankedTensorType>(op.getWeight().getType());
    Type element = wType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, op.getWeight(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    int64_t vec, tpr;
    std::tie(vec, tpr) = rowLayout(dim, element, config);

    Value weight = toBuffer(b, op.getWeight());
    Value indices = toBuffer(b, flatten(b, op.getIndices()));
    Value n = memref::DimOp::create(b, indices, 0);
    KernelResults results(
        b, emptyLike(b, op.getResult(), lookupSizes(b, op.getIndices())));
    Value out = rows2d(b, results.buffers[0]);
    Value pad = op.getPaddingMode() == PaddingMode::zero
                    ? paddingRow(b, op.getPaddingIdx(), weight)
                    : Value();
    auto vecType = VectorType::get({vec}, element);
    launchRows(
        b, config, n, tpr,
        [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
          Value r = loadIndex(ib, indices, row);
          Value isPad =
              pad ? arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, r, pad)
                  : Value();
          forEachChunk(
              ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
                Value v = loadRow(cb, vecType, weight, ValueRange{r, c});
                if (isPad)
                  v = arith::SelectOp::create(
                      cb, isPad,
                      splat(cb, vecType, cb.getFloatAttr(element, 0.0)), v);
                storeRow(cb, v, out, ValueRange{row, c});
              });
        });
    results.replace(rewriter, op);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// emb.bag
//===----------------------------------------------------------------------===//

/// The rows of a quantised table (docs/semantics.md §6.2), read by chunks
/// of `lanes` elements: the bytes of a chunk and the row's tail (scale,
/// bias), each loaded at the alignment the row layout guarantees (rows of
/// D + 8 or ceil(D/2) + 4 bytes start at any multiple of that), dequantised
/// to f32 by the arithmetic both targets share (OpStructure.h).
struct QuantizedRows {
  Value table; // memref<? x rowBytes x i8>
  Quantization quant;
  int64_t dim, lanes;

  /// The largest power of two up to `cap` that divides every value.
  static int64_t alignment(std::initializer_list<int64_t> values,
                           int64_t cap) {
    int64_t a = cap;
    for (int64_t v : values)
      while (a > 1 && v % a != 0)
        a /= 2;
    return a;
  }

  /// Elements per chunk: as many as 8-byte loads allow, dividing D (int4:
  /// pairs of elements, one byte; odd D: one element at a time).
  static int64_t chooseLanes(Quantization q, int64_t dim) {
    int64_t rowBytes = quantizedRowBytes(q, dim);
    if (q == Quantization::int8)
      return alignment({dim, rowBytes}, 8);
    if (dim % 2 != 0)
      return 1;
    return 2 * alignment({dim / 2, rowBytes}, 8);
  }

  Value loadBytes(ImplicitLocOpBuilder &b, Value r, Value at, int64_t n,
                  int64_t align) const {
    return vector::LoadOp::create(b, VectorType::get({n}, b.getI8Type()), table,
                                  ValueRange{r, at}, /*nontemporal=*/false,
                                  llvm::MaybeAlign(align));
  }

  /// Elements [c, c + lanes) of row r, in f32.
  Value read(ImplicitLocOpBuilder &b, Value r, Value c) const {
    int64_t rowBytes = quantizedRowBytes(quant, dim);
    int64_t tailAt = quantizedTailOffset(quant, dim);
    int64_t tailBytes = quantizedTailBytes(quant);
    Value tail = loadBytes(b, r, cIndex(b, tailAt), tailBytes,
                           alignment({rowBytes, tailAt}, tailBytes));
    auto [scale, bias] = quantizedScaleBias(b, quant, tail);
    if (quant == Quantization::int4 && lanes == 1) {
      // One element of an odd row: its nibble of byte c / 2.
      Value byte = memref::LoadOp::create(
          b, table, ValueRange{r, quantizedByteOffset(b, quant, c)});
      Value odd = arith::AndIOp::create(
          b, arith::IndexCastOp::create(b, b.getI8Type(), c),
          arith::ConstantOp::create(b, b.getI8IntegerAttr(1)));
      Value shift = arith::MulIOp::create(
          b, odd, arith::ConstantOp::create(b, b.getI8IntegerAttr(4)));
      Value nibble = arith::AndIOp::create(
          b, arith::ShRUIOp::create(b, byte, shift),
          arith::ConstantOp::create(b, b.getI8IntegerAttr(15)));
      auto f32Type = VectorType::get({1}, b.getF32Type());
      Value q = arith::UIToFPOp::create(b, b.getF32Type(), nibble);
      return vector::BroadcastOp::create(
          b, f32Type,
          math::FmaOp::create(b, q, scale, bias));
    }
    int64_t n = quantizedBytesOf(quant, lanes);
    Value bytes = loadBytes(b, r, quantizedByteOffset(b, quant, c), n,
                            alignment({rowBytes, n}, n));
    return dequantize(b, quant, bytes, lanes, scale, bias);
  }
};

// %out = emb.bag <mode> %w[%x] offsets(%o) per_sample_weights(%p)
//   ==>  gpu.launch as above, one thread group per bag:
//     [start, end) = bounds(bag)
//     for each chunk c of the lane:
//       acc = 0 (f32 for f16 / bf16), n = 0, argmax = -1
//       for j in [start, end) by K = entries-in-flight (then the rest by 1):
//         r_i = x[j + i], v_i = ext(vector.load %w[r_i, c]) for i < K,
//           all loaded first (quantised: the chunk's bytes and the row's
//           scale and bias, q * scale + bias in f32)
//         for i < K, in order; live = r_i != P (a padding entry's row is
//         read, and its update folded away):
//           sum / mean / sqrtn: acc += live ? v_i * psw[j + i] : 0
//           (weighted mean: wsum += psw; weighted sqrtn: += psw^2, or 0)
//           max: the first live entry sets acc; later ones replace where
//                v > acc (ties keep the first), argmax likewise
//           n += live
//     (a max bag holds at most 4 elements a thread: GPUConfig.h)
//       mean: acc /= n (or wsum); sqrtn: acc /= sqrt(n) (or sqrt(wsum));
//       a zero denominator or an empty bag stores zeros (argmax -1)
//       vector.store trunc(acc), %out[bag, c]
struct BagToGPU final : GPUPattern<BagOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(BagOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    std::optional<Quantization> quant = op.getQuantized();
    // A quantised table's rows are bytes: D and the element are the output's.
    Value rowsOf = quant ? op.getOutput() : op.getWeight();
    Type element = cast<RankedTensorType>(rowsOf.getType()).getElementType();
    Type accElement = accumulatorType(element);
    FailureOr<int64_t> staticD = staticDim(op, rowsOf, "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    int64_t vec, tpr;
    std::tie(vec, tpr) = rowLayout(dim, element, config);
    if (quant) {
      vec = QuantizedRows::chooseLanes(*quant, dim);
      tpr = gpu_config::threadsPerRow(dim, vec, config.maxThreadsPerRow);
    }
    BagMode mode = op.getMode();
    if (mode == BagMode::max && vec > gpu_config::kMaxBagLanesPerThread) {
      vec = gpu_config::kMaxBagLanesPerThread;
      tpr = gpu_config::threadsPerRow(dim, vec, config.maxThreadsPerRow);
    }
    bool withArgmax = static_cast<bool>(op.getMaxIndices());

    Value weight = toBuffer(b, op.getWeight());
    BagStructure form = bagOnBuffers(b, op.getIndices(), op.getOffsets(),
                                     op.getIncludeLastOffset());
    Value indices = form.indices, numBags = form.numBags;
    Value psw = op.getPerSampleWeights()
                    ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                    : Value();
    auto outType = cast<RankedTensorType>(op.getOutput().getType());
    SmallVector<Value> inits{emptyLike(
        b, op.getOutput(),
        outType.isDynamicDim(0) ? ValueRange{numBags} : ValueRange{})};
    if (withArgmax) {
      auto mType = cast<RankedTensorType>(op.getMaxIndices().getType());
      inits.push_back(emptyLike(b, op.getMaxIndices(),
                                mType.isDynamicDim(0) ? ValueRange{numBags}
                                                      : ValueRange{}));
    }
    KernelResults results(b, inits);
    Value out = results.buffers[0];
    Value argmaxBuf = withArgmax ? results.buffers[1] : Value();
    Value pad = paddingRow(b, op.getPaddingIdx(), weight);
    auto vecType = VectorType::get({vec}, element);
    auto accType = VectorType::get({vec}, accElement);
    auto argType = VectorType::get({vec}, b.getI64Type());
    BagChunkAccumulator accumulator{mode, psw, accType, argType};
    std::optional<QuantizedRows> quantized;
    if (quant)
      quantized = QuantizedRows{weight, *quant, dim, vec};

    launchRows(
        b, config, numBags, tpr,
        [&](ImplicitLocOpBuilder &ib, Value bag, Value lane) {
          Value start, end;
          std::tie(start, end) = form.bounds(ib, bag);
          forEachChunk(
              ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
                auto read = [&](ImplicitLocOpBuilder &rb, Value r) {
                  return quantized ? quantized->read(rb, r, c)
                                   : extend(rb,
                                            loadRow(rb, vecType, weight,
                                                    ValueRange{r, c}),
                                            accType);
                };
                SmallVector<Value> state = accumulator.accumulate(
                    cb, indices, pad, config.entriesInFlight, start, end, read);
                Value acc = accumulator.finish(cb, state);
                // An empty or all-padding bag: zeros (acc is still 0), and
                // -1 for max_indices.
                storeRow(cb, truncate(cb, acc, vecType), out,
                         ValueRange{bag, c});
                if (argmaxBuf)
                  storeRow(cb, state[2], argmaxBuf, ValueRange{bag, c});
              });
        });
    results.replace(rewriter, op);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// emb.renorm
//===----------------------------------------------------------------------===//

/// The p-norm (f64) of row `r` of `table`, accumulated lane by lane in
/// order by one thread, in vectors of `vecType`.
Value rowNorm(ImplicitLocOpBuilder &b, Value table, Value r, int64_t dim,
              VectorType vecType, double p) {
  int64_t vec = vecType.getNumElements();
  auto f64Type = VectorType::get({vec}, b.getF64Type());
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), cIndex(b, dim), cIndex(b, vec),
      ValueRange{normIdentity(b, p)},
      [&](OpBuilder &lb, Location ll, Value c, ValueRange acc) {
        ImplicitLocOpBuilder db(ll, lb);
        Value v = loadRow(db, vecType, table, ValueRange{r, c});
        if (vecType != f64Type)
          v = arith::ExtFOp::create(db, f64Type, v);
        Value a = acc[0];
        for (int64_t e = 0; e < vec; ++e) {
          Value x = vector::ExtractOp::create(db, v, ArrayRef<int64_t>{e});
          a = normCombine(db, a, normTerm(db, x, p), p);
        }
        scf::YieldOp::create(db, ValueRange{a});
      });
  return normRoot(b, loop.getResult(0), p);
}

/// Scales row `r` of `table` in place by limit / (norm + 1e-7), in the
/// accumulator type of its elements.
void rescaleRow(ImplicitLocOpBuilder &b, Value table, Value r, int64_t dim,
                VectorType vecType, Value norm, Value limit) {
  Type accElement = accumulatorType(vecType.getElementType());
  Value scale = arith::DivFOp::create(
      b, limit,
      arith::AddFOp::create(
          b, norm, arith::ConstantOp::create(b, b.getF64FloatAttr(1e-7))));
  if (accElement != b.getF64Type())
    scale = arith::TruncFOp::create(b, accElement, scale);
  auto accType = VectorType::get(vecType.getShape(), accElement);
  Value s = vector::BroadcastOp::create(b, accType, scale);
  scf::ForOp::create(
      b, cIndex(b, 0), cIndex(b, dim), cIndex(b, vecType.getNumElements()),
      ValueRange{}, [&](OpBuilder &wb, Location wl, Value c, ValueRange) {
        ImplicitLocOpBuilder sb(wl, wb);
        Value v =
            extend(sb, loadRow(sb, vecType, table, ValueRange{r, c}), accType);
        storeRow(sb, truncate(sb, arith::MulFOp::create(sb, v, s), vecType),
                 table, ValueRange{r, c});
        scf::YieldOp::create(sb);
      });
}

// %w2 = emb.renorm %w[%x] {max_norm = M, norm_type = p}
//   ==>
// (on %w's buffer when bufferisation can update it in place, else on a copy)
// seen = gpu.alloc [V] i32; launch over V: seen = 0
// launch over N positions, one thread each:
//   r = x[i]; if atomic_or(seen[r], 1) == 0:        (each row once)
//     norm = p-norm of w[r, :] in f64 (16-byte vectors, lanes in order)
//     if norm > M: w[r, :] *= M / (norm + 1e-7)       (in f32, f64 for f64)
// The rows a thread claims are distinct, so the rescaling needs no atomics;
// the lookup that follows is a later launch.
struct RenormToGPU final : GPUPattern<RenormOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(RenormOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto wType = cast<RankedTensorType>(op.getWeight().getType());
    Type element = wType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, op.getWeight(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    double p = op.getNormType().convertToDouble();
    double maxNorm = op.getMaxNorm().convertToDouble();
    int64_t vec = rowLayout(dim, element, config).first;
    auto vecType = VectorType::get({vec}, element);

    // The indices are read outside the body, the table updated inside.
    Value indices = toBuffer(b, flatten(b, op.getIndices()));
    KernelResults results(b, op.getWeight(), /*updates=*/true);
    Value table = results.buffers[0];
    Value numRows = memref::DimOp::create(b, table, 0);
    Value n = memref::DimOp::create(b, indices, 0);
    Value seen = allocScratch(
        b, MemRefType::get({ShapedType::kDynamic}, b.getI32Type()), numRows);
    launchRows(b, config, numRows, 1,
               [&](ImplicitLocOpBuilder &ib, Value row, Value) {
                 memref::StoreOp::create(
                     ib, arith::ConstantOp::create(ib, ib.getI32IntegerAttr(0)),
                     seen, ValueRange{row});
               });
    launchRows(b, config, n, 1, [&](ImplicitLocOpBuilder &ib, Value i, Value) {
      Value r = loadIndex(ib, indices, i);
      Value old = memref::AtomicRMWOp::create(
          ib, arith::AtomicRMWKind::ori,
          arith::ConstantOp::create(ib, ib.getI32IntegerAttr(1)), seen,
          ValueRange{r});
      Value first = arith::CmpIOp::create(
          ib, arith::CmpIPredicate::eq, old,
          arith::ConstantOp::create(ib, ib.getI32IntegerAttr(0)));
      scf::IfOp::create(ib, first, [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder fb(loc, nb);
        Value norm = rowNorm(fb, table, r, dim, vecType, p);
        Value limit =
            arith::ConstantOp::create(fb, fb.getF64FloatAttr(maxNorm));
        Value tooLong =
            arith::CmpFOp::create(fb, arith::CmpFPredicate::OGT, norm, limit);
        scf::IfOp::create(fb, tooLong, [&](OpBuilder &tb, Location tl) {
          ImplicitLocOpBuilder xb(tl, tb);
          rescaleRow(xb, table, r, dim, vecType, norm, limit);
          scf::YieldOp::create(xb);
        });
        scf::YieldOp::create(fb);
      });
    });
    freeScratch(b, seen);
    results.replace(rewriter, op);
    return success();
  }
};

} // namespace

void mlir::emb::gpu_lowering::populateForwardPatterns(
    RewritePatternSet &patterns, const gpu_config::GPULaunchConfig &config) {
  patterns.add<LookupToGPU, BagToGPU, RenormToGPU>(patterns.getContext(),
                                                   config);
}
