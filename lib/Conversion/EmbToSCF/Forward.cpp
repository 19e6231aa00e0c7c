//===- Forward.cpp - emb.lookup, emb.bag, emb.renorm to scf
//-----------------===//
//
// Each forward op becomes scf.for loops on tensors whose bodies move whole
// rows (or D-blocks of rows) with vector.transfer_read / transfer_write. D
// is static in a specialised kernel, so the accumulators of a row live in
// vector registers and the hot loop has no per-element gather. The output is
// built from a tensor.empty that empty-tensor elimination can replace with
// the kernel's destination buffer.
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
//   for each D-block [d0, d0+n):           (unrolled: D is static)
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
    auto rowsType = RankedTensorType::get({numRows, dim}, element);
    Value init = emptyLike(b, rowsType,
                           ShapedType::isDynamic(numRows) ? ValueRange{n}
                                                          : ValueRange{});
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
          for (auto [d0, lanes] : dBlocks(dim, bytesOf(element), config)) {
            for (auto [at, pieceLanes] : rowPieces(lanes, element)) {
              Value row = readRow(ib, weight, r, d0 + at, pieceLanes, element);
              if (isPad) {
                // Select the bits, not the floats: x86 has no f16/bf16 select.
                auto bits = VectorType::get(
                    {pieceLanes},
                    ib.getIntegerType(element.getIntOrFloatBitWidth()));
                Value raw = arith::BitcastOp::create(ib, bits, row);
                Value zero = arith::ConstantOp::create(
                    ib, DenseElementsAttr::get(
                            bits, ib.getIntegerAttr(bits.getElementType(), 0)));
                row = arith::BitcastOp::create(
                    ib, row.getType(),
                    arith::SelectOp::create(ib, isPad, zero, raw));
              }
              out = writeRow(ib, row, out, i, d0 + at);
            }
          }
          scf::YieldOp::create(ib, out);
        });
    Value result =
        unflattenRows(b, loop.getResult(0), op.getIndices(), op.getType());
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// emb.bag
//===----------------------------------------------------------------------===//

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
//         sum:  %acc + %row (* %p[%j])      mean: %acc + %row
//         max:  %take = (%cnt == 0) | (%row > %acc)  (ties: first wins)
//               %acc = select(%take, %row, %acc); %arg = select(%take, %r,
//               %arg)
//         %cnt + 1
//       }
//     }
//     mean: %acc = %acc / max(%cnt, 1)
//     %o = vector.transfer_write trunc(%acc), %o[%b, d0]  (and %arg into %m)
// }
struct BagToSCF final : CPUPattern<BagOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value weight = op.getWeight();
    auto wType = cast<RankedTensorType>(weight.getType());
    Type element = wType.getElementType();
    Type accType = accumulatorType(element);
    FailureOr<int64_t> staticD = staticDim(op, weight, "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
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

    auto bagLoop = scf::ForOp::create(
        b, cIndex(b, 0), numBags, cIndex(b, 1), inits,
        [&](OpBuilder &nb, Location loc, Value bag, ValueRange iters) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value c1 = cIndex(ib, 1);
          auto bounds = bags.bounds(ib, bag);
          Value start = bounds.first, end = bounds.second;
          Value out = iters[0];
          Value argOut = withArgmax ? iters[1] : Value();
          int64_t stateBytes = bytesOf(accType) + (withArgmax ? 8 : 0);
          for (auto block : dBlocks(dim, stateBytes, config)) {
            int64_t d0 = block.first, lanes = block.second;
            auto accVec = VectorType::get({lanes}, accType);
            auto argVec = VectorType::get({lanes}, ib.getI64Type());
            SmallVector<Value> accInits{splat(ib, accVec, 0.0), cIndex(ib, 0)};
            if (withArgmax)
              accInits.push_back(arith::ConstantOp::create(
                  ib,
                  DenseElementsAttr::get(argVec, ib.getI64IntegerAttr(-1))));
            auto inner = scf::ForOp::create(
                ib, start, end, c1, accInits,
                [&](OpBuilder &jb, Location jloc, Value j, ValueRange acc) {
                  ImplicitLocOpBuilder lb(jloc, jb);
                  Value r = loadIndex(lb, flat, j);
                  auto update = [&](OpBuilder &ub, Location uloc) {
                    ImplicitLocOpBuilder xb(uloc, ub);
                    Value row = readRow(xb, weight, r, d0, lanes, accType);
                    Value cnt =
                        arith::AddIOp::create(xb, acc[1], cIndex(xb, 1));
                    SmallVector<Value> next;
                    if (mode == BagMode::max) {
                      // The bag's first entry is taken as it is (a scalar,
                      // well-predicted branch); later ones lane by lane when
                      // strictly greater, so ties go to the first.
                      Value first = arith::CmpIOp::create(
                          xb, arith::CmpIPredicate::eq, acc[1], cIndex(xb, 0));
                      Value rV;
                      if (withArgmax)
                        rV = vector::BroadcastOp::create(
                            xb, argVec,
                            arith::IndexCastOp::create(xb, xb.getI64Type(), r));
                      SmallVector<Type> types{accVec};
                      if (withArgmax)
                        types.push_back(argVec);
                      auto pick = scf::IfOp::create(xb, types, first,
                                                    /*withElse=*/true);
                      {
                        OpBuilder::InsertionGuard guard(xb);
                        xb.setInsertionPointToStart(pick.thenBlock());
                        SmallVector<Value> taken{row};
                        if (withArgmax)
                          taken.push_back(rV);
                        scf::YieldOp::create(xb, taken);
                        xb.setInsertionPointToStart(pick.elseBlock());
                        Value take = arith::CmpFOp::create(
                            xb, arith::CmpFPredicate::OGT, row, acc[0]);
                        SmallVector<Value> merged{
                            arith::SelectOp::create(xb, take, row, acc[0])};
                        if (withArgmax)
                          merged.push_back(
                              arith::SelectOp::create(xb, take, rV, acc[2]));
                        scf::YieldOp::create(xb, merged);
                      }
                      next = {pick.getResult(0), cnt};
                      if (withArgmax)
                        next.push_back(pick.getResult(1));
                    } else if (psw) {
                      Value w = loadFloat(xb, psw, j, accType);
                      Value wV = vector::BroadcastOp::create(xb, accVec, w);
                      next = {vector::FMAOp::create(xb, row, wV, acc[0]), cnt};
                    } else {
                      next = {arith::AddFOp::create(xb, acc[0], row), cnt};
                    }
                    scf::YieldOp::create(xb, next);
                  };
                  if (!pad) {
                    update(jb, jloc);
                    return;
                  }
                  Value notPad = arith::CmpIOp::create(
                      lb, arith::CmpIPredicate::ne, r, pad);
                  auto ifOp = scf::IfOp::create(
                      lb, notPad, update, [&](OpBuilder &eb, Location eloc) {
                        scf::YieldOp::create(eb, eloc, acc);
                      });
                  scf::YieldOp::create(lb, ifOp.getResults());
                });
            Value acc = inner.getResult(0);
            if (mode == BagMode::mean) {
              Value cnt = arith::MaxUIOp::create(ib, inner.getResult(1), c1);
              Value cnt64 =
                  arith::IndexCastOp::create(ib, ib.getI64Type(), cnt);
              Value cntF = arith::UIToFPOp::create(ib, accType, cnt64);
              acc = arith::DivFOp::create(
                  ib, acc, vector::BroadcastOp::create(ib, accVec, cntF));
            }
            out = writeRow(ib, acc, out, bag, d0);
            if (withArgmax)
              argOut = writeRow(ib, inner.getResult(2), argOut, bag, d0);
          }
          SmallVector<Value> yields{out};
          if (withArgmax)
            yields.push_back(argOut);
          scf::YieldOp::create(ib, yields);
        });
    rewriter.replaceOp(op, bagLoop.getResults());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// emb.renorm
//===----------------------------------------------------------------------===//

/// The p-norm (in f64) of the f64 vector `row`, as torch.norm defines it.
Value pNorm(ImplicitLocOpBuilder &b, Value row, double p) {
  auto vt = cast<VectorType>(row.getType());
  Value absRow = math::AbsFOp::create(b, row);
  auto reduce = [&](vector::CombiningKind kind, Value v) -> Value {
    return vector::ReductionOp::create(b, kind, v);
  };
  if (std::isinf(p))
    return reduce(p > 0 ? vector::CombiningKind::MAXIMUMF
                        : vector::CombiningKind::MINIMUMF,
                  absRow);
  if (p == 0) {
    Value nz = arith::CmpFOp::create(b, arith::CmpFPredicate::UNE, row,
                                     splat(b, vt, 0.0));
    Value ones =
        arith::SelectOp::create(b, nz, splat(b, vt, 1.0), splat(b, vt, 0.0));
    return reduce(vector::CombiningKind::ADD, ones);
  }
  if (p == 1)
    return reduce(vector::CombiningKind::ADD, absRow);
  if (p == 2)
    return math::SqrtOp::create(b, reduce(vector::CombiningKind::ADD,
                                          arith::MulFOp::create(b, row, row)));
  Value powered = math::PowFOp::create(b, absRow, splat(b, vt, p));
  Value sum = reduce(vector::CombiningKind::ADD, powered);
  return math::PowFOp::create(
      b, sum, arith::ConstantOp::create(b, b.getF64FloatAttr(1.0 / p)));
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
struct RenormToSCF final : CPUPattern<RenormOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(RenormOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value weight = op.getWeight();
    auto wType = cast<RankedTensorType>(weight.getType());
    Type element = wType.getElementType();
    Type accType = accumulatorType(element);
    FailureOr<int64_t> staticD = staticDim(op, weight, "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    double p = op.getNormType().convertToDouble();
    double maxNorm = op.getMaxNorm().convertToDouble();
    Value flat = flatten(b, op.getIndices());
    Value n = tensor::DimOp::create(b, flat, 0);
    Type f64 = b.getF64Type();

    // A repeated row must be rescaled once: mark visited rows in a V-byte
    // scratch. (Without marks, p = 0 would rescale again, since rescaling
    // keeps the count of non-zeros, and for other p the rounded result can
    // still lie an ulp above max_norm.)
    bool markVisited = true;
    SmallVector<Value> inits{weight};
    if (markVisited) {
      Value v = tensor::DimOp::create(b, weight, 0);
      Value empty =
          tensor::EmptyOp::create(b, ArrayRef<int64_t>{ShapedType::kDynamic},
                                  b.getI8Type(), ValueRange{v});
      Value zero = arith::ConstantOp::create(b, b.getI8IntegerAttr(0));
      inits.push_back(
          scf::ForOp::create(
              b, cIndex(b, 0), v, cIndex(b, 1), ValueRange{empty},
              [&](OpBuilder &fb, Location floc, Value i, ValueRange t) {
                Value next = tensor::InsertOp::create(fb, floc, zero, t[0], i);
                scf::YieldOp::create(fb, floc, next);
              })
              .getResult(0));
    }
    auto loop = scf::ForOp::create(
        b, cIndex(b, 0), n, cIndex(b, 1), inits,
        [&](OpBuilder &nb, Location loc, Value j, ValueRange iters) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value r = loadIndex(ib, flat, j);
          Value table = iters[0];
          Value seen, firstVisit;
          if (markVisited) {
            Value mark = tensor::ExtractOp::create(ib, iters[1], r);
            firstVisit = arith::CmpIOp::create(
                ib, arith::CmpIPredicate::eq, mark,
                arith::ConstantOp::create(ib, ib.getI8IntegerAttr(0)));
            seen = tensor::InsertOp::create(
                ib, arith::ConstantOp::create(ib, ib.getI8IntegerAttr(1)),
                iters[1], r);
          }
          // The whole row as f64, one D-block at a time, combined per p.
          SmallVector<Value> partial;
          for (auto [d0, lanes] : dBlocks(dim, 8, config))
            partial.push_back(
                pNorm(ib, readRow(ib, table, r, d0, lanes, f64), p));
          Value norm = partial[0];
          for (Value part : ArrayRef<Value>(partial).drop_front()) {
            if (std::isinf(p))
              norm = p > 0 ? (Value)arith::MaximumFOp::create(ib, norm, part)
                           : (Value)arith::MinimumFOp::create(ib, norm, part);
            else if (p == 0 || p == 1)
              norm = arith::AddFOp::create(ib, norm, part);
            else {
              // ||a,b||_p = (||a||^p + ||b||^p)^(1/p)
              Value cp = arith::ConstantOp::create(ib, ib.getF64FloatAttr(p));
              Value ci =
                  arith::ConstantOp::create(ib, ib.getF64FloatAttr(1.0 / p));
              Value s =
                  arith::AddFOp::create(ib, math::PowFOp::create(ib, norm, cp),
                                        math::PowFOp::create(ib, part, cp));
              norm = math::PowFOp::create(ib, s, ci);
            }
          }
          Value limit =
              arith::ConstantOp::create(ib, ib.getF64FloatAttr(maxNorm));
          Value tooLong =
              arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT, norm, limit);
          if (markVisited)
            tooLong = arith::AndIOp::create(ib, tooLong, firstVisit);
          auto ifOp = scf::IfOp::create(
              ib, tooLong,
              [&](OpBuilder &tb, Location tloc) {
                ImplicitLocOpBuilder xb(tloc, tb);
                Value eps =
                    arith::ConstantOp::create(xb, xb.getF64FloatAttr(1e-7));
                Value scale = arith::DivFOp::create(
                    xb, limit, arith::AddFOp::create(xb, norm, eps));
                if (accType != f64)
                  scale = arith::TruncFOp::create(xb, accType, scale);
                Value t = table;
                for (auto [d0, lanes] :
                     dBlocks(dim, bytesOf(accType), config)) {
                  Value row = readRow(xb, t, r, d0, lanes, accType);
                  Value s = vector::BroadcastOp::create(
                      xb, VectorType::get({lanes}, accType), scale);
                  t = writeRow(xb, arith::MulFOp::create(xb, row, s), t, r, d0);
                }
                scf::YieldOp::create(xb, t);
              },
              [&](OpBuilder &eb, Location eloc) {
                scf::YieldOp::create(eb, eloc, table);
              });
          SmallVector<Value> yields{ifOp.getResult(0)};
          if (markVisited)
            yields.push_back(seen);
          scf::YieldOp::create(ib, yields);
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
