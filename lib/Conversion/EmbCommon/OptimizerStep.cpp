//===- OptimizerStep.cpp - the update rules of emb.bag_update -------------===//

#include "Conversion/EmbCommon/OptimizerStep.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::lowering;

namespace {

Value f64Const(ImplicitLocOpBuilder &b, double v) {
  return arith::ConstantOp::create(b, b.getF64FloatAttr(v));
}

/// f64 `x` as the accumulator type.
Value toAcc(ImplicitLocOpBuilder &b, Value x, Type acc) {
  return acc.isF64() ? x : (Value)arith::TruncFOp::create(b, acc, x);
}

/// base^t for an i64 t >= 0, by squaring (no libm: the same code on both
/// targets): r = 1; while t: if t & 1: r *= base; base *= base; t >>= 1.
Value powInt(ImplicitLocOpBuilder &b, double base, Value t) {
  Type i64 = b.getI64Type(), f64 = b.getF64Type();
  Value zero = arith::ConstantOp::create(b, b.getI64IntegerAttr(0));
  Value one = arith::ConstantOp::create(b, b.getI64IntegerAttr(1));
  auto loop = scf::WhileOp::create(
      b, TypeRange{i64, f64, f64}, ValueRange{t, f64Const(b, base), f64Const(b, 1.0)},
      [&](OpBuilder &nb, Location loc, ValueRange a) {
        ImplicitLocOpBuilder ib(loc, nb);
        Value more = arith::CmpIOp::create(ib, arith::CmpIPredicate::sgt, a[0],
                                           zero);
        scf::ConditionOp::create(ib, more, a);
      },
      [&](OpBuilder &nb, Location loc, ValueRange a) {
        ImplicitLocOpBuilder ib(loc, nb);
        Value odd = arith::CmpIOp::create(
            ib, arith::CmpIPredicate::ne, arith::AndIOp::create(ib, a[0], one),
            zero);
        Value r = arith::SelectOp::create(
            ib, odd, arith::MulFOp::create(ib, a[2], a[1]), a[2]);
        scf::YieldOp::create(
            ib, ValueRange{arith::ShRSIOp::create(ib, a[0], one),
                           arith::MulFOp::create(ib, a[1], a[1]), r});
      });
  return loop.getResult(2);
}

/// `c` as a scalar, or splat to the shape of `like` when it is a vector.
Value like(ImplicitLocOpBuilder &b, Value c, Value like) {
  if (auto vt = dyn_cast<VectorType>(like.getType()))
    return vector::BroadcastOp::create(b, vt, c);
  return c;
}

} // namespace

OptimizerScalars::OptimizerScalars(ImplicitLocOpBuilder &b, BagUpdateOp op,
                                   Value lrValue, Value step, Type accType)
    : optimizer(op.getOptimizer()), acc(accType) {
  auto constant = [&](double v) -> Value {
    return arith::ConstantOp::create(b, b.getFloatAttr(acc, v));
  };
  lr = toAcc(b, lrValue, acc);
  double wd = op.getWeightDecay().convertToDouble();
  decays = wd != 0.0;
  weightDecay = constant(wd);
  eps = constant(op.getEps().convertToDouble());
  double b1 = op.getBeta1().convertToDouble(), b2 = op.getBeta2().convertToDouble();
  beta1 = constant(b1);
  beta2 = constant(b2);
  if (optimizer == Optimizer::adam) {
    Value one = f64Const(b, 1.0);
    correction1 = toAcc(b, arith::SubFOp::create(b, one, powInt(b, b1, step)), acc);
    correction2 = toAcc(b, arith::SubFOp::create(b, one, powInt(b, b2, step)), acc);
  }
}

Value mlir::emb::lowering::decayedGradient(ImplicitLocOpBuilder &b,
                                           const OptimizerScalars &s, Value g,
                                           Value w) {
  if (!s.decays)
    return g;
  return arith::AddFOp::create(
      b, g, arith::MulFOp::create(b, like(b, s.weightDecay, w), w));
}

Value mlir::emb::lowering::rowwiseState(ImplicitLocOpBuilder &b,
                                        const OptimizerScalars &s, Value h,
                                        Value sumSquares, int64_t dim) {
  Value d = arith::ConstantOp::create(b, b.getFloatAttr(s.acc, double(dim)));
  return arith::AddFOp::create(b, h, arith::DivFOp::create(b, sumSquares, d));
}

ElementUpdate mlir::emb::lowering::updateElements(ImplicitLocOpBuilder &b,
                                                  const OptimizerScalars &s,
                                                  Value g, Value w,
                                                  ValueRange states) {
  Value lr = like(b, s.lr, g), eps = like(b, s.eps, g);
  // w - lr * step
  auto descend = [&](Value step) -> Value {
    return arith::SubFOp::create(b, w, arith::MulFOp::create(b, lr, step));
  };
  // g / (sqrt(acc) + eps)
  auto scaled = [&](Value num, Value acc) -> Value {
    Value den = arith::AddFOp::create(b, math::SqrtOp::create(b, acc), eps);
    return arith::DivFOp::create(b, num, den);
  };
  ElementUpdate u;
  switch (s.optimizer) {
  case Optimizer::sgd:
    u.weight = descend(g);
    break;
  case Optimizer::adagrad: {
    Value h = arith::AddFOp::create(b, states[0], arith::MulFOp::create(b, g, g));
    u.weight = descend(scaled(g, h));
    u.states.push_back(h);
    break;
  }
  case Optimizer::rowwise_adagrad:
    u.weight = descend(scaled(g, states[0]));
    break;
  case Optimizer::adam: {
    Value b1 = like(b, s.beta1, g), b2 = like(b, s.beta2, g);
    Value one = like(b, arith::ConstantOp::create(b, b.getFloatAttr(s.acc, 1.0)), g);
    // M = b1 M + (1 - b1) g;  S = b2 S + (1 - b2) g^2
    Value m = arith::AddFOp::create(
        b, arith::MulFOp::create(b, b1, states[0]),
        arith::MulFOp::create(b, arith::SubFOp::create(b, one, b1), g));
    Value v = arith::AddFOp::create(
        b, arith::MulFOp::create(b, b2, states[1]),
        arith::MulFOp::create(b, arith::SubFOp::create(b, one, b2),
                              arith::MulFOp::create(b, g, g)));
    Value mHat = arith::DivFOp::create(b, m, like(b, s.correction1, g));
    Value vHat = arith::DivFOp::create(b, v, like(b, s.correction2, g));
    u.weight = descend(scaled(mHat, vHat));
    u.states = {m, v};
    break;
  }
  }
  return u;
}
