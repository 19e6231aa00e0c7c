//===- PrefetchRows.cpp - prefetch table rows ahead in gather loops -------===//
//
//   scf.for %j = ... {                        scf.for %j = ... {
//     %x = memref.load %idx[%j]                 %jn = min(%j + distance,
//     dim(%idx) - 1) %r = index_cast %x               =>       %rn =
//     index_cast(memref.load %idx[%jn])
//     ... vector.transfer_read                  memref.prefetch %w[%rn, c + k *
//     line] (each line)
//           %w[%r, c] : vector<n x T>           ... (as before)
//
//===----------------------------------------------------------------------===//

#include "Conversion/EmbCommon/CPUConfig.h"
#include "emb/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/SetVector.h"

#include <algorithm>

namespace mlir::emb {
#define GEN_PASS_DEF_EMBPREFETCHROWS
#include "emb/Transforms/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

/// A row read `table[row, col : col + lanes]` whose row comes from
/// `indexBuffer[iv]` of the loop `loop`.
struct RowRead {
  scf::ForOp loop;
  Value indexBuffer, table;
  int64_t col, lanes;
};

std::optional<RowRead> matchRowRead(vector::TransferReadOp read) {
  auto table = dyn_cast<TypedValue<MemRefType>>(read.getBase());
  if (!table || table.getType().getRank() != 2 || read.getIndices().size() != 2)
    return std::nullopt;
  auto colConst = getConstantIntValue(read.getIndices()[1]);
  if (!colConst)
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
  return RowRead{loop, load.getMemRef(), table, *colConst,
                 read.getVectorType().getNumElements()};
}

struct EmbPrefetchRowsPass
    : mlir::emb::impl::EmbPrefetchRowsBase<EmbPrefetchRowsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<RowRead> reads;
    getOperation()->walk([&](vector::TransferReadOp read) {
      if (auto match = matchRowRead(read))
        reads.push_back(*match);
    });
    // One set of prefetches per (loop, index buffer, table, columns).
    llvm::SmallSetVector<std::tuple<Operation *, void *, void *, int64_t>, 8>
        done;
    for (RowRead r : reads) {
      auto key = std::make_tuple(r.loop.getOperation(),
                                 r.indexBuffer.getAsOpaquePointer(),
                                 r.table.getAsOpaquePointer(), r.col);
      if (!done.insert(key))
        continue;
      insertPrefetch(r);
    }
  }

  void insertPrefetch(RowRead r) {
    Block *body = r.loop.getBody();
    ImplicitLocOpBuilder b(r.loop.getLoc(), body, body->begin());
    // The buffers must be visible at the top of the body.
    if (!r.table.getParentRegion()->isAncestor(r.loop->getParentRegion()) ||
        !r.indexBuffer.getParentRegion()->isAncestor(r.loop->getParentRegion()))
      return;
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
      ahead64 = std::clamp<int64_t>(bytesAhead / (r.lanes * bytes), minAhead,
                                    std::max<int64_t>(minAhead, 64));
    Value ahead = arith::AddIOp::create(
        b, iv, arith::ConstantIndexOp::create(b, ahead64));
    Value next = arith::MinSIOp::create(b, ahead, last);
    Value raw = memref::LoadOp::create(b, r.indexBuffer, ValueRange{next});
    Value row = arith::IndexCastOp::create(b, b.getIndexType(), raw);
    int64_t line = lineBytes > 0 ? lineBytes : emb::cpu::kCacheLineBytes;
    int64_t perLine = std::max<int64_t>(1, line / bytes);
    for (int64_t k = 0; k < r.lanes; k += perLine) {
      Value col = arith::ConstantIndexOp::create(b, r.col + k);
      memref::PrefetchOp::create(b, r.table, ValueRange{row, col},
                                 /*isWrite=*/false, /*localityHint=*/3,
                                 /*isDataCache=*/true);
    }
  }
};

} // namespace
