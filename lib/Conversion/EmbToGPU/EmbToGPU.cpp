//===- EmbToGPU.cpp - lower emb ops to gpu.launch -------------------------===//
//
// emb.lookup and emb.bag become one `gpu.launch` each, on buffers: every
// row (lookup) or bag gets a group of threads (GPUConfig.h) that moves
// 16-byte vectors, accumulating in f32 for f16 / bf16. The result is
// written straight into the destination buffer when the op's only use is a
// `bufferization.materialize_in_destination` into a memref (the JIT's
// kernels); otherwise into a new `memref.alloc`. The grid is computed from
// the problem size at run time; a problem with no rows launches nothing.
//
// The dense gradients are launches of zeros (and row counts for
// scale_grad_by_freq) and an atomic scatter, into an f32 scratch table for
// f16 / bf16; the per_sample_weights gradient is one thread per bag;
// renorm claims each distinct row once with an atomic flag. The
// deterministic dense gradients sort the entries by row (a stable radix
// sort) and sum each row in order; the sparse gradients compact the live
// entries in input order (uncoalesced) or the sorted rows' runs
// (coalesced), reading their data-dependent size back to the host. No
// kernel uses barriers, shuffles or shared memory: all are emulatable.
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/GPUConfig.h"
#include "emb/Conversion/LoweringUtils.h"
#include "emb/Conversion/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <tuple>

namespace mlir::emb {
#define GEN_PASS_DEF_CONVERTEMBTOGPU
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::lowering;

namespace {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Element `pos` of a 1-D i32/i64 buffer, as an index (sign-extended).
/// Loads state their natural alignment: without it LLVM's NVPTX backend
/// splits them into 4-byte pieces.
Value loadIndex(ImplicitLocOpBuilder &b, Value buffer, Value pos) {
  auto type = cast<MemRefType>(buffer.getType());
  Value v = memref::LoadOp::create(
      b, buffer, ValueRange{pos}, /*nontemporal=*/false,
      llvm::MaybeAlign(type.getElementTypeBitWidth() / 8));
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}

/// Element [i, j] of a 2-D i64 buffer (max_indices), as an index.
Value loadIndex(ImplicitLocOpBuilder &b, Value buffer, Value i, Value j) {
  Value v = memref::LoadOp::create(b, buffer, ValueRange{i, j},
                                   /*nontemporal=*/false, llvm::MaybeAlign(8));
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}

/// A row piece of `type` at `indices`, aligned to its size (16 bytes for a
/// full vector): `ld.global.v4.f32` needs the alignment stated. Row starts
/// are multiples of the vector when D is, so this holds for buffers whose
/// base is 16-byte aligned (the runtime checks it).
Value loadRow(ImplicitLocOpBuilder &b, VectorType type, Value base,
              ValueRange indices) {
  int64_t bytes = std::min<int64_t>(
      type.getNumElements() * type.getElementTypeBitWidth() / 8, 16);
  return vector::LoadOp::create(b, type, base, indices, /*nontemporal=*/false,
                                llvm::MaybeAlign(bytes));
}

void storeRow(ImplicitLocOpBuilder &b, Value v, Value base,
              ValueRange indices) {
  auto type = cast<VectorType>(v.getType());
  int64_t bytes = std::min<int64_t>(
      type.getNumElements() * type.getElementTypeBitWidth() / 8, 16);
  vector::StoreOp::create(b, v, base, indices, /*nontemporal=*/false,
                          llvm::MaybeAlign(bytes));
}

Value splat(ImplicitLocOpBuilder &b, VectorType type, Attribute value) {
  return arith::ConstantOp::create(b, DenseElementsAttr::get(type, value));
}

Value extend(ImplicitLocOpBuilder &b, Value v, VectorType to) {
  if (v.getType() == to)
    return v;
  return arith::ExtFOp::create(b, to, v);
}

Value truncate(ImplicitLocOpBuilder &b, Value v, VectorType to) {
  if (v.getType() == to)
    return v;
  return arith::TruncFOp::create(b, to, v);
}

Value toBuffer(ImplicitLocOpBuilder &b, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  return bufferization::ToBufferOp::create(b, memrefType, tensor,
                                           /*read_only=*/true);
}

/// Where a result of an op is written: the destination memref when the
/// result's only use materialises it there (the JIT's kernels; that use is
/// erased), else a new allocation the result is then read from.
struct Destination {
  Value buffer; // a memref shaped like the result
  bufferization::MaterializeInDestinationOp into;

  Destination(ImplicitLocOpBuilder &b, Value result, ValueRange dynSizes) {
    if (result.hasOneUse()) {
      auto m = dyn_cast<bufferization::MaterializeInDestinationOp>(
          *result.getUsers().begin());
      if (m && canWriteInto(result.getDefiningOp(), m)) {
        into = m;
        buffer = m.getDest();
        return;
      }
    }
    auto type = cast<RankedTensorType>(result.getType());
    buffer = memref::AllocOp::create(
        b, MemRefType::get(type.getShape(), type.getElementType()), dynSizes);
  }

  /// Writing the result into `m`'s memref at the op is only the same as
  /// materialising it there later when: the memref has the identity layout
  /// (rows start 16-byte aligned and [N..., D] collapses to rows), it exists
  /// at the op (a value defined before it in its block, or an argument of
  /// an enclosing block), and nothing between the op and `m` (same block)
  /// touches memory but the materialisation of another of its results into
  /// another restrict buffer. Otherwise the result gets its own buffer.
  static bool canWriteInto(Operation *op,
                           bufferization::MaterializeInDestinationOp m) {
    auto type = dyn_cast<MemRefType>(m.getDest().getType());
    if (!type || !type.getLayout().isIdentity() ||
        m->getBlock() != op->getBlock())
      return false;
    Value dest = m.getDest();
    if (Operation *def = dest.getDefiningOp()) {
      if (def->getBlock() != op->getBlock() || !def->isBeforeInBlock(op))
        return false;
    } else if (!cast<BlockArgument>(dest).getOwner()->findAncestorOpInBlock(
                   *op)) {
      return false;
    }
    for (Operation *it = op->getNextNode(); it && it != m.getOperation();
         it = it->getNextNode()) {
      // Another result of the op materialised into another restrict
      // buffer (bag max: the output, then max_indices) writes elsewhere.
      auto other = dyn_cast<bufferization::MaterializeInDestinationOp>(it);
      if (other && other.getSource().getDefiningOp() == op &&
          other.getRestrict() && m.getRestrict() &&
          other.getDest() != m.getDest())
        continue;
      if (!isMemoryEffectFree(it))
        return false;
    }
    return true;
  }

  /// The buffer as `[N, D]` rows (a view, no copy).
  Value rows2d(ImplicitLocOpBuilder &b) const {
    auto type = cast<MemRefType>(buffer.getType());
    if (type.getRank() == 2)
      return buffer;
    if (type.getRank() == 1) // 0-D indices: [D] -> [1, D]
      return memref::ExpandShapeOp::create(
          b, MemRefType::get({1, type.getDimSize(0)}, type.getElementType()),
          buffer, ArrayRef<ReassociationIndices>{{0, 1}},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1),
                                 b.getIndexAttr(type.getDimSize(0))});
    ReassociationIndices lead;
    for (int64_t i = 0; i + 1 < type.getRank(); ++i)
      lead.push_back(i);
    return memref::CollapseShapeOp::create(
        b, buffer, ArrayRef<ReassociationIndices>{lead, {type.getRank() - 1}});
  }

  /// Gives the uses of `result` what was written.
  void replace(RewriterBase &rewriter, Value result) {
    if (into) {
      rewriter.eraseOp(into);
      return;
    }
    rewriter.setInsertionPointAfterValue(result);
    Value t = bufferization::ToTensorOp::create(
        rewriter, result.getLoc(), result.getType(), buffer,
        /*restrict=*/true, /*writable=*/true);
    rewriter.replaceAllUsesWith(result, t);
  }
};

/// The dynamic sizes of `indices.shape + [D]` (the lookup's result).
SmallVector<Value> lookupSizes(ImplicitLocOpBuilder &b, Value indices) {
  auto type = cast<RankedTensorType>(indices.getType());
  SmallVector<Value> sizes;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      sizes.push_back(tensor::DimOp::create(b, indices, i));
  return sizes;
}

/// The vector width and threads per row of rows of `dim` elements of
/// `element` (GPUConfig.h).
std::pair<int64_t, int64_t> rowLayout(int64_t dim, Type element) {
  int64_t vec =
      gpu_config::vectorWidth(dim, element.getIntOrFloatBitWidth() / 8);
  return {vec, gpu_config::threadsPerRow(dim, vec)};
}

/// Launches `body(row, lane)` over `numRows` rows of `threadsPerRow`
/// threads each (see GPUConfig.h), only if there is a row at all.
void launchRows(ImplicitLocOpBuilder &b, Value numRows, int64_t threadsPerRow,
                function_ref<void(ImplicitLocOpBuilder &, Value, Value)> body) {
  int64_t rowsPerBlock = gpu_config::kThreadsPerBlock / threadsPerRow;
  Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
  Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, numRows, c0);
  scf::IfOp::create(b, any, [&](OpBuilder &nb, Location loc) {
    ImplicitLocOpBuilder ib(loc, nb);
    Value perBlock = cIndex(ib, rowsPerBlock);
    Value grid = arith::CeilDivUIOp::create(ib, numRows, perBlock);
    Value threads = cIndex(ib, gpu_config::kThreadsPerBlock);
    auto launch = gpu::LaunchOp::create(ib, grid, c1, c1, threads, c1, c1);
    {
      OpBuilder::InsertionGuard guard(ib);
      ib.setInsertionPointToStart(&launch.getBody().front());
      Value tid = launch.getThreadIds().x, bid = launch.getBlockIds().x;
      Value tpr = cIndex(ib, threadsPerRow);
      Value row = arith::AddIOp::create(
          ib, arith::MulIOp::create(ib, bid, cIndex(ib, rowsPerBlock)),
          arith::DivUIOp::create(ib, tid, tpr));
      Value lane = arith::RemUIOp::create(ib, tid, tpr);
      Value inRange =
          arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, row, numRows);
      scf::IfOp::create(ib, inRange, [&](OpBuilder &tb, Location tl) {
        ImplicitLocOpBuilder tib(tl, tb);
        body(tib, row, lane);
        scf::YieldOp::create(tib);
      });
      gpu::TerminatorOp::create(ib);
    }
    scf::YieldOp::create(ib);
  });
}

/// For each vector-wide column chunk `c` of `lane`:
///   for (c = lane * vec; c < D; c += threadsPerRow * vec)
void forEachChunk(ImplicitLocOpBuilder &b, Value lane, int64_t dim, int64_t vec,
                  int64_t threadsPerRow,
                  function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
  Value start = arith::MulIOp::create(b, lane, cIndex(b, vec));
  scf::ForOp::create(b, start, cIndex(b, dim), cIndex(b, threadsPerRow * vec),
                     ValueRange{},
                     [&](OpBuilder &nb, Location loc, Value c, ValueRange) {
                       ImplicitLocOpBuilder ib(loc, nb);
                       body(ib, c);
                       scf::YieldOp::create(ib);
                     });
}

/// The padding row as an index, or null.
Value paddingRow(ImplicitLocOpBuilder &b, std::optional<int64_t> paddingIdx,
                 Value table) {
  if (!paddingIdx)
    return Value();
  if (*paddingIdx >= 0)
    return cIndex(b, *paddingIdx);
  Value v = memref::DimOp::create(b, table, 0);
  return arith::AddIOp::create(b, v, cIndex(b, *paddingIdx));
}

/// The bag structure of a bag op on buffers: 1-D indices with offsets
/// (with or without include_last_offset) or 2-D indices [B, L].
struct BagForm {
  Value indices, offsets, numIndices, numBags, bagLen, numOffsets;
  bool twoD = false, includeLast = false;

  BagForm(ImplicitLocOpBuilder &b, Value indicesTensor, Value offsetsTensor,
          bool includeLastOffset) {
    twoD = cast<RankedTensorType>(indicesTensor.getType()).getRank() == 2;
    includeLast = includeLastOffset && !twoD;
    indices = toBuffer(b, flatten(b, indicesTensor));
    offsets = offsetsTensor ? toBuffer(b, offsetsTensor) : Value();
    numIndices = memref::DimOp::create(b, indices, 0);
    if (twoD) {
      Value x2 = toBuffer(b, indicesTensor);
      numBags = memref::DimOp::create(b, x2, 0);
      bagLen = memref::DimOp::create(b, x2, 1);
    } else {
      numOffsets = memref::DimOp::create(b, offsets, 0);
      numBags = includeLast ? arith::SubIOp::create(b, numOffsets, cIndex(b, 1))
                            : numOffsets;
    }
  }

  /// [start, end) of `bag` in the flat indices. Without include_last_offset
  /// the last bag ends at len(indices).
  std::pair<Value, Value> bounds(ImplicitLocOpBuilder &ib, Value bag) const {
    if (twoD) {
      Value start = arith::MulIOp::create(ib, bag, bagLen);
      return {start, arith::AddIOp::create(ib, start, bagLen)};
    }
    Value start = loadIndex(ib, offsets, bag);
    Value next = arith::AddIOp::create(ib, bag, cIndex(ib, 1));
    if (includeLast)
      return {start, loadIndex(ib, offsets, next)};
    Value last = arith::SubIOp::create(ib, numOffsets, cIndex(ib, 1));
    Value safe = arith::MinUIOp::create(ib, next, last);
    Value hasNext =
        arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, next, numOffsets);
    return {start, arith::SelectOp::create(
                       ib, hasNext, loadIndex(ib, offsets, safe), numIndices)};
  }
};

/// 1 / (the live entries of the bag [start, end)), in `accElement`: the
/// mean's factor, counted once per bag (padding entries are not live). An
/// empty bag has no entries to scale: its divisor is 1.
Value meanFactor(ImplicitLocOpBuilder &b, const BagForm &form, Value start,
                 Value end, Value pad, Type accElement) {
  Value live = arith::SubIOp::create(b, end, start);
  if (pad)
    live = scf::ForOp::create(
               b, start, end, cIndex(b, 1), ValueRange{cIndex(b, 0)},
               [&](OpBuilder &nb, Location loc, Value j, ValueRange it) {
                 ImplicitLocOpBuilder lb(loc, nb);
                 Value isLive =
                     arith::CmpIOp::create(lb, arith::CmpIPredicate::ne,
                                           loadIndex(lb, form.indices, j), pad);
                 Value one = arith::SelectOp::create(lb, isLive, cIndex(lb, 1),
                                                     cIndex(lb, 0));
                 scf::YieldOp::create(
                     lb, ValueRange{arith::AddIOp::create(lb, it[0], one)});
               })
               .getResult(0);
  Value liveF = arith::SIToFPOp::create(
      b, accElement, arith::IndexCastOp::create(b, b.getI64Type(), live));
  Value one = arith::ConstantOp::create(b, b.getFloatAttr(accElement, 1.0));
  return arith::DivFOp::create(b, one,
                               arith::MaximumFOp::create(b, liveF, one));
}

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
LogicalResult lowerLookup(LookupOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  Type element = wType.getElementType();
  FailureOr<int64_t> staticD = staticDim(op, op.getWeight(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  int64_t vec, tpr;
  std::tie(vec, tpr) = rowLayout(dim, element);

  Value weight = toBuffer(b, op.getWeight());
  Value indices = toBuffer(b, flatten(b, op.getIndices()));
  Value n = memref::DimOp::create(b, indices, 0);
  Destination dest(b, op.getResult(), lookupSizes(b, op.getIndices()));
  Value out = dest.rows2d(b);
  Value pad = op.getPaddingMode() == PaddingMode::zero
                  ? paddingRow(b, op.getPaddingIdx(), weight)
                  : Value();
  auto vecType = VectorType::get({vec}, element);
  launchRows(b, n, tpr, [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
    Value r = loadIndex(ib, indices, row);
    Value isPad =
        pad ? arith::CmpIOp::create(ib, arith::CmpIPredicate::eq, r, pad)
            : Value();
    forEachChunk(ib, lane, dim, vec, tpr,
                 [&](ImplicitLocOpBuilder &cb, Value c) {
                   Value v = loadRow(cb, vecType, weight, ValueRange{r, c});
                   if (isPad)
                     v = arith::SelectOp::create(
                         cb, isPad,
                         splat(cb, vecType, cb.getFloatAttr(element, 0.0)), v);
                   storeRow(cb, v, out, ValueRange{row, c});
                 });
  });
  dest.replace(rewriter, op.getResult());
  rewriter.eraseOp(op);
  return success();
}

//===----------------------------------------------------------------------===//
// emb.bag
//===----------------------------------------------------------------------===//

// %out = emb.bag <mode> %w[%x] offsets(%o) per_sample_weights(%p)
//   ==>  gpu.launch as above, one thread group per bag:
//     [start, end) = bounds(bag)
//     for each chunk c of the lane:
//       acc = 0 (f32 for f16 / bf16), n = 0, argmax = -1
//       for j in [start, end):
//         r = x[j]; if r != P:
//           v = ext(vector.load %w[r, c])
//           sum / mean: acc += v * psw[j]
//           max: first entry sets acc; later ones replace where v > acc
//                (ties keep the first), argmax likewise
//           n += 1
//       mean: acc /= n; an empty bag stores zeros (argmax -1)
//       vector.store trunc(acc), %out[bag, c]
LogicalResult lowerBag(BagOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  Type element = wType.getElementType();
  Type accElement = accumulatorType(element);
  FailureOr<int64_t> staticD = staticDim(op, op.getWeight(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  int64_t vec, tpr;
  std::tie(vec, tpr) = rowLayout(dim, element);
  BagMode mode = op.getMode();
  bool withArgmax = static_cast<bool>(op.getMaxIndices());

  Value weight = toBuffer(b, op.getWeight());
  BagForm form(b, op.getIndices(), op.getOffsets(), op.getIncludeLastOffset());
  Value indices = form.indices, numBags = form.numBags;
  Value psw = op.getPerSampleWeights()
                  ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                  : Value();
  auto outType = cast<RankedTensorType>(op.getOutput().getType());
  Destination dest(b, op.getOutput(),
                   outType.isDynamicDim(0) ? ValueRange{numBags}
                                           : ValueRange{});
  Value out = dest.buffer;
  std::optional<Destination> argmaxDest;
  Value argmaxBuf;
  if (withArgmax) {
    auto mType = cast<RankedTensorType>(op.getMaxIndices().getType());
    argmaxDest.emplace(b, op.getMaxIndices(),
                       mType.isDynamicDim(0) ? ValueRange{numBags}
                                             : ValueRange{});
    argmaxBuf = argmaxDest->buffer;
  }
  Value pad = paddingRow(b, op.getPaddingIdx(), weight);
  auto vecType = VectorType::get({vec}, element);
  auto accType = VectorType::get({vec}, accElement);
  auto argType = VectorType::get({vec}, b.getI64Type());

  launchRows(
      b, numBags, tpr, [&](ImplicitLocOpBuilder &ib, Value bag, Value lane) {
        Value start, end;
        std::tie(start, end) = form.bounds(ib, bag);
        forEachChunk(
            ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
              Value zero = splat(cb, accType, cb.getFloatAttr(accElement, 0.0));
              Value noArg = splat(cb, argType, cb.getI64IntegerAttr(-1));
              Value c0 = cIndex(cb, 0), c1 = cIndex(cb, 1);
              SmallVector<Value> inits{zero, c0};
              if (mode == BagMode::max)
                inits.push_back(noArg);
              auto loop = scf::ForOp::create(
                  cb, start, end, c1, inits,
                  [&](OpBuilder &lb, Location ll, Value j, ValueRange it) {
                    ImplicitLocOpBuilder eb(ll, lb);
                    Value r = loadIndex(eb, indices, j);
                    auto update = [&](OpBuilder &ub, Location ul) {
                      ImplicitLocOpBuilder ueb(ul, ub);
                      Value v = extend(
                          ueb, loadRow(ueb, vecType, weight, ValueRange{r, c}),
                          accType);
                      Value count =
                          arith::AddIOp::create(ueb, it[1], cIndex(ueb, 1));
                      SmallVector<Value> next;
                      if (mode == BagMode::max) {
                        Value rowI64 = arith::IndexCastOp::create(
                            ueb, ueb.getI64Type(), r);
                        Value rowVec =
                            vector::BroadcastOp::create(ueb, argType, rowI64);
                        Value first =
                            arith::CmpIOp::create(ueb, arith::CmpIPredicate::eq,
                                                  it[1], cIndex(ueb, 0));
                        Value greater = arith::CmpFOp::create(
                            ueb, arith::CmpFPredicate::OGT, v, it[0]);
                        Value firstVec = vector::BroadcastOp::create(
                            ueb, VectorType::get({vec}, ueb.getI1Type()),
                            first);
                        Value take =
                            arith::OrIOp::create(ueb, greater, firstVec);
                        next = {
                            arith::SelectOp::create(ueb, take, v, it[0]), count,
                            arith::SelectOp::create(ueb, take, rowVec, it[2])};
                      } else {
                        if (psw) {
                          Value w = memref::LoadOp::create(
                              ueb, psw, ValueRange{j}, /*nontemporal=*/false,
                              llvm::MaybeAlign(element.getIntOrFloatBitWidth() /
                                               8));
                          if (w.getType() != accElement)
                            w = arith::ExtFOp::create(ueb, accElement, w);
                          v = arith::MulFOp::create(
                              ueb, v,
                              vector::BroadcastOp::create(ueb, accType, w));
                        }
                        next = {arith::AddFOp::create(ueb, it[0], v), count};
                      }
                      scf::YieldOp::create(ueb, next);
                    };
                    if (!pad) {
                      update(lb, ll);
                      return;
                    }
                    Value isLive = arith::CmpIOp::create(
                        eb, arith::CmpIPredicate::ne, r, pad);
                    auto ifOp = scf::IfOp::create(
                        eb, isLive,
                        [&](OpBuilder &ub, Location ul) { update(ub, ul); },
                        [&](OpBuilder &ub, Location ul) {
                          scf::YieldOp::create(ub, ul, it);
                        });
                    scf::YieldOp::create(eb, ifOp.getResults());
                  });
              Value acc = loop.getResult(0), count = loop.getResult(1);
              if (mode == BagMode::mean) {
                Value cnt =
                    arith::IndexCastOp::create(cb, cb.getI64Type(), count);
                Value cntF = arith::SIToFPOp::create(cb, accElement, cnt);
                Value isEmpty = arith::CmpIOp::create(
                    cb, arith::CmpIPredicate::eq, count, c0);
                Value divisor = arith::SelectOp::create(
                    cb, isEmpty,
                    arith::ConstantOp::create(cb,
                                              cb.getFloatAttr(accElement, 1.0)),
                    cntF);
                acc = arith::DivFOp::create(
                    cb, acc, vector::BroadcastOp::create(cb, accType, divisor));
              }
              if (mode == BagMode::max) {
                // An empty or all-padding bag: zeros (acc is still 0) and -1.
                storeRow(cb, truncate(cb, acc, vecType), out,
                         ValueRange{bag, c});
                if (argmaxBuf)
                  storeRow(cb, loop.getResult(2), argmaxBuf,
                           ValueRange{bag, c});
                return;
              }
              storeRow(cb, truncate(cb, acc, vecType), out, ValueRange{bag, c});
            });
      });
  dest.replace(rewriter, op.getOutput());
  if (argmaxDest)
    argmaxDest->replace(rewriter, op.getMaxIndices());
  rewriter.eraseOp(op);
  return success();
}

/// Device memory for the kernels of one op, freed after them (the host
/// emulation turns it into host memory).
Value allocScratch(ImplicitLocOpBuilder &b, MemRefType type,
                   ValueRange dynSizes) {
  return gpu::AllocOp::create(b, type, /*asyncToken=*/Type(), ValueRange{},
                              dynSizes, ValueRange{}, /*hostShared=*/false)
      .getMemref();
}

void freeScratch(ImplicitLocOpBuilder &b, Value buffer) {
  gpu::DeallocOp::create(b, /*asyncToken=*/Type(), ValueRange{}, buffer);
}

//===----------------------------------------------------------------------===//
// emb.renorm
//===----------------------------------------------------------------------===//

// %w2 = emb.renorm %w[%x] {max_norm = M, norm_type = p}
//   ==>
// (the result is %w itself when it is materialised back into %w's buffer,
//  else a copy of %w made by a first launch)
// seen = gpu.alloc [V] i32; launch over V: seen = 0
// launch over N positions, one thread each:
//   r = x[i]; if atomic_or(seen[r], 1) == 0:        (each row once)
//     norm = p-norm of w[r, :] in f64 (16-byte vectors, lanes in order)
//     if norm > M: w[r, :] *= M / (norm + 1e-7)       (in f32, f64 for f64)
// The rows a thread claims are distinct, so the rescaling needs no atomics;
// the lookup that follows is a later launch.
LogicalResult lowerRenorm(RenormOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  Type element = wType.getElementType();
  Type accElement = accumulatorType(element);
  FailureOr<int64_t> staticD = staticDim(op, op.getWeight(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  double p = op.getNormType().convertToDouble();
  double maxNorm = op.getMaxNorm().convertToDouble();
  int64_t vec, tpr;
  std::tie(vec, tpr) = rowLayout(dim, element);
  auto vecType = VectorType::get({vec}, element);
  Type f64 = b.getF64Type();
  auto f64Type = VectorType::get({vec}, f64);

  Value src = toBuffer(b, op.getWeight());
  Value numRows = memref::DimOp::create(b, src, 0);
  Destination dest(b, op.getResult(),
                   wType.isDynamicDim(0) ? ValueRange{numRows} : ValueRange{});
  Value table = dest.buffer;
  // In place when the result goes back into the buffer the weight came
  // from (the JIT's kernels); otherwise rescale a copy.
  auto source = op.getWeight().getDefiningOp<bufferization::ToTensorOp>();
  bool inPlace = dest.into && source && source.getBuffer() == table;
  if (!inPlace)
    launchRows(
        b, numRows, tpr, [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
          forEachChunk(
              ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
                storeRow(cb, loadRow(cb, vecType, src, ValueRange{row, c}),
                         table, ValueRange{row, c});
              });
        });
  Value indices = toBuffer(b, flatten(b, op.getIndices()));
  Value n = memref::DimOp::create(b, indices, 0);
  Value seen = allocScratch(
      b, MemRefType::get({ShapedType::kDynamic}, b.getI32Type()), numRows);
  launchRows(b, numRows, 1, [&](ImplicitLocOpBuilder &ib, Value row, Value) {
    memref::StoreOp::create(
        ib, arith::ConstantOp::create(ib, ib.getI32IntegerAttr(0)), seen,
        ValueRange{row});
  });
  launchRows(b, n, 1, [&](ImplicitLocOpBuilder &ib, Value i, Value) {
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
      auto cst = [&](double v) -> Value {
        return arith::ConstantOp::create(fb, fb.getF64FloatAttr(v));
      };
      // The p-norm, accumulated lane by lane in order (f64).
      Value init = std::isinf(p) && p < 0 ? cst(INFINITY) : cst(0.0);
      auto loop = scf::ForOp::create(
          fb, cIndex(fb, 0), cIndex(fb, dim), cIndex(fb, vec), ValueRange{init},
          [&](OpBuilder &lb, Location ll, Value c, ValueRange acc) {
            ImplicitLocOpBuilder db(ll, lb);
            Value v = loadRow(db, vecType, table, ValueRange{r, c});
            if (vecType != f64Type)
              v = arith::ExtFOp::create(db, f64Type, v);
            Value a = acc[0];
            for (int64_t e = 0; e < vec; ++e) {
              Value x = vector::ExtractOp::create(db, v, ArrayRef<int64_t>{e});
              Value ax = math::AbsFOp::create(db, x);
              if (std::isinf(p))
                a = p > 0 ? (Value)arith::MaximumFOp::create(db, a, ax)
                          : (Value)arith::MinimumFOp::create(db, a, ax);
              else if (p == 0)
                a = arith::AddFOp::create(
                    db, a,
                    arith::SelectOp::create(
                        db,
                        arith::CmpFOp::create(db, arith::CmpFPredicate::UNE, x,
                                              cst(0.0)),
                        cst(1.0), cst(0.0)));
              else if (p == 1)
                a = arith::AddFOp::create(db, a, ax);
              else if (p == 2)
                a = arith::AddFOp::create(db, a,
                                          arith::MulFOp::create(db, x, x));
              else
                a = arith::AddFOp::create(db, a,
                                          math::PowFOp::create(db, ax, cst(p)));
            }
            scf::YieldOp::create(db, ValueRange{a});
          });
      Value norm = loop.getResult(0);
      if (p == 2)
        norm = math::SqrtOp::create(fb, norm);
      else if (!std::isinf(p) && p != 0 && p != 1)
        norm = math::PowFOp::create(fb, norm, cst(1.0 / p));
      Value limit = cst(maxNorm);
      Value tooLong =
          arith::CmpFOp::create(fb, arith::CmpFPredicate::OGT, norm, limit);
      scf::IfOp::create(fb, tooLong, [&](OpBuilder &tb, Location tl) {
        ImplicitLocOpBuilder xb(tl, tb);
        Value scale = arith::DivFOp::create(
            xb, limit, arith::AddFOp::create(xb, norm, cst(1e-7)));
        if (accElement != f64)
          scale = arith::TruncFOp::create(xb, accElement, scale);
        auto accType = VectorType::get({vec}, accElement);
        Value s = vector::BroadcastOp::create(xb, accType, scale);
        scf::ForOp::create(
            xb, cIndex(xb, 0), cIndex(xb, dim), cIndex(xb, vec), ValueRange{},
            [&](OpBuilder &wb, Location wl, Value c, ValueRange) {
              ImplicitLocOpBuilder sb(wl, wb);
              Value v = extend(
                  sb, loadRow(sb, vecType, table, ValueRange{r, c}), accType);
              storeRow(sb,
                       truncate(sb, arith::MulFOp::create(sb, v, s), vecType),
                       table, ValueRange{r, c});
              scf::YieldOp::create(sb);
            });
        scf::YieldOp::create(xb);
      });
      scf::YieldOp::create(fb);
    });
  });
  freeScratch(b, seen);
  dest.replace(rewriter, op.getResult());
  rewriter.eraseOp(op);
  return success();
}

//===----------------------------------------------------------------------===//
// Dense gradients: atomics
//===----------------------------------------------------------------------===//

/// The gradient's rows `[first, first + count)`: the `rows` window of the
/// op, or all V rows.
std::pair<Value, Value> gradientRows(ImplicitLocOpBuilder &b, Value offset,
                                     Value count, int64_t numEmbeddings) {
  if (offset)
    return {offset, count};
  return {cIndex(b, 0), cIndex(b, numEmbeddings)};
}

/// A launch that stores zeros in the `count` rows of `rows` ([count, D]).
void zeroRows(ImplicitLocOpBuilder &b, Value rows, Value count, int64_t dim,
              int64_t vec, int64_t tpr, Type element) {
  auto vecType = VectorType::get({vec}, element);
  launchRows(
      b, count, tpr, [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
        forEachChunk(
            ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
              storeRow(cb, splat(cb, vecType, cb.getFloatAttr(element, 0.0)),
                       rows, ValueRange{row, c});
            });
      });
}

/// Where a dense gradient accumulates: the output itself (f32, f64), or an
/// f32 scratch table converted into it at the end (f16 / bf16: the
/// semantics accumulate in f32 and round once). With scale_grad_by_freq,
/// also the number of occurrences of each row of the window. Each step is
/// its own launch; launches without async tokens run one after another,
/// so zeros, counts, the scatter and the rounding never overlap.
struct GradTarget {
  Value gw, acc, counts;
  Type element, accElement;
  int64_t dim, vec, tpr;
  Value first, count;

  GradTarget(ImplicitLocOpBuilder &b, Value gwBuffer, Type element, int64_t dim,
             Value first, Value count, bool byFreq)
      : gw(gwBuffer), element(element), dim(dim), first(first), count(count) {
    accElement = accumulatorType(element);
    std::tie(vec, tpr) = rowLayout(dim, element);
    acc = gw;
    if (accElement != element)
      acc = allocScratch(
          b, MemRefType::get({ShapedType::kDynamic, dim}, accElement), count);
    zeroRows(b, acc, count, dim, vec, tpr, accElement);
    if (byFreq) {
      // i64, as PyTorch counts: a row may occur 2^31 times or more.
      counts = allocScratch(
          b, MemRefType::get({ShapedType::kDynamic}, b.getI64Type()), count);
      launchRows(b, count, 1, [&](ImplicitLocOpBuilder &ib, Value row, Value) {
        memref::StoreOp::create(
            ib, arith::ConstantOp::create(ib, ib.getI64IntegerAttr(0)), counts,
            ValueRange{row});
      });
    }
  }

  /// The count launch: one occurrence per live position of `indices` whose
  /// row lies in the window.
  void countRows(ImplicitLocOpBuilder &b, Value indices, Value pad) {
    if (!counts)
      return;
    Value n = memref::DimOp::create(b, indices, 0);
    launchRows(b, n, 1, [&](ImplicitLocOpBuilder &ib, Value i, Value) {
      Value r = loadIndex(ib, indices, i);
      Value local = arith::SubIOp::create(ib, r, first);
      Value ok =
          arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, local, count);
      if (pad)
        ok = arith::AndIOp::create(
            ib, ok,
            arith::CmpIOp::create(ib, arith::CmpIPredicate::ne, r, pad));
      scf::IfOp::create(ib, ok, [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder ab(loc, nb);
        memref::AtomicRMWOp::create(
            ab, arith::AtomicRMWKind::addi,
            arith::ConstantOp::create(ab, ab.getI64IntegerAttr(1)), counts,
            ValueRange{local});
        scf::YieldOp::create(ab);
      });
    });
  }

  /// acc[r - first, c + e] += v[e] / count(r) (without the count: v[e]),
  /// atomically, for every lane e, when row `r` lies in the window.
  void add(ImplicitLocOpBuilder &b, Value v, Value r, Value c) {
    Value local = arith::SubIOp::create(b, r, first);
    Value inWindow =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ult, local, count);
    scf::IfOp::create(b, inWindow, [&](OpBuilder &nb, Location loc) {
      ImplicitLocOpBuilder ib(loc, nb);
      Value x = v;
      if (counts) {
        Value k = memref::LoadOp::create(ib, counts, ValueRange{local});
        Value inv = arith::DivFOp::create(
            ib, arith::ConstantOp::create(ib, ib.getFloatAttr(accElement, 1.0)),
            arith::SIToFPOp::create(ib, accElement, k));
        x = arith::MulFOp::create(
            ib, x, vector::BroadcastOp::create(ib, x.getType(), inv));
      }
      for (int64_t e = 0; e < vec; ++e)
        memref::AtomicRMWOp::create(
            ib, arith::AtomicRMWKind::addf,
            vector::ExtractOp::create(ib, x, ArrayRef<int64_t>{e}), acc,
            ValueRange{local, arith::AddIOp::create(ib, c, cIndex(ib, e))});
      scf::YieldOp::create(ib);
    });
  }

  /// The last launch for f16 / bf16: gw = round(acc); then frees scratch.
  void finish(ImplicitLocOpBuilder &b) {
    if (acc != gw) {
      auto accType = VectorType::get({vec}, accElement);
      auto vecType = VectorType::get({vec}, element);
      launchRows(
          b, count, tpr, [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
            forEachChunk(
                ib, lane, dim, vec, tpr,
                [&](ImplicitLocOpBuilder &cb, Value c) {
                  Value v = loadRow(cb, accType, acc, ValueRange{row, c});
                  storeRow(cb, truncate(cb, v, vecType), gw,
                           ValueRange{row, c});
                });
          });
      freeScratch(b, acc);
    }
    if (counts)
      freeScratch(b, counts);
  }
};

/// The padding row of a gradient op ([0, V); a negative padding_idx counts
/// from V), or null.
Value gradientPadding(ImplicitLocOpBuilder &b, std::optional<int64_t> pad,
                      int64_t numEmbeddings) {
  if (!pad)
    return Value();
  return cIndex(b, *pad < 0 ? *pad + numEmbeddings : *pad);
}

/// `grad` ([..., D]) as a [N, D] buffer.
Value gradRows(ImplicitLocOpBuilder &b, Value grad) {
  auto type = cast<RankedTensorType>(grad.getType());
  int64_t dim = type.getShape().back();
  if (type.getRank() == 2)
    return toBuffer(b, grad);
  int64_t n = ShapedType::kDynamic;
  if (type.hasStaticShape())
    n = type.getNumElements() / std::max<int64_t>(dim, 1);
  auto rows = RankedTensorType::get({n, dim}, type.getElementType());
  if (type.getRank() == 1)
    return toBuffer(b,
                    tensor::ExpandShapeOp::create(
                        b, rows, grad, ArrayRef<ReassociationIndices>{{0, 1}}));
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < type.getRank(); ++i)
    lead.push_back(i);
  return toBuffer(
      b, tensor::CollapseShapeOp::create(
             b, rows, grad,
             ArrayRef<ReassociationIndices>{lead, {type.getRank() - 1}}));
}

/// `v` (a gradient row piece) in the accumulator type, times the constant
/// `scale` and the runtime `factor` (either may be absent).
Value scaleRow(ImplicitLocOpBuilder &b, Value v, Type accElement, double scale,
               Value factor) {
  auto accType =
      VectorType::get(cast<VectorType>(v.getType()).getShape(), accElement);
  v = extend(b, v, accType);
  if (factor) {
    if (factor.getType() != accElement)
      factor = arith::ExtFOp::create(b, accElement, factor);
    v = arith::MulFOp::create(b, v,
                              vector::BroadcastOp::create(b, accType, factor));
  }
  if (scale != 1.0)
    v = arith::MulFOp::create(
        b, v, splat(b, accType, b.getFloatAttr(accElement, scale)));
  return v;
}

// %gw = emb.lookup_grad %g[%x] {padding_idx = P, grad_scale = s} rows(f, n)
//   ==>
// launch over n rows:  acc[row, :] = 0      (acc: gw, or f32 scratch)
// scale_grad_by_freq:  counts = 0; launch over N positions: counts[x - f] += 1
// launch over N positions (a thread group each, as the forward):
//   r = x[i]; if r != P and f <= r < f + n:
//     for each chunk c of the lane:
//       atomic acc[r - f, c + e] += s * g[i, c + e] (/ counts[r - f])
// f16 / bf16: launch over n rows: gw = round(acc)
LogicalResult lowerLookupGrad(LookupGradOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  Type element = gType.getElementType();
  FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  double scale = op.getGradScale().convertToDouble();

  Value grad = gradRows(b, op.getGrad());
  Value indices = toBuffer(b, flatten(b, op.getIndices()));
  Value n = memref::DimOp::create(b, indices, 0);
  auto [first, count] = gradientRows(b, op.getRowOffset(), op.getRowCount(),
                                     op.getNumEmbeddings());
  Destination dest(b, op.getResult(),
                   op.getType().isDynamicDim(0) ? ValueRange{count}
                                                : ValueRange{});
  Value pad = gradientPadding(b, op.getPaddingIdx(), op.getNumEmbeddings());
  GradTarget target(b, dest.buffer, element, dim, first, count,
                    op.getScaleGradByFreq());
  target.countRows(b, indices, pad);
  int64_t vec = target.vec, tpr = target.tpr;
  auto vecType = VectorType::get({vec}, element);
  launchRows(b, n, tpr, [&](ImplicitLocOpBuilder &ib, Value i, Value lane) {
    Value r = loadIndex(ib, indices, i);
    auto body = [&](ImplicitLocOpBuilder &pb) {
      forEachChunk(
          pb, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
            Value v = loadRow(cb, vecType, grad, ValueRange{i, c});
            target.add(cb, scaleRow(cb, v, target.accElement, scale, Value()),
                       r, c);
          });
    };
    if (!pad) {
      body(ib);
      return;
    }
    Value live = arith::CmpIOp::create(ib, arith::CmpIPredicate::ne, r, pad);
    scf::IfOp::create(ib, live, [&](OpBuilder &nb, Location loc) {
      ImplicitLocOpBuilder pb(loc, nb);
      body(pb);
      scf::YieldOp::create(pb);
    });
  });
  target.finish(b);
  dest.replace(rewriter, op.getResult());
  rewriter.eraseOp(op);
  return success();
}

// %gw = emb.bag_grad <mode> %g[%x] offsets(%o) per_sample_weights(%p)
//   ==>  as lookup_grad (zeros, counts, f16 / bf16 scratch), with the
// scatter in the shape of the forward:
// sum / mean: a thread group per bag:
//   m = 1 / (live entries of the bag) for mean, else 1
//   for each live entry j, each chunk c of the lane:
//     atomic acc[x[j] - f, c + e] += s * m * psw[j] * g[bag, c + e] (/ count)
// max: a thread group per bag: for each chunk c, lane element e:
//     k = max_indices[bag, c + e]; if k != -1: atomic acc[k - f, c + e] += s *
//     g
LogicalResult lowerBagGrad(BagGradOp op, RewriterBase &rewriter) {
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
  BagForm form(b, op.getIndices(), op.getOffsets(), op.getIncludeLastOffset());
  Value psw = op.getPerSampleWeights()
                  ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                  : Value();
  Value maxIdx = op.getMaxIndices() ? toBuffer(b, op.getMaxIndices()) : Value();
  Value first, count;
  std::tie(first, count) = gradientRows(b, op.getRowOffset(), op.getRowCount(),
                                        op.getNumEmbeddings());
  Destination dest(b, op.getResult(),
                   op.getType().isDynamicDim(0) ? ValueRange{count}
                                                : ValueRange{});
  Value pad = gradientPadding(b, op.getPaddingIdx(), op.getNumEmbeddings());
  GradTarget target(b, dest.buffer, element, dim, first, count,
                    op.getScaleGradByFreq());
  target.countRows(b, form.indices, pad);
  int64_t vec = target.vec, tpr = target.tpr;
  Type accElement = target.accElement;
  auto vecType = VectorType::get({vec}, element);

  if (mode == BagMode::max) {
    launchRows(
        b, form.numBags, tpr,
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
                  // -1 (an empty bag) is far outside every window, as unsigned.
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
  } else {
    launchRows(
        b, form.numBags, tpr,
        [&](ImplicitLocOpBuilder &ib, Value bag, Value lane) {
          Value start, end;
          std::tie(start, end) = form.bounds(ib, bag);
          auto isLive = [&](ImplicitLocOpBuilder &eb, Value r) -> Value {
            if (!pad)
              return Value();
            return arith::CmpIOp::create(eb, arith::CmpIPredicate::ne, r, pad);
          };
          // mean: 1 / (live entries), computed once per bag.
          Value factor = mode == BagMode::mean
                             ? meanFactor(ib, form, start, end, pad, accElement)
                             : Value();
          forEachChunk(
              ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
                Value g = loadRow(cb, vecType, grad, ValueRange{bag, c});
                scf::ForOp::create(
                    cb, start, end, cIndex(cb, 1), ValueRange{},
                    [&](OpBuilder &nb, Location loc, Value j, ValueRange) {
                      ImplicitLocOpBuilder eb(loc, nb);
                      Value r = loadIndex(eb, form.indices, j);
                      auto add = [&](ImplicitLocOpBuilder &ab) {
                        Value f = factor;
                        if (psw) {
                          Value w = memref::LoadOp::create(
                              ab, psw, ValueRange{j}, /*nontemporal=*/false,
                              llvm::MaybeAlign(element.getIntOrFloatBitWidth() /
                                               8));
                          if (w.getType() != accElement)
                            w = arith::ExtFOp::create(ab, accElement, w);
                          f = f ? arith::MulFOp::create(ab, f, w) : w;
                        }
                        target.add(ab, scaleRow(ab, g, accElement, scale, f), r,
                                   c);
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
  target.finish(b);
  dest.replace(rewriter, op.getResult());
  rewriter.eraseOp(op);
  return success();
}

//===----------------------------------------------------------------------===//
// Deterministic gradients: a stable sort of the entries by row, then one
// ordered sum per row
//===----------------------------------------------------------------------===//
//
// `deterministic` asks for bit-reproducible gradients: every row sums its
// contributions in input order, whatever the scheduling. Without barriers
// (so that the kernels stay emulatable):
//   1. keys[e] = the entry's row in the window (or a sentinel past the last
//      row: padding, other windows), vals[e] = e;
//   2. an LSD radix sort by key, 8 bits a pass, stable: per pass, each
//      thread counts the digits of its chunk of 256 entries, an exclusive
//      scan over (digit, chunk) gives every chunk its output offsets, and
//      each thread writes its chunk in order;
//   3. a thread group per row finds its segment by binary search and sums
//      the contributions in segment (= input) order into registers, scales
//      the sum once and writes the row (zeros without entries), exactly as
//      the host kernels do: the results are the host's to the bit. No
//      atomics, no zero pass, no f32 scratch table for f16 / bf16.

constexpr int64_t kScanBlock = 256; // elements per thread of a scan
constexpr int64_t kSortChunk = 256; // entries per thread of a radix pass
constexpr int64_t kRadixBits = 8;

MemRefType i64Buffer(MLIRContext *ctx) {
  return MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 64));
}

Value loadI64(ImplicitLocOpBuilder &b, Value buffer, Value i) {
  return memref::LoadOp::create(b, buffer, ValueRange{i},
                                /*nontemporal=*/false, llvm::MaybeAlign(8));
}

void storeI64(ImplicitLocOpBuilder &b, Value v, Value buffer, Value i) {
  if (v.getType().isIndex())
    v = arith::IndexCastOp::create(b, b.getI64Type(), v);
  memref::StoreOp::create(b, v, buffer, ValueRange{i}, /*nontemporal=*/false,
                          llvm::MaybeAlign(8));
}

/// `for (i = lo; i < hi; ++i) acc = body(i, acc)`; returns acc.
Value forRange(ImplicitLocOpBuilder &b, Value lo, Value hi, Value init,
               function_ref<Value(ImplicitLocOpBuilder &, Value, Value)> body) {
  auto loop = scf::ForOp::create(
      b, lo, hi, cIndex(b, 1), ValueRange{init},
      [&](OpBuilder &nb, Location loc, Value i, ValueRange it) {
        ImplicitLocOpBuilder lb(loc, nb);
        scf::YieldOp::create(lb, ValueRange{body(lb, i, it[0])});
      });
  return loop.getResult(0);
}

/// [t * block, min((t + 1) * block, size)).
std::pair<Value, Value> blockRange(ImplicitLocOpBuilder &b, Value t,
                                   int64_t block, Value size) {
  Value lo = arith::MulIOp::create(b, t, cIndex(b, block));
  Value hi = arith::MinUIOp::create(
      b, arith::AddIOp::create(b, lo, cIndex(b, block)), size);
  return {lo, hi};
}

/// In-place exclusive prefix sum of `a` ([size] i64): block sums (a thread
/// per kScanBlock elements), their scan by one thread, then every block
/// rewritten from its offset.
void exclusiveScan(ImplicitLocOpBuilder &b, Value a, Value size) {
  Value blocks = arith::CeilDivUIOp::create(b, size, cIndex(b, kScanBlock));
  Value sums = allocScratch(b, i64Buffer(b.getContext()), blocks);
  Value zero = arith::ConstantOp::create(b, b.getI64IntegerAttr(0));
  launchRows(b, blocks, 1, [&](ImplicitLocOpBuilder &ib, Value t, Value) {
    auto [lo, hi] = blockRange(ib, t, kScanBlock, size);
    Value total = forRange(
        ib, lo, hi, zero, [&](ImplicitLocOpBuilder &lb, Value j, Value s) {
          return arith::AddIOp::create(lb, s, loadI64(lb, a, j));
        });
    storeI64(ib, total, sums, t);
  });
  launchRows(b, cIndex(b, 1), 1, [&](ImplicitLocOpBuilder &ib, Value, Value) {
    forRange(ib, cIndex(ib, 0), blocks, zero,
             [&](ImplicitLocOpBuilder &lb, Value t, Value run) {
               Value s = loadI64(lb, sums, t);
               storeI64(lb, run, sums, t);
               return arith::AddIOp::create(lb, run, s);
             });
  });
  launchRows(b, blocks, 1, [&](ImplicitLocOpBuilder &ib, Value t, Value) {
    auto [lo, hi] = blockRange(ib, t, kScanBlock, size);
    forRange(ib, lo, hi, loadI64(ib, sums, t),
             [&](ImplicitLocOpBuilder &lb, Value j, Value run) {
               Value v = loadI64(lb, a, j);
               storeI64(lb, run, a, j);
               return arith::AddIOp::create(lb, run, v);
             });
  });
  freeScratch(b, sums);
}

/// The entries of a deterministic gradient, sorted stably by key.
struct SortedEntries {
  Value keys, vals; // the sorted pair ([n] i64)
  Value n;
  SmallVector<Value> scratch;

  /// `fill(keys, vals)` launches what writes keys[e] in [0, maxKey] and
  /// vals[e] = e for every entry e in [0, n).
  SortedEntries(ImplicitLocOpBuilder &b, Value n, Value maxKey,
                function_ref<void(Value, Value)> fill)
      : n(n) {
    MemRefType type = i64Buffer(b.getContext());
    for (int i = 0; i < 4; ++i)
      scratch.push_back(allocScratch(b, type, n));
    fill(scratch[0], scratch[1]);

    Value chunks = arith::CeilDivUIOp::create(b, n, cIndex(b, kSortChunk));
    int64_t radix = int64_t(1) << kRadixBits;
    Value histSize = arith::MulIOp::create(b, chunks, cIndex(b, radix));
    Value hist = allocScratch(b, type, histSize);
    // Passes: the 8-bit digits of maxKey (at least one).
    Value passes = cIndex(b, 1);
    for (int64_t k = 1; k < 64 / kRadixBits; ++k) {
      Value more =
          arith::CmpIOp::create(b, arith::CmpIPredicate::uge, maxKey,
                                cIndex(b, int64_t(1) << (k * kRadixBits)));
      passes = arith::AddIOp::create(
          b, passes,
          arith::SelectOp::create(b, more, cIndex(b, 1), cIndex(b, 0)));
    }
    Value mask = arith::ConstantOp::create(b, b.getI64IntegerAttr(radix - 1));
    auto loop = scf::ForOp::create(
        b, cIndex(b, 0), passes, cIndex(b, 1), ValueRange(scratch),
        [&](OpBuilder &nb, Location loc, Value pass, ValueRange it) {
          ImplicitLocOpBuilder pb(loc, nb);
          Value inK = it[0], inV = it[1], outK = it[2], outV = it[3];
          Value shift = arith::IndexCastOp::create(
              pb, pb.getI64Type(),
              arith::MulIOp::create(pb, pass, cIndex(pb, kRadixBits)));
          auto slot = [&](ImplicitLocOpBuilder &sb, Value key, Value c) {
            Value digit = arith::AndIOp::create(
                sb, arith::ShRUIOp::create(sb, key, shift), mask);
            Value d = arith::IndexCastOp::create(sb, sb.getIndexType(), digit);
            return arith::AddIOp::create(
                sb, arith::MulIOp::create(sb, d, chunks), c);
          };
          // Each chunk's digit counts (its own column of the histogram).
          launchRows(
              pb, chunks, 1, [&](ImplicitLocOpBuilder &ib, Value c, Value) {
                Value zero =
                    arith::ConstantOp::create(ib, ib.getI64IntegerAttr(0));
                scf::ForOp::create(
                    ib, cIndex(ib, 0), cIndex(ib, radix), cIndex(ib, 1),
                    ValueRange{},
                    [&](OpBuilder &zb, Location zl, Value d, ValueRange) {
                      ImplicitLocOpBuilder lb(zl, zb);
                      storeI64(
                          lb, zero, hist,
                          arith::AddIOp::create(
                              lb, arith::MulIOp::create(lb, d, chunks), c));
                      scf::YieldOp::create(lb);
                    });
                auto [lo, hi] = blockRange(ib, c, kSortChunk, n);
                Value one =
                    arith::ConstantOp::create(ib, ib.getI64IntegerAttr(1));
                forRange(ib, lo, hi, one,
                         [&](ImplicitLocOpBuilder &lb, Value j, Value unit) {
                           Value s = slot(lb, loadI64(lb, inK, j), c);
                           storeI64(lb,
                                    arith::AddIOp::create(
                                        lb, loadI64(lb, hist, s), unit),
                                    hist, s);
                           return unit;
                         });
              });
          // Offsets: digit-major, so that digit d of chunk c follows every
          // smaller digit and digit d of every earlier chunk (stability).
          exclusiveScan(pb, hist, histSize);
          launchRows(
              pb, chunks, 1, [&](ImplicitLocOpBuilder &ib, Value c, Value) {
                auto [lo, hi] = blockRange(ib, c, kSortChunk, n);
                Value one =
                    arith::ConstantOp::create(ib, ib.getI64IntegerAttr(1));
                forRange(ib, lo, hi, one,
                         [&](ImplicitLocOpBuilder &lb, Value j, Value unit) {
                           Value key = loadI64(lb, inK, j);
                           Value s = slot(lb, key, c);
                           Value p64 = loadI64(lb, hist, s);
                           storeI64(lb, arith::AddIOp::create(lb, p64, unit),
                                    hist, s);
                           Value p = arith::IndexCastOp::create(
                               lb, lb.getIndexType(), p64);
                           storeI64(lb, key, outK, p);
                           storeI64(lb, loadI64(lb, inV, j), outV, p);
                           return unit;
                         });
              });
          scf::YieldOp::create(pb, ValueRange{outK, outV, inK, inV});
        });
    freeScratch(b, hist);
    keys = loop.getResult(0);
    vals = loop.getResult(1);
  }

  /// [lo, hi) of the entries with `key` (binary searches in the sorted
  /// keys).
  std::pair<Value, Value> segment(ImplicitLocOpBuilder &b, Value key) const {
    auto lowerBound = [&](Value k) {
      Value k64 = arith::IndexCastOp::create(b, b.getI64Type(), k);
      auto loop = scf::WhileOp::create(
          b, TypeRange{b.getIndexType(), b.getIndexType()},
          ValueRange{cIndex(b, 0), n},
          [&](OpBuilder &nb, Location loc, ValueRange it) {
            ImplicitLocOpBuilder lb(loc, nb);
            Value more = arith::CmpIOp::create(lb, arith::CmpIPredicate::ult,
                                               it[0], it[1]);
            scf::ConditionOp::create(lb, more, it);
          },
          [&](OpBuilder &nb, Location loc, ValueRange it) {
            ImplicitLocOpBuilder lb(loc, nb);
            Value mid = arith::ShRUIOp::create(
                lb, arith::AddIOp::create(lb, it[0], it[1]), cIndex(lb, 1));
            Value less = arith::CmpIOp::create(lb, arith::CmpIPredicate::slt,
                                               loadI64(lb, keys, mid), k64);
            Value lo = arith::SelectOp::create(
                lb, less, arith::AddIOp::create(lb, mid, cIndex(lb, 1)), it[0]);
            Value hi = arith::SelectOp::create(lb, less, it[1], mid);
            scf::YieldOp::create(lb, ValueRange{lo, hi});
          });
      return loop.getResult(0);
    };
    return {lowerBound(key),
            lowerBound(arith::AddIOp::create(b, key, cIndex(b, 1)))};
  }

  void free(ImplicitLocOpBuilder &b) {
    for (Value s : scratch)
      freeScratch(b, s);
  }
};

/// What the sorted and compacted gradients need of each entry of a bag op:
/// its bag and, for mean or per_sample_weights, its factor (1 / the live
/// entries of its bag for mean, times psw[j]) in the accumulator type, as
/// the atomic scatter computes them. In scratch of one element per entry.
struct BagEntries {
  const BagForm &form;
  BagMode mode;
  Value pad, psw;
  Type element, accElement;
  Value bags, weights;

  BagEntries(ImplicitLocOpBuilder &b, const BagForm &form, BagMode mode,
             Value pad, Value psw, Type element)
      : form(form), mode(mode), pad(pad), psw(psw), element(element),
        accElement(accumulatorType(element)) {
    bags = allocScratch(b, i64Buffer(b.getContext()), form.numIndices);
    if (mode == BagMode::mean || psw)
      weights =
          allocScratch(b, MemRefType::get({ShapedType::kDynamic}, accElement),
                       form.numIndices);
  }

  /// A thread per bag writes its entries' bag and factor, then runs
  /// `perEntry(j)` for each of them.
  void launch(ImplicitLocOpBuilder &b,
              function_ref<void(ImplicitLocOpBuilder &, Value)> perEntry) {
    launchRows(
        b, form.numBags, 1, [&](ImplicitLocOpBuilder &ib, Value bag, Value) {
          auto [start, end] = form.bounds(ib, bag);
          Value factor = mode == BagMode::mean
                             ? meanFactor(ib, form, start, end, pad, accElement)
                             : Value();
          scf::ForOp::create(
              ib, start, end, cIndex(ib, 1), ValueRange{},
              [&](OpBuilder &nb, Location loc, Value j, ValueRange) {
                ImplicitLocOpBuilder lb(loc, nb);
                storeI64(lb, bag, bags, j);
                if (weights) {
                  Value f = factor;
                  if (psw) {
                    Value w = memref::LoadOp::create(
                        lb, psw, ValueRange{j}, /*nontemporal=*/false,
                        llvm::MaybeAlign(element.getIntOrFloatBitWidth() / 8));
                    if (w.getType() != accElement)
                      w = arith::ExtFOp::create(lb, accElement, w);
                    f = f ? arith::MulFOp::create(lb, f, w) : w;
                  }
                  memref::StoreOp::create(lb, f, weights, ValueRange{j});
                }
                perEntry(lb, j);
                scf::YieldOp::create(lb);
              });
        });
  }

  Value bagOf(ImplicitLocOpBuilder &b, Value j) const {
    return arith::IndexCastOp::create(b, b.getIndexType(), loadI64(b, bags, j));
  }
  /// The factor of entry j, or null (sum without per_sample_weights).
  Value weight(ImplicitLocOpBuilder &b, Value j) const {
    if (!weights)
      return Value();
    return memref::LoadOp::create(b, weights, ValueRange{j});
  }
  void free(ImplicitLocOpBuilder &b) {
    freeScratch(b, bags);
    if (weights)
      freeScratch(b, weights);
  }
};

/// keys[e] = the row of entry e in the window [first, first + count)
/// (`count` for padding and rows of other windows), vals[e] = e.
void storeEntryKey(ImplicitLocOpBuilder &b, Value r, Value e, Value first,
                   Value count, Value pad, Value keys, Value vals) {
  Value local = arith::SubIOp::create(b, r, first);
  Value ok = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, local, count);
  if (pad)
    ok = arith::AndIOp::create(
        b, ok, arith::CmpIOp::create(b, arith::CmpIPredicate::ne, r, pad));
  storeI64(b, arith::SelectOp::create(b, ok, local, count), keys, e);
  storeI64(b, e, vals, e);
}

/// The rows of a deterministic lookup or bag sum / mean gradient, as the
/// host kernels compute them: a thread group per row of the window sums
/// `contribution(e, c)` (a row piece in the accumulator type, unscaled)
/// over its entries in input order, then multiplies the sum by `scale`
/// (divided by the number of entries with scale_grad_by_freq) and stores
/// the rounded row.
void sumSegments(
    ImplicitLocOpBuilder &b, const SortedEntries &sorted, Value gw, Value count,
    Type element, int64_t dim, double scale, bool byFreq,
    function_ref<Value(ImplicitLocOpBuilder &, Value, Value)> contribution) {
  Type accElement = accumulatorType(element);
  auto [vec, tpr] = rowLayout(dim, element);
  auto accType = VectorType::get({vec}, accElement);
  auto vecType = VectorType::get({vec}, element);
  int64_t v = vec, t = tpr;
  launchRows(
      b, count, tpr, [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
        Value lo, hi;
        std::tie(lo, hi) = sorted.segment(ib, row);
        Value s =
            arith::ConstantOp::create(ib, ib.getFloatAttr(accElement, scale));
        if (byFreq) {
          // A row without entries sums to 0 whatever the divisor.
          Value k = arith::MaxUIOp::create(
              ib, arith::SubIOp::create(ib, hi, lo), cIndex(ib, 1));
          s = arith::DivFOp::create(
              ib, s,
              arith::UIToFPOp::create(
                  ib, accElement,
                  arith::IndexCastOp::create(ib, ib.getI64Type(), k)));
        }
        forEachChunk(
            ib, lane, dim, v, t, [&](ImplicitLocOpBuilder &cb, Value c) {
              Value zero = splat(cb, accType, cb.getFloatAttr(accElement, 0.0));
              Value acc = forRange(
                  cb, lo, hi, zero,
                  [&](ImplicitLocOpBuilder &lb, Value k, Value sum) {
                    Value e = arith::IndexCastOp::create(
                        lb, lb.getIndexType(), loadI64(lb, sorted.vals, k));
                    return arith::AddFOp::create(lb, sum,
                                                 contribution(lb, e, c));
                  });
              acc = arith::MulFOp::create(
                  cb, acc, vector::BroadcastOp::create(cb, accType, s));
              storeRow(cb, truncate(cb, acc, vecType), gw, ValueRange{row, c});
            });
      });
}

// %gw = emb.lookup_grad %g[%x] rows(f, n) {deterministic, ...}
//   ==>
// keys[e] = x[e] - f (n for padding / other windows), vals[e] = e
// stable radix sort by key
// a thread group per row r of [0, n):
//   [lo, hi) = the entries of r;  for each chunk c of the lane:
//     acc = sum over k in [lo, hi) of g[vals[k], c..]
//     gw[r, c..] = round(acc * (s (/ (hi - lo))))
LogicalResult lowerLookupGradDeterministic(LookupGradOp op,
                                           RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  Type element = gType.getElementType();
  FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  double scale = op.getGradScale().convertToDouble();
  Type accElement = accumulatorType(element);
  auto vecType = VectorType::get({rowLayout(dim, element).first}, element);

  Value grad = gradRows(b, op.getGrad());
  Value indices = toBuffer(b, flatten(b, op.getIndices()));
  Value n = memref::DimOp::create(b, indices, 0);
  Value first, count;
  std::tie(first, count) = gradientRows(b, op.getRowOffset(), op.getRowCount(),
                                        op.getNumEmbeddings());
  Destination dest(b, op.getResult(),
                   op.getType().isDynamicDim(0) ? ValueRange{count}
                                                : ValueRange{});
  Value pad = gradientPadding(b, op.getPaddingIdx(), op.getNumEmbeddings());
  SortedEntries sorted(b, n, count, [&](Value keys, Value vals) {
    launchRows(b, n, 1, [&](ImplicitLocOpBuilder &ib, Value e, Value) {
      storeEntryKey(ib, loadIndex(ib, indices, e), e, first, count, pad, keys,
                    vals);
    });
  });
  sumSegments(
      b, sorted, dest.buffer, count, element, dim, scale,
      op.getScaleGradByFreq(), [&](ImplicitLocOpBuilder &lb, Value e, Value c) {
        return scaleRow(lb, loadRow(lb, vecType, grad, ValueRange{e, c}),
                        accElement, 1.0, Value());
      });
  sorted.free(b);
  dest.replace(rewriter, op.getResult());
  rewriter.eraseOp(op);
  return success();
}

// %gw = emb.bag_grad <mode> ... rows(f, n) {deterministic, ...}
//   ==>
// sum / mean: keys[e] = n (entries outside every bag); then a thread per
//   bag: for its entries j: keys[j] = x[j] - f (or n), vals[j] = j,
//   bag[j] = the bag, w[j] = 1 / live (mean) * psw[j];
//   sort; a thread group per row sums w[e] * g[bag[e], c..] in input
//   order, then scales (as lookup_grad).
// max: an entry per (bag, column) e = bag * D + col, keyed by
//   (max_indices[bag, col] - f) * D + col (n * D for -1 / other windows);
//   sort; a thread per (row, col) sums s * g[e / D, col] over its bags in
//   order.
LogicalResult lowerBagGradDeterministic(BagGradOp op, RewriterBase &rewriter) {
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
  BagForm form(b, op.getIndices(), op.getOffsets(), op.getIncludeLastOffset());
  Value first, count;
  std::tie(first, count) = gradientRows(b, op.getRowOffset(), op.getRowCount(),
                                        op.getNumEmbeddings());
  Destination dest(b, op.getResult(),
                   op.getType().isDynamicDim(0) ? ValueRange{count}
                                                : ValueRange{});

  if (mode == BagMode::max) {
    Value maxIdx = toBuffer(b, op.getMaxIndices());
    Value d = cIndex(b, dim);
    Value n = arith::MulIOp::create(b, form.numBags, d);
    Value sentinel = arith::MulIOp::create(b, count, d);
    SortedEntries sorted(b, n, sentinel, [&](Value keys, Value vals) {
      launchRows(b, n, 1, [&](ImplicitLocOpBuilder &ib, Value e, Value) {
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
        b, sentinel, 1, [&](ImplicitLocOpBuilder &ib, Value item, Value) {
          Value row = arith::DivUIOp::create(ib, item, cIndex(ib, dim));
          Value col = arith::RemUIOp::create(ib, item, cIndex(ib, dim));
          auto [lo, hi] = sorted.segment(ib, item);
          Value zero =
              arith::ConstantOp::create(ib, ib.getFloatAttr(accElement, 0.0));
          Value acc = forRange(
              ib, lo, hi, zero,
              [&](ImplicitLocOpBuilder &lb, Value k, Value sum) {
                Value e = arith::IndexCastOp::create(
                    lb, lb.getIndexType(), loadI64(lb, sorted.vals, k));
                Value bag = arith::DivUIOp::create(lb, e, cIndex(lb, dim));
                Value g =
                    memref::LoadOp::create(lb, grad, ValueRange{bag, col});
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
          memref::StoreOp::create(ib, acc, dest.buffer, ValueRange{row, col});
        });
    sorted.free(b);
    dest.replace(rewriter, op.getResult());
    rewriter.eraseOp(op);
    return success();
  }

  Value psw = op.getPerSampleWeights()
                  ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                  : Value();
  Value pad = gradientPadding(b, op.getPaddingIdx(), op.getNumEmbeddings());
  Value n = form.numIndices;
  BagEntries entries(b, form, mode, pad, psw, element);
  SortedEntries sorted(b, n, count, [&](Value keys, Value vals) {
    launchRows(b, n, 1, [&](ImplicitLocOpBuilder &ib, Value e, Value) {
      storeI64(ib, count, keys, e);
      storeI64(ib, e, vals, e);
    });
    entries.launch(b, [&](ImplicitLocOpBuilder &lb, Value j) {
      storeEntryKey(lb, loadIndex(lb, form.indices, j), j, first, count, pad,
                    keys, vals);
    });
  });
  auto vecType = VectorType::get({rowLayout(dim, element).first}, element);
  sumSegments(
      b, sorted, dest.buffer, count, element, dim, scale,
      op.getScaleGradByFreq(), [&](ImplicitLocOpBuilder &lb, Value e, Value c) {
        return scaleRow(
            lb, loadRow(lb, vecType, grad, ValueRange{entries.bagOf(lb, e), c}),
            accElement, 1.0, entries.weight(lb, e));
      });
  sorted.free(b);
  entries.free(b);
  dest.replace(rewriter, op.getResult());
  rewriter.eraseOp(op);
  return success();
}

// %gp = emb.bag_psw_grad %g, %w[%x] offsets(%o)
//   ==>  one thread per bag (no cross-thread reduction, so the kernel is
//   emulatable and every sum has a fixed order):
//     for each entry j of the bag:
//       gp[j] = x[j] == P ? 0 : sum over D of g[bag, :] * w[x[j], :]
//               (16-byte vectors, f32 accumulation, lanes summed in order)
LogicalResult lowerBagPswGrad(BagPswGradOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  Type element = wType.getElementType();
  Type accElement = accumulatorType(element);
  FailureOr<int64_t> staticD = staticDim(op, op.getWeight(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  int64_t vec = rowLayout(dim, element).first;
  Value weight = toBuffer(b, op.getWeight());
  Value grad = toBuffer(b, op.getGrad());
  BagForm form(b, op.getIndices(), op.getOffsets(), op.getIncludeLastOffset());
  auto resultType = cast<RankedTensorType>(op.getType());
  SmallVector<Value> dynSizes;
  for (int64_t i = 0; i < resultType.getRank(); ++i)
    if (resultType.isDynamicDim(i))
      dynSizes.push_back(tensor::DimOp::create(b, op.getIndices(), i));
  Destination dest(b, op.getResult(), dynSizes);
  // The result has the shape of the indices: written through a 1-D view.
  Value out = dest.buffer;
  auto outType = cast<MemRefType>(out.getType());
  if (outType.getRank() == 2)
    out = memref::CollapseShapeOp::create(
        b, out, ArrayRef<ReassociationIndices>{{0, 1}});
  Value pad = paddingRow(b, op.getPaddingIdx(), weight);
  auto vecType = VectorType::get({vec}, element);
  auto accType = VectorType::get({vec}, accElement);
  launchRows(
      b, form.numBags, /*threadsPerRow=*/1,
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
                        db, ValueRange{arith::AddFOp::create(
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
                Value isPad =
                    arith::CmpIOp::create(eb, arith::CmpIPredicate::eq, r, pad);
                sum = arith::SelectOp::create(
                    eb, isPad,
                    arith::ConstantOp::create(eb,
                                              eb.getFloatAttr(accElement, 0.0)),
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
  dest.replace(rewriter, op.getResult());
  rewriter.eraseOp(op);
  return success();
}

//===----------------------------------------------------------------------===//
// Sparse gradients: a compaction in input order, or the sorted rows summed
//===----------------------------------------------------------------------===//
//
// The result's size M (live entries, or distinct live rows) depends on the
// data, and the host needs it (to size the results and return it): it is
// counted on the device, then read back with one `gpu.memcpy` into host
// memory (a synchronisation). Results are written into device scratch of M
// rows, which the caller's buffers receive by a device copy.

/// Selected items of [0, n), counted per chunk of kSortChunk by a thread
/// each, scanned into the chunks' offsets (the last one the total), and the
/// total read back to the host.
struct Compaction {
  Value n, chunks, offsets, total;
  function_ref<Value(ImplicitLocOpBuilder &, Value)> selected;

  Compaction(ImplicitLocOpBuilder &b, Value n,
             function_ref<Value(ImplicitLocOpBuilder &, Value)> selected)
      : n(n), selected(selected) {
    chunks = arith::CeilDivUIOp::create(b, n, cIndex(b, kSortChunk));
    Value size = arith::AddIOp::create(b, chunks, cIndex(b, 1));
    offsets = allocScratch(b, i64Buffer(b.getContext()), size);
    Value zero = arith::ConstantOp::create(b, b.getI64IntegerAttr(0));
    launchRows(b, size, 1, [&](ImplicitLocOpBuilder &ib, Value c, Value) {
      // The extra chunk is empty: its offset becomes the total.
      auto [lo, hi] = blockRange(ib, c, kSortChunk, n);
      Value one = arith::ConstantOp::create(ib, ib.getI64IntegerAttr(1));
      Value count = forRange(
          ib, lo, hi, zero, [&](ImplicitLocOpBuilder &lb, Value j, Value k) {
            Value add = arith::SelectOp::create(
                lb, selected(lb, j), one,
                arith::ConstantOp::create(lb, lb.getI64IntegerAttr(0)));
            return arith::AddIOp::create(lb, k, add);
          });
      storeI64(ib, count, offsets, c);
    });
    exclusiveScan(b, offsets, size);
    Value host =
        memref::AllocaOp::create(b, MemRefType::get({1}, b.getI64Type()));
    Value last =
        memref::SubViewOp::create(b, offsets, ArrayRef<OpFoldResult>{chunks},
                                  ArrayRef<OpFoldResult>{b.getIndexAttr(1)},
                                  ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    gpu::MemcpyOp::create(b, Type(), ValueRange{}, host, last);
    total = arith::IndexCastOp::create(
        b, b.getIndexType(),
        memref::LoadOp::create(b, host, ValueRange{cIndex(b, 0)}));
  }

  /// A thread per chunk calls `body(j, k, isSelected)` for every item j of
  /// its chunk in order, k being j's place among the selected items (when
  /// it is one).
  void
  write(ImplicitLocOpBuilder &b,
        function_ref<void(ImplicitLocOpBuilder &, Value, Value, Value)> body) {
    launchRows(b, chunks, 1, [&](ImplicitLocOpBuilder &ib, Value c, Value) {
      auto [lo, hi] = blockRange(ib, c, kSortChunk, n);
      Value start = arith::IndexCastOp::create(ib, ib.getIndexType(),
                                               loadI64(ib, offsets, c));
      forRange(ib, lo, hi, start,
               [&](ImplicitLocOpBuilder &lb, Value j, Value k) {
                 Value isSelected = selected(lb, j);
                 body(lb, j, k, isSelected);
                 return arith::AddIOp::create(
                     lb, k,
                     arith::SelectOp::create(lb, isSelected, cIndex(lb, 1),
                                             cIndex(lb, 0)));
               });
    });
  }

  void free(ImplicitLocOpBuilder &b) { freeScratch(b, offsets); }
};

/// The inputs of a sparse gradient: entries j in [0, n) with row x[j], and
/// their contributions `grad[source(j)] * factor(j)` (unscaled, in the
/// accumulator type).
struct SparseInputs {
  Value indices, n, grad, pad;
  int64_t numEmbeddings, dim;
  double scale;
  Type element;
  function_ref<Value(ImplicitLocOpBuilder &, Value)> source, factor;
};

// uncoalesced (PyTorch's form), entries in input order:
//   live(j) = x[j] != P; k(j) = live entries before j (chunk counts, scan)
//   M = k(n) (read back); rows[k(j)] = x[j];
//   a thread group per live entry: values[k(j), :] = s * factor(j) *
//   g[source(j), :]
// coalesced: keys = x[j] (V for padding), stable radix sort, heads of runs
//   of equal keys compacted: M = distinct rows; rows[k] = the run's row;
//   a thread group per run sums its contributions in input order, then
//   values[k, :] = s * sum.
std::pair<Value, Value> lowerSparse(ImplicitLocOpBuilder &b, Operation *op,
                                    const SparseInputs &in, bool coalesced,
                                    function_ref<void(Value, Value)> fillKeys) {
  Type accElement = accumulatorType(in.element);
  auto [vec, tpr] = rowLayout(in.dim, in.element);
  auto vecType = VectorType::get({vec}, in.element);
  auto accType = VectorType::get({vec}, accElement);
  int64_t v = vec, t = tpr, dim = in.dim;
  MLIRContext *ctx = b.getContext();
  auto rowsType = i64Buffer(ctx);
  auto valuesType = MemRefType::get({ShapedType::kDynamic, in.dim}, in.element);
  auto contribution = [&](ImplicitLocOpBuilder &lb, Value j, Value c) {
    return scaleRow(
        lb, loadRow(lb, vecType, in.grad, ValueRange{in.source(lb, j), c}),
        accElement, 1.0, in.factor(lb, j));
  };
  auto scaled = [&](ImplicitLocOpBuilder &lb, Value x) {
    return arith::MulFOp::create(
        lb, x, splat(lb, accType, lb.getFloatAttr(accElement, in.scale)));
  };
  Value rows, values;

  if (!coalesced) {
    auto live = [&](ImplicitLocOpBuilder &lb, Value j) -> Value {
      if (!in.pad)
        return arith::ConstantOp::create(lb, lb.getBoolAttr(true));
      return arith::CmpIOp::create(lb, arith::CmpIPredicate::ne,
                                   loadIndex(lb, in.indices, j), in.pad);
    };
    Compaction compaction(b, in.n, live);
    rows = allocScratch(b, rowsType, compaction.total);
    values = allocScratch(b, valuesType, compaction.total);
    Value place = allocScratch(b, rowsType, in.n);
    compaction.write(
        b, [&](ImplicitLocOpBuilder &lb, Value j, Value k, Value isLive) {
          storeI64(lb, arith::SelectOp::create(lb, isLive, k, cIndex(lb, -1)),
                   place, j);
          scf::IfOp::create(lb, isLive, [&](OpBuilder &nb, Location loc) {
            ImplicitLocOpBuilder ib(loc, nb);
            storeI64(ib, loadIndex(ib, in.indices, j), rows, k);
            scf::YieldOp::create(ib);
          });
        });
    launchRows(
        b, in.n, tpr, [&](ImplicitLocOpBuilder &ib, Value j, Value lane) {
          Value k = loadI64(ib, place, j);
          Value isLive = arith::CmpIOp::create(
              ib, arith::CmpIPredicate::sge, k,
              arith::ConstantOp::create(ib, ib.getI64IntegerAttr(0)));
          scf::IfOp::create(ib, isLive, [&](OpBuilder &nb, Location loc) {
            ImplicitLocOpBuilder lb(loc, nb);
            Value kk = arith::IndexCastOp::create(lb, lb.getIndexType(), k);
            forEachChunk(lb, lane, dim, v, t,
                         [&](ImplicitLocOpBuilder &cb, Value c) {
                           Value x = scaled(cb, contribution(cb, j, c));
                           storeRow(cb, truncate(cb, x, vecType), values,
                                    ValueRange{kk, c});
                         });
            scf::YieldOp::create(lb);
          });
        });
    freeScratch(b, place);
    compaction.free(b);
  } else {
    Value numRows = cIndex(b, in.numEmbeddings);
    SortedEntries sorted(b, in.n, numRows, fillKeys);
    auto head = [&](ImplicitLocOpBuilder &lb, Value k) -> Value {
      Value key = loadI64(lb, sorted.keys, k);
      Value prev = loadI64(
          lb, sorted.keys,
          arith::SubIOp::create(
              lb, arith::MaxUIOp::create(lb, k, cIndex(lb, 1)), cIndex(lb, 1)));
      Value first =
          arith::CmpIOp::create(lb, arith::CmpIPredicate::eq, k, cIndex(lb, 0));
      Value change = arith::OrIOp::create(
          lb, first,
          arith::CmpIOp::create(lb, arith::CmpIPredicate::ne, key, prev));
      Value isLive = arith::CmpIOp::create(
          lb, arith::CmpIPredicate::ne, key,
          arith::IndexCastOp::create(lb, lb.getI64Type(), numRows));
      return arith::AndIOp::create(lb, change, isLive);
    };
    Compaction compaction(b, in.n, head);
    rows = allocScratch(b, rowsType, compaction.total);
    values = allocScratch(b, valuesType, compaction.total);
    compaction.write(
        b, [&](ImplicitLocOpBuilder &lb, Value k, Value p, Value isHead) {
          scf::IfOp::create(lb, isHead, [&](OpBuilder &nb, Location loc) {
            ImplicitLocOpBuilder ib(loc, nb);
            storeI64(ib, loadI64(ib, sorted.keys, k), rows, p);
            scf::YieldOp::create(ib);
          });
        });
    launchRows(
        b, compaction.total, tpr,
        [&](ImplicitLocOpBuilder &ib, Value p, Value lane) {
          Value row = arith::IndexCastOp::create(ib, ib.getIndexType(),
                                                 loadI64(ib, rows, p));
          Value lo, hi;
          std::tie(lo, hi) = sorted.segment(ib, row);
          forEachChunk(
              ib, lane, dim, v, t, [&](ImplicitLocOpBuilder &cb, Value c) {
                Value zero =
                    splat(cb, accType, cb.getFloatAttr(accElement, 0.0));
                Value acc = forRange(
                    cb, lo, hi, zero,
                    [&](ImplicitLocOpBuilder &lb, Value k, Value sum) {
                      Value j = arith::IndexCastOp::create(
                          lb, lb.getIndexType(), loadI64(lb, sorted.vals, k));
                      return arith::AddFOp::create(lb, sum,
                                                   contribution(lb, j, c));
                    });
                storeRow(cb, truncate(cb, scaled(cb, acc), vecType), values,
                         ValueRange{p, c});
              });
        });
    compaction.free(b);
    sorted.free(b);
  }
  // The results are read after the op (copied into the caller's buffers,
  // in the JIT's kernels): free them at the end of the block, unless the
  // block returns them (hand-written IR; they are then the caller's).
  Operation *terminator = op->getBlock()->getTerminator();
  if (llvm::none_of(op->getUsers(),
                    [&](Operation *user) { return user == terminator; })) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(terminator);
    freeScratch(b, rows);
    freeScratch(b, values);
  }
  auto asTensor = [&](Value buffer) -> Value {
    auto type = cast<MemRefType>(buffer.getType());
    return bufferization::ToTensorOp::create(
        b, RankedTensorType::get(type.getShape(), type.getElementType()),
        buffer, /*restrict=*/true, /*writable=*/false);
  };
  return {asTensor(rows), asTensor(values)};
}

LogicalResult lowerLookupSparseGrad(LookupSparseGradOp op,
                                    RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  Value indices = toBuffer(b, flatten(b, op.getIndices()));
  SparseInputs in;
  in.indices = indices;
  in.n = memref::DimOp::create(b, indices, 0);
  in.grad = gradRows(b, op.getGrad());
  in.pad = gradientPadding(b, op.getPaddingIdx(), op.getNumEmbeddings());
  in.numEmbeddings = op.getNumEmbeddings();
  in.dim = dim;
  in.scale = op.getGradScale().convertToDouble();
  in.element = gType.getElementType();
  auto self = [](ImplicitLocOpBuilder &, Value j) { return j; };
  auto none = [](ImplicitLocOpBuilder &, Value) { return Value(); };
  in.source = self;
  in.factor = none;
  Value numRows = cIndex(b, in.numEmbeddings);
  auto [rows, values] =
      lowerSparse(b, op, in, op.getCoalesced(), [&](Value keys, Value vals) {
        launchRows(b, in.n, 1, [&](ImplicitLocOpBuilder &ib, Value e, Value) {
          storeEntryKey(ib, loadIndex(ib, indices, e), e, cIndex(ib, 0),
                        numRows, in.pad, keys, vals);
        });
      });
  rewriter.replaceOp(op, ValueRange{rows, values});
  return success();
}

LogicalResult lowerBagSparseGrad(BagSparseGradOp op, RewriterBase &rewriter) {
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  auto gType = cast<RankedTensorType>(op.getGrad().getType());
  FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
  if (failed(staticD))
    return failure();
  int64_t dim = *staticD;
  if (op.getMode() == BagMode::max)
    return op.emitOpError("mode 'max' has no sparse gradient");
  BagForm form(b, op.getIndices(), op.getOffsets(), op.getIncludeLastOffset());
  Value psw = op.getPerSampleWeights()
                  ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                  : Value();
  SparseInputs in;
  in.indices = form.indices;
  in.n = form.numIndices;
  in.grad = toBuffer(b, op.getGrad());
  in.pad = gradientPadding(b, op.getPaddingIdx(), op.getNumEmbeddings());
  in.numEmbeddings = op.getNumEmbeddings();
  in.dim = dim;
  in.scale = op.getGradScale().convertToDouble();
  in.element = gType.getElementType();
  BagEntries entries(b, form, op.getMode(), in.pad, psw, in.element);
  Value numRows = cIndex(b, in.numEmbeddings);
  // (Every entry is in a bag: offsets start at 0 and the last bag ends at
  // the last entry, which the runtime checks.)
  bool coalesced = op.getCoalesced();
  auto source = [&](ImplicitLocOpBuilder &lb, Value j) {
    return entries.bagOf(lb, j);
  };
  auto factor = [&](ImplicitLocOpBuilder &lb, Value j) {
    return entries.weight(lb, j);
  };
  in.source = source;
  in.factor = factor;
  if (!coalesced)
    entries.launch(b, [](ImplicitLocOpBuilder &, Value) {});
  auto [rows, values] =
      lowerSparse(b, op, in, coalesced, [&](Value keys, Value vals) {
        launchRows(b, in.n, 1, [&](ImplicitLocOpBuilder &ib, Value e, Value) {
          storeI64(ib, numRows, keys, e);
          storeI64(ib, e, vals, e);
        });
        entries.launch(b, [&](ImplicitLocOpBuilder &lb, Value j) {
          storeEntryKey(lb, loadIndex(lb, form.indices, j), j, cIndex(lb, 0),
                        numRows, in.pad, keys, vals);
        });
      });
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(op->getBlock()->getTerminator());
    entries.free(b);
  }
  rewriter.replaceOp(op, ValueRange{rows, values});
  return success();
}

//===----------------------------------------------------------------------===//
// Pass
//===----------------------------------------------------------------------===//

struct ConvertEmbToGPUPass
    : emb::impl::ConvertEmbToGPUBase<ConvertEmbToGPUPass> {
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
              .Case([&](LookupGradOp o) {
                return o.getDeterministic()
                           ? lowerLookupGradDeterministic(o, rewriter)
                           : lowerLookupGrad(o, rewriter);
              })
              .Case([&](BagGradOp o) {
                return o.getDeterministic()
                           ? lowerBagGradDeterministic(o, rewriter)
                           : lowerBagGrad(o, rewriter);
              })
              .Case(
                  [&](BagPswGradOp o) { return lowerBagPswGrad(o, rewriter); })
              .Case([&](LookupSparseGradOp o) {
                return lowerLookupSparseGrad(o, rewriter);
              })
              .Case([&](BagSparseGradOp o) {
                return lowerBagSparseGrad(o, rewriter);
              })
              .Default([&](Operation *o) {
                return o->emitOpError() << "has no GPU lowering";
              });
      if (failed(result))
        return signalPassFailure();
    }
    // The host code now launches kernels.
    if (auto module = dyn_cast<ModuleOp>(getOperation()))
      module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                      UnitAttr::get(&getContext()));
  }
};

} // namespace
