//===- SortAndScan.h - ordered sums per row on the GPU
//----------------------===//
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
// Shared by DeterministicGrad.cpp and SparseGrad.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBTOGPU_SORTANDSCAN_H
#define EMB_LIB_CONVERSION_EMBTOGPU_SORTANDSCAN_H

#include "Utils.h"

namespace mlir::emb::gpu_lowering {
using namespace mlir::emb::lowering;

MemRefType i64Buffer(MLIRContext *ctx);

Value loadI64(ImplicitLocOpBuilder &b, Value buffer, Value i);

void storeI64(ImplicitLocOpBuilder &b, Value v, Value buffer, Value i);

/// `for (i = lo; i < hi; ++i) acc = body(i, acc)`; returns acc.
Value forRange(ImplicitLocOpBuilder &b, Value lo, Value hi, Value init,
               function_ref<Value(ImplicitLocOpBuilder &, Value, Value)> body);

/// [t * block, min((t + 1) * block, size)).
std::pair<Value, Value> blockRange(ImplicitLocOpBuilder &b, Value t,
                                   int64_t block, Value size);

/// In-place exclusive prefix sum of `a` ([size] i64): block sums (a thread
/// per kScanBlock elements), their scan by one thread, then every block
/// rewritten from its offset.
void exclusiveScan(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
                   Value a, Value size);

/// The entries of a deterministic gradient, sorted stably by key.
struct SortedEntries {
  GPULaunchConfig config;
  Value keys, vals; // the sorted pair ([n] i64)
  Value n;
  SmallVector<Value> scratch;

  /// `fill(keys, vals)` launches what writes keys[e] in [0, maxKey] and
  /// vals[e] = e for every entry e in [0, n).
  SortedEntries(ImplicitLocOpBuilder &b, const GPULaunchConfig &config, Value n,
                Value maxKey, function_ref<void(Value, Value)> fill)
      : config(config), n(n) {
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
              pb, config, chunks, 1,
              [&](ImplicitLocOpBuilder &ib, Value c, Value) {
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
          exclusiveScan(pb, config, hist, histSize);
          launchRows(
              pb, config, chunks, 1,
              [&](ImplicitLocOpBuilder &ib, Value c, Value) {
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
/// its bag and, for mean, sqrtn or per_sample_weights, its factor (1 / its
/// bag's denominator for mean and sqrtn, times psw[j]) in the accumulator
/// type, as
/// the atomic scatter computes them. In scratch of one element per entry.
struct BagEntries {
  GPULaunchConfig config;
  const BagStructure &form;
  BagMode mode;
  Value pad, psw;
  Type element, accElement;
  Value bags, weights;

  BagEntries(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
             const BagStructure &form, BagMode mode, Value pad, Value psw,
             Type element)
      : config(config), form(form), mode(mode), pad(pad), psw(psw),
        element(element), accElement(accumulatorType(element)) {
    bags = allocScratch(b, i64Buffer(b.getContext()), form.numIndices);
    if (dividesBag(mode) || psw)
      weights =
          allocScratch(b, MemRefType::get({ShapedType::kDynamic}, accElement),
                       form.numIndices);
  }

  /// A thread per bag writes its entries' bag and factor, then runs
  /// `perEntry(j)` for each of them.
  void launch(ImplicitLocOpBuilder &b,
              function_ref<void(ImplicitLocOpBuilder &, Value)> perEntry) {
    launchRows(b, config, form.numBags, 1,
               [&](ImplicitLocOpBuilder &ib, Value bag, Value) {
                 auto [start, end] = form.bounds(ib, bag);
                 Value factor =
                     dividesBag(mode)
                         ? bagGradientFactor(ib, mode, form.indices, psw,
                                             start, end, pad, accElement)
                         : Value();
                 scf::ForOp::create(
                     ib, start, end, cIndex(ib, 1), ValueRange{},
                     [&](OpBuilder &nb, Location loc, Value j, ValueRange) {
                       ImplicitLocOpBuilder lb(loc, nb);
                       storeI64(lb, bag, bags, j);
                       if (weights) {
                         Value f = factor;
                         if (psw) {
                           Value w = loadFloat(lb, psw, j, accElement);
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
                   Value count, Value pad, Value keys, Value vals);

/// The rows of a deterministic lookup or bag sum / mean / sqrtn gradient, as
/// the host kernels compute them: a thread group per row of the window sums
/// `contribution(e, c)` (a row piece in the accumulator type, unscaled)
/// over its entries in input order, then multiplies the sum by `scale`
/// (divided by the number of entries with scale_grad_by_freq) and stores
/// the rounded row.
void sumSegments(
    ImplicitLocOpBuilder &b, const SortedEntries &sorted, Value gw, Value count,
    Type element, int64_t dim, double scale, bool byFreq,
    function_ref<Value(ImplicitLocOpBuilder &, Value, Value)> contribution);

} // namespace mlir::emb::gpu_lowering

#endif // EMB_LIB_CONVERSION_EMBTOGPU_SORTANDSCAN_H
