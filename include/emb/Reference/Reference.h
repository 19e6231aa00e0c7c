//===- Reference.h - plain C++ reference of docs/semantics.md ---*- C++ -*-===//
//
// The only hand-written implementation of the ops: straightforward loops in
// f64, used by the differential tests and `emb-run --check`. Tables and
// outputs are row-major vectors of double; the caller converts to and from
// the storage dtype. Inputs are assumed valid (the runtime validates).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_REFERENCE_REFERENCE_H
#define EMB_REFERENCE_REFERENCE_H

#include "emb/JIT/KernelSpec.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace emb::ref {

/// out[i, :] = W[x[i], :] for the flattened indices; with `zeroPadding`,
/// rows equal to `paddingIdx` (normalised, >= 0) are zeros.
std::vector<double> embedding(const std::vector<double> &weight, int64_t dim,
                              const std::vector<int64_t> &indices,
                              std::optional<int64_t> paddingIdx,
                              bool zeroPadding);

/// torch.norm of one row: p = inf max|w|, -inf min|w|, 0 non-zeros, else
/// (sum |w|^p)^(1/p).
double pNorm(const double *row, int64_t dim, double p);

/// Renormalises in place every distinct row referenced by `indices` whose
/// p-norm is > maxNorm, by maxNorm / (norm + 1e-7).
void renorm(std::vector<double> &weight, int64_t dim,
            const std::vector<int64_t> &indices, double maxNorm, double p);

struct BagResult {
  std::vector<double> output;      ///< [B, D]
  std::vector<int64_t> maxIndices; ///< [B, D], max mode only
};

/// embedding_bag. For 2-D indices `[numBags, bagLength]` (flattened
/// row-major) pass empty `offsets`; for 1-D indices `numBags` and
/// `bagLength` are ignored. `perSampleWeights` is empty when absent.
BagResult embeddingBag(const std::vector<double> &weight, int64_t dim,
                       const std::vector<int64_t> &indices,
                       const std::vector<int64_t> &offsets, int64_t numBags,
                       int64_t bagLength, BagMode mode,
                       const std::vector<double> &perSampleWeights,
                       bool includeLastOffset,
                       std::optional<int64_t> paddingIdx);

} // namespace emb::ref

#endif // EMB_REFERENCE_REFERENCE_H
