//===- ForwardDiffTest.cpp - generated forward kernels vs the reference ---===//
//
// Randomised differential tests of every forward kernel (the host kernels,
// and the GPU kernels emulated on the host) against the f64 reference: every
// mode x padding x per_sample_weights x include_last_offset x 1-D/2-D x dtype x
// index/offset dtype x D in {1, 3, 16, 17, 64, 128, 1000}, with empty bags,
// empty inputs, all-padding bags, repeated indices and ties in max; rows
// long enough for the loop over D-blocks (D = 5000, 70000, 2^20). Also:
// identical bits with 1 and 2 threads, every bad input of docs/semantics.md
// §5 rejected with a clear message and nothing written, and the kernels
// Engine::planSpecs reports for a call.
//
//===----------------------------------------------------------------------===//

#include "emb/Reference/Reference.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"
#include "emb/Runtime/Numeric.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <future>
#include <thread>
#include <iterator>
#include <random>

using namespace emb;

namespace {

const int64_t kDims[] = {1, 3, 16, 17, 64, 128, 1000};
const DType kFloats[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

using Host = HostTensor;

double tolerance(DType d) {
  switch (d) {
  case DType::f64:
    return 1e-12;
  case DType::f32:
    return 2e-5;
  case DType::f16:
    return 4e-3;
  default:
    return 3e-2;
  }
}

/// Every element of `got` within tolerance of `want` (relative to max(1,
/// |want|)).
::testing::AssertionResult close(const Host &got,
                                 const std::vector<double> &want) {
  if (static_cast<int64_t>(want.size()) != got.view.numel())
    return ::testing::AssertionFailure()
           << "size " << got.view.numel() << " vs " << want.size();
  double tol = tolerance(got.view.dtype);
  for (size_t i = 0; i < want.size(); ++i) {
    double g = got.at(i);
    if (!(std::fabs(g - want[i]) <= tol * std::max(1.0, std::fabs(want[i]))))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << g << ", want " << want[i];
  }
  return ::testing::AssertionSuccess();
}

std::string cacheDir() {
  llvm::SmallString<128> dir;
  llvm::sys::fs::current_path(dir);
  return std::string(dir) + "/emb-test-kernel-cache";
}

Engine &engine(int threads = 2, Target target = Target::host) {
  static std::map<std::pair<int, Target>, std::unique_ptr<Engine>> engines;
  auto &e = engines[{threads, target}];
  if (!e) {
    EngineOptions o;
    o.threads = threads;
    o.target = target;
    o.cache.directory = cacheDir();
    e = std::make_unique<Engine>(o);
  }
  return *e;
}

struct Random {
  std::mt19937_64 gen;
  explicit Random(uint64_t seed) : gen(seed) {}
  int64_t below(int64_t n) {
    return n <= 0 ? 0 : static_cast<int64_t>(gen() % n);
  }
  double uniform() {
    return std::uniform_real_distribution<double>(-1, 1)(gen);
  }
};

/// A random table; with `ties`, values are multiples of 1/4 so that max ties.
Host randomTable(Random &rng, DType d, int64_t v, int64_t dim, bool ties) {
  Host w(d, {v, dim});
  for (int64_t i = 0; i < v * dim; ++i)
    w.set(i, ties ? std::round(rng.uniform() * 4) / 4 : rng.uniform());
  return w;
}

//===----------------------------------------------------------------------===//
// embedding_bag
//===----------------------------------------------------------------------===//

struct BagCase {
  DType weight, indices, offsets;
  int64_t dim;
  BagMode mode;
  bool twoD, psw, includeLast, padding, argmax;
};

std::string describe(const BagCase &c) {
  std::string s = std::string(bagModeName(c.mode)) +
                  " w=" + dtypeName(c.weight) + " i=" + dtypeName(c.indices) +
                  " o=" + dtypeName(c.offsets) + " D=" + std::to_string(c.dim);
  s += c.twoD ? " 2d" : " 1d";
  if (c.psw)
    s += " psw";
  if (c.includeLast)
    s += " last";
  if (c.padding)
    s += " pad";
  if (c.argmax)
    s += " argmax";
  return s;
}

void runBagCase(const BagCase &c, uint64_t seed, Target target = Target::host) {
  SCOPED_TRACE(describe(c) + " seed=" + std::to_string(seed) +
               " target=" + targetName(target));
  Random rng(seed);
  const int64_t V = 1 + rng.below(40);
  Host weight = randomTable(rng, c.weight, V, c.dim, c.mode == BagMode::max);
  int64_t numBags = rng.below(12);
  std::vector<int64_t> lengths(numBags);
  int64_t bagLen = rng.below(6); // 2-D
  for (auto &l : lengths)
    l = c.twoD ? bagLen : rng.below(7); // includes empty bags
  int64_t n = 0;
  for (auto l : lengths)
    n += l;
  std::optional<int64_t> pad;
  if (c.padding)
    pad = rng.below(2 * V) - V; // [-V, V), negative half the time
  int64_t padRow = pad ? (*pad < 0 ? *pad + V : *pad) : -1;

  Host indices(c.indices, c.twoD ? std::vector<int64_t>{numBags, bagLen}
                                 : std::vector<int64_t>{n});
  for (int64_t i = 0; i < n; ++i)
    indices.set(i, (padRow >= 0 && rng.below(4) == 0) ? padRow : rng.below(V));
  // An all-padding bag.
  if (padRow >= 0 && numBags > 0)
    for (int64_t i = 0; i < lengths[0]; ++i)
      indices.set(i, padRow);
  std::vector<int64_t> offs{0};
  for (int64_t b = 0; b < numBags; ++b)
    offs.push_back(offs.back() + lengths[b]);
  if (!c.includeLast)
    offs.pop_back();
  Host offsets(c.offsets, {static_cast<int64_t>(offs.size())});
  for (size_t i = 0; i < offs.size(); ++i)
    offsets.set(i, offs[i]);
  Host psw(c.weight, indices.view.shape);
  for (int64_t i = 0; i < n; ++i)
    psw.set(i, rng.uniform());
  // A bag whose weights are all 0: a weighted mean or sqrtn divides by 0
  // and gives a zero row (docs/semantics.md §6.1).
  if (numBags > 1)
    for (int64_t i = offs[1]; i < offs[1] + lengths[1]; ++i)
      psw.set(i, 0.0);
  Host out(c.weight, {numBags, c.dim});
  Host argmax(DType::i64, {numBags, c.dim});

  EmbeddingBagOptions o;
  o.mode = c.mode;
  o.paddingIdx = pad;
  o.includeLastOffset = c.includeLast;
  llvm::Error err = engine(2, target).embeddingBag(
      indices.view, weight.view, c.twoD ? nullptr : &offsets.view, out.view, o,
      c.psw ? &psw.view : nullptr, c.argmax ? &argmax.view : nullptr);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));

  std::vector<int64_t> refOffsets;
  if (!c.twoD)
    refOffsets = offsets.toInt();
  auto want = ref::embeddingBag(
      weight.toDouble(), c.dim, indices.toInt(), refOffsets, numBags, bagLen,
      c.mode, c.psw ? psw.toDouble() : std::vector<double>{},
      c.includeLast && !c.twoD,
      pad ? std::optional<int64_t>(padRow) : std::nullopt);
  if (c.mode == BagMode::max) {
    // Max involves no arithmetic: the values and indices are exact.
    for (int64_t i = 0; i < numBags * c.dim; ++i)
      ASSERT_EQ(out.at(i), want.output[i]) << "element " << i;
    if (c.argmax)
      for (int64_t i = 0; i < numBags * c.dim; ++i)
        ASSERT_EQ(static_cast<int64_t *>(argmax.view.data)[i],
                  want.maxIndices[i])
            << "max_indices element " << i;
  } else {
    EXPECT_TRUE(close(out, want.output));
  }
}

/// The structural variants of embedding_bag.
std::vector<BagCase> bagVariants() {
  std::vector<BagCase> v;
  for (int form = 0; form < 3; ++form) // 1-D, 1-D + last, 2-D
    for (BagMode mode :
         {BagMode::sum, BagMode::mean, BagMode::max, BagMode::sqrtn})
      for (int psw = 0; psw < (mode == BagMode::max ? 1 : 2); ++psw)
        for (int pad = 0; pad < 2; ++pad)
          v.push_back({DType::f32, DType::i64, DType::i64, 0, mode, form == 2,
                       psw == 1, form == 1, pad == 1,
                       mode == BagMode::max && (pad + form) % 2 == 0});
  return v;
}

/// Rotates the dtypes of variant `v` at the `d`-th D so that, over the D
/// values, every variant meets every weight dtype and both index and offset
/// dtypes. (A rotation by a running counter would not when the number of
/// variants is a multiple of 4 and 8: each variant would keep one dtype.)
BagCase withDtypes(BagCase c, int v, int d) {
  c.weight = kFloats[(v + d) % 4];
  c.indices = (v / 2 + d) % 2 ? DType::i32 : DType::i64;
  c.offsets = (v / 3 + d + 1) % 2 ? DType::i32 : DType::i64;
  return c;
}

/// Every bag variant at every D of `dims`, the dtypes rotating with D,
/// `seeds` random instances each, on `target`.
void runBagMatrix(llvm::ArrayRef<int64_t> dims, uint64_t seeds, Target target) {
  std::vector<BagCase> variants = bagVariants();
  int k = 0;
  for (int d = 0; d < static_cast<int>(dims.size()); ++d) {
    for (int v = 0; v < static_cast<int>(variants.size()); ++v) {
      BagCase c = withDtypes(variants[v], v, d);
      c.dim = dims[d];
      ++k;
      for (uint64_t seed = 1; seed <= seeds; ++seed)
        runBagCase(c, seed * 1000 + k, target);
      if (::testing::Test::HasFatalFailure())
        return;
    }
  }
}

TEST(ForwardDiff, EmbeddingBagEveryOptionDtypeAndDim) {
  runBagMatrix(kDims, 3, Target::host);
}

TEST(ForwardDiff, EmbeddingBagFullCrossProductWhenAsked) {
  if (!std::getenv("EMB_FULL_MATRIX"))
    GTEST_SKIP() << "set EMB_FULL_MATRIX=1 for every dtype x variant x D";
  for (int64_t dim : kDims)
    for (DType w : kFloats)
      for (DType i : {DType::i32, DType::i64})
        for (DType o : {DType::i32, DType::i64})
          for (BagCase c : bagVariants()) {
            c.dim = dim, c.weight = w, c.indices = i, c.offsets = o;
            runBagCase(c, 7);
          }
}

//===----------------------------------------------------------------------===//
// embedding and renorm
//===----------------------------------------------------------------------===//

void runEmbeddingCase(DType wType, DType iType, int64_t dim, Profile profile,
                      bool padding, std::optional<double> maxNorm, double p,
                      uint64_t seed, Target target = Target::host) {
  SCOPED_TRACE(std::string("embedding target=") + targetName(target) +
               " w=" + dtypeName(wType) + " i=" + dtypeName(iType) +
               " D=" + std::to_string(dim) +
               " profile=" + profileName(profile) + (padding ? " pad" : "") +
               (maxNorm ? " max_norm p=" + std::to_string(p) : "") +
               " seed=" + std::to_string(seed));
  Random rng(seed);
  const int64_t V = 1 + rng.below(30);
  Host weight = randomTable(rng, wType, V, dim, false);
  Host before = weight;
  // Any rank, 0-D included, and empty inputs.
  std::vector<int64_t> shape;
  for (int64_t r = rng.below(4); r > 0; --r)
    shape.push_back(rng.below(5));
  Host indices(iType, shape);
  std::optional<int64_t> pad;
  if (padding)
    pad = rng.below(2 * V) - V;
  int64_t padRow = pad ? (*pad < 0 ? *pad + V : *pad) : -1;
  for (int64_t i = 0; i < indices.view.numel(); ++i)
    indices.set(i, padRow >= 0 && rng.below(3) == 0 ? padRow : rng.below(V));
  std::vector<int64_t> outShape = shape;
  outShape.push_back(dim);
  Host out(wType, outShape);

  EmbeddingOptions o;
  o.paddingIdx = pad;
  o.profile = profile;
  o.maxNorm = maxNorm;
  o.normType = p;
  llvm::Error err =
      engine(2, target).embedding(indices.view, weight.view, out.view, o);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));

  std::vector<double> w = before.toDouble();
  std::vector<int64_t> x = indices.toInt();
  if (maxNorm) {
    ref::renorm(w, dim, x, *maxNorm, p);
    EXPECT_TRUE(close(weight, w)) << "renormalised weight";
    w = weight.toDouble(); // the lookup reads the stored rows
  } else {
    ASSERT_EQ(weight.bytes, before.bytes) << "the weight must not change";
  }
  auto want = ref::embedding(
      w, dim, x, pad ? std::optional<int64_t>(padRow) : std::nullopt,
      profile == Profile::zero_padding);
  EXPECT_TRUE(close(out, want));
}

TEST(ForwardDiff, EmbeddingEveryDtypeDimAndProfile) {
  int k = 0;
  for (int64_t dim : kDims)
    for (DType w : kFloats) {
      DType i = k % 2 ? DType::i32 : DType::i64;
      Profile profile = k % 3 == 0 ? Profile::zero_padding : Profile::torch;
      ++k;
      for (uint64_t seed = 1; seed <= 3; ++seed)
        runEmbeddingCase(w, i, dim, profile, seed != 1, std::nullopt, 2,
                         seed * 77 + k);
    }
}

/// Renorm through embedding(max_norm) for every p, at `dims`.
void runRenormCases(std::initializer_list<int64_t> dims, Target target) {
  const double ps[] = {1, 2, INFINITY, 0.5, 0, -INFINITY, 3};
  int k = 0;
  for (double p : ps)
    for (int64_t dim : dims) {
      DType w = kFloats[k % 4];
      DType i = k % 3 ? DType::i64 : DType::i32;
      ++k;
      // max_norm small enough that most rows are rescaled (p = 0 counts
      // non-zeros, so its threshold is on another scale).
      double maxNorm = p == 0 ? dim / 2.0 : 0.3;
      for (uint64_t seed = 1; seed <= 2; ++seed)
        runEmbeddingCase(w, i, dim, Profile::torch, seed == 2, maxNorm, p,
                         seed * 31 + k, target);
    }
}

TEST(ForwardDiff, RenormEveryNormType) {
  runRenormCases({1, 17, 128, 1000}, Target::host);
}

// A repeated row is rescaled once: the f32 row [3, 4] scaled to max_norm 1
// rounds to a norm an ulp above 1, which a second visit would rescale again.
TEST(ForwardDiff, RenormRescalesARepeatedRowOnce) {
  for (double p : {2.0, 1.0, 0.0, double(INFINITY)}) {
    Host once(DType::f32, {2, 2}), twice(DType::f32, {2, 2});
    for (Host *w : {&once, &twice}) {
      w->set(0, 3), w->set(1, 4), w->set(2, 30), w->set(3, -40);
    }
    Host one(DType::i64, {2}), rep(DType::i64, {5});
    one.set(0, 0), one.set(1, 1);
    for (int i = 0; i < 5; ++i)
      rep.set(i, i % 2);
    ASSERT_FALSE(
        static_cast<bool>(engine().renorm(once.view, one.view, 1.0, p)));
    ASSERT_FALSE(
        static_cast<bool>(engine().renorm(twice.view, rep.view, 1.0, p)));
    EXPECT_EQ(once.bytes, twice.bytes) << "p = " << p;
  }
}

// max_norm renormalises the rows referenced by the indices even when there
// are no bags (1-D indices, empty offsets).
TEST(ForwardDiff, MaxNormWithoutBagsStillRenormalises) {
  Host weight(DType::f32, {3, 2});
  for (int i = 0; i < 6; ++i)
    weight.set(i, 10);
  Host indices(DType::i64, {2}), offsets(DType::i64, {0}),
      out(DType::f32, {0, 2});
  indices.set(0, 1), indices.set(1, 2);
  EmbeddingBagOptions o;
  o.mode = BagMode::sum;
  o.maxNorm = 1.0;
  ASSERT_FALSE(static_cast<bool>(engine().embeddingBag(
      indices.view, weight.view, &offsets.view, out.view, o)));
  EXPECT_EQ(weight.at(0), 10.0) << "row 0 is not referenced";
  EXPECT_NEAR(std::hypot(weight.at(2), weight.at(3)), 1.0, 1e-6);
  EXPECT_NEAR(std::hypot(weight.at(4), weight.at(5)), 1.0, 1e-6);
}

//===----------------------------------------------------------------------===//
// Long rows: a run-time loop over the D-blocks
//===----------------------------------------------------------------------===//

// Past cpu::kMaxUnrolledDBlocks D-blocks (lib/Conversion/EmbCommon/
// CPUConfig.h) a row is processed by a loop over its full blocks and the
// partial tail block: D = 5000 (9 blocks of 512 f32 lanes + 392; 39 + 8 for
// max with its argmax) and 70000 (136 + 368), every mode and renorm.
const int64_t kLongDims[] = {5000, 70000};

TEST(ForwardDiff, LongRowsLoopOverDBlocks) {
  std::vector<BagCase> variants = bagVariants();
  // The variant of `mode` in `form` (0: 1-D, 1: 1-D + last, 2: 2-D).
  auto find = [&](BagMode mode, int form, bool psw, bool pad) {
    for (int v = 0; v < static_cast<int>(variants.size()); ++v) {
      const BagCase &c = variants[v];
      if (c.mode == mode && c.twoD == (form == 2) &&
          c.includeLast == (form == 1) && c.psw == psw && c.padding == pad)
        return v;
    }
    ADD_FAILURE() << "no such variant";
    return 0;
  };
  int k = 0;
  for (int64_t dim : kLongDims)
    // sum psw + pad, mean + pad, mean + last, max argmax + pad + last,
    // max argmax 2-D, sqrtn psw + pad, weighted mean 2-D
    for (int v : {find(BagMode::sum, 0, true, true),
                  find(BagMode::mean, 0, false, true),
                  find(BagMode::mean, 1, false, false),
                  find(BagMode::max, 1, false, true),
                  find(BagMode::max, 2, false, false),
                  find(BagMode::sqrtn, 0, true, true),
                  find(BagMode::mean, 2, true, false)}) {
      BagCase c = withDtypes(variants[v], v, k++);
      c.dim = dim;
      runBagCase(c, 4242 + k);
      if (HasFatalFailure())
        return;
    }
  for (int64_t dim : kLongDims)
    for (double p : {2.0, double(INFINITY)}) {
      DType w = kFloats[k++ % 4];
      runEmbeddingCase(w, DType::i64, dim, Profile::torch, true, 0.3, p,
                       77 + k);
      if (HasFatalFailure())
        return;
    }
}

// D = 2^20 (2048 blocks of 512 f32 lanes): compiles in about the time of
// any other kernel (unrolled, D = 65536 took 11 s) and gives the reference.
TEST(ForwardDiff, HugeRowCompilesAndMatches) {
  const int64_t D = int64_t(1) << 20, V = 2;
  Random rng(2020);
  Host weight = randomTable(rng, DType::f32, V, D, true);
  Host indices(DType::i64, {1}), offsets(DType::i64, {1});
  indices.set(0, 1);
  offsets.set(0, 0);
  Host out(DType::f32, {1, D}), argmax(DType::i64, {1, D});
  EmbeddingBagOptions o;
  o.mode = BagMode::max;
  ASSERT_FALSE(static_cast<bool>(engine().embeddingBag(
      indices.view, weight.view, &offsets.view, out.view, o, nullptr,
      &argmax.view)));
  std::vector<double> w = weight.toDouble();
  for (int64_t d = 0; d < D; ++d) {
    ASSERT_EQ(out.at(d), w[D + d]) << "element " << d;
    ASSERT_EQ(static_cast<int64_t *>(argmax.view.data)[d], 1) << d;
  }
  Host rows(DType::f16, {1, D}), table = randomTable(rng, DType::f16, V, D, false);
  ASSERT_FALSE(static_cast<bool>(
      engine().embedding(indices.view, table.view, rows.view, {})));
  EXPECT_EQ(std::memcmp(rows.bytes.data(), table.bytes.data() + D * 2, D * 2),
            0);
}

//===----------------------------------------------------------------------===//
// Determinism
//===----------------------------------------------------------------------===//

TEST(ForwardDiff, IdenticalBitsWithOneAndTwoThreads) {
  Random rng(99);
  const int64_t V = 5000, D = 64, B = 3000;
  Host weight = randomTable(rng, DType::f32, V, D, false);
  Host indices(DType::i64, {B * 10});
  for (int64_t i = 0; i < B * 10; ++i)
    indices.set(i, rng.below(V));
  Host offsets(DType::i64, {B});
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, b * 10 - (b % 3 == 1 ? 3 : 0)); // uneven bags
  for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::max}) {
    Host out1(DType::f32, {B, D}), out2(DType::f32, {B, D});
    EmbeddingBagOptions o;
    o.mode = mode;
    ASSERT_FALSE(static_cast<bool>(engine(1).embeddingBag(
        indices.view, weight.view, &offsets.view, out1.view, o)));
    ASSERT_FALSE(static_cast<bool>(engine(2).embeddingBag(
        indices.view, weight.view, &offsets.view, out2.view, o)));
    EXPECT_EQ(out1.bytes, out2.bytes) << bagModeName(mode);
  }
}

//===----------------------------------------------------------------------===//
// GPU kernels, emulated on the host (emb-emulate-gpu-on-host)
//===----------------------------------------------------------------------===//

/// D values for the GPU kernels: the scalar path (odd D) with one chunk per
/// thread (1, 3, 17) and with several (33), vectors narrower than 16 bytes
/// (6; 36 and 100 for f16 / bf16), the 16-byte path with one chunk (16, 64,
/// 128) and with several (1000).
const int64_t kGPUDims[] = {1, 3, 6, 16, 17, 33, 36, 64, 100, 128, 1000};

// The same cases as the host kernels: every variant meets every dtype over
// the D values.
TEST(GPUEmulated, EmbeddingBagEveryOptionDtypeAndDim) {
  runBagMatrix(kGPUDims, 2, Target::gpu_emulated);
}

TEST(GPUEmulated, EmbeddingEveryDtypeDimAndProfile) {
  int k = 0;
  for (int64_t dim : kGPUDims)
    for (DType w : kFloats) {
      DType i = k % 2 ? DType::i32 : DType::i64;
      Profile profile = k % 3 == 0 ? Profile::zero_padding : Profile::torch;
      ++k;
      for (uint64_t seed = 1; seed <= 3; ++seed)
        runEmbeddingCase(w, i, dim, profile, seed != 1, std::nullopt, 2,
                         seed * 77 + k, Target::gpu_emulated);
    }
}

// Many rows, so that the grid has several blocks and the row groups of a
// block cover rows of different blocks.
TEST(GPUEmulated, ManyBlocks) {
  Random rng(3);
  const int64_t V = 500, D = 64, B = 1000;
  Host weight = randomTable(rng, DType::f32, V, D, false);
  Host indices(DType::i64, {B * 3});
  for (int64_t i = 0; i < B * 3; ++i)
    indices.set(i, rng.below(V));
  Host offsets(DType::i64, {B});
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, b * 3);
  Host host(DType::f32, {B, D}), gpu(DType::f32, {B, D});
  EmbeddingBagOptions o;
  o.mode = BagMode::sum;
  ASSERT_FALSE(static_cast<bool>(engine(1).embeddingBag(
      indices.view, weight.view, &offsets.view, host.view, o)));
  ASSERT_FALSE(
      static_cast<bool>(engine(1, Target::gpu_emulated)
                            .embeddingBag(indices.view, weight.view,
                                          &offsets.view, gpu.view, o)));
  EXPECT_TRUE(close(gpu, host.toDouble()));
}

// Renorm on the GPU: each distinct row claimed once (an atomic flag), its
// norm in f64, rescaled in place; then the lookup reads it.
TEST(GPUEmulated, RenormEveryNormType) {
  runRenormCases({1, 17, 64, 128, 1000}, Target::gpu_emulated);
}

TEST(GPUEmulated, RenormRescalesARepeatedRowOnce) {
  Host weight(DType::f32, {3, 4}), indices(DType::i64, {6});
  for (int64_t i = 0; i < 12; ++i)
    weight.set(i, 2.0);
  for (int64_t i = 0; i < 6; ++i)
    indices.set(i, 1);
  ASSERT_FALSE(static_cast<bool>(
      engine(2, Target::gpu_emulated).renorm(weight.view, indices.view, 1.0)));
  // Row 1 has norm 4: rescaled once to norm 1 (not again); rows 0 and 2
  // are not referenced and keep their values.
  for (int64_t c = 0; c < 4; ++c) {
    EXPECT_NEAR(weight.at(4 + c), 0.5, 1e-6);
    EXPECT_EQ(weight.at(c), 2.0);
    EXPECT_EQ(weight.at(8 + c), 2.0);
  }
}

TEST(GPUEmulated, MisalignedRowsAreRejected) {
  Host weight(DType::f32, {4, 8}), indices(DType::i64, {2});
  Host out(DType::f32, {3, 8});
  Tensor shifted = out.view; // starts one float into the buffer
  shifted.data = static_cast<float *>(out.view.data) + 1;
  shifted.shape = {2, 8};
  llvm::Error err = engine(2, Target::gpu_emulated)
                        .embedding(indices.view, weight.view, shifted);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("16-byte aligned"),
            std::string::npos);
  // The host kernels take any alignment.
  EXPECT_FALSE(static_cast<bool>(
      engine().embedding(indices.view, weight.view, shifted)));
  // D = 6 f16 rows are 12 bytes: moved as 4-byte vectors (pairs), so
  // buffers must start at a multiple of 4.
  Host halfWeight(DType::f16, {4, 6}), halfOut(DType::f16, {3, 6});
  Tensor halfShifted = halfOut.view;
  halfShifted.data = static_cast<uint16_t *>(halfOut.view.data) + 1;
  halfShifted.shape = {2, 6};
  llvm::Error halfErr = engine(2, Target::gpu_emulated)
                            .embedding(indices.view, halfWeight.view,
                                       halfShifted);
  ASSERT_TRUE(static_cast<bool>(halfErr));
  EXPECT_NE(llvm::toString(std::move(halfErr)).find("4-byte aligned"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Bad input: a clear message, and nothing written
//===----------------------------------------------------------------------===//

struct BadInput : ::testing::Test {
  Host weight{DType::f32, {5, 4}};
  Host indices{DType::i64, {6}};
  Host offsets{DType::i64, {2}};
  Host out{DType::f32, {2, 4}};
  Host lookupOut{DType::f32, {6, 4}};
  BadInput() {
    Random rng(5);
    for (int64_t i = 0; i < 20; ++i)
      weight.set(i, 10 * rng.uniform()); // norms well over max_norm
    for (int64_t i = 0; i < 6; ++i)
      indices.set(i, i % 5);
    offsets.set(0, 0);
    offsets.set(1, 3);
    std::memset(out.bytes.data(), 0x7b, out.bytes.size());
    std::memset(lookupOut.bytes.data(), 0x7b, lookupOut.bytes.size());
  }
  /// Expects `err` to carry `message`, and the weight and outputs untouched.
  void expectRejected(llvm::Error err, const std::string &message,
                      const Host &weightBefore) {
    ASSERT_TRUE(static_cast<bool>(err)) << "expected: " << message;
    std::string text = llvm::toString(std::move(err));
    EXPECT_NE(text.find(message), std::string::npos) << text;
    EXPECT_EQ(weight.bytes, weightBefore.bytes) << "weight was written";
    for (char c : out.bytes)
      ASSERT_EQ(c, 0x7b) << "out was written";
    for (char c : lookupOut.bytes)
      ASSERT_EQ(c, 0x7b) << "out was written";
  }
  llvm::Error bag(EmbeddingBagOptions o, const Tensor *psw = nullptr,
                  const Tensor *argmax = nullptr) {
    return engine().embeddingBag(indices.view, weight.view, &offsets.view,
                                 out.view, o, psw, argmax);
  }
};

TEST_F(BadInput, IndexOutOfRangeBeforeMaxNorm) {
  Host before = weight;
  indices.set(3, 7);
  EmbeddingOptions o;
  o.maxNorm = 1.0; // would write W if validation came late
  expectRejected(
      engine().embedding(indices.view, weight.view, lookupOut.view, o),
      "index 7 at position 3 is out of range [0, 5)", before);
  EmbeddingBagOptions b;
  b.maxNorm = 1.0;
  expectRejected(bag(b), "index 7 at position 3 is out of range [0, 5)",
                 before);
}

// Buffers the call writes may not share memory with others it reads: the
// indices inside the weight that max_norm rescales were read again after
// their check (out of range); an output over the offsets likewise.
TEST_F(BadInput, WrittenBuffersDoNotShareMemory) {
  Host before = weight;
  EmbeddingOptions o;
  o.maxNorm = 1.0;
  Tensor insideWeight{weight.view.data, DType::i32, {6}}; // rows 0 and 1
  std::vector<char> saved(weight.bytes);
  for (int i = 0; i < 6; ++i)
    static_cast<int32_t *>(weight.view.data)[i] = 1;
  Host beforeAlias = weight;
  expectRejected(engine().embedding(insideWeight, weight.view, lookupOut.view,
                                    o),
                 "'indices' shares memory with 'weight', which the call "
                 "writes",
                 beforeAlias);
  weight.bytes = saved;
  EmbeddingBagOptions b;
  b.maxNorm = 1.0;
  Tensor offsetsInWeight{weight.view.data, DType::i32, {2}};
  static_cast<int32_t *>(weight.view.data)[0] = 0;
  static_cast<int32_t *>(weight.view.data)[1] = 3;
  beforeAlias = weight;
  expectRejected(engine().embeddingBag(indices.view, weight.view,
                                       &offsetsInWeight, out.view, b),
                 "'offsets' shares memory with 'weight'", beforeAlias);
  weight.bytes = saved;
  // Without max_norm the op only reads the weight: sharing it is fine,
  // but not with the output.
  Tensor outOverIndices{indices.view.data, DType::f32, {2, 4}};
  std::vector<char> indicesBefore(indices.bytes);
  llvm::Error err = bag(EmbeddingBagOptions{});
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));
  err = engine().embeddingBag(indices.view, weight.view, &offsets.view,
                              outOverIndices, EmbeddingBagOptions{});
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err))
                .find("'indices' shares memory with 'out'"),
            std::string::npos);
  EXPECT_EQ(indices.bytes, indicesBefore);
  EXPECT_EQ(weight.bytes, before.bytes);
}

// The range check is split over threads: the message still names the
// first bad position, whatever the thread count.
TEST_F(BadInput, FirstBadIndexWithManyThreads) {
  Host before = weight;
  Host many(DType::i32, {300000});
  for (int64_t i = 0; i < 300000; ++i)
    many.set(i, i % 5);
  many.set(290000, -3);
  many.set(150001, 9);
  Host manyOut(DType::f32, {300000, 4});
  for (int threads : {1, 2}) {
    llvm::Error err =
        engine(threads).embedding(many.view, weight.view, manyOut.view);
    ASSERT_TRUE(static_cast<bool>(err));
    EXPECT_EQ(llvm::toString(std::move(err)),
              "index 9 at position 150001 is out of range [0, 5)");
  }
  EXPECT_EQ(weight.bytes, before.bytes);
}

TEST_F(BadInput, NegativeIndex) {
  Host before = weight;
  indices.set(5, -1);
  expectRejected(engine().embedding(indices.view, weight.view, lookupOut.view),
                 "index -1 at position 5 is out of range [0, 5)", before);
}

TEST_F(BadInput, Offsets) {
  Host before = weight;
  EmbeddingBagOptions o;
  offsets.set(0, 1);
  expectRejected(bag(o), "offsets[0] must be 0, got 1", before);
  offsets.set(0, 0);
  offsets.set(1, 9);
  expectRejected(bag(o), "offsets[1] = 9 exceeds the number of indices 6",
                 before);
  Host three(DType::i32, {3});
  three.set(0, 0), three.set(1, 4), three.set(2, 2);
  Host out3(DType::f32, {3, 4});
  expectRejected(
      engine().embeddingBag(indices.view, weight.view, &three.view, out3.view,
                            o),
      "offsets must be non-decreasing: offsets[2] = 2 < offsets[1] = 4",
      before);
  offsets.set(1, 5);
  o.includeLastOffset = true;
  Host out1(DType::f32, {1, 4});
  expectRejected(
      engine().embeddingBag(indices.view, weight.view, &offsets.view, out1.view,
                            o),
      "with include_last_offset the last offset must equal the number "
      "of indices 6, got 5",
      before);
  Host none(DType::i64, {0});
  Host out0(DType::f32, {0, 4});
  expectRejected(engine().embeddingBag(indices.view, weight.view, &none.view,
                                       out0.view, o),
                 "'include_last_offset' needs at least one offset", before);
}

TEST_F(BadInput, PaddingIdxOutOfRange) {
  Host before = weight;
  EmbeddingOptions o;
  o.paddingIdx = 5;
  expectRejected(
      engine().embedding(indices.view, weight.view, lookupOut.view, o),
      "'padding_idx' 5 is out of range [-5, 5)", before);
  EmbeddingBagOptions b;
  b.paddingIdx = -6;
  expectRejected(bag(b), "'padding_idx' -6 is out of range [-5, 5)", before);
}

TEST_F(BadInput, OptionCombinations) {
  Host before = weight;
  Host psw(DType::f32, {6});
  EmbeddingBagOptions o;
  o.mode = BagMode::max;
  expectRejected(bag(o, &psw.view),
                 "'per_sample_weights' is not allowed with mode 'max'", before);
  o.scaleGradByFreq = true;
  expectRejected(
      bag(o), "'scale_grad_by_freq' is not supported with mode 'max'", before);
  o.scaleGradByFreq = false;
  o.sparse = true;
  expectRejected(bag(o), "'sparse' is not supported with mode 'max'", before);
  o.mode = BagMode::sum;
  o.sparse = false;
  Host argmax(DType::i64, {2, 4});
  expectRejected(bag(o, nullptr, &argmax.view),
                 "'max_indices' is only produced with mode 'max', got 'sum'",
                 before);
  // scale_grad_by_freq with sparse is the sparse backward's error, not the
  // forward's (PyTorch: an eval forward of such a module runs).
  auto succeeds = [](llvm::Error err) {
    EXPECT_EQ(err ? llvm::toString(std::move(err)) : "", "");
  };
  EmbeddingOptions sparseFreq;
  sparseFreq.sparse = sparseFreq.scaleGradByFreq = true;
  succeeds(engine().embedding(indices.view, weight.view, lookupOut.view,
                              sparseFreq));
  o.sparse = o.scaleGradByFreq = true;
  succeeds(bag(o));
  std::memset(out.bytes.data(), 0x7b, out.bytes.size()); // the runs wrote
  std::memset(lookupOut.bytes.data(), 0x7b, lookupOut.bytes.size());
  o.sparse = o.scaleGradByFreq = false;
  o.maxNorm.reset();
  EmbeddingOptions e;
  e.profile = Profile::unit_scaling;
  e.scaleGradByFreq = true;
  expectRejected(
      engine().embedding(indices.view, weight.view, lookupOut.view, e),
      "'scale_grad_by_freq' is not supported by the unit-scaling profile",
      before);
  e.scaleGradByFreq = false;
  e.sparse = true;
  expectRejected(
      engine().embedding(indices.view, weight.view, lookupOut.view, e),
      "'sparse' is not supported by the unit-scaling profile", before);
  e.sparse = false;
  e.profile = Profile::torch;
  e.maxNorm = NAN;
  expectRejected(
      engine().embedding(indices.view, weight.view, lookupOut.view, e),
      "'max_norm' must not be NaN", before);
}

TEST_F(BadInput, DtypesRanksAndShapes) {
  Host before = weight;
  Host fidx(DType::f32, {6});
  expectRejected(engine().embedding(fidx.view, weight.view, lookupOut.view),
                 "'indices' must be a tensor of i32 or i64, got [6] f32",
                 before);
  Host iweight(DType::i32, {5, 4});
  expectRejected(
      engine().embedding(indices.view, iweight.view, lookupOut.view),
      "'weight' must be a 2-D tensor of f32, f64, f16 or bf16, got [5, 4] i32",
      before);
  Host wrongOut(DType::f32, {6, 5});
  expectRejected(engine().embedding(indices.view, weight.view, wrongOut.view),
                 "'out' must be [6, 4] f32, got [6, 5] f32", before);
  Host f64Out(DType::f64, {2, 4});
  expectRejected(engine().embeddingBag(indices.view, weight.view, &offsets.view,
                                       f64Out.view),
                 "'out' must be [2, 4] f32, got [2, 4] f64", before);
  expectRejected(
      engine().embeddingBag(indices.view, weight.view, nullptr, out.view),
      "1-D 'indices' need 'offsets'", before);
  Host idx2(DType::i64, {2, 3});
  expectRejected(
      engine().embeddingBag(idx2.view, weight.view, &offsets.view, out.view),
      "'offsets' must be absent when 'indices' is 2-D", before);
  Host idx3(DType::i64, {1, 2, 3});
  expectRejected(
      engine().embeddingBag(idx3.view, weight.view, nullptr, out.view),
      "'indices' of embedding_bag must be 1-D (with 'offsets') or 2-D", before);
  Host psw(DType::f64, {6});
  EmbeddingBagOptions o;
  o.mode = BagMode::sum;
  expectRejected(bag(o, &psw.view),
                 "'per_sample_weights' must be [6] f32, got [6] f64", before);
  Host badArgmax(DType::i32, {2, 4});
  o.mode = BagMode::max;
  expectRejected(bag(o, nullptr, &badArgmax.view),
                 "'max_indices' must be [2, 4] i64, got [2, 4] i32", before);
  Tensor huge = indices.view;
  huge.shape = {int64_t(1) << 33, int64_t(1) << 31};
  expectRejected(engine().embeddingBag(huge, weight.view, nullptr, out.view),
                 "'indices' is too large", before);
  Tensor noData = lookupOut.view;
  noData.data = nullptr;
  expectRejected(engine().embedding(indices.view, weight.view, noData),
                 "'out' has no data", before);
}

// Bindings raise by kind (Python: IndexError, TypeError, ValueError).
TEST_F(BadInput, ErrorKinds) {
  auto kind = [](llvm::Error err) {
    return errorKind(llvm::errorToErrorCode(std::move(err)));
  };
  indices.set(3, 7);
  EXPECT_EQ(kind(engine().embedding(indices.view, weight.view, lookupOut.view)),
            ErrorKind::index_out_of_range);
  indices.set(3, 3);
  Host fidx(DType::f32, {6});
  EXPECT_EQ(kind(engine().embedding(fidx.view, weight.view, lookupOut.view)),
            ErrorKind::wrong_dtype);
  Host iweight(DType::i32, {5, 4});
  EXPECT_EQ(
      kind(engine().embedding(indices.view, iweight.view, lookupOut.view)),
      ErrorKind::wrong_dtype);
  Host f64Out(DType::f64, {6, 4});
  EXPECT_EQ(kind(engine().embedding(indices.view, weight.view, f64Out.view)),
            ErrorKind::wrong_dtype);
  Host wrongOut(DType::f32, {6, 5});
  EXPECT_EQ(kind(engine().embedding(indices.view, weight.view, wrongOut.view)),
            ErrorKind::invalid_argument);
  offsets.set(1, 9);
  EXPECT_EQ(kind(bag({})), ErrorKind::invalid_argument);
  EXPECT_EQ(errorKind(llvm::inconvertibleErrorCode()), std::nullopt);
}

// Engine::planSpecs: the kernels a call runs, in order, without compiling,
// running or writing anything; the spec of a call is the one its kernel
// has, and a bad call is the call's error.
TEST(Engine, PlanSpecsAreTheKernelsOfTheCallWithoutRunningIt) {
  EngineOptions o;
  o.threads = 1;
  o.cache.useDiskCache = false;
  Engine e(o);
  Host w(DType::f32, {10, 4}), x(DType::i64, {3}), out(DType::f32, {3, 4});
  for (int64_t i = 0; i < 40; ++i)
    w.set(i, 1.0 + i);
  for (int64_t i = 0; i < 3; ++i)
    x.set(i, static_cast<double>(2 * i));
  Host before = w;
  EmbeddingOptions opts;
  opts.maxNorm = 1.0;
  auto specs = e.planSpecs([&](Engine &engine) {
    return engine.embedding(x.view, w.view, out.view, opts);
  });
  ASSERT_TRUE(static_cast<bool>(specs)) << llvm::toString(specs.takeError());
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].op, OpKind::renorm);
  EXPECT_EQ((*specs)[1].op, OpKind::embedding);
  EXPECT_EQ((*specs)[1].str(), "embedding:host:w=f32:i=i64:D=4");
  EXPECT_EQ(e.cache().stats().compiles, 0u);
  EXPECT_EQ(std::memcmp(w.view.data, before.view.data, w.size()), 0);
  // The call then runs those kernels: one compilation each.
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view, opts)));
  EXPECT_EQ(e.cache().stats().compiles, 2u);
  // Empty inputs run no kernel; a bad call is the call's error.
  Host none(DType::i64, {0}), noneOut(DType::f32, {0, 4});
  auto empty = e.planSpecs([&](Engine &engine) {
    return engine.embedding(none.view, w.view, noneOut.view);
  });
  ASSERT_TRUE(static_cast<bool>(empty));
  EXPECT_TRUE(empty->empty());
  x.set(0, 10);
  auto bad = e.planSpecs([&](Engine &engine) {
    return engine.embedding(x.view, w.view, out.view);
  });
  ASSERT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(errorKind(llvm::errorToErrorCode(bad.takeError())),
            ErrorKind::index_out_of_range);
}

// planSpecs plans only the calls of its own thread: another thread's call
// of the same Engine meanwhile runs and writes its output (review: the
// planning state was the Engine's, so that call was planned, not run).
TEST(Engine, PlanSpecsLeaveOtherThreadsCallsRunning) {
  EngineOptions o;
  o.threads = 1;
  o.cache.useDiskCache = false;
  Engine e(o);
  Host w(DType::f32, {10, 4}), x(DType::i64, {3}), out(DType::f32, {3, 4});
  for (int64_t i = 0; i < 40; ++i)
    w.set(i, 1.0 + i);
  for (int64_t i = 0; i < 3; ++i)
    x.set(i, static_cast<double>(i));
  std::promise<void> planning, otherDone;
  std::future<void> otherDoneF = otherDone.get_future();
  std::thread other([&] {
    planning.get_future().wait();
    EXPECT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
    otherDone.set_value();
  });
  Host planOut(DType::f32, {3, 4});
  auto specs = e.planSpecs([&](Engine &engine) {
    planning.set_value();
    otherDoneF.wait(); // the other call runs while this one plans
    return engine.embedding(x.view, w.view, planOut.view);
  });
  other.join();
  ASSERT_TRUE(static_cast<bool>(specs)) << llvm::toString(specs.takeError());
  EXPECT_EQ(specs->size(), 1u);
  for (int64_t i = 0; i < 12; ++i)
    EXPECT_EQ(out.at(i), 1.0 + i) << i; // rows 0, 1, 2 of w
}

// In a build with ASan the JIT instruments the kernels too
// (lib/JIT/Sanitizers.h): a kernel's read outside a caller's buffer is
// reported. Here the caller lies: the weight says 100 rows, the buffer
// holds 10, and row 50 passes validation.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMB_TEST_WITH_ASAN 1
#endif
#endif
#ifdef EMB_TEST_WITH_ASAN
void readPastTheCallersBuffer() {
  std::vector<float> rows(10 * 4, 1.0f), out(4);
  int64_t row = 50;
  Tensor weight{rows.data(), DType::f32, {100, 4}};
  Tensor indices{&row, DType::i64, {1}};
  Tensor result{out.data(), DType::f32, {1, 4}};
  EngineOptions o;
  o.threads = 1;
  o.cache.useDiskCache = false;
  (void)Engine(o).embedding(indices, weight, result);
}
#endif

TEST(SanitizedKernels, AReadPastTheCallersBufferIsReported) {
#ifndef EMB_TEST_WITH_ASAN
  GTEST_SKIP() << "ASan builds only (the sanitizer stage of scripts/test.sh)";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Past the buffer lies whatever the heap holds: an overflow, or a freed block.
  EXPECT_DEATH(readPastTheCallersBuffer(), "AddressSanitizer: heap-");
#endif
}

} // namespace

