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

#include "emb/Core/Types.h"

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

/// embedding_bag (sum, mean, max, and §6.1's sqrtn and weighted mean). For
/// 2-D indices `[numBags, bagLength]` (flattened row-major) pass empty
/// `offsets`; for 1-D indices `numBags` and `bagLength` are ignored.
/// `perSampleWeights` is empty when absent.
BagResult embeddingBag(const std::vector<double> &weight, int64_t dim,
                       const std::vector<int64_t> &indices,
                       const std::vector<int64_t> &offsets, int64_t numBags,
                       int64_t bagLength, BagMode mode,
                       const std::vector<double> &perSampleWeights,
                       bool includeLastOffset,
                       std::optional<int64_t> paddingIdx);

//===----------------------------------------------------------------------===//
// Row-wise quantised tables (docs/semantics.md §6.2)
//===----------------------------------------------------------------------===//

/// Packs an f32 table [numRows, dim] into quantised rows of
/// quantizedRowBytes(q, dim) bytes, bit for bit as torch's
/// embedding_bag_byte_prepack (int8) / embedding_bag_4bit_prepack (int4)
/// do (FBGEMM's Fused8BitRowwise / FusedNBitRowwise); any dim for int4 (the
/// last high nibble of an odd row is 0).
std::vector<uint8_t> quantizeRows(const std::vector<float> &weight,
                                  int64_t numRows, int64_t dim,
                                  Quantization q);

/// The values `q * scale + bias` (exact, in f64) of a packed table:
/// [numRows, dim].
std::vector<double> dequantizeRows(const std::vector<uint8_t> &packed,
                                   int64_t numRows, int64_t dim,
                                   Quantization q);

//===----------------------------------------------------------------------===//
// Gradients (docs/semantics.md §4)
//===----------------------------------------------------------------------===//

/// The bag structure of embedding_bag, as in embeddingBag(): for 2-D
/// indices pass empty `offsets`, `numBags` and `bagLength`.
struct Bags {
  std::vector<int64_t> offsets;
  int64_t numBags = 0, bagLength = 0;
  bool includeLastOffset = false;

  /// Number of bags and [start, end) of bag `b` over `n` indices.
  int64_t count() const;
  std::pair<int64_t, int64_t> bounds(int64_t b, int64_t n) const;
};

/// Dense [V, D] gradient of embedding: gW[x_i] += g_i * s_i * gradScale for
/// non-padding positions, s_i = 1 / count(x_i) with scaleGradByFreq.
std::vector<double> embeddingBackward(const std::vector<double> &grad,
                                      int64_t dim,
                                      const std::vector<int64_t> &indices,
                                      int64_t numEmbeddings,
                                      std::optional<int64_t> paddingIdx,
                                      bool scaleGradByFreq, double gradScale);

/// Dense [V, D] gradient of embedding_bag. sum / mean / sqrtn: gW[x_j] +=
/// g[bag j] * psw_j * m_j * s_j * gradScale, m_j = 1 / the bag's forward
/// denominator (0 where it is 0); max: gW[maxIndices[b, d], d] += g[b, d] *
/// gradScale where the index is not -1.
std::vector<double>
embeddingBagBackward(const std::vector<double> &grad, int64_t dim,
                     const std::vector<int64_t> &indices, const Bags &bags,
                     BagMode mode, const std::vector<double> &perSampleWeights,
                     const std::vector<int64_t> &maxIndices,
                     int64_t numEmbeddings, std::optional<int64_t> paddingIdx,
                     bool scaleGradByFreq, double gradScale);

/// Gradient of per_sample_weights (sum mode): dot(g[bag j], W[x_j]), 0 for
/// padding entries.
std::vector<double>
perSampleWeightsBackward(const std::vector<double> &grad,
                         const std::vector<double> &weight, int64_t dim,
                         const std::vector<int64_t> &indices, const Bags &bags,
                         std::optional<int64_t> paddingIdx);

/// A sparse (COO) gradient: row indices and [N, D] values.
struct SparseGrad {
  std::vector<int64_t> rows;
  std::vector<double> values;
};

/// PyTorch's uncoalesced form: one row per non-padding position, in input
/// order. For embedding pass empty `bags` (count() == 0 means "no bags":
/// position j's gradient row is grad[j]); for embedding_bag (sum, mean, sqrtn)
/// the row of position j is grad[bag j] * psw_j * m_j. Values * gradScale.
SparseGrad sparseBackward(const std::vector<double> &grad, int64_t dim,
                          const std::vector<int64_t> &indices, const Bags *bags,
                          BagMode mode,
                          const std::vector<double> &perSampleWeights,
                          std::optional<int64_t> paddingIdx, double gradScale);

/// Distinct rows in ascending order, their values summed in input order.
SparseGrad coalesce(const SparseGrad &sparse, int64_t dim);

/// The rows a bag gradient touches (docs/semantics.md §6.4): every
/// non-padding index, or with mode max every max_indices entry but -1.
std::vector<bool> touchedRows(const std::vector<int64_t> &indices,
                              BagMode mode,
                              const std::vector<int64_t> &maxIndices,
                              int64_t numEmbeddings,
                              std::optional<int64_t> paddingIdx);

/// One optimizer step (§6.4) on the `touched` rows of `weight` [V, D] from
/// the dense gradient `grad` [V, D] (embeddingBackward /
/// embeddingBagBackward): the unfused composition. `states` holds
/// numOptimizerStates(optimizer) tables ([V, D], rowwise_adagrad [V]),
/// updated in place with the weight.
void optimizerStep(std::vector<double> &weight,
                   std::vector<std::vector<double>> &states,
                   const std::vector<double> &grad,
                   const std::vector<bool> &touched, int64_t dim,
                   const OptimizerOptions &options);

} // namespace emb::ref

#endif // EMB_REFERENCE_REFERENCE_H
