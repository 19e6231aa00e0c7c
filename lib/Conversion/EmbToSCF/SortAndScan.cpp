//===- SortAndScan.cpp - the ordered gradient core
//--------------------------===//
//
// What the dense and the sparse gradient patterns share: the stable radix
// sort of positions by row, the ordered accumulation of each row's run, and
// each bag position's source bag and factor (docs/backward-design.md).
//
//===----------------------------------------------------------------------===//

#include "SortAndScan.h"

namespace mlir::emb::cpu_lowering {

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
                     int64_t numEmbeddings, Value rowOffset, Value rowCount,
                     Value payload) {
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
              Value value =
                  payload ? (Value)tensor::ExtractOp::create(xb, payload, i)
                          : (Value)arith::IndexCastOp::create(xb, i64, i);
              Value pos = tensor::InsertOp::create(xb, value, it[1], k);
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
  // One pass per 8-bit digit of V: at most 8 (a shift of 64 would be UB,
  // and x86 masks it to 0: the loop never ended for V >= 2^56).
  for (int64_t shift = 0; shift < 64 && (numEmbeddings >> shift) > 0;
       shift += 8) {
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
Value accumulateRuns(ImplicitLocOpBuilder &b,
                     const cpu::CPULoweringConfig &config,
                     const SortedRows &sorted, Value gradRows, Value sourceOf,
                     Value factorOf, int64_t numEmbeddings, int64_t dim,
                     bool byFreq, double gradScale, Type element,
                     Value rowCount) {
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
  int64_t blockBytes = bytesOf(accType);
  gw =
      scf::ForOp::create(
          b, cIndex(b, 0), numRows, c1, ValueRange{gw},
          [&](OpBuilder &nb, Location loc, Value r, ValueRange it) {
            ImplicitLocOpBuilder ib(loc, nb);
            auto zero = [&](ImplicitLocOpBuilder &db, OpFoldResult d0,
                            int64_t lanes, ValueRange t) -> SmallVector<Value> {
              return {writeRow(
                  db, splat(db, VectorType::get({lanes}, accType), 0.0), t[0],
                  r, d0)};
            };
            scf::YieldOp::create(
                ib, forEachDBlock(ib, dim, blockBytes, config, it[0], zero));
          })
          .getResult(0);
  Value live = sorted.live;
  // One ordered pass over the runs per D-block.
  auto block = [&](ImplicitLocOpBuilder &db, OpFoldResult d0, int64_t lanes,
                   ValueRange state) -> SmallVector<Value> {
    Value gw = state[0];
    auto accVec = VectorType::get({lanes}, accType);
    auto outer = scf::WhileOp::create(
        db, TypeRange{db.getIndexType(), gw.getType()},
        ValueRange{cIndex(db, 0), gw},
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
                Value src = sourceOf ? loadIndex(xb, sourceOf, p) : p;
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
    return {outer.getResult(1)};
  };
  return forEachDBlock(b, dim, blockBytes, config, gw, block)[0];
}

Value castToResult(ImplicitLocOpBuilder &b, Value v, Type resultType) {
  return v.getType() == resultType
             ? v
             : (Value)tensor::CastOp::create(b, resultType, v);
}

/// Per position j of a bag op: the bag it belongs to (`source`) and, with
/// per_sample_weights, mean or sqrtn, the factor psw_j / denominator of the
/// bag (`factor`, else null). Shared by the dense and sparse bag gradients.
std::pair<Value, Value> bagPositions(ImplicitLocOpBuilder &b, Value indices,
                                     Value flat, Value offsets, Value psw,
                                     bool includeLast, BagMode mode, Value pad,
                                     Type accType) {
  bool divides = dividesBag(mode);
  BagStructure bags(b, flat, indices2D(indices), offsets, includeLast);
  Value n = bags.numIndices, numBags = bags.numBags;
  bool withFactor = divides || psw;
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
        Value inv = divides ? bagGradientFactor(ib, mode, flat, psw, start,
                                                end, pad, accType)
                            : Value();
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
                  Value w = loadFloat(xb, psw, j, accType);
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

} // namespace mlir::emb::cpu_lowering
