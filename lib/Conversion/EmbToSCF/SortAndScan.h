//===- SortAndScan.h - the ordered gradient core ----------------*- C++ -*-===//
//
// The stable radix sort of positions by row and the ordered accumulation of
// each row's run, shared by the dense and sparse gradient patterns
// (private to lib/Conversion/EmbToSCF; docs/backward-design.md).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBTOSCF_SORTANDSCAN_H
#define EMB_LIB_CONVERSION_EMBTOSCF_SORTANDSCAN_H

#include "Utils.h"

namespace mlir::emb::cpu_lowering {

/// The positions of the indices sorted by row (stable: input order within a
/// row), padding positions (and rows outside the window) left out; `live`
/// counts the positions kept.
struct SortedRows {
  Value keys, positions; // tensor<?xi64>
  Value live;            // index
};

/// Element `pos` of a 1-D i32/i64 tensor, sign-extended to i64.
Value extractI64(ImplicitLocOpBuilder &b, Value tensor, Value pos);

/// An i64 constant.
Value c64(ImplicitLocOpBuilder &b, int64_t v);

/// The positions of `flatIdx` sorted by row (stable radix sort, 8-bit
/// digits, as many passes as V needs), padding positions and rows outside
/// the window [rowOffset, rowOffset + rowCount) left out. With `payload`
/// (an i64 tensor of flatIdx's length), `positions` holds payload[i]
/// instead of i: what the consumer reads next, without a random load.
SortedRows sortByRow(ImplicitLocOpBuilder &b, Value flatIdx, Value pad,
                     int64_t numEmbeddings, Value rowOffset = Value(),
                     Value rowCount = Value(), Value payload = Value());

/// gW = zeros, then for each run of equal rows r in the sorted order:
///   gW[r] = gradScale (/ run length with scale_grad_by_freq) *
///           sum over the run's positions p of grad[source(p)] * factor(p)
/// summed in the accumulator type, rounded once.
Value accumulateRuns(ImplicitLocOpBuilder &b,
                     const cpu::CPULoweringConfig &config,
                     const SortedRows &sorted, Value gradRows, Value sourceOf,
                     Value factorOf, int64_t numEmbeddings, int64_t dim,
                     bool byFreq, double gradScale, Type element,
                     Value rowCount = Value());

/// `v`, tensor.cast to `resultType` when their static shapes differ.
Value castToResult(ImplicitLocOpBuilder &b, Value v, Type resultType);

/// Per position j of a bag op: the bag it belongs to (`source`) and, with
/// per_sample_weights, mean or sqrtn, the factor psw_j / denominator of the
/// bag (`factor`, else null). Shared by the dense and sparse bag gradients.
std::pair<Value, Value> bagPositions(ImplicitLocOpBuilder &b, Value indices,
                                     Value flat, Value offsets, Value psw,
                                     bool includeLast, BagMode mode, Value pad,
                                     Type accType);

} // namespace mlir::emb::cpu_lowering

#endif // EMB_LIB_CONVERSION_EMBTOSCF_SORTANDSCAN_H
