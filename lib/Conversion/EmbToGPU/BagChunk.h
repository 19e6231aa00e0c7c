//===- BagChunk.h - one chunk of a bag's row, in registers -----*- C++ -*-===//
//
// How a thread pools its chunk of a bag's row: the state it keeps, how each
// entry updates it and how the result comes out of it. Shared by the
// single-table bag (Forward.cpp) and the many-table bag (MultiBag.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBTOGPU_BAGCHUNK_H
#define EMB_LIB_CONVERSION_EMBTOGPU_BAGCHUNK_H

#include "Utils.h"

namespace mlir::emb::gpu_lowering {

/// The state of one chunk of a bag's row in a thread's registers, and how
/// each live entry updates it: a sum (times per_sample_weights), a mean or
/// sqrtn (a sum and a count, or the sum of the weight terms when weighted)
/// or a max (with its argmax, ties to the first entry). The state is
/// (acc, count[, weight sum | argmax]).
struct BagChunkAccumulator {
  BagMode mode;
  Value psw; // the flat per_sample_weights buffer, or null
  VectorType accType, argType;

  bool weighted() const { return needsWeightSum(mode, (bool)psw); }

  /// The state of a chunk before its bag's first entry.
  SmallVector<Value> init(ImplicitLocOpBuilder &b) const;

  /// The state after entry `j`, whose row `r` reads `v` (in accType);
  /// `isLive` (null: always) false leaves the state as it is, folded into
  /// the update rather than a select of every state value (a max's argmax
  /// doubles its registers): a sum adds an exact 0 (the sum starts at +0
  /// and never becomes -0), a max takes nothing, the count adds 0.
  SmallVector<Value> update(ImplicitLocOpBuilder &b, ValueRange it, Value v,
                            Value r, Value j, Value isLive) const;

  /// The chunk's result from the final state: mean and sqrtn divide by
  /// their denominator (zeros where it is 0: an empty bag).
  Value finish(ImplicitLocOpBuilder &b, ValueRange state) const;

  /// The final state of entries [start, end) of the 1-D `indices`, folded
  /// in order `inFlight` at a time: a group's indices and rows (`read` of
  /// a row, in accType) are all loaded before its first entry is
  /// accumulated, so that many row loads are in flight per thread
  /// (docs/gpu.md, "A bandwidth model"); the last (end - start) % inFlight
  /// entries one at a time. An entry of row `pad` (null: none) is read too
  /// (it is a row of the table) and changes nothing.
  SmallVector<Value>
  accumulate(ImplicitLocOpBuilder &b, Value indices, Value pad,
             int64_t inFlight, Value start, Value end,
             function_ref<Value(ImplicitLocOpBuilder &, Value)> read) const;
};

} // namespace mlir::emb::gpu_lowering

#endif // EMB_LIB_CONVERSION_EMBTOGPU_BAGCHUNK_H
