//===- Reference.cpp - plain C++ reference of docs/semantics.md -----------===//

#include "emb/Reference/Reference.h"
#include "emb/Runtime/Numeric.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
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

namespace {
/// The denominator of bag [start, end) for mean and sqrtn (§3, §6.1): the
/// count of live entries or, with weights, sum psw (mean) / sum psw^2
/// (sqrtn), square-rooted for sqrtn. 1 for sum and max.
double bagDenominator(BagMode mode, const std::vector<int64_t> &indices,
                      const std::vector<double> &perSampleWeights,
                      int64_t start, int64_t end,
                      std::optional<int64_t> paddingIdx) {
  if (mode != BagMode::mean && mode != BagMode::sqrtn)
    return 1.0;
  double den = 0;
  for (int64_t j = start; j < end; ++j) {
    if (paddingIdx && indices[j] == *paddingIdx)
      continue;
    double w = perSampleWeights.empty() ? 1.0 : perSampleWeights[j];
    den += mode == BagMode::sqrtn ? w * w : w;
  }
  return mode == BagMode::sqrtn ? std::sqrt(den) : den;
}

/// What each entry of a bag contributes to the weight gradient with (times
/// its psw): 1 / the denominator, 0 where that is 0 (the forward's zero
/// row does not depend on the weights).
double gradientFactor(BagMode mode, const std::vector<int64_t> &indices,
                      const std::vector<double> &perSampleWeights,
                      int64_t start, int64_t end,
                      std::optional<int64_t> paddingIdx) {
  double den = bagDenominator(mode, indices, perSampleWeights, start, end,
                              paddingIdx);
  return den == 0 ? 0.0 : 1.0 / den;
}
} // namespace

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
    if (mode == BagMode::mean || mode == BagMode::sqrtn) {
      double den = bagDenominator(mode, indices, perSampleWeights, start, end,
                                  paddingIdx);
      for (int64_t d = 0; d < dim; ++d)
        out[d] = den == 0 ? 0.0 : out[d] / den;
    }
  }
  return result;
}

//===----------------------------------------------------------------------===//
// Quantised tables
//===----------------------------------------------------------------------===//

namespace {
float roundToHalf(float f) { return halfToFloat(floatToHalf(f)); }

void storeF32(uint8_t *at, float v) { std::memcpy(at, &v, 4); }
void storeF16(uint8_t *at, float v) {
  uint16_t h = floatToHalf(v);
  std::memcpy(at, &h, 2);
}
float loadF32(const uint8_t *at) {
  float v;
  std::memcpy(&v, at, 4);
  return v;
}
float loadF16(const uint8_t *at) {
  uint16_t h;
  std::memcpy(&h, at, 2);
  return halfToFloat(h);
}
} // namespace

std::vector<uint8_t> quantizeRows(const std::vector<float> &weight,
                                  int64_t numRows, int64_t dim,
                                  Quantization q) {
  int64_t rowBytes = quantizedRowBytes(q, dim);
  std::vector<uint8_t> packed(numRows * rowBytes, 0);
  for (int64_t r = 0; r < numRows; ++r) {
    const float *row = weight.data() + r * dim;
    uint8_t *out = packed.data() + r * rowBytes;
    float lo = dim ? *std::min_element(row, row + dim) : 0.0f;
    float hi = dim ? *std::max_element(row, row + dim) : 0.0f;
    if (q == Quantization::int8) {
      // FBGEMM's FloatOrHalfToFused8BitRowwiseQuantizedSBFloat, in f32.
      float range = hi - lo;
      float inverse = 255.0f / (range + 1e-8f);
      for (int64_t d = 0; d < dim; ++d)
        out[d] = static_cast<uint8_t>(std::lrintf((row[d] - lo) * inverse));
      storeF32(out + dim, range / 255.0f);
      storeF32(out + dim + 4, lo);
      continue;
    }
    // FusedNBitRowwise with 4 bits: the minimum is rounded to f16 first, the
    // scale to f16 (1 for a constant row, or where it rounds to 0 or its
    // inverse overflows).
    lo = roundToHalf(lo);
    float range = hi - lo;
    float scale = roundToHalf(range == 0 ? 1.0f : range / 15.0f);
    if (scale == 0)
      scale = 1.0f;
    float inverse = 1.0f / scale;
    if (std::isinf(inverse)) {
      scale = 1.0f;
      inverse = 1.0f;
    }
    for (int64_t d = 0; d < dim; ++d) {
      long v = std::lrintf((row[d] - lo) * inverse);
      auto nibble = static_cast<uint8_t>(std::clamp<long>(v, 0, 15));
      out[d / 2] |= d % 2 ? nibble << 4 : nibble;
    }
    int64_t tail = (dim + 1) / 2;
    storeF16(out + tail, scale);
    storeF16(out + tail + 2, lo);
  }
  return packed;
}

std::vector<double> dequantizeRows(const std::vector<uint8_t> &packed,
                                   int64_t numRows, int64_t dim,
                                   Quantization q) {
  int64_t rowBytes = quantizedRowBytes(q, dim);
  std::vector<double> values(numRows * dim);
  for (int64_t r = 0; r < numRows; ++r) {
    const uint8_t *row = packed.data() + r * rowBytes;
    bool int8 = q == Quantization::int8;
    int64_t tail = int8 ? dim : (dim + 1) / 2;
    double scale = int8 ? loadF32(row + tail) : loadF16(row + tail);
    double bias = int8 ? loadF32(row + tail + 4) : loadF16(row + tail + 2);
    for (int64_t d = 0; d < dim; ++d) {
      int v = int8 ? row[d] : (row[d / 2] >> (d % 2 ? 4 : 0)) & 15;
      values[r * dim + d] = v * scale + bias;
    }
  }
  return values;
}

//===----------------------------------------------------------------------===//
// Gradients
//===----------------------------------------------------------------------===//

int64_t Bags::count() const {
  if (offsets.empty())
    return numBags;
  return includeLastOffset ? static_cast<int64_t>(offsets.size()) - 1
                           : static_cast<int64_t>(offsets.size());
}

std::pair<int64_t, int64_t> Bags::bounds(int64_t b, int64_t n) const {
  if (offsets.empty())
    return {b * bagLength, (b + 1) * bagLength};
  int64_t end =
      b + 1 < static_cast<int64_t>(offsets.size()) ? offsets[b + 1] : n;
  return {offsets[b], end};
}

namespace {
std::vector<int64_t> counts(const std::vector<int64_t> &indices,
                            int64_t numEmbeddings) {
  std::vector<int64_t> c(numEmbeddings, 0);
  for (int64_t x : indices)
    ++c[x];
  return c;
}
} // namespace

std::vector<double> embeddingBackward(const std::vector<double> &grad,
                                      int64_t dim,
                                      const std::vector<int64_t> &indices,
                                      int64_t numEmbeddings,
                                      std::optional<int64_t> paddingIdx,
                                      bool scaleGradByFreq, double gradScale) {
  std::vector<double> gw(numEmbeddings * dim, 0.0);
  std::vector<int64_t> c = counts(indices, numEmbeddings);
  for (size_t i = 0; i < indices.size(); ++i) {
    int64_t r = indices[i];
    if (paddingIdx && r == *paddingIdx)
      continue;
    double s = gradScale / (scaleGradByFreq ? c[r] : 1);
    for (int64_t d = 0; d < dim; ++d)
      gw[r * dim + d] += grad[i * dim + d] * s;
  }
  return gw;
}

std::vector<double>
embeddingBagBackward(const std::vector<double> &grad, int64_t dim,
                     const std::vector<int64_t> &indices, const Bags &bags,
                     BagMode mode, const std::vector<double> &perSampleWeights,
                     const std::vector<int64_t> &maxIndices,
                     int64_t numEmbeddings, std::optional<int64_t> paddingIdx,
                     bool scaleGradByFreq, double gradScale) {
  std::vector<double> gw(numEmbeddings * dim, 0.0);
  int64_t n = static_cast<int64_t>(indices.size());
  if (mode == BagMode::max) {
    for (size_t i = 0; i < maxIndices.size(); ++i)
      if (maxIndices[i] >= 0)
        gw[maxIndices[i] * dim + static_cast<int64_t>(i) % dim] +=
            grad[i] * gradScale;
    return gw;
  }
  std::vector<int64_t> c = counts(indices, numEmbeddings);
  for (int64_t b = 0; b < bags.count(); ++b) {
    auto [start, end] = bags.bounds(b, n);
    double m = gradientFactor(mode, indices, perSampleWeights, start, end,
                              paddingIdx);
    for (int64_t j = start; j < end; ++j) {
      int64_t r = indices[j];
      if (paddingIdx && r == *paddingIdx)
        continue;
      double f = gradScale * m;
      if (!perSampleWeights.empty())
        f *= perSampleWeights[j];
      if (scaleGradByFreq)
        f /= c[r];
      for (int64_t d = 0; d < dim; ++d)
        gw[r * dim + d] += grad[b * dim + d] * f;
    }
  }
  return gw;
}

std::vector<double>
perSampleWeightsBackward(const std::vector<double> &grad,
                         const std::vector<double> &weight, int64_t dim,
                         const std::vector<int64_t> &indices, const Bags &bags,
                         std::optional<int64_t> paddingIdx) {
  int64_t n = static_cast<int64_t>(indices.size());
  std::vector<double> g(n, 0.0);
  for (int64_t b = 0; b < bags.count(); ++b) {
    auto [start, end] = bags.bounds(b, n);
    for (int64_t j = start; j < end; ++j) {
      if (paddingIdx && indices[j] == *paddingIdx)
        continue;
      double dot = 0;
      for (int64_t d = 0; d < dim; ++d)
        dot += grad[b * dim + d] * weight[indices[j] * dim + d];
      g[j] = dot;
    }
  }
  return g;
}

SparseGrad sparseBackward(const std::vector<double> &grad, int64_t dim,
                          const std::vector<int64_t> &indices, const Bags *bags,
                          BagMode mode,
                          const std::vector<double> &perSampleWeights,
                          std::optional<int64_t> paddingIdx, double gradScale) {
  SparseGrad out;
  int64_t n = static_cast<int64_t>(indices.size());
  auto emit = [&](int64_t j, const double *row, double f) {
    out.rows.push_back(indices[j]);
    for (int64_t d = 0; d < dim; ++d)
      out.values.push_back(row[d] * f);
  };
  if (!bags) {
    for (int64_t j = 0; j < n; ++j)
      if (!(paddingIdx && indices[j] == *paddingIdx))
        emit(j, grad.data() + j * dim, gradScale);
    return out;
  }
  for (int64_t b = 0; b < bags->count(); ++b) {
    auto [start, end] = bags->bounds(b, n);
    double m = gradientFactor(mode, indices, perSampleWeights, start, end,
                              paddingIdx);
    for (int64_t j = start; j < end; ++j) {
      if (paddingIdx && indices[j] == *paddingIdx)
        continue;
      double f = gradScale * m;
      if (!perSampleWeights.empty())
        f *= perSampleWeights[j];
      emit(j, grad.data() + b * dim, f);
    }
  }
  return out;
}

SparseGrad coalesce(const SparseGrad &sparse, int64_t dim) {
  std::map<int64_t, std::vector<double>> sums;
  for (size_t k = 0; k < sparse.rows.size(); ++k) {
    auto &row = sums[sparse.rows[k]];
    row.resize(dim, 0.0);
    for (int64_t d = 0; d < dim; ++d)
      row[d] += sparse.values[k * dim + d];
  }
  SparseGrad out;
  for (auto &[r, row] : sums) {
    out.rows.push_back(r);
    out.values.insert(out.values.end(), row.begin(), row.end());
  }
  return out;
}

std::vector<bool> touchedRows(const std::vector<int64_t> &indices,
                              BagMode mode,
                              const std::vector<int64_t> &maxIndices,
                              int64_t numEmbeddings,
                              std::optional<int64_t> paddingIdx) {
  std::vector<bool> touched(numEmbeddings, false);
  if (mode == BagMode::max) {
    for (int64_t r : maxIndices)
      if (r >= 0)
        touched[r] = true;
    return touched;
  }
  for (int64_t r : indices)
    if (!(paddingIdx && r == *paddingIdx))
      touched[r] = true;
  return touched;
}

void optimizerStep(std::vector<double> &weight,
                   std::vector<std::vector<double>> &states,
                   const std::vector<double> &grad,
                   const std::vector<bool> &touched, int64_t dim,
                   const OptimizerOptions &o) {
  int64_t numEmbeddings = static_cast<int64_t>(touched.size());
  double c1 = 1 - std::pow(o.beta1, static_cast<double>(o.step));
  double c2 = 1 - std::pow(o.beta2, static_cast<double>(o.step));
  std::vector<double> g(dim);
  for (int64_t r = 0; r < numEmbeddings; ++r) {
    if (!touched[r])
      continue;
    double *w = &weight[r * dim];
    for (int64_t d = 0; d < dim; ++d)
      g[d] = grad[r * dim + d] + o.weightDecay * w[d];
    switch (o.optimizer) {
    case Optimizer::sgd:
      for (int64_t d = 0; d < dim; ++d)
        w[d] -= o.lr * g[d];
      break;
    case Optimizer::adagrad:
      for (int64_t d = 0; d < dim; ++d) {
        double &h = states[0][r * dim + d];
        h += g[d] * g[d];
        w[d] -= o.lr * g[d] / (std::sqrt(h) + o.eps);
      }
      break;
    case Optimizer::rowwise_adagrad: {
      double squares = 0;
      for (int64_t d = 0; d < dim; ++d)
        squares += g[d] * g[d];
      double &h = states[0][r];
      h += dim > 0 ? squares / dim : 0.0;
      for (int64_t d = 0; d < dim; ++d)
        w[d] -= o.lr * g[d] / (std::sqrt(h) + o.eps);
      break;
    }
    case Optimizer::adam:
      for (int64_t d = 0; d < dim; ++d) {
        double &m = states[0][r * dim + d], &v = states[1][r * dim + d];
        m = o.beta1 * m + (1 - o.beta1) * g[d];
        v = o.beta2 * v + (1 - o.beta2) * g[d] * g[d];
        w[d] -= o.lr * (m / c1) / (std::sqrt(v / c2) + o.eps);
      }
      break;
    }
  }
}

} // namespace emb::ref
