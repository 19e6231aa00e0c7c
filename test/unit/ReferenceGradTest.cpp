//===- ReferenceGradTest.cpp - the gradient reference vs finite differences
//===//
//
// The f64 reference gradients (lib/Reference) checked against central finite
// differences of the forward reference, L = sum(out * G), on small random
// cases: embedding, embedding_bag sum / mean / max (distinct values, so max
// is differentiable), per_sample_weights, with padding. Padding rows have a
// zero gradient by definition (docs/semantics.md §4) and are checked for
// that instead. scale_grad_by_freq and grad_scale are scalings, checked as
// such; the sparse forms against the dense one.
//
//===----------------------------------------------------------------------===//

#include "emb/Reference/Reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace emb;

namespace {

struct Case {
  std::mt19937_64 gen;
  int64_t V, D;
  std::vector<double> weight;
  std::vector<int64_t> indices;
  ref::Bags bags;
  std::vector<double> psw;
  std::optional<int64_t> pad;

  explicit Case(uint64_t seed, bool twoD, bool withPad, bool withPsw)
      : gen(seed) {
    V = 2 + gen() % 6;
    D = 1 + gen() % 4;
    std::uniform_real_distribution<double> u(-1, 1);
    for (int64_t i = 0; i < V * D; ++i)
      weight.push_back(u(gen));
    int64_t numBags = 1 + gen() % 4;
    if (twoD) {
      bags.numBags = numBags;
      bags.bagLength = 1 + gen() % 4;
      for (int64_t i = 0; i < numBags * bags.bagLength; ++i)
        indices.push_back(gen() % V);
    } else {
      for (int64_t b = 0; b < numBags; ++b) {
        bags.offsets.push_back(indices.size());
        for (int64_t l = gen() % 4; l > 0; --l) // empty bags too
          indices.push_back(gen() % V);
      }
    }
    if (withPad)
      pad = gen() % V;
    if (withPsw)
      for (size_t i = 0; i < indices.size(); ++i)
        psw.push_back(u(gen));
  }

  std::vector<double> randomGrad(size_t n) {
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<double> g(n);
    for (double &x : g)
      x = u(gen);
    return g;
  }
};

double dot(const std::vector<double> &a, const std::vector<double> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

/// Central difference of f with respect to x[i].
template <typename F> double fd(std::vector<double> &x, size_t i, F f) {
  const double eps = 1e-6;
  double saved = x[i];
  x[i] = saved + eps;
  double up = f();
  x[i] = saved - eps;
  double down = f();
  x[i] = saved;
  return (up - down) / (2 * eps);
}

TEST(ReferenceGrad, EmbeddingMatchesFiniteDifferences) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Case c(seed, false, seed % 2 == 0, false);
    auto g = c.randomGrad(c.indices.size() * c.D);
    auto loss = [&] {
      return dot(ref::embedding(c.weight, c.D, c.indices, c.pad, false), g);
    };
    auto gw = ref::embeddingBackward(g, c.D, c.indices, c.V, c.pad, false, 1.0);
    for (int64_t i = 0; i < c.V * c.D; ++i) {
      if (c.pad && i / c.D == *c.pad)
        EXPECT_EQ(gw[i], 0.0) << "padding row, seed " << seed;
      else
        EXPECT_NEAR(gw[i], fd(c.weight, i, loss), 1e-7) << "seed " << seed;
    }
  }
}

TEST(ReferenceGrad, BagSumMeanMaxMatchFiniteDifferences) {
  for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::max})
    for (uint64_t seed = 1; seed <= 40; ++seed) {
      bool withPsw = mode == BagMode::sum && seed % 3 == 0;
      Case c(seed * 7 + static_cast<int>(mode), seed % 2 == 0, seed % 4 == 1,
             withPsw);
      auto g = c.randomGrad(c.bags.count() * c.D);
      auto forward = [&] {
        return ref::embeddingBag(c.weight, c.D, c.indices, c.bags.offsets,
                                 c.bags.numBags, c.bags.bagLength, mode, c.psw,
                                 false, c.pad);
      };
      auto loss = [&] { return dot(forward().output, g); };
      auto gw = ref::embeddingBagBackward(g, c.D, c.indices, c.bags, mode,
                                          c.psw, forward().maxIndices, c.V,
                                          c.pad, false, 1.0);
      for (int64_t i = 0; i < c.V * c.D; ++i) {
        if (c.pad && i / c.D == *c.pad)
          EXPECT_EQ(gw[i], 0.0) << "padding row";
        else
          EXPECT_NEAR(gw[i], fd(c.weight, i, loss), 1e-7)
              << "mode " << static_cast<int>(mode) << " seed " << seed
              << " element " << i;
      }
    }
}

TEST(ReferenceGrad, PerSampleWeightsMatchFiniteDifferences) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Case c(seed * 13, seed % 2 == 0, seed % 3 == 0, true);
    auto g = c.randomGrad(c.bags.count() * c.D);
    auto loss = [&] {
      return dot(ref::embeddingBag(c.weight, c.D, c.indices, c.bags.offsets,
                                   c.bags.numBags, c.bags.bagLength,
                                   BagMode::sum, c.psw, false, c.pad)
                     .output,
                 g);
    };
    auto gpsw = ref::perSampleWeightsBackward(g, c.weight, c.D, c.indices,
                                              c.bags, c.pad);
    for (size_t j = 0; j < c.psw.size(); ++j)
      EXPECT_NEAR(gpsw[j], fd(c.psw, j, loss), 1e-7) << "seed " << seed;
  }
}

TEST(ReferenceGrad, ScaleGradByFreqAndGradScaleAreScalings) {
  Case c(5, false, false, false);
  c.indices = {1, 1, 1, 0, 1};
  c.bags.offsets = {0, 2};
  auto g = c.randomGrad(2 * c.D);
  auto plain = ref::embeddingBagBackward(
      g, c.D, c.indices, c.bags, BagMode::sum, {}, {}, c.V, {}, false, 1);
  auto scaled = ref::embeddingBagBackward(
      g, c.D, c.indices, c.bags, BagMode::sum, {}, {}, c.V, {}, true, 3);
  for (int64_t d = 0; d < c.D; ++d) {
    EXPECT_NEAR(scaled[1 * c.D + d], plain[1 * c.D + d] * 3 / 4, 1e-12);
    EXPECT_NEAR(scaled[0 * c.D + d], plain[0 * c.D + d] * 3 / 1, 1e-12);
  }
}

TEST(ReferenceGrad, SparseFormsAgreeWithTheDenseGradient) {
  for (uint64_t seed = 1; seed <= 30; ++seed)
    for (BagMode mode : {BagMode::sum, BagMode::mean}) {
      Case c(seed * 31, seed % 2 == 0, seed % 3 == 0,
             mode == BagMode::sum && seed % 2 == 1);
      auto g = c.randomGrad(c.bags.count() * c.D);
      auto dense = ref::embeddingBagBackward(g, c.D, c.indices, c.bags, mode,
                                             c.psw, {}, c.V, c.pad, false, 0.5);
      auto sparse = ref::sparseBackward(g, c.D, c.indices, &c.bags, mode, c.psw,
                                        c.pad, 0.5);
      // Uncoalesced: one row per non-padding position, in input order.
      std::vector<int64_t> expectRows;
      for (int64_t x : c.indices)
        if (!(c.pad && x == *c.pad))
          expectRows.push_back(x);
      EXPECT_EQ(sparse.rows, expectRows);
      auto co = ref::coalesce(sparse, c.D);
      EXPECT_TRUE(std::is_sorted(co.rows.begin(), co.rows.end()));
      std::vector<double> densified(c.V * c.D, 0.0);
      for (size_t k = 0; k < co.rows.size(); ++k)
        for (int64_t d = 0; d < c.D; ++d)
          densified[co.rows[k] * c.D + d] = co.values[k * c.D + d];
      for (int64_t i = 0; i < c.V * c.D; ++i)
        EXPECT_NEAR(densified[i], dense[i], 1e-12);
    }
}

} // namespace
