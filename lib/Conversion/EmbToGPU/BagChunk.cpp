//===- BagChunk.cpp - one chunk of a bag's row, in registers --------------===//
//
// The bag pooling loop both GPU bag patterns share (BagChunk.h): the
// state, its update per entry, the division at the end, and the loop that
// keeps several entries' rows in flight.
//
//===----------------------------------------------------------------------===//

#include "BagChunk.h"

namespace mlir::emb::gpu_lowering {

SmallVector<Value> BagChunkAccumulator::init(ImplicitLocOpBuilder &b) const {
  Type accElement = accType.getElementType();
  SmallVector<Value> state{splat(b, accType, b.getFloatAttr(accElement, 0.0)),
                           cIndex(b, 0)};
  if (mode == BagMode::max)
    state.push_back(splat(b, argType, b.getI64IntegerAttr(-1)));
  if (weighted())
    state.push_back(
        arith::ConstantOp::create(b, b.getFloatAttr(accElement, 0.0)));
  return state;
}

SmallVector<Value> BagChunkAccumulator::update(ImplicitLocOpBuilder &b,
                                               ValueRange it, Value v, Value r,
                                               Value j, Value isLive) const {
  Value one = cIndex(b, 1);
  if (isLive)
    one = arith::SelectOp::create(b, isLive, one, cIndex(b, 0));
  Value count = arith::AddIOp::create(b, it[1], one);
  if (mode == BagMode::max) {
    Value rowI64 = arith::IndexCastOp::create(b, b.getI64Type(), r);
    Value rowVec = vector::BroadcastOp::create(b, argType, rowI64);
    Value first =
        arith::CmpIOp::create(b, arith::CmpIPredicate::eq, it[1], cIndex(b, 0));
    Value greater =
        arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, v, it[0]);
    auto maskType = VectorType::get(accType.getShape(), b.getI1Type());
    Value take = arith::OrIOp::create(
        b, greater, vector::BroadcastOp::create(b, maskType, first));
    if (isLive)
      take = arith::AndIOp::create(
          b, take, vector::BroadcastOp::create(b, maskType, isLive));
    return {arith::SelectOp::create(b, take, v, it[0]), count,
            arith::SelectOp::create(b, take, rowVec, it[2])};
  }
  auto ifLive = [&](Value x) {
    if (!isLive)
      return x;
    Type t = x.getType();
    Attribute zero = b.getFloatAttr(getElementTypeOrSelf(t), 0.0);
    Value z = isa<VectorType>(t)
                  ? splat(b, cast<VectorType>(t), zero)
                  : arith::ConstantOp::create(b, cast<TypedAttr>(zero));
    return arith::SelectOp::create(b, isLive, x, z).getResult();
  };
  if (!psw)
    return {arith::AddFOp::create(b, it[0], ifLive(v)), count};
  Value w = loadFloat(b, psw, j, accType.getElementType());
  v = arith::MulFOp::create(b, v, vector::BroadcastOp::create(b, accType, w));
  SmallVector<Value> next{arith::AddFOp::create(b, it[0], ifLive(v)), count};
  if (weighted())
    next.push_back(
        arith::AddFOp::create(b, it[2], ifLive(weightSumTerm(b, mode, w))));
  return next;
}

Value BagChunkAccumulator::finish(ImplicitLocOpBuilder &b,
                                  ValueRange state) const {
  Value acc = state[0];
  if (!dividesBag(mode))
    return acc;
  return divideByDenominator(b, acc,
                             bagDenominator(b, mode, state[1],
                                            weighted() ? state[2] : Value(),
                                            accType.getElementType()));
}

SmallVector<Value> BagChunkAccumulator::accumulate(
    ImplicitLocOpBuilder &b, Value indices, Value pad, int64_t inFlight,
    Value start, Value end,
    function_ref<Value(ImplicitLocOpBuilder &, Value)> read) const {
  SmallVector<Value> state = init(b);
  auto entries = [&](Value from, Value to, int64_t k) {
    auto loop = scf::ForOp::create(
        b, from, to, cIndex(b, k), state,
        [&](OpBuilder &lb, Location ll, Value j0, ValueRange it) {
          ImplicitLocOpBuilder eb(ll, lb);
          SmallVector<Value> js, rs, vs;
          for (int64_t i = 0; i < k; ++i) {
            js.push_back(i == 0 ? j0
                                : arith::AddIOp::create(eb, j0, cIndex(eb, i)));
            rs.push_back(loadIndex(eb, indices, js.back()));
          }
          for (Value r : rs)
            vs.push_back(read(eb, r));
          SmallVector<Value> acc(it);
          for (int64_t i = 0; i < k; ++i) {
            Value isLive = pad ? arith::CmpIOp::create(
                                     eb, arith::CmpIPredicate::ne, rs[i], pad)
                               : Value();
            acc = update(eb, acc, vs[i], rs[i], js[i], isLive);
          }
          scf::YieldOp::create(eb, acc);
        });
    state.assign(loop.getResults().begin(), loop.getResults().end());
  };
  Value groupsEnd = start;
  if (inFlight > 1) {
    // 0 unless end > start, so that even bounds whose difference wraps
    // (unchecked offsets) run nothing, as a single loop.
    Value span = arith::SelectOp::create(
        b, arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, end, start),
        arith::SubIOp::create(b, end, start), cIndex(b, 0));
    groupsEnd = arith::SubIOp::create(
        b, arith::AddIOp::create(b, start, span),
        arith::RemUIOp::create(b, span, cIndex(b, inFlight)));
    entries(start, groupsEnd, inFlight);
  }
  entries(groupsEnd, end, 1);
  return state;
}

} // namespace mlir::emb::gpu_lowering
