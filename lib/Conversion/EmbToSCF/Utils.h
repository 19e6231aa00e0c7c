//===- Utils.h - builders shared by the CPU patterns
//------------------------===//
//
// Row reads and writes as vectors over tensors, D-blocks, the padding row,
// the gradient reshape and the bag structure: what every CPU lowering of
// an emb op builds from (private to lib/Conversion/EmbToSCF).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBTOSCF_UTILS_H
#define EMB_LIB_CONVERSION_EMBTOSCF_UTILS_H

#include "Conversion/EmbCommon/CPUConfig.h"
#include "Conversion/EmbCommon/LoweringUtils.h"
#include "Conversion/EmbCommon/OpStructure.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::emb::cpu_lowering {
using namespace mlir::emb::lowering;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

inline Value splat(ImplicitLocOpBuilder &b, VectorType type, double value) {
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(type,
                                b.getFloatAttr(type.getElementType(), value)));
}

/// The pieces a row access of `n` lanes is split into: powers of two for
/// f16 / bf16 (LLVM cannot legalise odd-sized vectors of 16-bit floats,
/// e.g. `<17 x bfloat>`), one piece otherwise.
inline SmallVector<std::pair<int64_t, int64_t>> rowPieces(int64_t n,
                                                          Type element) {
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

/// The index `d0 + at`: a constant when the D-block's offset `d0` is static
/// (unrolled blocks), an addition to the block loop's induction variable
/// otherwise.
inline Value blockOffset(ImplicitLocOpBuilder &b, OpFoldResult d0, int64_t at) {
  if (auto attr = dyn_cast<Attribute>(d0))
    return cIndex(b, cast<IntegerAttr>(attr).getInt() + at);
  Value v = cast<Value>(d0);
  return at == 0 ? v : (Value)arith::AddIOp::create(b, v, cIndex(b, at));
}

/// `d0 + at` as an OpFoldResult (static when `d0` is).
inline OpFoldResult addOffset(ImplicitLocOpBuilder &b, OpFoldResult d0,
                              int64_t at) {
  if (auto attr = dyn_cast<Attribute>(d0))
    return b.getIndexAttr(cast<IntegerAttr>(attr).getInt() + at);
  return at == 0 ? d0 : OpFoldResult(blockOffset(b, d0, at));
}

/// Lanes [d0, d0 + n) of row `row` of the 2-D tensor `table`, converted to
/// `accType` (no conversion when `accType` is the storage type).
inline Value readRow(ImplicitLocOpBuilder &b, Value table, Value row,
                     OpFoldResult d0, int64_t n, Type accType) {
  Type element = cast<RankedTensorType>(table.getType()).getElementType();
  Value pad = arith::ConstantOp::create(b, b.getFloatAttr(element, 0.0));
  auto readPiece = [&](int64_t at, int64_t lanes) -> Value {
    Value v = vector::TransferReadOp::create(
        b, VectorType::get({lanes}, element), table,
        ValueRange{row, blockOffset(b, d0, at)}, pad, ArrayRef<bool>{true});
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

/// readRow at a static offset.
inline Value readRow(ImplicitLocOpBuilder &b, Value table, Value row,
                     int64_t d0, int64_t n, Type accType) {
  return readRow(b, table, row, b.getIndexAttr(d0), n, accType);
}

/// Writes `vec` (rounded to the storage type) at `dest[row, d0]`; returns
/// the updated tensor.
inline Value writeRowAt(ImplicitLocOpBuilder &b, Value vec, Value dest,
                        ValueRange lead, OpFoldResult d0) {
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
    SmallVector<Value> position(lead.begin(), lead.end());
    position.push_back(blockOffset(b, d0, at));
    dest = vector::TransferWriteOp::create(b, piece, dest, position,
                                           ArrayRef<bool>{true})
               .getResult();
  }
  return dest;
}

/// writeRowAt at a static offset.
inline Value writeRowAt(ImplicitLocOpBuilder &b, Value vec, Value dest,
                        ValueRange lead, int64_t d0) {
  return writeRowAt(b, vec, dest, lead, b.getIndexAttr(d0));
}

/// writeRowAt for a 2-D `dest`: row `row`.
inline Value writeRow(ImplicitLocOpBuilder &b, Value vec, Value dest, Value row,
                      OpFoldResult d0) {
  return writeRowAt(b, vec, dest, ValueRange{row}, d0);
}

inline Value writeRow(ImplicitLocOpBuilder &b, Value vec, Value dest, Value row,
                      int64_t d0) {
  return writeRowAt(b, vec, dest, ValueRange{row}, d0);
}

/// The D-blocks [d0, d0 + n) of a row of D lanes, each lane keeping
/// `bytesPerLane` bytes of loop-carried state (accumulators, argmax).
inline SmallVector<std::pair<int64_t, int64_t>>
dBlocks(int64_t dim, int64_t bytesPerLane,
        const cpu::CPULoweringConfig &config) {
  int64_t lanes = cpu::blockLanes(bytesPerLane, config.accumulatorBlockBytes);
  SmallVector<std::pair<int64_t, int64_t>> blocks;
  for (int64_t d0 = 0; d0 < dim; d0 += lanes)
    blocks.push_back({d0, std::min(lanes, dim - d0)});
  return blocks;
}

/// Whether the D-blocks of a row of D lanes are emitted one after another
/// (at most cpu::kMaxUnrolledDBlocks of them) rather than by a block loop.
inline bool unrolledDBlocks(int64_t dim, int64_t bytesPerLane,
                            const cpu::CPULoweringConfig &config) {
  int64_t lanes = cpu::blockLanes(bytesPerLane, config.accumulatorBlockBytes);
  return llvm::divideCeil(dim, lanes) <= cpu::kMaxUnrolledDBlocks;
}

/// The IR of one D-block [d0, d0 + lanes): `d0` is static (an index
/// attribute) or the block loop's induction variable; `state` holds the
/// values threaded from block to block (the output tensor, a partial sum),
/// and the body returns their new values.
using DBlockBody = function_ref<SmallVector<Value>(
    ImplicitLocOpBuilder &, OpFoldResult d0, int64_t lanes, ValueRange state)>;

/// Emits `body` for every D-block of a row of D lanes from block
/// `firstBlock` on, threading `inits` through them in order; returns the
/// final state. Up to cpu::kMaxUnrolledDBlocks blocks (in all) are unrolled
/// with static offsets, exactly as they always were; a longer row gets one
/// scf.for over its full blocks, `perIteration` of them per iteration, then
/// the full blocks left over and the partial tail block, if any, unrolled.
/// Either way each element sees the same operations in the same order, so
/// the results are the same bits, and the IR of a row no longer grows with
/// D. (Blocks that end in an ordered reduction, whose chains of adds only
/// overlap when several are in one iteration, take a few per iteration.)
inline SmallVector<Value> forEachDBlock(ImplicitLocOpBuilder &b, int64_t dim,
                                        int64_t bytesPerLane,
                                        const cpu::CPULoweringConfig &config,
                                        ValueRange inits, DBlockBody body,
                                        int64_t firstBlock = 0,
                                        int64_t perIteration = 1) {
  int64_t lanes = cpu::blockLanes(bytesPerLane, config.accumulatorBlockBytes);
  SmallVector<Value> state(inits.begin(), inits.end());
  if (unrolledDBlocks(dim, bytesPerLane, config)) {
    for (int64_t d0 = firstBlock * lanes; d0 < dim; d0 += lanes)
      state = body(b, b.getIndexAttr(d0), std::min(lanes, dim - d0), state);
    return state;
  }
  int64_t begin = firstBlock * lanes, step = perIteration * lanes;
  int64_t looped = begin + (dim / lanes - firstBlock) / perIteration * step;
  auto loop = scf::ForOp::create(
      b, cIndex(b, begin), cIndex(b, looped), cIndex(b, step), state,
      [&](OpBuilder &nb, Location loc, Value d0, ValueRange iters) {
        ImplicitLocOpBuilder ib(loc, nb);
        SmallVector<Value> s(iters.begin(), iters.end());
        for (int64_t k = 0; k < perIteration; ++k)
          s = body(ib, addOffset(ib, d0, k * lanes), lanes, s);
        scf::YieldOp::create(ib, s);
      });
  // Keep LLVM from unrolling the block loop: O3 unrolled a lookup's (8
  // blocks of one read and one write at D = 4096), then the row loop around
  // it 4 times, and took 2.2 s to compile it (0.16 s with the blocks
  // unrolled here, 0.1 s with this). Set where the LLVM dialect is loaded:
  // the pass loads it, populateEmbToSCFPatterns' callers may not.
  MLIRContext *ctx = b.getContext();
  if (ctx->getLoadedDialect<LLVM::LLVMDialect>())
    loop->setAttr("loop_annotation",
                  LLVM::LoopAnnotationAttr::get(
                      ctx, {}, {}, {},
                      LLVM::LoopUnrollAttr::get(ctx, b.getBoolAttr(true), {},
                                                {}, {}, {}, {}, {}),
                      {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}));
  state.assign(loop.getResults().begin(), loop.getResults().end());
  for (int64_t d0 = looped; d0 < dim; d0 += lanes)
    state = body(b, b.getIndexAttr(d0), std::min(lanes, dim - d0), state);
  return state;
}

inline int64_t bytesOf(Type t) { return t.getIntOrFloatBitWidth() / 8; }

/// Reshapes `[N, D]` back to `indices.shape + [D]`.
inline Value unflattenRows(ImplicitLocOpBuilder &b, Value rows, Value indices,
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
inline Value emptyLike(ImplicitLocOpBuilder &b, RankedTensorType type,
                       ValueRange dynSizes) {
  return tensor::EmptyOp::create(b, type.getShape(), type.getElementType(),
                                 dynSizes);
}

/// The base of every CPU pattern: the op, and the configuration it lowers
/// with.
template <typename Op> struct CPUPattern : OpRewritePattern<Op> {
  CPUPattern(MLIRContext *context, const cpu::CPULoweringConfig &config)
      : OpRewritePattern<Op>(context), config(config) {}
  cpu::CPULoweringConfig config;
};

} // namespace mlir::emb::cpu_lowering

#endif // EMB_LIB_CONVERSION_EMBTOSCF_UTILS_H
