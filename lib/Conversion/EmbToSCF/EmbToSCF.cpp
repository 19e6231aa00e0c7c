//===- EmbToSCF.cpp - lower the forward emb ops to scf + vector -----------===//
//
// Each forward op becomes scf.for loops on tensors whose bodies move whole
// rows (or D-blocks of rows) with vector.transfer_read / transfer_write. D
// is static in a specialised kernel, so the accumulators of a row live in
// vector registers and the hot loop has no per-element gather. The output is
// built from a tensor.empty that empty-tensor elimination can replace with
// the kernel's destination buffer.
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/CPUConfig.h"
#include "emb/Conversion/LoweringUtils.h"
#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

namespace mlir::emb {
#define GEN_PASS_DEF_CONVERTEMBTOSCF
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::lowering;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Element `pos` of a 1-D i32/i64 tensor, as an index (sign-extended).
Value extractIndex(ImplicitLocOpBuilder &b, Value tensor, Value pos) {
  Value v = tensor::ExtractOp::create(b, tensor, pos);
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}

Value splat(ImplicitLocOpBuilder &b, VectorType type, double value) {
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(type,
                                b.getFloatAttr(type.getElementType(), value)));
}

/// The pieces a row access of `n` lanes is split into: powers of two for
/// f16 / bf16 (LLVM cannot legalise odd-sized vectors of 16-bit floats,
/// e.g. `<17 x bfloat>`), one piece otherwise.
SmallVector<std::pair<int64_t, int64_t>> rowPieces(int64_t n, Type element) {
  if (element.getIntOrFloatBitWidth() != 16 || llvm::isPowerOf2_64(n))
    return {{0, n}};
  SmallVector<std::pair<int64_t, int64_t>> pieces;
  int64_t at = 0;
  for (int64_t bit = int64_t(1) << 62; bit > 0; bit >>= 1)
    if (n & bit) {
      pieces.push_back({at, bit});
      at += bit;
    }
  return pieces;
}

/// Lanes [d0, d0 + n) of row `row` of the 2-D tensor `table`, converted to
/// `accType` (no conversion when `accType` is the storage type).
Value readRow(ImplicitLocOpBuilder &b, Value table, Value row, int64_t d0,
              int64_t n, Type accType) {
  Type element = cast<RankedTensorType>(table.getType()).getElementType();
  Value pad = arith::ConstantOp::create(b, b.getFloatAttr(element, 0.0));
  auto readPiece = [&](int64_t at, int64_t lanes) -> Value {
    Value v = vector::TransferReadOp::create(
        b, VectorType::get({lanes}, element), table,
        ValueRange{row, cIndex(b, d0 + at)}, pad, ArrayRef<bool>{true});
    if (element != accType)
      v = arith::ExtFOp::create(b, VectorType::get({lanes}, accType), v);
    return v;
  };
  auto pieces = rowPieces(n, element);
  if (pieces.size() == 1)
    return readPiece(0, n);
  // Odd 16-bit rows: read power-of-two pieces, assemble them in `accType`.
  assert(accType != element && "odd 16-bit rows are read piecewise");
  Value full = splat(b, VectorType::get({n}, accType), 0.0);
  for (auto [at, lanes] : pieces)
    full = vector::InsertStridedSliceOp::create(b, readPiece(at, lanes), full,
                                                ArrayRef<int64_t>{at},
                                                ArrayRef<int64_t>{1});
  return full;
}

/// Writes `vec` (rounded to the storage type) at `dest[row, d0]`; returns
/// the updated tensor.
Value writeRow(ImplicitLocOpBuilder &b, Value vec, Value dest, Value row,
               int64_t d0) {
  Type element = cast<RankedTensorType>(dest.getType()).getElementType();
  auto vecType = cast<VectorType>(vec.getType());
  int64_t n = vecType.getDimSize(0);
  auto pieces = rowPieces(n, element);
  for (auto [at, lanes] : pieces) {
    Value piece = vec;
    if (pieces.size() > 1)
      piece = vector::ExtractStridedSliceOp::create(
          b, vec, ArrayRef<int64_t>{at}, ArrayRef<int64_t>{lanes},
          ArrayRef<int64_t>{1});
    if (vecType.getElementType() != element && isa<FloatType>(element))
      piece =
          arith::TruncFOp::create(b, VectorType::get({lanes}, element), piece);
    dest = vector::TransferWriteOp::create(b, piece, dest,
                                           ValueRange{row, cIndex(b, d0 + at)},
                                           ArrayRef<bool>{true})
               .getResult();
  }
  return dest;
}

/// The D-blocks [d0, d0 + n) of a row of D lanes, each lane keeping
/// `bytesPerLane` bytes of loop-carried state (accumulators, argmax).
SmallVector<std::pair<int64_t, int64_t>> dBlocks(int64_t dim,
                                                 int64_t bytesPerLane) {
  int64_t lanes = cpu::blockLanes(bytesPerLane);
  SmallVector<std::pair<int64_t, int64_t>> blocks;
  for (int64_t d0 = 0; d0 < dim; d0 += lanes)
    blocks.push_back({d0, std::min(lanes, dim - d0)});
  return blocks;
}

int64_t bytesOf(Type t) { return t.getIntOrFloatBitWidth() / 8; }

/// The padding row as an index value (normalising a negative padding_idx
/// with V, at run time when V is dynamic), or null without padding.
Value paddingRow(ImplicitLocOpBuilder &b, std::optional<int64_t> paddingIdx,
                 Value table, int64_t numEmbeddings) {
  if (!paddingIdx)
    return Value();
  if (*paddingIdx >= 0)
    return cIndex(b, *paddingIdx);
  if (!ShapedType::isDynamic(numEmbeddings))
    return cIndex(b, numEmbeddings + *paddingIdx);
  Value v = tensor::DimOp::create(b, table, 0);
  return arith::AddIOp::create(b, v, cIndex(b, *paddingIdx));
}

/// Reshapes `[N, D]` back to `indices.shape + [D]`.
Value unflattenRows(ImplicitLocOpBuilder &b, Value rows, Value indices,
                    RankedTensorType resultType) {
  auto idxType = cast<RankedTensorType>(indices.getType());
  if (idxType.getRank() == 1)
    return rows;
  if (idxType.getRank() == 0)
    return tensor::CollapseShapeOp::create(
        b, resultType, rows, ArrayRef<ReassociationIndices>{{0, 1}});
  ReassociationIndices lead;
  for (int64_t i = 0; i < idxType.getRank(); ++i)
    lead.push_back(i);
  SmallVector<OpFoldResult> shape;
  for (int64_t i = 0; i < idxType.getRank(); ++i)
    shape.push_back(tensor::getMixedSize(b, b.getLoc(), indices, i));
  shape.push_back(b.getIndexAttr(resultType.getShape().back()));
  return tensor::ExpandShapeOp::create(
      b, resultType, rows,
      ArrayRef<ReassociationIndices>{lead, {idxType.getRank()}}, shape);
}

/// A `tensor.empty` of `type` whose dynamic sizes are `dynSizes`.
Value emptyLike(ImplicitLocOpBuilder &b, RankedTensorType type,
                ValueRange dynSizes) {
  return tensor::EmptyOp::create(b, type.getShape(), type.getElementType(),
                                 dynSizes);
}

/// The bag structure of a bag op, shared by every bag lowering: 1-D
/// indices with offsets (with or without include_last_offset) or 2-D
/// indices [B, L].
struct BagStructure {
  Value offsets, numIndices, numBags, bagLen, numOffsets;
  bool twoD = false, includeLast = false;

  BagStructure(ImplicitLocOpBuilder &b, Value indices, Value flat,
               Value offsetsIn, bool includeLastOffset)
      : offsets(offsetsIn) {
    twoD = cast<RankedTensorType>(indices.getType()).getRank() == 2;
    includeLast = includeLastOffset && !twoD;
    numIndices = tensor::DimOp::create(b, flat, 0);
    if (twoD) {
      numBags = tensor::DimOp::create(b, indices, 0);
      bagLen = tensor::DimOp::create(b, indices, 1);
    } else {
      numOffsets = tensor::DimOp::create(b, offsets, 0);
      numBags = includeLast ? arith::SubIOp::create(b, numOffsets, cIndex(b, 1))
                            : numOffsets;
    }
  }

  /// [start, end) of bag `bag` in the flattened indices. Without
  /// include_last_offset the last bag ends at len(indices): read a valid
  /// offset anyway and select, to keep the loop free of branches.
  std::pair<Value, Value> bounds(ImplicitLocOpBuilder &ib, Value bag) const {
    if (twoD) {
      Value start = arith::MulIOp::create(ib, bag, bagLen);
      return {start, arith::AddIOp::create(ib, start, bagLen)};
    }
    Value c1 = cIndex(ib, 1);
    Value start = extractIndex(ib, offsets, bag);
    Value next = arith::AddIOp::create(ib, bag, c1);
    if (includeLast)
      return {start, extractIndex(ib, offsets, next)};
    Value last = arith::SubIOp::create(ib, numOffsets, c1);
    Value safe = arith::MinUIOp::create(ib, next, last);
    Value nextOff = extractIndex(ib, offsets, safe);
    Value hasNext =
        arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, next, numOffsets);
    return {start, arith::SelectOp::create(ib, hasNext, nextOff, numIndices)};
  }
};

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
LogicalResult lowerLookup(LookupOp op, RewriterBase &rewriter) {
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
  Value init =
      emptyLike(b, rowsType,
                ShapedType::isDynamic(numRows) ? ValueRange{n} : ValueRange{});
  Value pad =
      op.getPaddingMode() == PaddingMode::zero
          ? paddingRow(b, op.getPaddingIdx(), weight, wType.getDimSize(0))
          : Value();
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), n, cIndex(b, 1), ValueRange{init},
      [&](OpBuilder &nb, Location loc, Value i, ValueRange iters) {
        ImplicitLocOpBuilder ib(loc, nb);
        Value r = extractIndex(ib, flat, i);
        Value out = iters[0];
        Value isPad =
            pad ? arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, r, pad)
                : Value();
        for (auto [d0, lanes] : dBlocks(dim, bytesOf(element))) {
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
LogicalResult lowerBag(BagOp op, RewriterBase &rewriter) {
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
  Value psw =
      op.getPerSampleWeights() ? flatten(b, op.getPerSampleWeights()) : Value();
  BagStructure bags(b, op.getIndices(), flat, op.getOffsets(), includeLast);
  Value numBags = bags.numBags;
  Value pad = paddingRow(b, op.getPaddingIdx(), weight, wType.getDimSize(0));

  auto outType = cast<RankedTensorType>(op.getOutput().getType());
  SmallVector<Value> inits{
      emptyLike(b, outType,
                outType.isDynamicDim(0) ? ValueRange{numBags} : ValueRange{})};
  bool withArgmax = static_cast<bool>(op.getMaxIndices());
  if (withArgmax) {
    auto mType = cast<RankedTensorType>(op.getMaxIndices().getType());
    inits.push_back(emptyLike(
        b, mType, mType.isDynamicDim(0) ? ValueRange{numBags} : ValueRange{}));
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
        for (auto block : dBlocks(dim, stateBytes)) {
          int64_t d0 = block.first, lanes = block.second;
          auto accVec = VectorType::get({lanes}, accType);
          auto argVec = VectorType::get({lanes}, ib.getI64Type());
          SmallVector<Value> accInits{splat(ib, accVec, 0.0), cIndex(ib, 0)};
          if (withArgmax)
            accInits.push_back(arith::ConstantOp::create(
                ib, DenseElementsAttr::get(argVec, ib.getI64IntegerAttr(-1))));
          auto inner = scf::ForOp::create(
              ib, start, end, c1, accInits,
              [&](OpBuilder &jb, Location jloc, Value j, ValueRange acc) {
                ImplicitLocOpBuilder lb(jloc, jb);
                Value r = extractIndex(lb, flat, j);
                auto update = [&](OpBuilder &ub, Location uloc) {
                  ImplicitLocOpBuilder xb(uloc, ub);
                  Value row = readRow(xb, weight, r, d0, lanes, accType);
                  Value cnt = arith::AddIOp::create(xb, acc[1], cIndex(xb, 1));
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
                    auto pick =
                        scf::IfOp::create(xb, types, first, /*withElse=*/true);
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
                    Value w = tensor::ExtractOp::create(xb, psw, j);
                    if (w.getType() != accType)
                      w = arith::ExtFOp::create(xb, accType, w);
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
                Value notPad =
                    arith::CmpIOp::create(lb, arith::CmpIPredicate::ne, r, pad);
                auto ifOp = scf::IfOp::create(
                    lb, notPad, update, [&](OpBuilder &eb, Location eloc) {
                      scf::YieldOp::create(eb, eloc, acc);
                    });
                scf::YieldOp::create(lb, ifOp.getResults());
              });
          Value acc = inner.getResult(0);
          if (mode == BagMode::mean) {
            Value cnt = arith::MaxUIOp::create(ib, inner.getResult(1), c1);
            Value cnt64 = arith::IndexCastOp::create(ib, ib.getI64Type(), cnt);
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
LogicalResult lowerRenorm(RenormOp op, RewriterBase &rewriter) {
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
        Value r = extractIndex(ib, flat, j);
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
        for (auto [d0, lanes] : dBlocks(dim, 8))
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
              for (auto [d0, lanes] : dBlocks(dim, bytesOf(accType))) {
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

//===----------------------------------------------------------------------===//
// Gradients: a stable radix sort of the positions by row, then one
// accumulation per row (docs/backward-design.md)
//===----------------------------------------------------------------------===//

/// The positions of the indices sorted by row (stable: input order within a
/// row), padding positions (and rows outside the window) left out; `live`
/// counts the positions kept.
struct SortedRows {
  Value keys, positions; // tensor<?xi64>
  Value live;            // index
};

Value extractI64(ImplicitLocOpBuilder &b, Value tensor, Value pos) {
  Value v = tensor::ExtractOp::create(b, tensor, pos);
  if (!v.getType().isInteger(64))
    v = arith::ExtSIOp::create(b, b.getI64Type(), v);
  return v;
}

Value c64(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantOp::create(b, b.getI64IntegerAttr(v));
}

//   keys, positions = the kept (x_i [- first row], i), compacted
//   for each 8-bit digit of V (LSD):        (the count of passes is static)
//     hist[digit(keys[i])] += 1; start = exclusive prefix sums of hist
//     for i in order: q = start[digit]++; keys'[q] = keys[i]; positions'[q] =
//     positions[i]
SortedRows sortByRow(ImplicitLocOpBuilder &b, Value flatIdx, Value pad,
                     int64_t numEmbeddings, Value rowOffset = Value(),
                     Value rowCount = Value()) {
  Type i64 = b.getI64Type();
  Value n = tensor::DimOp::create(b, flatIdx, 0);
  auto vecType = RankedTensorType::get({ShapedType::kDynamic}, i64);
  Value c1 = cIndex(b, 1);
  // Keep (compactly, in input order) the positions whose row counts: not
  // padding, and inside the row window if there is one (keys relative to it).
  Value first, last;
  if (rowOffset) {
    first = arith::IndexCastOp::create(b, i64, rowOffset);
    last = arith::AddIOp::create(b, first,
                                 arith::IndexCastOp::create(b, i64, rowCount));
  }
  auto init = scf::ForOp::create(
      b, cIndex(b, 0), n, c1,
      ValueRange{
          tensor::EmptyOp::create(b, vecType.getShape(), i64, ValueRange{n}),
          tensor::EmptyOp::create(b, vecType.getShape(), i64, ValueRange{n}),
          cIndex(b, 0)},
      [&](OpBuilder &nb, Location loc, Value i, ValueRange it) {
        ImplicitLocOpBuilder ib(loc, nb);
        Value x = extractI64(ib, flatIdx, i);
        Value keep = arith::ConstantOp::create(ib, ib.getBoolAttr(true));
        if (pad)
          keep =
              arith::CmpIOp::create(ib, arith::CmpIPredicate::ne, x,
                                    arith::IndexCastOp::create(ib, i64, pad));
        Value key = x;
        if (rowOffset) {
          Value in = arith::AndIOp::create(
              ib,
              arith::CmpIOp::create(ib, arith::CmpIPredicate::sge, x, first),
              arith::CmpIOp::create(ib, arith::CmpIPredicate::slt, x, last));
          keep = arith::AndIOp::create(ib, keep, in);
          key = arith::SubIOp::create(ib, x, first);
        }
        auto put = scf::IfOp::create(
            ib, keep,
            [&](OpBuilder &tb, Location tl) {
              ImplicitLocOpBuilder xb(tl, tb);
              Value k = it[2];
              Value keys = tensor::InsertOp::create(xb, key, it[0], k);
              Value pos = tensor::InsertOp::create(
                  xb, arith::IndexCastOp::create(xb, i64, i), it[1], k);
              scf::YieldOp::create(
                  xb, ValueRange{keys, pos,
                                 arith::AddIOp::create(xb, k, cIndex(xb, 1))});
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, it);
            });
        scf::YieldOp::create(ib, put.getResults());
      });
  n = init.getResult(2); // the radix passes run over the kept positions
  Value keys = init.getResult(0), positions = init.getResult(1);
  auto histType = RankedTensorType::get({256}, i64);
  Value zeros = arith::ConstantOp::create(
      b, DenseElementsAttr::get(histType, b.getI64IntegerAttr(0)));
  for (int64_t shift = 0; (numEmbeddings >> shift) > 0; shift += 8) {
    auto digit = [&](ImplicitLocOpBuilder &ib, Value key) -> Value {
      Value d = arith::AndIOp::create(
          ib, arith::ShRUIOp::create(ib, key, c64(ib, shift)), c64(ib, 255));
      return arith::IndexCastOp::create(ib, ib.getIndexType(), d);
    };
    Value hist =
        scf::ForOp::create(
            b, cIndex(b, 0), n, c1, ValueRange{zeros},
            [&](OpBuilder &nb, Location loc, Value i, ValueRange it) {
              ImplicitLocOpBuilder ib(loc, nb);
              Value d = digit(ib, tensor::ExtractOp::create(ib, keys, i));
              Value h = tensor::ExtractOp::create(ib, it[0], d);
              scf::YieldOp::create(
                  ib,
                  ValueRange{tensor::InsertOp::create(
                      ib, arith::AddIOp::create(ib, h, c64(ib, 1)), it[0], d)});
            })
            .getResult(0);
    Value start =
        scf::ForOp::create(
            b, cIndex(b, 0), cIndex(b, 256), c1, ValueRange{zeros, c64(b, 0)},
            [&](OpBuilder &nb, Location loc, Value d, ValueRange it) {
              ImplicitLocOpBuilder ib(loc, nb);
              Value s = tensor::InsertOp::create(ib, it[1], it[0], d);
              Value sum = arith::AddIOp::create(
                  ib, it[1], tensor::ExtractOp::create(ib, hist, d));
              scf::YieldOp::create(ib, ValueRange{s, sum});
            })
            .getResult(0);
    auto scatter = scf::ForOp::create(
        b, cIndex(b, 0), n, c1,
        ValueRange{
            tensor::EmptyOp::create(b, vecType.getShape(), i64, ValueRange{n}),
            tensor::EmptyOp::create(b, vecType.getShape(), i64, ValueRange{n}),
            start},
        [&](OpBuilder &nb, Location loc, Value i, ValueRange it) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value k = tensor::ExtractOp::create(ib, keys, i);
          Value p = tensor::ExtractOp::create(ib, positions, i);
          Value d = digit(ib, k);
          Value q64 = tensor::ExtractOp::create(ib, it[2], d);
          Value q = arith::IndexCastOp::create(ib, ib.getIndexType(), q64);
          Value nk = tensor::InsertOp::create(ib, k, it[0], q);
          Value np = tensor::InsertOp::create(ib, p, it[1], q);
          Value ns = tensor::InsertOp::create(
              ib, arith::AddIOp::create(ib, q64, c64(ib, 1)), it[2], d);
          scf::YieldOp::create(ib, ValueRange{nk, np, ns});
        });
    keys = scatter.getResult(0);
    positions = scatter.getResult(1);
  }
  return {keys, positions, n};
}

/// gW = zeros, then for each run of equal rows r in the sorted order:
///   gW[r] = gradScale (/ run length with scale_grad_by_freq) *
///           sum over the run's positions p of grad[source(p)] * factor(p)
/// summed in the accumulator type, rounded once.
Value accumulateRuns(ImplicitLocOpBuilder &b, const SortedRows &sorted,
                     Value gradRows, Value sourceOf, Value factorOf,
                     int64_t numEmbeddings, int64_t dim, bool byFreq,
                     double gradScale, Type element, Value rowCount = Value()) {
  Type accType = accumulatorType(element);
  // The whole [V, D] gradient, or the [rowCount, D] window of it.
  Value gw, numRows;
  if (rowCount) {
    gw =
        tensor::EmptyOp::create(b, ArrayRef<int64_t>{ShapedType::kDynamic, dim},
                                element, ValueRange{rowCount});
    numRows = rowCount;
  } else {
    gw = tensor::EmptyOp::create(b, ArrayRef<int64_t>{numEmbeddings, dim},
                                 element);
    numRows = cIndex(b, numEmbeddings);
  }
  Value c1 = cIndex(b, 1);
  auto blocks = dBlocks(dim, bytesOf(accType));
  gw = scf::ForOp::create(
           b, cIndex(b, 0), numRows, c1, ValueRange{gw},
           [&](OpBuilder &nb, Location loc, Value r, ValueRange it) {
             ImplicitLocOpBuilder ib(loc, nb);
             Value t = it[0];
             for (auto [d0, lanes] : blocks)
               t = writeRow(ib,
                            splat(ib, VectorType::get({lanes}, accType), 0.0),
                            t, r, d0);
             scf::YieldOp::create(ib, ValueRange{t});
           })
           .getResult(0);
  Value live = sorted.live;
  for (auto block : blocks) {
    int64_t d0 = block.first, lanes = block.second;
    auto accVec = VectorType::get({lanes}, accType);
    auto outer = scf::WhileOp::create(
        b, TypeRange{b.getIndexType(), gw.getType()},
        ValueRange{cIndex(b, 0), gw},
        [&](OpBuilder &nb, Location loc, ValueRange args) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value more = arith::CmpIOp::create(ib, arith::CmpIPredicate::ult,
                                             args[0], live);
          scf::ConditionOp::create(ib, more, args);
        },
        [&](OpBuilder &nb, Location loc, ValueRange args) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value i = args[0];
          Value row = tensor::ExtractOp::create(ib, sorted.keys, i);
          Value lastLive = arith::SubIOp::create(ib, live, cIndex(ib, 1));
          auto run = scf::WhileOp::create(
              ib, TypeRange{ib.getIndexType(), accVec},
              ValueRange{i, splat(ib, accVec, 0.0)},
              [&](OpBuilder &rb, Location rloc, ValueRange a) {
                ImplicitLocOpBuilder xb(rloc, rb);
                Value safe = arith::MinUIOp::create(xb, a[0], lastLive);
                Value k = tensor::ExtractOp::create(xb, sorted.keys, safe);
                Value in = arith::CmpIOp::create(xb, arith::CmpIPredicate::ult,
                                                 a[0], live);
                Value same =
                    arith::CmpIOp::create(xb, arith::CmpIPredicate::eq, k, row);
                scf::ConditionOp::create(
                    xb, arith::AndIOp::create(xb, in, same), a);
              },
              [&](OpBuilder &rb, Location rloc, ValueRange a) {
                ImplicitLocOpBuilder xb(rloc, rb);
                Value p = arith::IndexCastOp::create(
                    xb, xb.getIndexType(),
                    tensor::ExtractOp::create(xb, sorted.positions, a[0]));
                Value src = sourceOf ? extractIndex(xb, sourceOf, p) : p;
                Value g = readRow(xb, gradRows, src, d0, lanes, accType);
                if (factorOf) {
                  Value f = tensor::ExtractOp::create(xb, factorOf, p);
                  g = arith::MulFOp::create(
                      xb, g, vector::BroadcastOp::create(xb, accVec, f));
                }
                scf::YieldOp::create(
                    xb,
                    ValueRange{arith::AddIOp::create(xb, a[0], cIndex(xb, 1)),
                               arith::AddFOp::create(xb, a[1], g)});
              });
          Value end = run.getResult(0), acc = run.getResult(1);
          Value scale = arith::ConstantOp::create(
              ib, ib.getFloatAttr(accType, gradScale));
          if (byFreq) {
            Value count = arith::IndexCastOp::create(
                ib, ib.getI64Type(), arith::SubIOp::create(ib, end, i));
            scale = arith::DivFOp::create(
                ib, scale, arith::UIToFPOp::create(ib, accType, count));
          }
          acc = arith::MulFOp::create(
              ib, acc, vector::BroadcastOp::create(ib, accVec, scale));
          Value r = arith::IndexCastOp::create(ib, ib.getIndexType(), row);
          Value t = writeRow(ib, acc, args[1], r, d0);
          scf::YieldOp::create(ib, ValueRange{end, t});
        });
    gw = outer.getResult(1);
  }
  return gw;
}

/// A normalised padding row from an attribute and a static V.
Value staticPaddingRow(ImplicitLocOpBuilder &b, std::optional<int64_t> p,
                       int64_t numEmbeddings) {
  if (!p)
    return Value();
  return cIndex(b, *p < 0 ? *p + numEmbeddings : *p);
}

Value castToResult(ImplicitLocOpBuilder &b, Value v, Type resultType) {
  return v.getType() == resultType
             ? v
             : (Value)tensor::CastOp::create(b, resultType, v);
}

// %gw = emb.lookup_grad %g[%x] {num_embeddings = V, ...}
//   ==>  sortByRow(flat x) ; accumulateRuns(grad rows = flat g, source =
//   position)
LogicalResult lowerLookupGrad(LookupGradOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  int64_t dim = gType.getShape().back();
  if (ShapedType::isDynamic(dim))
    return op.emitOpError("CPU lowering needs a static embedding_dim");
  int64_t numEmbeddings = op.getNumEmbeddings();
  Value flatIdx = flatten(b, op.getIndices());
  // grad [..., D] -> [N, D]
  Value grad = op.getGrad();
  int64_t n = cast<RankedTensorType>(flatIdx.getType()).getDimSize(0);
  auto rowsType = RankedTensorType::get({n, dim}, gType.getElementType());
  if (gType.getRank() == 1) {
    grad = tensor::ExpandShapeOp::create(
        b, rowsType, grad, ArrayRef<ReassociationIndices>{{0, 1}});
  } else if (gType.getRank() > 2) {
    ReassociationIndices lead;
    for (int64_t i = 0; i + 1 < gType.getRank(); ++i)
      lead.push_back(i);
    grad = tensor::CollapseShapeOp::create(
        b, rowsType, grad,
        ArrayRef<ReassociationIndices>{lead, {gType.getRank() - 1}});
  }
  Value pad = staticPaddingRow(b, op.getPaddingIdx(), numEmbeddings);
  SortedRows sorted = sortByRow(b, flatIdx, pad, numEmbeddings,
                                op.getRowOffset(), op.getRowCount());
  Value gw = accumulateRuns(b, sorted, grad, Value(), Value(), numEmbeddings,
                            dim, op.getScaleGradByFreq(),
                            op.getGradScale().convertToDouble(),
                            gType.getElementType(), op.getRowCount());
  rewriter.replaceOp(op, castToResult(b, gw, op.getType()));
  return success();
}

/// Defined with the sparse gradients below.
std::pair<Value, Value> bagPositions(ImplicitLocOpBuilder &b, Value indices,
                                     Value flat, Value offsets, Value psw,
                                     bool includeLast, BagMode mode, Value pad,
                                     Type accType);

// %gw = emb.bag_grad sum|mean %g[%x] offsets(...) per_sample_weights(...)
//   ==>  per position j: source[j] = bag(j), factor[j] = psw_j / n_bag(j)
//        (mean), then sortByRow + accumulateRuns over the bag gradients.
// %gw = emb.bag_grad max %g[%x] max_indices(%m) {num_embeddings = V}
//   f32 / f64 ==> zero gW, then gW[m[b, d], d] += g[b, d] in bag order;
//   f16 / bf16 ==> the same sort and accumulation over the B*D elements of %g
//        (f32 sums, one rounding), keyed by
//        the element of gW they add to: key(b, d) = m[b, d] * D + d (-1 in m:
//        no contribution), as a [V*D, 1] gradient reshaped to [V, D]. The
//        contributions to one element are summed in bag order.
LogicalResult lowerBagGradMax(BagGradOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  int64_t dim = gType.getDimSize(1);
  if (ShapedType::isDynamic(dim))
    return op.emitOpError("CPU lowering needs a static embedding_dim");
  int64_t numEmbeddings = op.getNumEmbeddings();
  Type element = gType.getElementType();
  if (element == accumulatorType(element)) {
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
               Value t = it[0];
               for (auto [d0, lanes] : dBlocks(dim, bytesOf(element)))
                 t = writeRow(ib,
                              splat(ib, VectorType::get({lanes}, element), 0.0),
                              t, r, d0);
               scf::YieldOp::create(ib, ValueRange{t});
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
      b, flatType(b.getI64Type()), dynRows(op.getMaxIndices(), b.getI64Type()),
      all);
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
  Value gw =
      accumulateRuns(b, sorted, gRows, Value(), Value(), numEmbeddings * dim, 1,
                     /*byFreq=*/false, op.getGradScale().convertToDouble(),
                     element, elemCount);
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

LogicalResult lowerBagGrad(BagGradOp op, RewriterBase &rewriter) {
  if (op.getMode() == BagMode::max)
    return lowerBagGradMax(op, rewriter);
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  int64_t dim = gType.getDimSize(1);
  if (ShapedType::isDynamic(dim))
    return op.emitOpError("CPU lowering needs a static embedding_dim");
  Type element = gType.getElementType();
  int64_t numEmbeddings = op.getNumEmbeddings();
  Value flat = flatten(b, op.getIndices());
  Value psw =
      op.getPerSampleWeights() ? flatten(b, op.getPerSampleWeights()) : Value();
  Value pad = staticPaddingRow(b, op.getPaddingIdx(), numEmbeddings);
  auto [source, factor] = bagPositions(
      b, op.getIndices(), flat, op.getOffsets(), psw, op.getIncludeLastOffset(),
      op.getMode(), pad, accumulatorType(element));
  SortedRows sorted = sortByRow(b, flat, pad, numEmbeddings, op.getRowOffset(),
                                op.getRowCount());
  Value gw = accumulateRuns(b, sorted, op.getGrad(), source, factor,
                            numEmbeddings, dim, op.getScaleGradByFreq(),
                            op.getGradScale().convertToDouble(), element,
                            op.getRowCount());
  rewriter.replaceOp(op, castToResult(b, gw, op.getType()));
  return success();
}

// %gp = emb.bag_psw_grad %g, %w[%x] offsets(...)
//   ==>
// for each bag b, for each entry j of b:
//   %gp[j] = x_j == P ? 0 : dot(%g[b, :], %w[x_j, :])   (f32, f64 for f64)
// (for 2-D indices, %gp[b, j - b*L]).
LogicalResult lowerBagPswGrad(BagPswGradOp op, RewriterBase &rewriter) {
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
  Value pad = paddingRow(b, op.getPaddingIdx(), weight, wType.getDimSize(0));
  BagStructure bags(b, op.getIndices(), flat, op.getOffsets(), includeLast);
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
              Value r = extractIndex(xb, flat, j);
              Value acc =
                  arith::ConstantOp::create(xb, xb.getFloatAttr(accType, 0.0));
              for (auto [d0, lanes] : dBlocks(dim, bytesOf(accType))) {
                Value g = readRow(xb, op.getGrad(), bag, d0, lanes, accType);
                Value w = readRow(xb, weight, r, d0, lanes, accType);
                Value part = vector::ReductionOp::create(
                    xb, vector::CombiningKind::ADD,
                    arith::MulFOp::create(xb, g, w));
                acc = arith::AddFOp::create(xb, acc, part);
              }
              if (pad) {
                Value isPad =
                    arith::CmpIOp::create(xb, arith::CmpIPredicate::eq, r, pad);
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
              scf::YieldOp::create(
                  xb, ValueRange{tensor::InsertOp::create(xb, acc, t[0], at)});
            });
        scf::YieldOp::create(ib, inner.getResults());
      });
  rewriter.replaceOp(op, loop.getResult(0));
  return success();
}

//===----------------------------------------------------------------------===//
// Sparse gradients: COO rows + values
//===----------------------------------------------------------------------===//

/// Per position j of a bag op: the bag it belongs to (`source`) and, with
/// per_sample_weights or mean, the factor psw_j / n_bag(j) (`factor`, else
/// null). Shared by the dense and sparse bag gradients.
std::pair<Value, Value> bagPositions(ImplicitLocOpBuilder &b, Value indices,
                                     Value flat, Value offsets, Value psw,
                                     bool includeLast, BagMode mode, Value pad,
                                     Type accType) {
  bool mean = mode == BagMode::mean;
  BagStructure bags(b, indices, flat, offsets, includeLast);
  Value n = bags.numIndices, numBags = bags.numBags;
  bool withFactor = mean || psw;
  SmallVector<Value> inits{
      tensor::EmptyOp::create(b, ArrayRef<int64_t>{ShapedType::kDynamic},
                              b.getI64Type(), ValueRange{n})};
  if (withFactor)
    inits.push_back(tensor::EmptyOp::create(
        b, ArrayRef<int64_t>{ShapedType::kDynamic}, accType, ValueRange{n}));
  Value c1 = cIndex(b, 1);
  auto loop = scf::ForOp::create(
      b, cIndex(b, 0), numBags, c1, inits,
      [&](OpBuilder &nb, Location loc, Value bag, ValueRange it) {
        ImplicitLocOpBuilder ib(loc, nb);
        auto bounds = bags.bounds(ib, bag);
        Value start = bounds.first, end = bounds.second;
        Value inv;
        if (mean) {
          Value live =
              scf::ForOp::create(
                  ib, start, end, c1, ValueRange{cIndex(ib, 0)},
                  [&](OpBuilder &cb, Location cl, Value j, ValueRange c) {
                    ImplicitLocOpBuilder xb(cl, cb);
                    Value next = arith::AddIOp::create(xb, c[0], cIndex(xb, 1));
                    if (pad) {
                      Value isPad =
                          arith::CmpIOp::create(xb, arith::CmpIPredicate::eq,
                                                extractIndex(xb, flat, j), pad);
                      next = arith::SelectOp::create(xb, isPad, c[0], next);
                    }
                    scf::YieldOp::create(xb, ValueRange{next});
                  })
                  .getResult(0);
          Value cnt = arith::MaxUIOp::create(ib, live, c1);
          Value cntF = arith::UIToFPOp::create(
              ib, accType,
              arith::IndexCastOp::create(ib, ib.getI64Type(), cnt));
          inv = arith::DivFOp::create(
              ib, arith::ConstantOp::create(ib, ib.getFloatAttr(accType, 1.0)),
              cntF);
        }
        auto fill = scf::ForOp::create(
            ib, start, end, c1, it,
            [&](OpBuilder &fb, Location fl, Value j, ValueRange t) {
              ImplicitLocOpBuilder xb(fl, fb);
              SmallVector<Value> next{tensor::InsertOp::create(
                  xb, arith::IndexCastOp::create(xb, xb.getI64Type(), bag),
                  t[0], j)};
              if (withFactor) {
                Value f = inv;
                if (psw) {
                  Value w = tensor::ExtractOp::create(xb, psw, j);
                  if (w.getType() != accType)
                    w = arith::ExtFOp::create(xb, accType, w);
                  f = f ? (Value)arith::MulFOp::create(xb, f, w) : w;
                }
                next.push_back(tensor::InsertOp::create(xb, f, t[1], j));
              }
              scf::YieldOp::create(xb, next);
            });
        scf::YieldOp::create(ib, fill.getResults());
      });
  return {loop.getResult(0), withFactor ? loop.getResult(1) : Value()};
}

/// The contribution row of position p: grad[source(p)] * factor(p) * scale,
/// D-block [d0, d0 + lanes), in the accumulator type.
Value contribution(ImplicitLocOpBuilder &b, Value gradRows, Value sourceOf,
                   Value factorOf, Value p, int64_t d0, int64_t lanes,
                   Type accType) {
  Value src = sourceOf ? extractIndex(b, sourceOf, p) : p;
  Value g = readRow(b, gradRows, src, d0, lanes, accType);
  if (factorOf) {
    Value f = tensor::ExtractOp::create(b, factorOf, p);
    g = arith::MulFOp::create(
        b, g,
        vector::BroadcastOp::create(b, VectorType::get({lanes}, accType), f));
  }
  return g;
}

// Uncoalesced (PyTorch's form): one row per non-padding position, in input
// order:  k = 0; for j: if x_j != P: rows[k] = x_j; values[k] =
// contribution(j); k++ Coalesced: sortByRow, then one (row, summed
// contribution) per run.
std::pair<Value, Value>
sparseGrad(ImplicitLocOpBuilder &b, Value flat, Value gradRows, Value sourceOf,
           Value factorOf, Value pad, int64_t numEmbeddings, int64_t dim,
           double gradScale, bool coalesced, Type element) {
  Type accType = accumulatorType(element);
  Type i64 = b.getI64Type();
  Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
  Value n = tensor::DimOp::create(b, flat, 0);
  auto blocks = dBlocks(dim, bytesOf(accType));
  Value scale =
      arith::ConstantOp::create(b, b.getFloatAttr(accType, gradScale));
  auto scaled = [&](ImplicitLocOpBuilder &xb, Value v, int64_t lanes) {
    return arith::MulFOp::create(
        xb, v,
        vector::BroadcastOp::create(xb, VectorType::get({lanes}, accType),
                                    scale));
  };
  auto empties = [&](Value m) -> std::pair<Value, Value> {
    Value rows = tensor::EmptyOp::create(
        b, ArrayRef<int64_t>{ShapedType::kDynamic}, i64, ValueRange{m});
    Value values =
        tensor::EmptyOp::create(b, ArrayRef<int64_t>{ShapedType::kDynamic, dim},
                                element, ValueRange{m});
    return {rows, values};
  };
  if (!coalesced) {
    Value live = n;
    if (pad)
      live = scf::ForOp::create(
                 b, c0, n, c1, ValueRange{c0},
                 [&](OpBuilder &nb, Location loc, Value j, ValueRange c) {
                   ImplicitLocOpBuilder ib(loc, nb);
                   Value isPad =
                       arith::CmpIOp::create(ib, arith::CmpIPredicate::eq,
                                             extractIndex(ib, flat, j), pad);
                   Value next = arith::AddIOp::create(ib, c[0], cIndex(ib, 1));
                   scf::YieldOp::create(ib, ValueRange{arith::SelectOp::create(
                                                ib, isPad, c[0], next)});
                 })
                 .getResult(0);
    auto [rows0, values0] = empties(live);
    auto loop = scf::ForOp::create(
        b, c0, n, c1, ValueRange{c0, rows0, values0},
        [&](OpBuilder &nb, Location loc, Value j, ValueRange it) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value x = extractIndex(ib, flat, j);
          auto emit = [&](OpBuilder &eb, Location el) {
            ImplicitLocOpBuilder xb(el, eb);
            Value k = it[0];
            Value rows = tensor::InsertOp::create(
                xb, arith::IndexCastOp::create(xb, i64, x), it[1], k);
            Value values = it[2];
            for (auto [d0, lanes] : blocks)
              values =
                  writeRow(xb,
                           scaled(xb,
                                  contribution(xb, gradRows, sourceOf, factorOf,
                                               j, d0, lanes, accType),
                                  lanes),
                           values, k, d0);
            scf::YieldOp::create(
                xb, ValueRange{arith::AddIOp::create(xb, k, cIndex(xb, 1)),
                               rows, values});
          };
          if (!pad) {
            emit(nb, loc);
            return;
          }
          Value keep =
              arith::CmpIOp::create(ib, arith::CmpIPredicate::ne, x, pad);
          auto ifOp = scf::IfOp::create(ib, keep, emit,
                                        [&](OpBuilder &eb, Location el) {
                                          scf::YieldOp::create(eb, el, it);
                                        });
          scf::YieldOp::create(ib, ifOp.getResults());
        });
    return {loop.getResult(1), loop.getResult(2)};
  }

  SortedRows sorted = sortByRow(b, flat, pad, numEmbeddings);
  Value live = sorted.live;
  // Distinct rows: 1 + the number of key changes among the live entries.
  Value distinct =
      scf::ForOp::create(
          b, c0, live, c1, ValueRange{c0},
          [&](OpBuilder &nb, Location loc, Value i, ValueRange c) {
            ImplicitLocOpBuilder ib(loc, nb);
            Value prev = arith::SubIOp::create(
                ib, arith::MaxUIOp::create(ib, i, c1), c1);
            Value k = tensor::ExtractOp::create(ib, sorted.keys, i);
            Value kp = tensor::ExtractOp::create(ib, sorted.keys, prev);
            Value first =
                arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, i, c0);
            Value change = arith::OrIOp::create(
                ib, first,
                arith::CmpIOp::create(ib, arith::CmpIPredicate::ne, k, kp));
            Value next = arith::AddIOp::create(ib, c[0], cIndex(ib, 1));
            scf::YieldOp::create(ib, ValueRange{arith::SelectOp::create(
                                         ib, change, next, c[0])});
          })
          .getResult(0);
  auto [rows, values] = empties(distinct);
  Value lastLive =
      arith::SubIOp::create(b, arith::MaxUIOp::create(b, live, c1), c1);
  for (auto block : blocks) {
    int64_t d0 = block.first, lanes = block.second;
    auto accVec = VectorType::get({lanes}, accType);
    auto outer = scf::WhileOp::create(
        b,
        TypeRange{b.getIndexType(), b.getIndexType(), rows.getType(),
                  values.getType()},
        ValueRange{c0, c0, rows, values},
        [&](OpBuilder &nb, Location loc, ValueRange a) {
          ImplicitLocOpBuilder ib(loc, nb);
          scf::ConditionOp::create(
              ib,
              arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, a[0], live),
              a);
        },
        [&](OpBuilder &nb, Location loc, ValueRange a) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value i = a[0], k = a[1];
          Value row = tensor::ExtractOp::create(ib, sorted.keys, i);
          auto run = scf::WhileOp::create(
              ib, TypeRange{ib.getIndexType(), accVec},
              ValueRange{i, splat(ib, accVec, 0.0)},
              [&](OpBuilder &rb, Location rl, ValueRange r) {
                ImplicitLocOpBuilder xb(rl, rb);
                Value safe = arith::MinUIOp::create(xb, r[0], lastLive);
                Value key = tensor::ExtractOp::create(xb, sorted.keys, safe);
                Value in = arith::CmpIOp::create(xb, arith::CmpIPredicate::ult,
                                                 r[0], live);
                Value same = arith::CmpIOp::create(xb, arith::CmpIPredicate::eq,
                                                   key, row);
                scf::ConditionOp::create(
                    xb, arith::AndIOp::create(xb, in, same), r);
              },
              [&](OpBuilder &rb, Location rl, ValueRange r) {
                ImplicitLocOpBuilder xb(rl, rb);
                Value p = arith::IndexCastOp::create(
                    xb, xb.getIndexType(),
                    tensor::ExtractOp::create(xb, sorted.positions, r[0]));
                Value g = contribution(xb, gradRows, sourceOf, factorOf, p, d0,
                                       lanes, accType);
                scf::YieldOp::create(
                    xb,
                    ValueRange{arith::AddIOp::create(xb, r[0], cIndex(xb, 1)),
                               arith::AddFOp::create(xb, r[1], g)});
              });
          Value newRows = tensor::InsertOp::create(ib, row, a[2], k);
          Value newValues =
              writeRow(ib, scaled(ib, run.getResult(1), lanes), a[3], k, d0);
          scf::YieldOp::create(
              ib, ValueRange{run.getResult(0),
                             arith::AddIOp::create(ib, k, cIndex(ib, 1)),
                             newRows, newValues});
        });
    rows = outer.getResult(2);
    values = outer.getResult(3);
  }
  return {rows, values};
}

LogicalResult lowerLookupSparseGrad(LookupSparseGradOp op,
                                    RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  int64_t dim = gType.getShape().back();
  if (ShapedType::isDynamic(dim))
    return op.emitOpError("CPU lowering needs a static embedding_dim");
  Value flat = flatten(b, op.getIndices());
  Value grad = op.getGrad();
  int64_t n = cast<RankedTensorType>(flat.getType()).getDimSize(0);
  auto rowsType = RankedTensorType::get({n, dim}, gType.getElementType());
  if (gType.getRank() == 1) {
    grad = tensor::ExpandShapeOp::create(
        b, rowsType, grad, ArrayRef<ReassociationIndices>{{0, 1}});
  } else if (gType.getRank() > 2) {
    ReassociationIndices lead;
    for (int64_t i = 0; i + 1 < gType.getRank(); ++i)
      lead.push_back(i);
    grad = tensor::CollapseShapeOp::create(
        b, rowsType, grad,
        ArrayRef<ReassociationIndices>{lead, {gType.getRank() - 1}});
  }
  Value pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
  auto [rows, values] =
      sparseGrad(b, flat, grad, Value(), Value(), pad, op.getNumEmbeddings(),
                 dim, op.getGradScale().convertToDouble(), op.getCoalesced(),
                 gType.getElementType());
  rewriter.replaceOp(op, {castToResult(b, rows, op.getRows().getType()),
                          castToResult(b, values, op.getValues().getType())});
  return success();
}

LogicalResult lowerBagSparseGrad(BagSparseGradOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  int64_t dim = gType.getDimSize(1);
  if (ShapedType::isDynamic(dim))
    return op.emitOpError("CPU lowering needs a static embedding_dim");
  Type element = gType.getElementType();
  Value flat = flatten(b, op.getIndices());
  Value psw =
      op.getPerSampleWeights() ? flatten(b, op.getPerSampleWeights()) : Value();
  Value pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
  auto [source, factor] = bagPositions(
      b, op.getIndices(), flat, op.getOffsets(), psw, op.getIncludeLastOffset(),
      op.getMode(), pad, accumulatorType(element));
  auto [rows, values] = sparseGrad(
      b, flat, op.getGrad(), source, factor, pad, op.getNumEmbeddings(), dim,
      op.getGradScale().convertToDouble(), op.getCoalesced(), element);
  rewriter.replaceOp(op, {castToResult(b, rows, op.getRows().getType()),
                          castToResult(b, values, op.getValues().getType())});
  return success();
}

//===----------------------------------------------------------------------===//
// Pass
//===----------------------------------------------------------------------===//

struct ConvertEmbToSCFPass
    : emb::impl::ConvertEmbToSCFBase<ConvertEmbToSCFPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<EmbDialect>(op->getDialect()))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      rewriter.setInsertionPoint(op);
      LogicalResult result =
          llvm::TypeSwitch<Operation *, LogicalResult>(op)
              .Case([&](LookupOp o) { return lowerLookup(o, rewriter); })
              .Case([&](BagOp o) { return lowerBag(o, rewriter); })
              .Case([&](RenormOp o) { return lowerRenorm(o, rewriter); })
              .Case(
                  [&](LookupGradOp o) { return lowerLookupGrad(o, rewriter); })
              .Case([&](BagGradOp o) { return lowerBagGrad(o, rewriter); })
              .Case(
                  [&](BagPswGradOp o) { return lowerBagPswGrad(o, rewriter); })
              .Case([&](LookupSparseGradOp o) {
                return lowerLookupSparseGrad(o, rewriter);
              })
              .Case([&](BagSparseGradOp o) {
                return lowerBagSparseGrad(o, rewriter);
              })
              .Default([&](Operation *o) {
                return o->emitOpError() << "has no CPU lowering yet (planned: "
                                           "docs/backward-design.md)";
              });
      if (failed(result))
        return signalPassFailure();
    }
  }
};

} // namespace
