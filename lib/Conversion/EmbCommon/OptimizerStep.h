//===- OptimizerStep.h - the update rules of emb.bag_update ----*- C++ -*-===//
//
// docs/semantics.md §6.4, written once for both targets: the scalars of a
// step and the update of one element (or one vector of elements) of a
// touched row, in the accumulator type (f32, f64 for f64 tables). Each
// target sums g_r its own way and calls these. Private to lib/Conversion.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBCOMMON_OPTIMIZERSTEP_H
#define EMB_LIB_CONVERSION_EMBCOMMON_OPTIMIZERSTEP_H

#include "emb/Dialect/EmbDialect.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::emb::lowering {

/// The scalars of one step (accumulator-type values, computed once).
struct OptimizerScalars {
  Optimizer optimizer;
  Type acc;
  Value lr, weightDecay, eps, beta1, beta2;
  /// adam: the bias corrections 1 - beta1^t and 1 - beta2^t.
  Value correction1, correction2;
  bool decays = false; // weight_decay != 0

  /// Emitted where `b` is; `lr` (f64) and `step` (i64, adam) are the op's
  /// operands, or their values in the kernel.
  OptimizerScalars(ImplicitLocOpBuilder &b, BagUpdateOp op, Value lr,
                   Value step, Type acc);
};

/// `g + weight_decay * w` (vectors or scalars of the accumulator type).
Value decayedGradient(ImplicitLocOpBuilder &b, const OptimizerScalars &s,
                      Value g, Value w);

/// The new value of a row's rowwise_adagrad state `h` from the sum of
/// squares of its decayed gradient: h + sumSquares / D.
Value rowwiseState(ImplicitLocOpBuilder &b, const OptimizerScalars &s,
                   Value h, Value sumSquares, int64_t dim);

/// The update of elements of a touched row: from the decayed gradient `g`,
/// the weight `w` and the elements of the states (adagrad: H; adam: M, S;
/// rowwise_adagrad: the row's new h, broadcast to `g`'s shape), all in the
/// accumulator type, the new weight and the new states (rowwise_adagrad:
/// none; its state is written once per row).
struct ElementUpdate {
  Value weight;
  SmallVector<Value, 2> states;
};
ElementUpdate updateElements(ImplicitLocOpBuilder &b,
                             const OptimizerScalars &s, Value g, Value w,
                             ValueRange states);

} // namespace mlir::emb::lowering

#endif // EMB_LIB_CONVERSION_EMBCOMMON_OPTIMIZERSTEP_H
