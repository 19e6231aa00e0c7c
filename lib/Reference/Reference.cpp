//===- Reference.cpp - plain C++ reference of docs/semantics.md -----------===//

#include "emb/Reference/Reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace emb::ref {

std::vector<double> embedding(const std::vector<double> &weight, int64_t dim,
                              const std::vector<int64_t> &indices,
                              std::optional<int64_t> paddingIdx,
                              bool zeroPadding) {
  std::vector<double> out(indices.size() * dim, 0.0);
  for (size_t i = 0; i < indices.size(); ++i) {
    if (zeroPadding && paddingIdx && indices[i] == *paddingIdx)
      continue;
    std::copy_n(weight.begin() + indices[i] * dim, dim, out.begin() + i * dim);
  }
  return out;
}

double pNorm(const double *row, int64_t dim, double p) {
  if (std::isinf(p)) {
    // NaN propagates, as in torch.norm (and the kernels' maximumf).
    double r = p > 0 ? 0.0 : std::numeric_limits<double>::infinity();
    for (int64_t d = 0; d < dim; ++d) {
      double a = std::fabs(row[d]);
      if (std::isnan(a))
        return a;
      r = p > 0 ? std::max(r, a) : std::min(r, a);
    }
    return dim == 0 && p < 0 ? 0.0 : r;
  }
  double sum = 0;
  for (int64_t d = 0; d < dim; ++d) {
    double a = std::fabs(row[d]);
    if (p == 0)
      sum += a != 0 ? 1 : 0;
    else if (p == 1)
      sum += a;
    else if (p == 2)
      sum += a * a;
    else
      sum += std::pow(a, p);
  }
  if (p == 0 || p == 1)
    return sum;
  if (p == 2)
    return std::sqrt(sum);
  return std::pow(sum, 1.0 / p);
}

void renorm(std::vector<double> &weight, int64_t dim,
            const std::vector<int64_t> &indices, double maxNorm, double p) {
  std::set<int64_t> rows(indices.begin(), indices.end());
  for (int64_t r : rows) {
    double *row = weight.data() + r * dim;
    double norm = pNorm(row, dim, p);
    if (norm > maxNorm) {
      double scale = maxNorm / (norm + 1e-7);
      for (int64_t d = 0; d < dim; ++d)
        row[d] *= scale;
    }
  }
}

BagResult embeddingBag(const std::vector<double> &weight, int64_t dim,
                       const std::vector<int64_t> &indices,
                       const std::vector<int64_t> &offsets, int64_t numBags2D,
                       int64_t bagLength, BagMode mode,
                       const std::vector<double> &perSampleWeights,
                       bool includeLastOffset,
                       std::optional<int64_t> paddingIdx) {
  int64_t n = static_cast<int64_t>(indices.size());
  bool twoD = offsets.empty();
  int64_t numBags;
  if (twoD)
    numBags = numBags2D;
  else
    numBags = includeLastOffset ? static_cast<int64_t>(offsets.size()) - 1
                                : static_cast<int64_t>(offsets.size());
  BagResult result;
  result.output.assign(numBags * dim, 0.0);
  if (mode == BagMode::max)
    result.maxIndices.assign(numBags * dim, -1);
  for (int64_t b = 0; b < numBags; ++b) {
    int64_t start, end;
    if (twoD) {
      start = b * bagLength;
      end = start + bagLength;
    } else {
      start = offsets[b];
      end = b + 1 < static_cast<int64_t>(offsets.size()) ? offsets[b + 1] : n;
    }
    double *out = result.output.data() + b * dim;
    int64_t count = 0;
    for (int64_t j = start; j < end; ++j) {
      int64_t r = indices[j];
      if (paddingIdx && r == *paddingIdx)
        continue;
      const double *row = weight.data() + r * dim;
      double w = perSampleWeights.empty() ? 1.0 : perSampleWeights[j];
      for (int64_t d = 0; d < dim; ++d) {
        if (mode == BagMode::max) {
          // The first entry is taken; later ones only when strictly greater.
          if (count == 0 || row[d] > out[d]) {
            out[d] = row[d];
            result.maxIndices[b * dim + d] = r;
          }
        } else {
          out[d] += w * row[d];
        }
      }
      ++count;
    }
    if (mode == BagMode::mean && count > 0)
      for (int64_t d = 0; d < dim; ++d)
        out[d] /= count;
  }
  return result;
}

} // namespace emb::ref
