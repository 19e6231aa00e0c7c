//===- SparseGrad.cpp - sparse (COO) gradients on the GPU
//-------------------===//
//
// emb.lookup_sparse_grad and emb.bag_sparse_grad: a compaction of the live
// entries in input order (uncoalesced), or the sorted rows' runs
// (coalesced, SortAndScan.h); the result size read back to the host.
//
//===----------------------------------------------------------------------===//
#include "PopulatePatterns.h"
#include "SortAndScan.h"

#include <cmath>

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::gpu_lowering;

namespace {

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
  GPULaunchConfig config;
  Value n, chunks, offsets, total;
  function_ref<Value(ImplicitLocOpBuilder &, Value)> selected;

  Compaction(ImplicitLocOpBuilder &b, const GPULaunchConfig &config, Value n,
             function_ref<Value(ImplicitLocOpBuilder &, Value)> selected)
      : config(config), n(n), selected(selected) {
    chunks = arith::CeilDivUIOp::create(b, n, cIndex(b, kSortChunk));
    Value size = arith::AddIOp::create(b, chunks, cIndex(b, 1));
    offsets = allocScratch(b, i64Buffer(b.getContext()), size);
    Value zero = arith::ConstantOp::create(b, b.getI64IntegerAttr(0));
    launchRows(
        b, config, size, 1, [&](ImplicitLocOpBuilder &ib, Value c, Value) {
          // The extra chunk is empty: its offset becomes the total.
          auto [lo, hi] = blockRange(ib, c, kSortChunk, n);
          Value one = arith::ConstantOp::create(ib, ib.getI64IntegerAttr(1));
          Value count = forRange(
              ib, lo, hi, zero,
              [&](ImplicitLocOpBuilder &lb, Value j, Value k) {
                Value add = arith::SelectOp::create(
                    lb, selected(lb, j), one,
                    arith::ConstantOp::create(lb, lb.getI64IntegerAttr(0)));
                return arith::AddIOp::create(lb, k, add);
              });
          storeI64(ib, count, offsets, c);
        });
    exclusiveScan(b, config, offsets, size);
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
    launchRows(
        b, config, chunks, 1, [&](ImplicitLocOpBuilder &ib, Value c, Value) {
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
std::pair<Value, Value> lowerSparse(ImplicitLocOpBuilder &b,
                                    const GPULaunchConfig &config,
                                    Operation *op, const SparseInputs &in,
                                    bool coalesced,
                                    function_ref<void(Value, Value)> fillKeys) {
  Type accElement = accumulatorType(in.element);
  auto [vec, tpr] = rowLayout(in.dim, in.element, config);
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
    Compaction compaction(b, config, in.n, live);
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
        b, config, in.n, tpr,
        [&](ImplicitLocOpBuilder &ib, Value j, Value lane) {
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
    SortedEntries sorted(b, config, in.n, numRows, fillKeys);
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
    Compaction compaction(b, config, in.n, head);
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
        b, config, compaction.total, tpr,
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

struct LookupSparseGradToGPU final : GPUPattern<LookupSparseGradOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(LookupSparseGradOp op,
                                PatternRewriter &rewriter) const override {
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
    in.pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
    in.numEmbeddings = op.getNumEmbeddings();
    in.dim = dim;
    in.scale = op.getGradScale().convertToDouble();
    in.element = gType.getElementType();
    auto self = [](ImplicitLocOpBuilder &, Value j) { return j; };
    auto none = [](ImplicitLocOpBuilder &, Value) { return Value(); };
    in.source = self;
    in.factor = none;
    Value numRows = cIndex(b, in.numEmbeddings);
    auto [rows, values] = lowerSparse(
        b, config, op, in, op.getCoalesced(), [&](Value keys, Value vals) {
          launchRows(b, config, in.n, 1,
                     [&](ImplicitLocOpBuilder &ib, Value e, Value) {
                       storeEntryKey(ib, loadIndex(ib, indices, e), e,
                                     cIndex(ib, 0), numRows, in.pad, keys,
                                     vals);
                     });
        });
    rewriter.replaceOp(op, ValueRange{rows, values});
    return success();
  }
};

struct BagSparseGradToGPU final : GPUPattern<BagSparseGradOp> {
  using GPUPattern::GPUPattern;
  LogicalResult matchAndRewrite(BagSparseGradOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "GPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    if (op.getMode() == BagMode::max)
      return op.emitOpError("mode 'max' has no sparse gradient");
    BagStructure form = bagOnBuffers(b, op.getIndices(), op.getOffsets(),
                                     op.getIncludeLastOffset());
    Value psw = op.getPerSampleWeights()
                    ? toBuffer(b, flatten(b, op.getPerSampleWeights()))
                    : Value();
    SparseInputs in;
    in.indices = form.indices;
    in.n = form.numIndices;
    in.grad = toBuffer(b, op.getGrad());
    in.pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
    in.numEmbeddings = op.getNumEmbeddings();
    in.dim = dim;
    in.scale = op.getGradScale().convertToDouble();
    in.element = gType.getElementType();
    BagEntries entries(b, config, form, op.getMode(), in.pad, psw, in.element);
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
        lowerSparse(b, config, op, in, coalesced, [&](Value keys, Value vals) {
          launchRows(b, config, in.n, 1,
                     [&](ImplicitLocOpBuilder &ib, Value e, Value) {
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
};

} // namespace

void mlir::emb::gpu_lowering::populateSparseGradPatterns(
    RewritePatternSet &patterns, const gpu_config::GPULaunchConfig &config) {
  patterns.add<LookupSparseGradToGPU, BagSparseGradToGPU>(patterns.getContext(),
                                                          config);
}
