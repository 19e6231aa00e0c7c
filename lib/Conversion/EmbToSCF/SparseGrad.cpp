//===- SparseGrad.cpp - sparse (COO) gradients to scf
//-----------------------===//
//
// emb.lookup_sparse_grad and emb.bag_sparse_grad: PyTorch's uncoalesced COO
// form (one row per live position, input order) or the coalesced one (the
// sort of SortAndScan.h, one summed row per distinct index).
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"
#include "SortAndScan.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::cpu_lowering;

namespace {

//===----------------------------------------------------------------------===//
// Sparse gradients: COO rows + values
//===----------------------------------------------------------------------===//

/// The contribution row of position p: grad[source(p)] * factor(p) * scale,
/// D-block [d0, d0 + lanes), in the accumulator type.
Value contribution(ImplicitLocOpBuilder &b, Value gradRows, Value sourceOf,
                   Value factorOf, Value p, OpFoldResult d0, int64_t lanes,
                   Type accType) {
  Value src = sourceOf ? loadIndex(b, sourceOf, p) : p;
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
sparseGrad(ImplicitLocOpBuilder &b, const cpu::CPULoweringConfig &config,
           Value flat, Value gradRows, Value sourceOf, Value factorOf,
           Value pad, int64_t numEmbeddings, int64_t dim, double gradScale,
           bool coalesced, Type element) {
  Type accType = accumulatorType(element);
  Type i64 = b.getI64Type();
  Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
  Value n = tensor::DimOp::create(b, flat, 0);
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
                                             loadIndex(ib, flat, j), pad);
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
          Value x = loadIndex(ib, flat, j);
          auto emit = [&](OpBuilder &eb, Location el) {
            ImplicitLocOpBuilder xb(el, eb);
            Value k = it[0];
            Value rows = tensor::InsertOp::create(
                xb, arith::IndexCastOp::create(xb, i64, x), it[1], k);
            auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                             int64_t lanes,
                             ValueRange v) -> SmallVector<Value> {
              Value g = contribution(db, gradRows, sourceOf, factorOf, j, d0,
                                     lanes, accType);
              return {writeRow(db, scaled(db, g, lanes), v[0], k, d0)};
            };
            Value values = forEachDBlock(xb, dim, bytesOf(accType), config,
                                         it[2], block)[0];
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
  // One ordered pass over the runs per D-block (rows rewritten with the
  // same values by each).
  auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0, int64_t lanes,
                   ValueRange out) -> SmallVector<Value> {
    Value rows = out[0], values = out[1];
    auto accVec = VectorType::get({lanes}, accType);
    auto outer = scf::WhileOp::create(
        db,
        TypeRange{db.getIndexType(), db.getIndexType(), rows.getType(),
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
    return {outer.getResult(2), outer.getResult(3)};
  };
  SmallVector<Value> out = forEachDBlock(b, dim, bytesOf(accType), config,
                                         ValueRange{rows, values}, block);
  return {out[0], out[1]};
}

struct LookupSparseGradToSCF final : CPUPattern<LookupSparseGradOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(LookupSparseGradOp op,
                                PatternRewriter &rewriter) const override {
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
    auto [rows, values] = sparseGrad(b, config, flat, grad, Value(), Value(),
                                     pad, op.getNumEmbeddings(), dim,
                                     op.getGradScale().convertToDouble(),
                                     op.getCoalesced(), gType.getElementType());
    rewriter.replaceOp(op, {castToResult(b, rows, op.getRows().getType()),
                            castToResult(b, values, op.getValues().getType())});
    return success();
  }
};

struct BagSparseGradToSCF final : CPUPattern<BagSparseGradOp> {
  using CPUPattern::CPUPattern;
  LogicalResult matchAndRewrite(BagSparseGradOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    auto gType = cast<RankedTensorType>(op.getGrad().getType());
    int64_t dim = gType.getDimSize(1);
    if (ShapedType::isDynamic(dim))
      return op.emitOpError("CPU lowering needs a static embedding_dim");
    Type element = gType.getElementType();
    Value flat = flatten(b, op.getIndices());
    Value psw = op.getPerSampleWeights() ? flatten(b, op.getPerSampleWeights())
                                         : Value();
    Value pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
    auto [source, factor] = bagPositions(
        b, op.getIndices(), flat, op.getOffsets(), psw,
        op.getIncludeLastOffset(), op.getMode(), pad, accumulatorType(element));
    auto [rows, values] = sparseGrad(b, config, flat, op.getGrad(), source,
                                     factor, pad, op.getNumEmbeddings(), dim,
                                     op.getGradScale().convertToDouble(),
                                     op.getCoalesced(), element);
    rewriter.replaceOp(op, {castToResult(b, rows, op.getRows().getType()),
                            castToResult(b, values, op.getValues().getType())});
    return success();
  }
};

} // namespace

void mlir::emb::cpu_lowering::populateSparseGradPatterns(
    RewritePatternSet &patterns, const cpu::CPULoweringConfig &config) {
  patterns.add<LookupSparseGradToSCF, BagSparseGradToSCF>(patterns.getContext(),
                                                          config);
}
