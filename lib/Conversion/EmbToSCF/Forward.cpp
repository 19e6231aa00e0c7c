//===- Forward.cpp - emb.lookup, emb.bag, emb.renorm to scf
//-----------------===//
//
// Each forward op becomes scf.for loops on tensors whose bodies move whole
// rows (or D-blocks of rows) with vector.transfer_read / transfer_write. D
// is static in a specialised kernel, so the accumulators of a row live in
// vector registers and the hot loop has no per-element gather. The output is
// built from a tensor.empty that empty-tensor elimination can replace with
// the kernel's destination buffer. "for each D-block" below is unrolled up
// to cpu::kMaxUnrolledDBlocks blocks, and an scf.for over the full blocks
// plus the tail block past it (forEachDBlock, Utils.h).
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"
#include "Utils.h"

#include <cmath>

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::cpu_lowering;

namespace {

//===----------------------------------------------------------------------===//
// emb.lookup
//===----------------------------------------------------------------------===//

// %out = emb.lookup %w[%x] {padding_idx = P, padding_mode = zero}
//   ==>
// %flat = collapse %x to [N]
// %o = scf.for %i = 0 to N iter_args(%o = tensor.empty(N) : [N, D]) {
//   %r = index_cast %flat[%i]
//   for each D-block [d0, d0+n):
//     %row = vector.transfer_read %w[%r, d0] : vector<n x T>
//     %row = select(%r == P, 0, %row)       (padding_mode = zero only)
//     %o = vector.transfer_write %row, %o[%i, d0]
// }
// %out = expand %o to x.shape + [D]
struct LookupToSCF final : CPUPattern<LookupOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(LookupOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value weight = op.getWeight();
    auto wType = cast<RankedTensorType>(weight.getType());
    Type element = wType.getElementType();
    FailureOr<int64_t> staticD = staticDim(op, weight, "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    Value flat = flatten(b, op.getIndices());
    Value n = tensor::DimOp::create(b, flat, 0);
    int64_t numRows = cast<RankedTensorType>(flat.getType()).getDimSize(0);
    // Rows are written to [N, D] and expanded to indices.shape + [D] at the
    // end, unless that expansion has two dynamic sizes or more: MLIR 22's
    // expand-strided-metadata crashes on it. Those write each row at its
    // position in the result instead (`positions`: the index sizes).
    auto idxType = cast<RankedTensorType>(op.getIndices().getType());
    SmallVector<Value> positions;
    if (idxType.getRank() >= 2 && idxType.getNumDynamicDims() >= 2)
      for (int64_t k = 0; k < idxType.getRank(); ++k)
        positions.push_back(tensor::DimOp::create(b, op.getIndices(), k));
    auto rowsType = RankedTensorType::get({numRows, dim}, element);
    Value init;
    if (positions.empty()) {
      init = emptyLike(b, rowsType,
                       ShapedType::isDynamic(numRows) ? ValueRange{n}
                                                      : ValueRange{});
    } else {
      SmallVector<Value> dynSizes;
      for (int64_t k = 0; k < idxType.getRank(); ++k)
        if (idxType.isDynamicDim(k))
          dynSizes.push_back(positions[k]);
      init = emptyLike(b, op.getType(), dynSizes);
    }
    Value pad = op.getPaddingMode() == PaddingMode::zero
                    ? paddingRow(b, op.getPaddingIdx(), weight)
                    : Value();
    auto loop = scf::ForOp::create(
        b, cIndex(b, 0), n, cIndex(b, 1), ValueRange{init},
        [&](OpBuilder &nb, Location loc, Value i, ValueRange iters) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value r = loadIndex(ib, flat, i);
          Value out = iters[0];
          Value isPad =
              pad ? arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, r, pad)
                  : Value();
          // The result position of row i (row-major over the index sizes).
          SmallVector<Value> pos{i};
          if (!positions.empty()) {
            pos.assign(positions.size(), Value());
            Value rest = i;
            for (int64_t k = positions.size() - 1; k >= 0; --k) {
              pos[k] = k == 0 ? rest
                              : (Value)arith::RemUIOp::create(ib, rest,
                                                              positions[k]);
              if (k > 0)
                rest = arith::DivUIOp::create(ib, rest, positions[k]);
            }
          }
          auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                           int64_t lanes,
                           ValueRange state) -> SmallVector<Value> {
            Value o = state[0];
            for (auto [at, pieceLanes] : rowPieces(lanes, element)) {
              OpFoldResult col = addOffset(db, d0, at);
              Value row = readRow(db, weight, r, col, pieceLanes, element);
              if (isPad) {
                // Select the bits, not the floats: x86 has no f16/bf16 select.
                auto bits = VectorType::get(
                    {pieceLanes},
                    db.getIntegerType(element.getIntOrFloatBitWidth()));
                Value raw = arith::BitcastOp::create(db, bits, row);
                Value zero = arith::ConstantOp::create(
                    db, DenseElementsAttr::get(
                            bits, db.getIntegerAttr(bits.getElementType(), 0)));
                row = arith::BitcastOp::create(
                    db, row.getType(),
                    arith::SelectOp::create(db, isPad, zero, raw));
              }
              o = writeRowAt(db, row, o, pos, col);
            }
            return {o};
          };
          out = forEachDBlock(ib, dim, bytesOf(element), config, out, block)[0];
          scf::YieldOp::create(ib, out);
        });
    Value result =
        positions.empty()
            ? unflattenRows(b, loop.getResult(0), op.getIndices(), op.getType())
            : loop.getResult(0);
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// emb.bag
//===----------------------------------------------------------------------===//

/// The loop-carried state of one D-block of a bag, and how each live entry
/// updates it: a sum (times per_sample_weights), a mean or sqrtn (a sum and
/// a count, or the sum of the weight terms when weighted) or a max (with
/// its argmax). The state is (acc, count[, weight sum | argmax]).
struct BagBlockAccumulator {
  BagMode mode;
  Value psw; // the flat per_sample_weights, or null
  bool withArgmax;
  Type accType;

  bool weighted() const { return needsWeightSum(mode, (bool)psw); }

  /// acc = 0, count = 0 (, weight sum = 0) for a block of `lanes` (the
  /// argmax positions of a segment start in the segment loop).
  SmallVector<Value> init(ImplicitLocOpBuilder &b, int64_t lanes) const {
    SmallVector<Value> state{splat(b, VectorType::get({lanes}, accType), 0.0),
                             cIndex(b, 0)};
    if (weighted())
      state.push_back(
          arith::ConstantOp::create(b, b.getFloatAttr(accType, 0.0)));
    return state;
  }

  /// Constant vector<lanes x type> of `value`.
  static Value intSplat(ImplicitLocOpBuilder &b, int64_t lanes, Type type,
                        int64_t value) {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(VectorType::get({lanes}, type),
                                  b.getIntegerAttr(type, value)));
  }

  /// The state after entry `j`, whose row reads `row` (in accType); with an
  /// argmax, `pos` is j's i32 position in its segment.
  SmallVector<Value> update(ImplicitLocOpBuilder &b, ValueRange acc, Value row,
                            Value pos, Value j) const {
    auto accVec = cast<VectorType>(row.getType());
    Value cnt = arith::AddIOp::create(b, acc[1], cIndex(b, 1));
    if (mode == BagMode::max)
      return updateMax(b, acc, row, pos, cnt);
    if (psw) {
      Value w = loadFloat(b, psw, j, accType);
      Value wV = vector::BroadcastOp::create(b, accVec, w);
      SmallVector<Value> next{vector::FMAOp::create(b, row, wV, acc[0]), cnt};
      if (weighted())
        next.push_back(
            arith::AddFOp::create(b, acc[2], weightSumTerm(b, mode, w)));
      return next;
    }
    return {arith::AddFOp::create(b, acc[0], row), cnt};
  }

  /// The bag's first entry is taken as it is (a scalar, well-predicted
  /// branch); later ones lane by lane when strictly greater, so ties go to
  /// the first.
  SmallVector<Value> updateMax(ImplicitLocOpBuilder &b, ValueRange acc,
                               Value row, Value pos, Value cnt) const {
    auto accVec = cast<VectorType>(row.getType());
    auto argVec = VectorType::get(accVec.getShape(), b.getI32Type());
    Value first = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, acc[1],
                                        cIndex(b, 0));
    Value rV;
    if (withArgmax)
      rV = vector::BroadcastOp::create(b, argVec, pos);
    SmallVector<Type> types{accVec};
    if (withArgmax)
      types.push_back(argVec);
    auto pick = scf::IfOp::create(b, types, first, /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(pick.thenBlock());
      SmallVector<Value> taken{row};
      if (withArgmax)
        taken.push_back(rV);
      scf::YieldOp::create(b, taken);
      b.setInsertionPointToStart(pick.elseBlock());
      Value take =
          arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, row, acc[0]);
      SmallVector<Value> merged{arith::SelectOp::create(b, take, row, acc[0])};
      if (withArgmax)
        merged.push_back(arith::SelectOp::create(b, take, rV, acc[2]));
      scf::YieldOp::create(b, merged);
    }
    SmallVector<Value> next{pick.getResult(0), cnt};
    if (withArgmax)
      next.push_back(pick.getResult(1));
    return next;
  }

  /// The block's result from the final state: mean and sqrtn divide by
  /// their denominator (zero rows where it is 0).
  Value finish(ImplicitLocOpBuilder &b, ValueRange state) const {
    Value acc = state[0];
    if (!dividesBag(mode))
      return acc;
    return divideByDenominator(
        b, acc,
        bagDenominator(b, mode, state[1], weighted() ? state[2] : Value(),
                       accType));
  }
};

/// The rows a bag reads: lanes [d0, d0 + lanes) of a row of a float table
/// (in the accumulator type), or of a quantised one, dequantised to f32
/// from its bytes and its tail's scale and bias (docs/semantics.md §6.2).
struct TableRows {
  Value table;
  Type accType;
  std::optional<Quantization> quant;
  int64_t dim;

  Value read(ImplicitLocOpBuilder &b, Value r, OpFoldResult d0,
             int64_t lanes) const {
    if (!quant)
      return readRow(b, table, r, d0, lanes, accType);
    Type i8 = b.getI8Type();
    Value zero = arith::ConstantOp::create(b, b.getIntegerAttr(i8, 0));
    auto bytesAt = [&](Value at, int64_t n) -> Value {
      return vector::TransferReadOp::create(b, VectorType::get({n}, i8), table,
                                            ValueRange{r, at}, zero,
                                            ArrayRef<bool>{true});
    };
    Value tail = bytesAt(cIndex(b, quantizedTailOffset(*quant, dim)),
                         quantizedTailBytes(*quant));
    auto [scale, bias] = quantizedScaleBias(b, *quant, tail);
    Value at = quantizedByteOffset(b, *quant, blockOffset(b, d0, 0));
    return dequantize(b, *quant,
                      bytesAt(at, quantizedBytesOf(*quant, lanes)), lanes,
                      scale, bias);
  }
};

// %out[, %argmax] = emb.bag MODE %w[%x] offsets(%off) per_sample_weights(%p)
//   ==>
// %o = scf.for %b = 0 to B iter_args(%o = tensor.empty(B)[, %m = ...]) {
//   %start, %end = bounds of bag %b        (offsets, or b*L for 2-D)
//   for each D-block [d0, d0+n):
//     %acc, %cnt[, %arg] = scf.for %j = %start to %end
//         iter_args(%acc = 0, %cnt = 0[, %arg = -1]) {
//       %r = index_cast %x[%j]
//       scf.if %r != P {                    (with padding_idx only)
//         %row = ext(vector.transfer_read %w[%r, d0])
//         sum / mean / sqrtn:  %acc + %row (* %p[%j]);
//               weighted mean: %wsum + %p[%j], weighted sqrtn: + %p[%j]^2
//         max:  %take = (%cnt == 0) | (%row > %acc)  (ties: first wins)
//               %acc = select(%take, %row, %acc); %pos = select(%take,
//               i32(%j - %start), %pos)   (with max_indices: i32 positions,
//               the rows gathered from %x[%start + %pos] after the loop, in
//               segments of 2^31 - 1 entries)
//         %cnt + 1
//       }
//     }
//     mean: %acc = %acc / %cnt (or / %wsum)
//     sqrtn: %acc = %acc / sqrt(%cnt) (or / sqrt(%wsum)); 0 when that is 0
//     %o = vector.transfer_write trunc(%acc), %o[%b, d0]  (and %arg into %m)
// }
struct BagToSCF final : CPUPattern<BagOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value weight = op.getWeight();
    std::optional<Quantization> quant = op.getQuantized();
    // A quantised table's rows are bytes: D and the element are the output's.
    Value rowsOf = quant ? op.getOutput() : weight;
    Type element = cast<RankedTensorType>(rowsOf.getType()).getElementType();
    Type accType = accumulatorType(element);
    FailureOr<int64_t> staticD = staticDim(op, rowsOf, "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    TableRows rows{weight, accType, quant, dim};
    BagMode mode = op.getMode();
    bool includeLast = op.getIncludeLastOffset();
    Value flat = flatten(b, op.getIndices());
    Value psw = op.getPerSampleWeights() ? flatten(b, op.getPerSampleWeights())
                                         : Value();
    BagStructure bags(b, flat, indices2D(op.getIndices()), op.getOffsets(),
                      includeLast);
    Value numBags = bags.numBags;
    Value pad = paddingRow(b, op.getPaddingIdx(), weight);

    auto outType = cast<RankedTensorType>(op.getOutput().getType());
    SmallVector<Value> inits{emptyLike(
        b, outType,
        outType.isDynamicDim(0) ? ValueRange{numBags} : ValueRange{})};
    bool withArgmax = static_cast<bool>(op.getMaxIndices());
    if (withArgmax) {
      auto mType = cast<RankedTensorType>(op.getMaxIndices().getType());
      inits.push_back(emptyLike(b, mType,
                                mType.isDynamicDim(0) ? ValueRange{numBags}
                                                      : ValueRange{}));
    }

    BagBlockAccumulator accumulator{mode, psw, withArgmax, accType};
    auto bagLoop = scf::ForOp::create(
        b, cIndex(b, 0), numBags, cIndex(b, 1), inits,
        [&](OpBuilder &nb, Location loc, Value bag, ValueRange iters) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value c1 = cIndex(ib, 1);
          auto bounds = bags.bounds(ib, bag);
          Value start = bounds.first, end = bounds.second;
          int64_t stateBytes = bytesOf(accType) + (withArgmax ? 8 : 0);
          auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                           int64_t lanes,
                           ValueRange state) -> SmallVector<Value> {
            Value out = state[0];
            Value argOut = withArgmax ? state[1] : Value();
            // The entries [from, to) of the bag, padding skipped, into the
            // block's state (with an argmax, i32 positions from `from`).
            auto entries = [&](ImplicitLocOpBuilder &eb, Value from, Value to,
                               ValueRange init) {
              return scf::ForOp::create(
                  eb, from, to, c1, init,
                  [&](OpBuilder &jb, Location jloc, Value j, ValueRange acc) {
                    ImplicitLocOpBuilder lb(jloc, jb);
                    Value r = loadIndex(lb, flat, j);
                    Value pos;
                    if (withArgmax)
                      pos = arith::IndexCastOp::create(
                          lb, lb.getI32Type(),
                          arith::SubIOp::create(lb, j, from));
                    auto update = [&](OpBuilder &ub, Location uloc) {
                      ImplicitLocOpBuilder xb(uloc, ub);
                      Value row = rows.read(xb, r, d0, lanes);
                      scf::YieldOp::create(
                          xb, accumulator.update(xb, acc, row, pos, j));
                    };
                    if (!pad) {
                      update(jb, jloc);
                      return;
                    }
                    Value notPad = arith::CmpIOp::create(
                        lb, arith::CmpIPredicate::ne, r, pad);
                    auto ifOp = scf::IfOp::create(
                        lb, notPad, update, [&](OpBuilder &eb2, Location eloc) {
                          scf::YieldOp::create(eb2, eloc, acc);
                        });
                    scf::YieldOp::create(lb, ifOp.getResults());
                  });
            };
            SmallVector<Value> result;
            if (!withArgmax) {
              auto inner = entries(db, start, end, accumulator.init(db, lanes));
              result.assign(inner.getResults().begin(),
                            inner.getResults().end());
            } else {
              // Segments of at most argmaxSegment entries, so that positions
              // fit in i32; the rows they took are gathered from the indices
              // after each segment. Every real bag is one segment, taken
              // without the segment loop (whose state LLVM spills).
              Type i32 = db.getI32Type(), i64 = db.getI64Type();
              Value segment = cIndex(db, config.argmaxSegment);
              auto oneSegment = [&](ImplicitLocOpBuilder &gb, Value from,
                                    Value to,
                                    ValueRange st) -> SmallVector<Value> {
                auto inner = entries(
                    gb, from, to,
                    {st[0], st[1],
                     BagBlockAccumulator::intSplat(gb, lanes, i32, -1)});
                Value pos = inner.getResult(2);
                Value taken = arith::CmpIOp::create(
                    gb, arith::CmpIPredicate::sge, pos,
                    BagBlockAccumulator::intSplat(gb, lanes, i32, 0));
                Type indexElement =
                    cast<ShapedType>(flat.getType()).getElementType();
                Value rows = vector::GatherOp::create(
                    gb, VectorType::get({lanes}, indexElement), flat,
                    ValueRange{from}, pos, taken,
                    BagBlockAccumulator::intSplat(gb, lanes, indexElement, 0));
                if (indexElement != i64)
                  rows = arith::ExtSIOp::create(
                      gb, VectorType::get({lanes}, i64), rows);
                return {inner.getResult(0), inner.getResult(1),
                        arith::SelectOp::create(gb, taken, rows, st[2])};
              };
              SmallVector<Value> init = accumulator.init(db, lanes);
              init.push_back(BagBlockAccumulator::intSplat(db, lanes, i64, -1));
              Value fits = arith::CmpIOp::create(
                  db, arith::CmpIPredicate::sle,
                  arith::SubIOp::create(db, end, start), segment);
              auto pick = scf::IfOp::create(
                  db, fits,
                  [&](OpBuilder &tb, Location tloc) {
                    ImplicitLocOpBuilder gb(tloc, tb);
                    scf::YieldOp::create(gb, oneSegment(gb, start, end, init));
                  },
                  [&](OpBuilder &eb, Location eloc) {
                    ImplicitLocOpBuilder gb(eloc, eb);
                    auto segments = scf::ForOp::create(
                        gb, start, end, segment, init,
                        [&](OpBuilder &sb, Location sloc, Value from,
                            ValueRange st) {
                          ImplicitLocOpBuilder lb(sloc, sb);
                          Value to = arith::MinSIOp::create(
                              lb, arith::AddIOp::create(lb, from, segment),
                              end);
                          scf::YieldOp::create(lb,
                                               oneSegment(lb, from, to, st));
                        });
                    scf::YieldOp::create(gb, segments.getResults());
                  });
              result.assign(pick.getResults().begin(), pick.getResults().end());
            }
            out = writeRow(db, accumulator.finish(db, result), out, bag,
                           d0);
            SmallVector<Value> next{out};
            if (withArgmax)
              next.push_back(writeRow(db, result[2], argOut, bag, d0));
            return next;
          };
          SmallVector<Value> outs{iters[0]};
          if (withArgmax)
            outs.push_back(iters[1]);
          scf::YieldOp::create(
              ib, forEachDBlock(ib, dim, stateBytes, config, outs, block));
        });
    rewriter.replaceOp(op, bagLoop.getResults());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// emb.renorm
//===----------------------------------------------------------------------===//

/// The p-norm (in f64) of the f64 vector `row`, as torch.norm defines it
/// (the parts are OpStructure.h's, shared with the GPU).
Value pNorm(ImplicitLocOpBuilder &b, Value row, double p) {
  vector::CombiningKind kind = vector::CombiningKind::ADD;
  if (std::isinf(p))
    kind = p > 0 ? vector::CombiningKind::MAXIMUMF
                 : vector::CombiningKind::MINIMUMF;
  return normRoot(b, vector::ReductionOp::create(b, kind, normTerm(b, row, p)),
                  p);
}

// %w2 = emb.renorm %w[%x] {max_norm = M, norm_type = p}
//   ==>
// %w2 = scf.for %j = 0 to N iter_args(%t = %w) {
//   %r = index_cast %x[%j]
//   %norm = p-norm(ext_f64(%t[%r, :]))       (whole row, every D-block)
//   scf.if %norm > M {
//     %t = write(%t[%r, :] * (M / (%norm + 1e-7)))
//   }
// }
// Each distinct row is considered once, as PyTorch does: a V-byte scratch
// (zeroed first) marks the rows already visited.
/// The p-norm (f64) of row `r` of `table`, one D-block at a time, the
/// blocks' norms combined per p, left to right.
Value rowNorm(ImplicitLocOpBuilder &b, Value table, Value r, int64_t dim,
              double p, const cpu::CPULoweringConfig &config) {
  auto combine = [&](ImplicitLocOpBuilder &cb, Value norm,
                     Value part) -> Value {
    if (std::isinf(p))
      return p > 0 ? (Value)arith::MaximumFOp::create(cb, norm, part)
                   : (Value)arith::MinimumFOp::create(cb, norm, part);
    if (p == 0 || p == 1)
      return arith::AddFOp::create(cb, norm, part);
    // ||a,b||_p = (||a||^p + ||b||^p)^(1/p)
    Value cp = arith::ConstantOp::create(cb, cb.getF64FloatAttr(p));
    Value ci = arith::ConstantOp::create(cb, cb.getF64FloatAttr(1.0 / p));
    Value s = arith::AddFOp::create(cb, math::PowFOp::create(cb, norm, cp),
                                    math::PowFOp::create(cb, part, cp));
    return math::PowFOp::create(cb, s, ci);
  };
  if (unrolledDBlocks(dim, 8, config)) {
    SmallVector<Value> partial;
    for (auto [d0, lanes] : dBlocks(dim, 8, config))
      partial.push_back(
          pNorm(b, readRow(b, table, r, d0, lanes, b.getF64Type()), p));
    Value norm = partial[0];
    for (Value part : ArrayRef<Value>(partial).drop_front())
      norm = combine(b, norm, part);
    return norm;
  }
  // Many blocks: the first block's norm, then each later block's combined
  // into the running norm in order (the same fold, hence the same bits).
  int64_t lanes = cpu::blockLanes(8, config.accumulatorBlockBytes);
  Value first = pNorm(b, readRow(b, table, r, 0, lanes, b.getF64Type()), p);
  auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0, int64_t n,
                   ValueRange norm) -> SmallVector<Value> {
    Value part = pNorm(db, readRow(db, table, r, d0, n, db.getF64Type()), p);
    return {combine(db, norm[0], part)};
  };
  return forEachDBlock(b, dim, 8, config, first, block, /*firstBlock=*/1,
                       cpu::kReductionBlocksPerIteration)[0];
}

/// `table` with row `r` scaled by limit / (norm + 1e-7) (in the
/// accumulator type of its elements).
Value rescaleRow(ImplicitLocOpBuilder &b, Value table, Value r, Value norm,
                 Value limit, int64_t dim,
                 const cpu::CPULoweringConfig &config) {
  Type accType =
      accumulatorType(cast<RankedTensorType>(table.getType()).getElementType());
  Value eps = arith::ConstantOp::create(b, b.getF64FloatAttr(1e-7));
  Value scale =
      arith::DivFOp::create(b, limit, arith::AddFOp::create(b, norm, eps));
  if (accType != b.getF64Type())
    scale = arith::TruncFOp::create(b, accType, scale);
  auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0, int64_t lanes,
                   ValueRange t) -> SmallVector<Value> {
    Value row = readRow(db, t[0], r, d0, lanes, accType);
    Value s = vector::BroadcastOp::create(db, VectorType::get({lanes}, accType),
                                          scale);
    return {writeRow(db, arith::MulFOp::create(db, row, s), t[0], r, d0)};
  };
  return forEachDBlock(b, dim, bytesOf(accType), config, table, block)[0];
}

struct RenormToSCF final : CPUPattern<RenormOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(RenormOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value weight = op.getWeight();
    FailureOr<int64_t> staticD = staticDim(op, weight, "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    double p = op.getNormType().convertToDouble();
    double maxNorm = op.getMaxNorm().convertToDouble();
    Value flat = flatten(b, op.getIndices());
    Value n = tensor::DimOp::create(b, flat, 0);

    // A repeated row must be rescaled once: mark visited rows in a V-byte
    // scratch. (Without marks, p = 0 would rescale again, since rescaling
    // keeps the count of non-zeros, and for other p the rounded result can
    // still lie an ulp above max_norm.)
    Value v = tensor::DimOp::create(b, weight, 0);
    Value empty =
        tensor::EmptyOp::create(b, ArrayRef<int64_t>{ShapedType::kDynamic},
                                b.getI8Type(), ValueRange{v});
    Value zero = arith::ConstantOp::create(b, b.getI8IntegerAttr(0));
    Value marks = scf::ForOp::create(
                      b, cIndex(b, 0), v, cIndex(b, 1), ValueRange{empty},
                      [&](OpBuilder &fb, Location floc, Value i, ValueRange t) {
                        Value next =
                            tensor::InsertOp::create(fb, floc, zero, t[0], i);
                        scf::YieldOp::create(fb, floc, next);
                      })
                      .getResult(0);
    auto loop = scf::ForOp::create(
        b, cIndex(b, 0), n, cIndex(b, 1), ValueRange{weight, marks},
        [&](OpBuilder &nb, Location loc, Value j, ValueRange iters) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value r = loadIndex(ib, flat, j);
          Value table = iters[0];
          Value mark = tensor::ExtractOp::create(ib, iters[1], r);
          Value firstVisit = arith::CmpIOp::create(
              ib, arith::CmpIPredicate::eq, mark,
              arith::ConstantOp::create(ib, ib.getI8IntegerAttr(0)));
          Value seen = tensor::InsertOp::create(
              ib, arith::ConstantOp::create(ib, ib.getI8IntegerAttr(1)),
              iters[1], r);
          Value norm = rowNorm(ib, table, r, dim, p, config);
          Value limit =
              arith::ConstantOp::create(ib, ib.getF64FloatAttr(maxNorm));
          Value tooLong =
              arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT, norm, limit);
          tooLong = arith::AndIOp::create(ib, tooLong, firstVisit);
          auto ifOp = scf::IfOp::create(
              ib, tooLong,
              [&](OpBuilder &tb, Location tloc) {
                ImplicitLocOpBuilder xb(tloc, tb);
                scf::YieldOp::create(
                    xb, rescaleRow(xb, table, r, norm, limit, dim, config));
              },
              [&](OpBuilder &eb, Location eloc) {
                scf::YieldOp::create(eb, eloc, table);
              });
          scf::YieldOp::create(ib, ValueRange{ifOp.getResult(0), seen});
        });
    rewriter.replaceOp(op, loop.getResult(0));
    return success();
  }
};

} // namespace

void mlir::emb::cpu_lowering::populateForwardPatterns(
    RewritePatternSet &patterns, const cpu::CPULoweringConfig &config) {
  patterns.add<LookupToSCF, BagToSCF, RenormToSCF>(patterns.getContext(),
                                                   config);
}
