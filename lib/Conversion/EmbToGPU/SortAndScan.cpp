//===- SortAndScan.cpp - ordered sums per row on the GPU
//--------------------===//
//===----------------------------------------------------------------------===//

#include "SortAndScan.h"

namespace mlir::emb::gpu_lowering {

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

std::pair<Value, Value> blockRange(ImplicitLocOpBuilder &b, Value t,
                                   int64_t block, Value size) {
  Value lo = arith::MulIOp::create(b, t, cIndex(b, block));
  Value hi = arith::MinUIOp::create(
      b, arith::AddIOp::create(b, lo, cIndex(b, block)), size);
  return {lo, hi};
}

void exclusiveScan(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
                   Value a, Value size) {
  Value blocks = arith::CeilDivUIOp::create(b, size, cIndex(b, kScanBlock));
  Value sums = allocScratch(b, i64Buffer(b.getContext()), blocks);
  Value zero = arith::ConstantOp::create(b, b.getI64IntegerAttr(0));
  launchRows(
      b, config, blocks, 1, [&](ImplicitLocOpBuilder &ib, Value t, Value) {
        auto [lo, hi] = blockRange(ib, t, kScanBlock, size);
        Value total = forRange(
            ib, lo, hi, zero, [&](ImplicitLocOpBuilder &lb, Value j, Value s) {
              return arith::AddIOp::create(lb, s, loadI64(lb, a, j));
            });
        storeI64(ib, total, sums, t);
      });
  launchRows(b, config, cIndex(b, 1), 1,
             [&](ImplicitLocOpBuilder &ib, Value, Value) {
               forRange(ib, cIndex(ib, 0), blocks, zero,
                        [&](ImplicitLocOpBuilder &lb, Value t, Value run) {
                          Value s = loadI64(lb, sums, t);
                          storeI64(lb, run, sums, t);
                          return arith::AddIOp::create(lb, run, s);
                        });
             });
  launchRows(b, config, blocks, 1,
             [&](ImplicitLocOpBuilder &ib, Value t, Value) {
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

void sumSegments(
    ImplicitLocOpBuilder &b, const SortedEntries &sorted, Value gw, Value count,
    Type element, int64_t dim, double scale, bool byFreq,
    function_ref<Value(ImplicitLocOpBuilder &, Value, Value)> contribution) {
  const GPULaunchConfig &config = sorted.config;
  Type accElement = accumulatorType(element);
  auto [vec, tpr] = rowLayout(dim, element, config);
  auto accType = VectorType::get({vec}, accElement);
  auto vecType = VectorType::get({vec}, element);
  int64_t v = vec, t = tpr;
  launchRows(
      b, config, count, tpr,
      [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
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

} // namespace mlir::emb::gpu_lowering
