//===- PrefetchRows.cpp - prefetch table rows ahead in gather loops -------===//
//
//   scf.for %j = ... {              scf.for %j = ... {
//     %x = memref.load %idx[%j]       %jn = min(%j + distance, dim(%idx) - 1)
//     %r = index_cast %x      =>      %rn = index_cast(memref.load %idx[%jn])
//     vector.transfer_read            memref.prefetch %w[%rn, c + k * line]
//       %w[%r, c]                       (each line of the read)
//                                     ... (as before)
// where the column c is a constant, or a value defined outside the loop
// (the D-block loop of a long row around a bag's index loop).
//
//===----------------------------------------------------------------------===//

#include "Conversion/EmbCommon/CPUConfig.h"
#include "emb/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

#include <algorithm>

namespace mlir::emb {
#define GEN_PASS_DEF_EMBPREFETCHROWS
#include "emb/Transforms/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

/// A row read `table[row, col : col + lanes]` whose row comes from
/// `indexBuffer[iv]` of the loop `loop`. The column is a constant, or a value
/// defined outside the loop (the D-block loop of a long row around a bag's
/// index loop); or `span` is set: the read is in a D-block loop inside
/// `loop` (a long row of a lookup or renorm) whose iterations read columns
/// [span.first, span.second).
struct RowRead {
  scf::ForOp loop;
  Value indexBuffer, table;
  OpFoldResult col;
  int64_t lanes;
  std::optional<std::pair<int64_t, int64_t>> span;
};

/// The columns a read at `col` of `lanes` lanes covers over all iterations
/// of the loop inside `loop` whose induction variable `col` is (plus a
/// constant), when that loop has constant bounds.
std::optional<std::pair<int64_t, int64_t>>
blockLoopSpan(Value col, int64_t lanes, scf::ForOp loop) {
  int64_t offset = 0;
  if (auto add = col.getDefiningOp<arith::AddIOp>()) {
    if (auto c = getConstantIntValue(add.getRhs())) {
      offset = *c;
      col = add.getLhs();
    } else if (auto c = getConstantIntValue(add.getLhs())) {
      offset = *c;
      col = add.getRhs();
    }
  }
  auto iv = dyn_cast<BlockArgument>(col);
  auto blockLoop =
      iv ? dyn_cast<scf::ForOp>(iv.getOwner()->getParentOp()) : nullptr;
  if (!blockLoop || blockLoop.getInductionVar() != iv ||
      !loop->isProperAncestor(blockLoop))
    return std::nullopt;
  auto lb = getConstantIntValue(blockLoop.getLowerBound());
  auto ub = getConstantIntValue(blockLoop.getUpperBound());
  auto step = getConstantIntValue(blockLoop.getStep());
  if (!lb || !ub || !step || *step <= 0 || *ub <= *lb)
    return std::nullopt;
  int64_t lastStart = *lb + (*ub - *lb - 1) / *step * *step;
  return std::make_pair(*lb + offset, lastStart + offset + lanes);
}

std::optional<RowRead> matchRowRead(vector::TransferReadOp read) {
  auto table = dyn_cast<TypedValue<MemRefType>>(read.getBase());
  if (!table || table.getType().getRank() != 2 || read.getIndices().size() != 2)
    return std::nullopt;
  auto cast = read.getIndices()[0].getDefiningOp<arith::IndexCastOp>();
  auto load = cast ? cast.getIn().getDefiningOp<memref::LoadOp>() : nullptr;
  if (!load || load.getIndices().size() != 1 ||
      load.getMemRefType().getRank() != 1)
    return std::nullopt;
  auto iv = dyn_cast<BlockArgument>(load.getIndices()[0]);
  if (!iv)
    return std::nullopt;
  auto loop = dyn_cast<scf::ForOp>(iv.getOwner()->getParentOp());
  if (!loop || loop.getInductionVar() != iv)
    return std::nullopt;
  int64_t lanes = read.getVectorType().getNumElements();
  RowRead r{loop, load.getMemRef(), table, OpFoldResult(), lanes, std::nullopt};
  Value colValue = read.getIndices()[1];
  if (auto colConst = getConstantIntValue(colValue))
    r.col = IntegerAttr::get(IndexType::get(read.getContext()), *colConst);
  else if (colValue.getParentRegion()->isProperAncestor(&loop.getRegion()))
    r.col = colValue;
  else if (!(r.span = blockLoopSpan(colValue, lanes, loop)))
    return std::nullopt; // varies inside the loop: not known ahead
  return r;
}

struct EmbPrefetchRowsPass
    : mlir::emb::impl::EmbPrefetchRowsBase<EmbPrefetchRowsPass> {
  using Base::Base;

  void runOnOperation() override {
    rowLanes.clear();
    SmallVector<RowRead> reads;
    getOperation()->walk([&](vector::TransferReadOp read) {
      if (auto match = matchRowRead(read))
        reads.push_back(*match);
    });
    // One set of prefetches per (loop, index buffer, table, columns), and
    // one prefetch loop per (loop, index buffer, table) over the columns
    // its D-block loops read.
    using Key = std::tuple<Operation *, void *, void *>;
    llvm::SmallSetVector<std::tuple<Operation *, void *, void *, void *>, 8>
        done;
    llvm::MapVector<Key, RowRead> spans;
    auto keyOf = [](RowRead r) {
      return Key{r.loop.getOperation(), r.indexBuffer.getAsOpaquePointer(),
                 r.table.getAsOpaquePointer()};
    };
    // The lanes each loop reads of a table's row, over all its reads: a
    // quantised row is its bytes and, at another column, its scale and
    // bias; every prefetch of the row looks as far ahead as the whole row
    // needs.
    llvm::SmallSetVector<std::tuple<Operation *, void *, void *, void *>, 8>
        counted;
    for (const RowRead &r : reads)
      if (!r.span && counted.insert(std::tuple_cat(
                         keyOf(r), std::make_tuple(r.col.getOpaqueValue()))))
        rowLanes[keyOf(r)] += r.lanes;
    for (const RowRead &r : reads) {
      if (!r.span)
        continue;
      auto [it, inserted] = spans.insert({keyOf(r), r});
      auto &span = *it->second.span;
      span = {std::min(span.first, r.span->first),
              std::max(span.second, r.span->second)};
    }
    for (const RowRead &r : reads) {
      if (r.span)
        continue;
      // Static columns the prefetch loop covers already (a long row's first
      // or last blocks) need none of their own.
      auto it = spans.find(keyOf(r));
      auto staticCol = getConstantIntValue(r.col);
      if (it != spans.end() && staticCol &&
          *staticCol >= it->second.span->first &&
          *staticCol + r.lanes <= it->second.span->second)
        continue;
      if (!done.insert(std::tuple_cat(keyOf(r),
                                      std::make_tuple(r.col.getOpaqueValue()))))
        continue;
      insertPrefetch(r);
    }
    for (auto &[key, r] : spans)
      insertPrefetch(r);
  }

  /// The lanes of a row each iteration reads, by (loop, index buffer,
  /// table), over its reads at distinct columns.
  llvm::DenseMap<std::tuple<Operation *, void *, void *>, int64_t> rowLanes;

  void insertPrefetch(RowRead r) {
    Block *body = r.loop.getBody();
    ImplicitLocOpBuilder b(r.loop.getLoc(), body, body->begin());
    // The buffers must be visible at the top of the body.
    if (!r.table.getParentRegion()->isAncestor(r.loop->getParentRegion()) ||
        !r.indexBuffer.getParentRegion()->isAncestor(r.loop->getParentRegion()))
      return;
    int64_t lanes = r.span ? r.span->second - r.span->first : r.lanes;
    // How far ahead: by the bytes of the whole row this loop reads.
    auto total = rowLanes.find({r.loop.getOperation(),
                                r.indexBuffer.getAsOpaquePointer(),
                                r.table.getAsOpaquePointer()});
    int64_t aheadLanes =
        r.span || total == rowLanes.end() ? lanes : total->second;
    Value iv = r.loop.getInductionVar();
    Value c0 = arith::ConstantIndexOp::create(b, 0);
    Value c1 = arith::ConstantIndexOp::create(b, 1);
    Value n = memref::DimOp::create(b, r.indexBuffer, c0);
    Value last = arith::SubIOp::create(b, n, c1);
    Type element = cast<MemRefType>(r.table.getType()).getElementType();
    int64_t bytes = std::max<int64_t>(1, element.getIntOrFloatBitWidth() / 8);
    // Options left at 0 take the CPU heuristics (CPUConfig.h).
    int64_t minAhead = distance > 0 ? distance : emb::cpu::kPrefetchDistance;
    int64_t ahead64 = minAhead;
    if (bytesAhead > 0)
      ahead64 = std::clamp<int64_t>(bytesAhead / (aheadLanes * bytes),
                                    minAhead, std::max<int64_t>(minAhead, 64));
    Value ahead = arith::AddIOp::create(
        b, iv, arith::ConstantIndexOp::create(b, ahead64));
    Value next = arith::MinSIOp::create(b, ahead, last);
    Value raw = memref::LoadOp::create(b, r.indexBuffer, ValueRange{next});
    Value row = arith::IndexCastOp::create(b, b.getIndexType(), raw);
    int64_t line = lineBytes > 0 ? lineBytes : emb::cpu::kCacheLineBytes;
    int64_t perLine = std::max<int64_t>(1, line / bytes);
    auto prefetch = [&](OpBuilder &pb, Location loc, Value col) {
      memref::PrefetchOp::create(pb, loc, r.table, ValueRange{row, col},
                                 /*isWrite=*/false, /*localityHint=*/3,
                                 /*isDataCache=*/true);
    };
    if (r.span) {
      // A loop of prefetches, as the block loop: the IR stays the same size
      // whatever D is.
      scf::ForOp::create(
          b, arith::ConstantIndexOp::create(b, r.span->first),
          arith::ConstantIndexOp::create(b, r.span->second),
          arith::ConstantIndexOp::create(b, perLine), ValueRange{},
          [&](OpBuilder &nb, Location loc, Value col, ValueRange) {
            prefetch(nb, loc, col);
            scf::YieldOp::create(nb, loc);
          });
      return;
    }
    auto staticCol = getConstantIntValue(r.col);
    for (int64_t k = 0; k < r.lanes; k += perLine) {
      Value col;
      if (staticCol)
        col = arith::ConstantIndexOp::create(b, *staticCol + k);
      else if (k == 0)
        col = cast<Value>(r.col);
      else
        col = arith::AddIOp::create(b, cast<Value>(r.col),
                                    arith::ConstantIndexOp::create(b, k));
      prefetch(b, b.getLoc(), col);
    }
  }
};

} // namespace
