//===- BagUpdate.cpp - the backward fused with an optimizer, to scf -------===//
//
// emb.bag_update: the positions sorted by row (SortAndScan.h), then per run
// of one row r, in input order: g_r summed into a row of scratch (f32, f64
// for f64 tables), scaled once, and the optimizer's update of W[r] and its
// state (EmbCommon/OptimizerStep.h). Memory: the sort's O(N) index arrays
// and one scratch row; never [V, D]. A row is updated by one thread in one
// fixed order: the same bits for any split of the rows over threads.
//
//===----------------------------------------------------------------------===//

#include "Conversion/EmbCommon/OptimizerStep.h"
#include "PopulatePatterns.h"
#include "SortAndScan.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::cpu_lowering;

namespace {

/// Entries ahead whose incoming-gradient row is prefetched: the rows of a
/// run's entries are random rows of the gradient (their bags).
constexpr int64_t kPrefetchEntries = 8;
/// Sorted entries ahead whose table row (and state rows) are prefetched:
/// the table's rows are read once each, in ascending order with gaps.
constexpr int64_t kPrefetchRowsAhead = 16;

// %w', %s' = emb.bag_update <opt> <mode> %g[%x] ... weight(%w) states(%s) lr(%lr)
//   ==>
// sorted = sortByRow(x, or max_indices for max)
// i = 0
// while i < live:
//   r = key[i]; acc = 0
//   for j in the run of r: acc += g[bag(p_j)] * factor(p_j)   (max: one
//                                                 element g[p_j / D, p_j % D])
//   g = acc * grad_scale (/ run length with scale_grad_by_freq)
//   update(W[r], states[r], g + wd * W[r])
struct BagUpdateToSCF final : CPUPattern<BagUpdateOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagUpdateOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    FailureOr<int64_t> staticD = staticDim(op, op.getGrad(), "CPU");
    if (failed(staticD))
      return failure();
    int64_t dim = *staticD;
    Type element = gType.getElementType();
    Type acc = accumulatorType(element);
    int64_t numEmbeddings = op.getNumEmbeddings();
    bool max = op.getMode() == BagMode::max;
    Optimizer optimizer = op.getOptimizer();
    bool rowwise = optimizer == Optimizer::rowwise_adagrad;

    // The entries and their order.
    Value source, factor;
    bool sourceIsSorted = false; // sorted.positions holds the bags
    SortedRows sorted;
    if (max) {
      // One entry per element of max_indices (-1: none).
      sorted = sortByRow(b, flatten(b, op.getMaxIndices()), cIndex(b, -1),
                         numEmbeddings, op.getRowOffset(), op.getRowCount());
    } else {
      Value flat = flatten(b, op.getIndices());
      Value psw = op.getPerSampleWeights()
                      ? flatten(b, op.getPerSampleWeights())
                      : Value();
      Value pad = staticPaddingRow(b, op.getPaddingIdx(), numEmbeddings);
      std::tie(source, factor) =
          bagPositions(b, op.getIndices(), flat, op.getOffsets(), psw,
                       op.getIncludeLastOffset(), op.getMode(), pad, acc);
      // Without factors an entry needs only its bag: sort the bags along
      // (one random load less per entry).
      sorted = sortByRow(b, flat, pad, numEmbeddings, op.getRowOffset(),
                         op.getRowCount(), factor ? Value() : source);
      if (!factor)
        sourceIsSorted = true;
    }
    // The gradient as a read-only buffer, for prefetches only (it
    // bufferises to the caller's buffer).
    // (Any layout: an identity type would copy a strided view, e.g. a
    // table's columns of a many-table gradient, into a new buffer.)
    auto anyLayout = [&](RankedTensorType t) {
      SmallVector<int64_t> strides(t.getRank(), ShapedType::kDynamic);
      return MemRefType::get(
          t.getShape(), t.getElementType(),
          StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic,
                                 strides));
    };
    Value gradBuffer;
    if (!max)
      gradBuffer = bufferization::ToBufferOp::create(
          b, anyLayout(gType), op.getGrad(), b.getUnitAttr());
    // The table and the states' [rows, D] tables as buffers for the
    // prefetches of the rows a few runs ahead (taken before the loop, whose
    // in-place writes they do not see: a prefetch reads nothing).
    SmallVector<Value> rowTables;
    for (Value t : llvm::concat<Value>(ValueRange{op.getWeight()},
                                       op.getStates())) {
      auto tt = cast<RankedTensorType>(t.getType());
      if (tt.getRank() == 2)
        rowTables.push_back(bufferization::ToBufferOp::create(
            b, anyLayout(tt), t, b.getUnitAttr()));
    }
    OptimizerScalars scalars(b, op, op.getLr(), op.getStep(), acc);
    Value gradScale = arith::ConstantOp::create(
        b, b.getFloatAttr(acc, op.getGradScale().convertToDouble()));
    bool scales = op.getGradScale().convertToDouble() != 1.0 ||
                  op.getScaleGradByFreq();
    auto accVec = [&](int64_t lanes) { return VectorType::get({lanes}, acc); };
    int64_t blockBytes = bytesOf(acc);
    Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
    Value live = sorted.live;
    Value lastLive = arith::SubIOp::create(b, live, c1);

    // The loop over runs carries (i, W, states..., scratch row [1, D]).
    SmallVector<Value> inits{c0, op.getWeight()};
    llvm::append_range(inits, op.getStates());
    inits.push_back(tensor::EmptyOp::create(b, ArrayRef<int64_t>{1, dim}, acc));
    unsigned numStates = op.getStates().size();
    auto runs = scf::WhileOp::create(
        b, ValueRange(inits).getTypes(), inits,
        [&](OpBuilder &nb, Location loc, ValueRange a) {
          ImplicitLocOpBuilder ib(loc, nb);
          scf::ConditionOp::create(
              ib,
              arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, a[0], live),
              a);
        },
        [&](OpBuilder &nb, Location loc, ValueRange a) {
          ImplicitLocOpBuilder ib(loc, nb);
          Value i = a[0];
          Value weight = a[1];
          SmallVector<Value> states(a.begin() + 2, a.begin() + 2 + numStates);
          Value scratch = a.back();
          Value row = tensor::ExtractOp::create(ib, sorted.keys, i);
          Value r = arith::IndexCastOp::create(ib, ib.getIndexType(), row);
          // The rows of the entry kPrefetchRowsAhead ahead (a run a few
          // ahead: runs are short), for writing.
          Value rowAhead = arith::IndexCastOp::create(
              ib, ib.getIndexType(),
              tensor::ExtractOp::create(
                  ib, sorted.keys,
                  ValueRange{arith::MinUIOp::create(
                      ib,
                      arith::AddIOp::create(ib, i,
                                            cIndex(ib, kPrefetchRowsAhead)),
                      lastLive)}));
          for (Value t : rowTables) {
            auto mt = cast<MemRefType>(t.getType());
            int64_t lineLanes =
                std::max<int64_t>(1, 64 / bytesOf(mt.getElementType()));
            for (int64_t c = 0; c < dim; c += lineLanes)
              memref::PrefetchOp::create(ib, t, ValueRange{rowAhead, cIndex(ib, c)},
                                         /*isWrite=*/true, /*localityHint=*/3,
                                         /*isDataCache=*/true);
          }
          // scratch = 0
          scratch = forEachDBlock(
              ib, dim, blockBytes, config, scratch,
              [&](ImplicitLocOpBuilder &db, OpFoldResult d0, int64_t lanes,
                  ValueRange t) -> SmallVector<Value> {
                return {writeRow(db, splat(db, accVec(lanes), 0.0), t[0],
                                 cIndex(db, 0), d0)};
              })[0];
          // scratch += the run's contributions, in input order.
          auto run = scf::WhileOp::create(
              ib, TypeRange{ib.getIndexType(), scratch.getType()},
              ValueRange{i, scratch},
              [&](OpBuilder &rb, Location rloc, ValueRange s) {
                ImplicitLocOpBuilder xb(rloc, rb);
                Value safe = arith::MinUIOp::create(xb, s[0], lastLive);
                Value k = tensor::ExtractOp::create(xb, sorted.keys, safe);
                Value in = arith::CmpIOp::create(
                    xb, arith::CmpIPredicate::ult, s[0], live);
                Value same =
                    arith::CmpIOp::create(xb, arith::CmpIPredicate::eq, k, row);
                scf::ConditionOp::create(
                    xb, arith::AndIOp::create(xb, in, same), s);
              },
              [&](OpBuilder &rb, Location rloc, ValueRange s) {
                ImplicitLocOpBuilder xb(rloc, rb);
                Value p = arith::IndexCastOp::create(
                    xb, xb.getIndexType(),
                    tensor::ExtractOp::create(xb, sorted.positions, s[0]));
                Value next;
                if (max) {
                  // scratch[d] += g[p / D, d], d = p % D
                  Value cd = cIndex(xb, dim);
                  Value bag = arith::DivUIOp::create(xb, p, cd);
                  Value d = arith::RemUIOp::create(xb, p, cd);
                  Value g = tensor::ExtractOp::create(xb, op.getGrad(),
                                                      ValueRange{bag, d});
                  if (g.getType() != acc)
                    g = arith::ExtFOp::create(xb, acc, g);
                  Value old = tensor::ExtractOp::create(
                      xb, s[1], ValueRange{cIndex(xb, 0), d});
                  next = tensor::InsertOp::create(
                      xb, arith::AddFOp::create(xb, old, g), s[1],
                      ValueRange{cIndex(xb, 0), d});
                } else {
                  auto bagOf = [&](Value position) -> Value {
                    return source && !sourceIsSorted
                               ? loadIndex(xb, source, position)
                               : position;
                  };
                  Value src = bagOf(p);
                  // The row of the entry kPrefetchEntries ahead, line by
                  // line.
                  Value ahead = arith::MinUIOp::create(
                      xb,
                      arith::AddIOp::create(xb, s[0],
                                            cIndex(xb, kPrefetchEntries)),
                      lastLive);
                  Value srcAhead = bagOf(arith::IndexCastOp::create(
                      xb, xb.getIndexType(),
                      tensor::ExtractOp::create(xb, sorted.positions, ahead)));
                  int64_t lineLanes = std::max<int64_t>(1, 64 / bytesOf(element));
                  for (int64_t c = 0; c < dim; c += lineLanes)
                    memref::PrefetchOp::create(
                        xb, gradBuffer, ValueRange{srcAhead, cIndex(xb, c)},
                        /*isWrite=*/false, /*localityHint=*/3,
                        /*isDataCache=*/true);
                  Value f = factor ? tensor::ExtractOp::create(xb, factor, p)
                                   : Value();
                  next = forEachDBlock(
                      xb, dim, blockBytes, config, s[1],
                      [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                          int64_t lanes, ValueRange t) -> SmallVector<Value> {
                        Value g = readRow(db, op.getGrad(), src, d0, lanes, acc);
                        if (f)
                          g = arith::MulFOp::create(
                              db, g,
                              vector::BroadcastOp::create(db, accVec(lanes), f));
                        Value sum = arith::AddFOp::create(
                            db, readRow(db, t[0], cIndex(db, 0), d0, lanes, acc),
                            g);
                        return {writeRow(db, sum, t[0], cIndex(db, 0), d0)};
                      })[0];
                }
                scf::YieldOp::create(
                    xb, ValueRange{arith::AddIOp::create(xb, s[0], cIndex(xb, 1)),
                                   next});
              });
          Value end = run.getResult(0);
          scratch = run.getResult(1);
          Value scale = gradScale;
          if (op.getScaleGradByFreq()) {
            Value count = arith::IndexCastOp::create(
                ib, ib.getI64Type(), arith::SubIOp::create(ib, end, i));
            scale = arith::DivFOp::create(
                ib, scale, arith::UIToFPOp::create(ib, acc, count));
          }
          // The decayed gradient of block [d0, d0 + lanes), from `w`.
          auto gradient = [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                              int64_t lanes, Value w) -> Value {
            Value g = readRow(db, scratch, cIndex(db, 0), d0, lanes, acc);
            if (scales)
              g = arith::MulFOp::create(
                  db, g, vector::BroadcastOp::create(db, accVec(lanes), scale));
            return decayedGradient(db, scalars, g, w);
          };
          // rowwise_adagrad: h[r] += mean(g^2) before the row moves.
          Value rowState;
          if (rowwise) {
            Value zero = arith::ConstantOp::create(ib, ib.getFloatAttr(acc, 0.0));
            Value sumSquares =
                forEachDBlock(
                    ib, dim, blockBytes, config, zero,
                    [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                        int64_t lanes, ValueRange t) -> SmallVector<Value> {
                      Value w = readRow(db, weight, r, d0, lanes, acc);
                      Value g = gradient(db, d0, lanes, w);
                      // A tree within the block (reassoc), blocks in
                      // order: fixed, so the same bits every time; an
                      // ordered chain of D adds per row took half the
                      // step's time.
                      Value part = vector::ReductionOp::create(
                          db, vector::CombiningKind::ADD,
                          arith::MulFOp::create(db, g, g),
                          arith::FastMathFlags::reassoc);
                      return {arith::AddFOp::create(db, t[0], part)};
                    })[0];
            Value h = tensor::ExtractOp::create(ib, states[0], r);
            rowState = rowwiseState(ib, scalars, h, sumSquares, dim);
            states[0] = tensor::InsertOp::create(ib, rowState, states[0], r);
          }
          // The update, block by block: W[r] and the states' rows.
          SmallVector<Value> tables{weight};
          if (!rowwise)
            llvm::append_range(tables, states);
          tables = forEachDBlock(
              ib, dim, blockBytes, config, tables,
              [&](ImplicitLocOpBuilder &db, OpFoldResult d0, int64_t lanes,
                  ValueRange t) -> SmallVector<Value> {
                Value w = readRow(db, t[0], r, d0, lanes, acc);
                Value g = gradient(db, d0, lanes, w);
                SmallVector<Value> old;
                if (rowwise)
                  old.push_back(
                      vector::BroadcastOp::create(db, accVec(lanes), rowState));
                for (Value s : t.drop_front())
                  old.push_back(readRow(db, s, r, d0, lanes, acc));
                ElementUpdate u = updateElements(db, scalars, g, w, old);
                SmallVector<Value> next{writeRow(db, u.weight, t[0], r, d0)};
                for (auto [s, v] : llvm::zip(t.drop_front(), u.states))
                  next.push_back(writeRow(db, v, s, r, d0));
                return next;
              });
          SmallVector<Value> yields{end, tables[0]};
          if (rowwise)
            yields.push_back(states[0]);
          else
            yields.append(tables.begin() + 1, tables.end());
          yields.push_back(scratch);
          scf::YieldOp::create(ib, yields);
        });
    SmallVector<Value> results;
    for (unsigned k = 0; k <= numStates; ++k)
      results.push_back(runs.getResult(1 + k));
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void mlir::emb::cpu_lowering::populateBagUpdatePatterns(
    RewritePatternSet &patterns, const cpu::CPULoweringConfig &config) {
  patterns.add<BagUpdateToSCF>(patterns.getContext(), config);
}
