//===- BackwardDiffTest.cpp - generated gradient kernels vs the reference -===//
//
// Dense gradients of embedding and embedding_bag (sum, mean) against the
// f64 reference: dtypes x index dtypes x D in {1, 3, 16, 17, 64, 128, 1000}
// x padding x scale_grad_by_freq x per_sample_weights x 1-D/2-D x
// include_last_offset x profiles, with heavy repetition of few rows, empty
// bags and all-padding bags; rows long enough for the loop over D-blocks
// (D = 5000, 70000); identical bits with 1 and 2 threads; bad input
// rejected with nothing written.
//
//===----------------------------------------------------------------------===//

#include "emb/Reference/Reference.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"

#include "llvm/Support/FileSystem.h"

#include "llvm/ADT/ArrayRef.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

using namespace emb;

namespace {

const int64_t kDims[] = {1, 3, 16, 17, 64, 128, 1000};
const DType kFloats[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

Engine &engine(int threads = 2, Target target = Target::host) {
  static std::map<std::pair<int, Target>, std::unique_ptr<Engine>> engines;
  auto &e = engines[{threads, target}];
  if (!e) {
    llvm::SmallString<128> dir;
    llvm::sys::fs::current_path(dir);
    EngineOptions o;
    o.threads = threads;
    o.target = target;
    o.cache.directory = std::string(dir) + "/emb-test-kernel-cache";
    e = std::make_unique<Engine>(o);
  }
  return *e;
}

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

::testing::AssertionResult close(const HostTensor &got,
                                 const std::vector<double> &want) {
  double tol = tolerance(got.view.dtype);
  for (size_t i = 0; i < want.size(); ++i) {
    double g = got.at(i);
    if (!(std::fabs(g - want[i]) <= tol * std::max(1.0, std::fabs(want[i]))))
      return ::testing::AssertionFailure()
             << "element " << i << " (row " << i / (got.view.shape[1])
             << "): got " << g << ", want " << want[i];
  }
  return ::testing::AssertionSuccess();
}

struct GradCase {
  DType weight, indices;
  int64_t dim;
  bool padding, byFreq;
  Profile profile;
};

void runEmbeddingGrad(const GradCase &c, uint64_t seed,
                      Target target = Target::host,
                      bool deterministic = false) {
  SCOPED_TRACE(std::string("embedding_backward ") + targetName(target) +
               (deterministic ? " deterministic" : "") +
               " w=" + dtypeName(c.weight) + " i=" + dtypeName(c.indices) +
               " D=" + std::to_string(c.dim) + (c.padding ? " pad" : "") +
               (c.byFreq ? " freq" : "") + " " + profileName(c.profile) +
               " seed=" + std::to_string(seed));
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  int64_t V = 1 + gen() % 20;
  // Heavy repetition of few rows: indices drawn from a small subset.
  int64_t distinct = 1 + gen() % std::min<int64_t>(V, 4);
  std::vector<int64_t> shape;
  for (int64_t r = gen() % 3; r >= 0; --r)
    shape.push_back(gen() % 6);
  HostTensor indices(c.indices, shape);
  for (int64_t i = 0; i < indices.view.numel(); ++i)
    indices.set(i, static_cast<double>(gen() % distinct));
  std::optional<int64_t> pad;
  if (c.padding)
    pad = static_cast<int64_t>(gen() % distinct) - (gen() % 2 ? V : 0);
  std::vector<int64_t> gshape = shape;
  gshape.push_back(c.dim);
  HostTensor grad(c.weight, gshape);
  for (int64_t i = 0; i < grad.view.numel(); ++i)
    grad.set(i, u(gen));
  HostTensor gw(c.weight, {V, c.dim});
  std::memset(gw.bytes.data(), 0x55, gw.bytes.size()); // must be overwritten
  EmbeddingOptions o;
  o.paddingIdx = pad;
  o.scaleGradByFreq = c.byFreq;
  o.profile = c.profile;
  o.deterministic = deterministic;
  llvm::Error err =
      engine(2, target).embeddingBackward(grad.view, indices.view, gw.view, o);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));
  int64_t n = indices.view.numel();
  double scale = c.profile == Profile::unit_scaling && n > 0
                     ? std::sqrt(double(V) / double(n))
                     : 1.0;
  std::optional<int64_t> padRow;
  if (pad)
    padRow = *pad < 0 ? *pad + V : *pad;
  auto want = ref::embeddingBackward(grad.toDouble(), c.dim, indices.toInt(), V,
                                     padRow, c.byFreq, scale);
  EXPECT_TRUE(close(gw, want));
}

TEST(BackwardDiff, EmbeddingEveryDtypeDimAndOption) {
  int k = 0;
  for (int64_t dim : kDims)
    for (int variant = 0; variant < 6; ++variant) {
      GradCase c{kFloats[k % 4],
                 (k / 4) % 2 ? DType::i32 : DType::i64,
                 dim,
                 variant % 2 == 1,
                 variant / 2 == 1,
                 variant / 2 == 2 ? Profile::unit_scaling : Profile::torch};
      ++k;
      for (uint64_t seed = 1; seed <= 3; ++seed)
        runEmbeddingGrad(c, seed * 101 + k);
      if (HasFatalFailure())
        return;
    }
}

struct BagGradCase {
  DType weight, indices, offsets;
  int64_t dim;
  BagMode mode;
  bool twoD, includeLast, psw, padding, byFreq;
};

void runBagGrad(const BagGradCase &c, uint64_t seed,
                Target target = Target::host, bool deterministic = false) {
  SCOPED_TRACE(std::string("embedding_bag_backward ") + targetName(target) +
               (deterministic ? " deterministic" : "") + " " +
               bagModeName(c.mode) + " w=" + dtypeName(c.weight) +
               " D=" + std::to_string(c.dim) + (c.twoD ? " 2d" : " 1d") +
               (c.includeLast ? " last" : "") + (c.psw ? " psw" : "") +
               (c.padding ? " pad" : "") + (c.byFreq ? " freq" : "") +
               " seed=" + std::to_string(seed));
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  int64_t V = 1 + gen() % 20;
  int64_t distinct = 1 + gen() % std::min<int64_t>(V, 5);
  int64_t numBags = gen() % 8, bagLen = gen() % 5;
  std::vector<int64_t> lengths(numBags);
  int64_t n = 0;
  for (auto &l : lengths)
    n += (l = c.twoD ? bagLen : gen() % 6);
  HostTensor indices(c.indices, c.twoD ? std::vector<int64_t>{numBags, bagLen}
                                       : std::vector<int64_t>{n});
  int64_t padRow = c.padding ? static_cast<int64_t>(gen() % distinct) : -1;
  for (int64_t i = 0; i < n; ++i)
    indices.set(i, static_cast<double>(gen() % distinct));
  if (padRow >= 0 && numBags > 0) // an all-padding bag
    for (int64_t i = 0; i < lengths[0]; ++i)
      indices.set(i, padRow);
  std::vector<int64_t> offs{0};
  for (int64_t b = 0; b < numBags; ++b)
    offs.push_back(offs.back() + lengths[b]);
  if (!c.includeLast)
    offs.pop_back();
  HostTensor offsets(c.offsets, {static_cast<int64_t>(offs.size())});
  for (size_t i = 0; i < offs.size(); ++i)
    offsets.set(i, offs[i]);
  // A weighted mean's weights are positive (no divisor cancels to almost
  // 0); a bag whose weights are all 0 has factor 0 (docs/semantics.md §6.1).
  HostTensor psw(c.weight, indices.view.shape);
  for (int64_t i = 0; i < n; ++i)
    psw.set(i, c.mode == BagMode::mean ? std::abs(u(gen)) + 0.25 : u(gen));
  if (numBags > 1)
    for (int64_t i = offs[1]; i < offs[1] + lengths[1]; ++i)
      psw.set(i, 0.0);
  HostTensor grad(c.weight, {numBags, c.dim});
  for (int64_t i = 0; i < grad.view.numel(); ++i)
    grad.set(i, u(gen));
  HostTensor gw(c.weight, {V, c.dim});
  std::memset(gw.bytes.data(), 0x55, gw.bytes.size());
  EmbeddingBagOptions o;
  o.mode = c.mode;
  o.includeLastOffset = c.includeLast;
  o.scaleGradByFreq = c.byFreq;
  o.deterministic = deterministic;
  if (padRow >= 0)
    o.paddingIdx = padRow;
  llvm::Error err = engine(2, target).embeddingBagBackward(
      grad.view, indices.view, c.twoD ? nullptr : &offsets.view, gw.view, o,
      c.psw ? &psw.view : nullptr);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));
  ref::Bags bags;
  if (c.twoD) {
    bags.numBags = numBags;
    bags.bagLength = bagLen;
  } else {
    bags.offsets = offsets.toInt();
    bags.includeLastOffset = c.includeLast;
  }
  auto want = ref::embeddingBagBackward(
      grad.toDouble(), c.dim, indices.toInt(), bags, c.mode,
      c.psw ? psw.toDouble() : std::vector<double>{}, {}, V,
      padRow >= 0 ? std::optional<int64_t>(padRow) : std::nullopt, c.byFreq,
      1.0);
  EXPECT_TRUE(close(gw, want));
}

TEST(BackwardDiff, EmbeddingBagSumMeanSqrtnEveryDtypeDimAndOption) {
  int k = 0;
  for (int64_t dim : kDims)
    for (int form = 0; form < 3; ++form)
      for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::sqrtn})
        for (int opt = 0; opt < 2; ++opt) {
          BagGradCase c{kFloats[k % 4],
                        (k / 4) % 2 ? DType::i32 : DType::i64,
                        (k / 8) % 2 ? DType::i32 : DType::i64,
                        dim,
                        mode,
                        form == 2,
                        form == 1,
                        opt == 1,
                        (k + opt) % 2 == 0,
                        (k / 3) % 2 == 1};
          ++k;
          for (uint64_t seed = 1; seed <= 2; ++seed)
            runBagGrad(c, seed * 977 + k);
          if (HasFatalFailure())
            return;
        }
}

void runMaxGrad(int k, DType w, int64_t dim, Target target,
                bool deterministic = false) {
  std::mt19937_64 gen(k * 7919);
  std::uniform_real_distribution<double> u(-1, 1);
  int64_t V = 1 + gen() % 12, B = gen() % 9;
  SCOPED_TRACE(std::string("max ") + targetName(target) +
               (deterministic ? " deterministic" : "") + " w=" + dtypeName(w) +
               " D=" + std::to_string(dim) + " V=" + std::to_string(V));
  HostTensor indices(DType::i64, {B, 2}), grad(w, {B, dim}),
      maxIdx(DType::i64, {B, dim}), gw(w, {V, dim});
  for (int64_t i = 0; i < B * 2; ++i)
    indices.set(i, static_cast<double>(gen() % V));
  for (int64_t i = 0; i < B * dim; ++i) {
    grad.set(i, u(gen));
    // Few rows, so that columns collide; -1 for empty bags.
    int64_t r = static_cast<int64_t>(gen() % (V + 1)) - 1;
    static_cast<int64_t *>(maxIdx.view.data)[i] = std::min<int64_t>(r, 2);
  }
  std::memset(gw.bytes.data(), 0x55, gw.bytes.size());
  EmbeddingBagOptions o;
  o.mode = BagMode::max;
  o.profile = k % 3 == 0 ? Profile::unit_scaling : Profile::torch;
  o.deterministic = deterministic;
  llvm::Error err = engine(2, target).embeddingBagBackward(
      grad.view, indices.view, nullptr, gw.view, o, nullptr, &maxIdx.view);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));
  ref::Bags bags;
  bags.numBags = B;
  bags.bagLength = 2;
  double scale = o.profile == Profile::unit_scaling && B > 0
                     ? std::sqrt(double(V) / double(B * 2))
                     : 1.0;
  auto want = ref::embeddingBagBackward(grad.toDouble(), dim, indices.toInt(),
                                        bags, BagMode::max, {}, maxIdx.toInt(),
                                        V, {}, false, scale);
  EXPECT_TRUE(close(gw, want));
}

TEST(BackwardDiff, EmbeddingBagMaxEveryDtypeAndDim) {
  int k = 0;
  for (int64_t dim : kDims)
    for (DType w : kFloats)
      runMaxGrad(++k, w, dim, Target::host);
}

//===----------------------------------------------------------------------===//
// The GPU gradients (atomics; f16 / bf16 through an f32 scratch table),
// emulated on the host
//===----------------------------------------------------------------------===//

const int64_t kGPUDims[] = {1, 3, 6, 16, 17, 33, 36, 64, 100, 128, 1000};

TEST(GPUEmulated, EmbeddingGradEveryDtypeDimAndOption) {
  int k = 0;
  for (int64_t dim : kGPUDims)
    for (int variant = 0; variant < 6; ++variant) {
      GradCase c{kFloats[(variant + k) % 4],
                 (variant / 2 + k) % 2 ? DType::i32 : DType::i64,
                 dim,
                 variant % 2 == 1,
                 variant / 2 == 1,
                 variant / 2 == 2 ? Profile::unit_scaling : Profile::torch};
      ++k;
      for (uint64_t seed = 1; seed <= 2; ++seed)
        runEmbeddingGrad(c, seed * 101 + k, Target::gpu_emulated);
      if (HasFatalFailure())
        return;
    }
}

TEST(GPUEmulated, EmbeddingBagSumMeanSqrtnGradEveryDtypeDimAndOption) {
  int d = 0;
  for (int64_t dim : kGPUDims) {
    int v = 0;
    for (int form = 0; form < 3; ++form)
      for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::sqrtn})
        for (int psw = 0; psw < 2; ++psw)
          for (int pad = 0; pad < 2; ++pad, ++v) {
            BagGradCase c{kFloats[(v + d) % 4],
                          (v / 2 + d) % 2 ? DType::i32 : DType::i64,
                          (v / 3 + d + 1) % 2 ? DType::i32 : DType::i64,
                          dim,
                          mode,
                          form == 2,
                          form == 1,
                          psw == 1,
                          pad == 1,
                          (v + d) % 3 == 0};
            for (uint64_t seed = 1; seed <= 2; ++seed)
              runBagGrad(c, seed * 977 + v + 31 * d, Target::gpu_emulated);
            if (HasFatalFailure())
              return;
          }
    ++d;
  }
}

TEST(GPUEmulated, EmbeddingBagMaxGradEveryDtypeAndDim) {
  int k = 0;
  for (int64_t dim : kGPUDims)
    for (DType w : kFloats)
      runMaxGrad(++k, w, dim, Target::gpu_emulated);
}

// The deterministic GPU gradients (a stable radix sort by row, then one
// ordered sum per row): every lookup and bag variant, every dtype, against
// the reference, at the values of D of the vector and the scalar paths.
const int64_t kDeterministicDims[] = {1, 17, 64, 128, 1000};

TEST(GPUEmulated, DeterministicGradientsEveryVariant) {
  int k = 0;
  for (int64_t dim : kDeterministicDims) {
    for (int variant = 0; variant < 6; ++variant, ++k) {
      GradCase c{kFloats[(variant + k) % 4],
                 (variant / 2 + k) % 2 ? DType::i32 : DType::i64,
                 dim,
                 variant % 2 == 1,
                 variant / 2 == 1,
                 variant / 2 == 2 ? Profile::unit_scaling : Profile::torch};
      runEmbeddingGrad(c, 313 * k + 1, Target::gpu_emulated, true);
    }
    int v = 0;
    for (int form = 0; form < 3; ++form)
      for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::sqrtn})
        for (int psw = 0; psw < 2; ++psw)
          for (int pad = 0; pad < 2; ++pad, ++v, ++k) {
            BagGradCase c{kFloats[(v + k) % 4],
                          (v / 2 + k) % 2 ? DType::i32 : DType::i64,
                          (v / 3 + k + 1) % 2 ? DType::i32 : DType::i64,
                          dim,
                          mode,
                          form == 2,
                          form == 1,
                          psw == 1,
                          pad == 1,
                          (v + k) % 3 == 0};
            runBagGrad(c, 577 * k + v, Target::gpu_emulated, true);
          }
    for (DType w : kFloats)
      runMaxGrad(++k, w, dim, Target::gpu_emulated, true);
    if (HasFatalFailure())
      return;
  }
}

// Enough rows and entries for several radix passes (keys past 2^16; max
// keys (row * D + column) past 2^24) and many sort chunks: the
// deterministic kernels sum each row in input order, as the host kernels
// do, so their results are the host's to the bit.
TEST(GPUEmulated, DeterministicGradientsMatchTheHostBitwise) {
  const int64_t V = 70000, D = 256, B = 700, L = 5;
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> u(-1, 1);
  HostTensor indices(DType::i64, {B * L}), offsets(DType::i64, {B});
  for (int64_t i = 0; i < B * L; ++i) // a hot row and a spread
    indices.set(i, static_cast<double>(i % 4 == 0 ? 65537 : gen() % V));
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, static_cast<double>(b * L - (b % 7 == 3 ? 2 : 0)));
  for (DType w : {DType::f32, DType::f16}) {
    SCOPED_TRACE(dtypeName(w));
    HostTensor grad(w, {B, D}), flat(w, {B * L, D}), psw(w, {B * L});
    for (int64_t i = 0; i < B * D; ++i)
      grad.set(i, u(gen));
    for (int64_t i = 0; i < B * L * D; ++i)
      flat.set(i, u(gen));
    for (int64_t i = 0; i < B * L; ++i)
      psw.set(i, u(gen));
    auto both = [&](auto &&call) {
      HostTensor gpu(w, {V, D}), host(w, {V, D});
      EngineOptions o;
      o.threads = 1;
      o.target = Target::gpu_emulated;
      static Engine emulated(o); // one kernel per spec, compiled once
      ASSERT_FALSE(static_cast<bool>(call(emulated, gpu)));
      ASSERT_FALSE(static_cast<bool>(call(engine(2), host)));
      EXPECT_TRUE(gpu.bytes == host.bytes);
      for (int64_t i = 0; i < V * D; ++i)
        if (gpu.at(i) != host.at(i)) {
          ADD_FAILURE() << "element " << i << " (row " << i / D << "): GPU "
                        << gpu.at(i) << ", host " << host.at(i);
          break;
        }
    };
    EmbeddingOptions e;
    e.deterministic = true;
    e.paddingIdx = 3;
    both([&](Engine &eng, HostTensor &gw) {
      return eng.embeddingBackward(flat.view, indices.view, gw.view, e);
    });
    EmbeddingBagOptions o;
    o.deterministic = true;
    o.mode = BagMode::mean;
    o.scaleGradByFreq = true;
    both([&](Engine &eng, HostTensor &gw) {
      return eng.embeddingBagBackward(grad.view, indices.view, &offsets.view,
                                      gw.view, o);
    });
    o.mode = BagMode::sum;
    o.scaleGradByFreq = false;
    both([&](Engine &eng, HostTensor &gw) {
      return eng.embeddingBagBackward(grad.view, indices.view, &offsets.view,
                                      gw.view, o, &psw.view);
    });
    // max: the forward's max_indices, then their gradient.
    HostTensor pooled(w, {B, D}), maxIdx(DType::i64, {B, D});
    HostTensor table(w, {V, D});
    for (int64_t i = 0; i < V * D; i += 97)
      table.set(i, u(gen));
    EmbeddingBagOptions f;
    f.mode = BagMode::max;
    ASSERT_FALSE(static_cast<bool>(
        engine(2).embeddingBag(indices.view, table.view, &offsets.view,
                               pooled.view, f, nullptr, &maxIdx.view)));
    o.mode = BagMode::max;
    both([&](Engine &eng, HostTensor &gw) {
      return eng.embeddingBagBackward(grad.view, indices.view, &offsets.view,
                                      gw.view, o, nullptr, &maxIdx.view);
    });
  }
}

// Gradients larger than a row window (kMinGradRowsPerChunk = 4096 rows):
// the Engine splits the rows over threads, each kernel call computing rows
// [first, first + count). Repeated rows and the padding row sit on both
// sides of a window boundary; counts still cover the whole input.
TEST(GPUEmulated, GradientsAcrossRowWindows) {
  const int64_t V = 3 * 4096 + 100, D = 8, B = 300, L = 4;
  std::mt19937_64 gen(42);
  std::uniform_real_distribution<double> u(-1, 1);
  HostTensor indices(DType::i64, {B * L}), offsets(DType::i64, {B});
  const int64_t hot[] = {0, 4095, 4096, 8191, 8192, V - 1};
  for (int64_t i = 0; i < B * L; ++i)
    indices.set(i,
                static_cast<double>(i % 3 == 0 ? hot[gen() % 6] : gen() % V));
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, static_cast<double>(b * L));
  for (DType w : {DType::f32, DType::bf16}) {
    HostTensor grad(w, {B, D});
    for (int64_t i = 0; i < B * D; ++i)
      grad.set(i, u(gen));
    for (int variant = 0; variant < 3; ++variant) {
      bool freq = variant >= 1, det = variant == 2;
      SCOPED_TRACE(std::string(dtypeName(w)) + (freq ? " freq" : "") +
                   (det ? " deterministic" : ""));
      EmbeddingBagOptions o;
      o.mode = BagMode::mean;
      o.paddingIdx = 4096;
      o.scaleGradByFreq = freq;
      o.deterministic = det;
      HostTensor gpu(w, {V, D}), host(w, {V, D});
      ASSERT_FALSE(static_cast<bool>(
          engine(2, Target::gpu_emulated)
              .embeddingBagBackward(grad.view, indices.view, &offsets.view,
                                    gpu.view, o)));
      ASSERT_FALSE(static_cast<bool>(engine(2).embeddingBagBackward(
          grad.view, indices.view, &offsets.view, host.view, o)));
      EXPECT_TRUE(close(gpu, host.toDouble()));
      HostTensor flatGrad(w, {B * L, D}), gpuL(w, {V, D}), hostL(w, {V, D});
      for (int64_t i = 0; i < B * L * D; ++i)
        flatGrad.set(i, u(gen));
      EmbeddingOptions e;
      e.paddingIdx = 8191;
      e.scaleGradByFreq = freq;
      e.deterministic = det;
      ASSERT_FALSE(static_cast<bool>(
          engine(2, Target::gpu_emulated)
              .embeddingBackward(flatGrad.view, indices.view, gpuL.view, e)));
      ASSERT_FALSE(static_cast<bool>(engine(2).embeddingBackward(
          flatGrad.view, indices.view, hostL.view, e)));
      EXPECT_TRUE(close(gpuL, hostL.toDouble()));
    }
  }
}

/// The per_sample_weights gradient at D = `dims`, every input form, the
/// dtypes rotating with D.
void runPswGrads(llvm::ArrayRef<int64_t> dims, Target target) {
  int k = 0;
  for (int64_t dim : dims)
    for (int form = 0; form < 3; ++form) {
      DType w = kFloats[(k + form) % 4];
      DType idx = (k / 4) % 2 ? DType::i32 : DType::i64;
      ++k;
      std::mt19937_64 gen(k * 104729);
      std::uniform_real_distribution<double> u(-1, 1);
      int64_t V = 1 + gen() % 15, numBags = gen() % 70, bagLen = gen() % 5;
      bool twoD = form == 2, last = form == 1;
      SCOPED_TRACE(std::string("psw grad ") + targetName(target) +
                   " w=" + dtypeName(w) + " D=" + std::to_string(dim) +
                   " form=" + std::to_string(form));
      std::vector<int64_t> lengths(numBags);
      int64_t n = 0;
      for (auto &l : lengths)
        n += (l = twoD ? bagLen : gen() % 5);
      HostTensor indices(idx, twoD ? std::vector<int64_t>{numBags, bagLen}
                                   : std::vector<int64_t>{n});
      for (int64_t i = 0; i < n; ++i)
        indices.set(i, static_cast<double>(gen() % V));
      std::vector<int64_t> offs{0};
      for (int64_t l : lengths)
        offs.push_back(offs.back() + l);
      if (!last)
        offs.pop_back();
      HostTensor offsets(DType::i64, {static_cast<int64_t>(offs.size())});
      for (size_t i = 0; i < offs.size(); ++i)
        offsets.set(i, offs[i]);
      HostTensor weight(w, {V, dim}), grad(w, {numBags, dim}),
          gpsw(w, indices.view.shape);
      for (int64_t i = 0; i < V * dim; ++i)
        weight.set(i, u(gen));
      for (int64_t i = 0; i < numBags * dim; ++i)
        grad.set(i, u(gen));
      EmbeddingBagOptions o;
      o.mode = BagMode::sum;
      o.includeLastOffset = last;
      int64_t pad = k % 2 ? static_cast<int64_t>(gen() % V) : -1;
      if (pad >= 0)
        o.paddingIdx = pad;
      llvm::Error err = engine(2, target).embeddingBagPerSampleWeightsBackward(
          grad.view, weight.view, indices.view, twoD ? nullptr : &offsets.view,
          gpsw.view, o);
      ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));
      ref::Bags bags;
      if (twoD) {
        bags.numBags = numBags;
        bags.bagLength = bagLen;
      } else {
        bags.offsets = offs;
        bags.includeLastOffset = last;
      }
      auto want = ref::perSampleWeightsBackward(
          grad.toDouble(), weight.toDouble(), dim, indices.toInt(), bags,
          pad >= 0 ? std::optional<int64_t>(pad) : std::nullopt);
      // A dot product of D terms: the tolerance grows with sqrt(D).
      double tol = tolerance(w) * std::sqrt(double(dim));
      for (int64_t i = 0; i < n; ++i)
        ASSERT_LE(std::fabs(gpsw.at(i) - want[i]),
                  tol * std::max(1.0, std::fabs(want[i])))
            << "entry " << i << ": got " << gpsw.at(i) << ", want " << want[i];
    }
}

TEST(BackwardDiff, PerSampleWeightsEveryDtypeDimAndForm) {
  runPswGrads(kDims, Target::host);
}

TEST(GPUEmulated, PerSampleWeightsGradEveryDtypeDimAndForm) {
  runPswGrads(kGPUDims, Target::gpu_emulated);
}

void expectSparse(const HostTensor &rows, const HostTensor &values,
                  int64_t count, const ref::SparseGrad &want, int64_t dim) {
  ASSERT_EQ(count, static_cast<int64_t>(want.rows.size()));
  for (int64_t k = 0; k < count; ++k)
    ASSERT_EQ(rows.intAt(k), want.rows[k]) << "row " << k;
  double tol = tolerance(values.view.dtype);
  for (int64_t i = 0; i < count * dim; ++i)
    ASSERT_LE(std::fabs(values.at(i) - want.values[i]),
              tol * std::max(1.0, std::fabs(want.values[i])))
        << "value " << i << ": got " << values.at(i) << ", want "
        << want.values[i];
}

/// The sparse gradients (lookup and bag, 1-D and 2-D, sum / mean, psw,
/// padding, uncoalesced and coalesced) at D = `dims`, on `target`.
void runSparseGrads(llvm::ArrayRef<int64_t> dims, Target target) {
  int k = 0;
  for (int64_t dim : dims)
    for (int variant = 0; variant < 10; ++variant) {
      DType w = kFloats[k % 4];
      DType idx = (k / 4) % 2 ? DType::i32 : DType::i64;
      ++k;
      bool coalesced = variant % 2 == 1;
      bool bagForm = variant >= 2;
      // 6, 7: mean; 8: weighted sqrtn; 9: weighted mean.
      BagMode mode = variant == 8                     ? BagMode::sqrtn
                     : variant == 9 || variant >= 6 ? BagMode::mean
                                                    : BagMode::sum;
      bool twoD = variant == 4 || variant == 5;
      bool psw = variant == 3 || variant >= 8;
      std::mt19937_64 gen(k * 7717);
      std::uniform_real_distribution<double> u(-1, 1);
      int64_t V = 1 + gen() % 25, numBags = gen() % 9, bagLen = gen() % 5;
      int64_t distinct = 1 + gen() % std::min<int64_t>(V, 6);
      std::optional<int64_t> pad;
      if (k % 3 == 0)
        pad = static_cast<int64_t>(gen() % distinct);
      SCOPED_TRACE(std::string("sparse ") + targetName(target) +
                   " w=" + dtypeName(w) + " D=" + std::to_string(dim) +
                   " variant=" + std::to_string(variant) + (pad ? " pad" : ""));
      std::vector<int64_t> lengths(numBags);
      int64_t n = 0;
      for (auto &l : lengths)
        n += (l = twoD ? bagLen : gen() % 5);
      std::vector<int64_t> shape = bagForm && twoD
                                       ? std::vector<int64_t>{numBags, bagLen}
                                       : std::vector<int64_t>{n};
      HostTensor indices(idx, shape);
      for (int64_t i = 0; i < n; ++i)
        indices.set(i, static_cast<double>(gen() % distinct));
      HostTensor grad(w, bagForm ? std::vector<int64_t>{numBags, dim}
                                 : std::vector<int64_t>{n, dim});
      for (int64_t i = 0; i < grad.view.numel(); ++i)
        grad.set(i, u(gen));
      HostTensor rows(DType::i64, {n}), values(w, {n, dim});
      std::vector<int64_t> offs{0};
      for (int64_t l : lengths)
        offs.push_back(offs.back() + l);
      offs.pop_back();
      HostTensor offsets(DType::i64, {static_cast<int64_t>(offs.size())});
      for (size_t i = 0; i < offs.size(); ++i)
        offsets.set(i, offs[i]);
      HostTensor weights(w, shape);
      for (int64_t i = 0; i < n; ++i)
        weights.set(i, mode == BagMode::mean ? std::abs(u(gen)) + 0.25
                                             : u(gen));
      llvm::Expected<int64_t> count = 0;
      ref::SparseGrad want;
      if (!bagForm) {
        EmbeddingOptions o;
        o.paddingIdx = pad;
        count = engine(2, target).embeddingSparseBackward(
            grad.view, indices.view, V, rows.view, values.view, o, coalesced);
        want = ref::sparseBackward(grad.toDouble(), dim, indices.toInt(),
                                   nullptr, BagMode::sum, {}, pad, 1.0);
      } else {
        EmbeddingBagOptions o;
        o.mode = mode;
        o.paddingIdx = pad;
        count = engine(2, target).embeddingBagSparseBackward(
            grad.view, indices.view, twoD ? nullptr : &offsets.view, V,
            rows.view, values.view, o, psw ? &weights.view : nullptr,
            coalesced);
        ref::Bags bags;
        if (twoD) {
          bags.numBags = numBags;
          bags.bagLength = bagLen;
        } else {
          bags.offsets = offs;
        }
        want = ref::sparseBackward(
            grad.toDouble(), dim, indices.toInt(), &bags, mode,
            psw ? weights.toDouble() : std::vector<double>{}, pad, 1.0);
      }
      ASSERT_TRUE(static_cast<bool>(count))
          << llvm::toString(count.takeError());
      if (coalesced)
        want = ref::coalesce(want, dim);
      expectSparse(rows, values, *count, want, dim);
      if (::testing::Test::HasFatalFailure())
        return;
    }
}

TEST(BackwardDiff, SparseEveryFormDtypeAndDim) {
  runSparseGrads(kDims, Target::host);
}

// The GPU kernels: a compaction in input order (chunk counts, a scan, the
// size read back), or the radix sort by row and ordered sums per row.
TEST(GPUEmulated, SparseGradEveryFormDtypeAndDim) {
  runSparseGrads(kGPUDims, Target::gpu_emulated);
}

// Many chunks of the compaction, several radix passes, a hot row and
// padding: the GPU kernels give the host kernels' results to the bit
// (uncoalesced: the same products; coalesced: the same ordered sums).
TEST(GPUEmulated, SparseGradientsMatchTheHostBitwise) {
  const int64_t V = 70000, D = 64, B = 700, L = 5, n = B * L;
  std::mt19937_64 gen(11);
  std::uniform_real_distribution<double> u(-1, 1);
  HostTensor indices(DType::i64, {n}), offsets(DType::i64, {B});
  for (int64_t i = 0; i < n; ++i)
    indices.set(i, static_cast<double>(i % 5 == 0 ? 65537 : gen() % V));
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, static_cast<double>(b * L));
  HostTensor grad(DType::f32, {B, D}), flat(DType::f32, {n, D}),
      psw(DType::f32, {n});
  for (int64_t i = 0; i < B * D; ++i)
    grad.set(i, u(gen));
  for (int64_t i = 0; i < n * D; ++i)
    flat.set(i, u(gen));
  for (int64_t i = 0; i < n; ++i)
    psw.set(i, u(gen));
  for (bool coalesced : {false, true}) {
    SCOPED_TRACE(coalesced ? "coalesced" : "uncoalesced");
    auto both = [&](auto &&call) {
      HostTensor gpuRows(DType::i64, {n}), gpuValues(DType::f32, {n, D}),
          hostRows(DType::i64, {n}), hostValues(DType::f32, {n, D});
      auto m = call(engine(2, Target::gpu_emulated), gpuRows, gpuValues);
      auto want = call(engine(2), hostRows, hostValues);
      ASSERT_TRUE(static_cast<bool>(m)) << llvm::toString(m.takeError());
      ASSERT_TRUE(static_cast<bool>(want)) << llvm::toString(want.takeError());
      ASSERT_EQ(*m, *want);
      EXPECT_TRUE(std::equal(gpuRows.bytes.begin(),
                             gpuRows.bytes.begin() + *m * 8,
                             hostRows.bytes.begin()));
      EXPECT_TRUE(std::equal(gpuValues.bytes.begin(),
                             gpuValues.bytes.begin() + *m * D * 4,
                             hostValues.bytes.begin()));
    };
    EmbeddingOptions e;
    e.paddingIdx = 3;
    both([&](Engine &eng, HostTensor &r, HostTensor &v) {
      return eng.embeddingSparseBackward(flat.view, indices.view, V, r.view,
                                         v.view, e, coalesced);
    });
    EmbeddingBagOptions o;
    o.mode = BagMode::mean;
    o.paddingIdx = 65537;
    both([&](Engine &eng, HostTensor &r, HostTensor &v) {
      return eng.embeddingBagSparseBackward(grad.view, indices.view,
                                            &offsets.view, V, r.view, v.view, o,
                                            nullptr, coalesced);
    });
    o.mode = BagMode::sum;
    o.paddingIdx.reset();
    both([&](Engine &eng, HostTensor &r, HostTensor &v) {
      return eng.embeddingBagSparseBackward(grad.view, indices.view,
                                            &offsets.view, V, r.view, v.view, o,
                                            &psw.view, coalesced);
    });
  }
}

// Empty offsets with indices: no bag, so no contribution: gW and the psw
// gradient are zeros (not stale memory), the sparse gradient is empty.
// Past cpu::kMaxUnrolledDBlocks D-blocks (lib/Conversion/EmbCommon/
// CPUConfig.h) the gradient kernels loop over a row's full blocks at run time
// and unroll the partial tail: D = 5000 (9 blocks of 512 f32 lanes + 392)
// and 70000 (136 + 368), every gradient.
TEST(BackwardDiff, LongRowsLoopOverDBlocks) {
  const int64_t dims[] = {5000, 70000};
  int k = 0;
  for (int64_t dim : dims) {
    DType w = kFloats[k % 4], other = kFloats[(k + 1) % 4];
    ++k;
    runEmbeddingGrad({w, DType::i64, dim, true, true, Profile::torch},
                     31 * k);
    runBagGrad({other, DType::i32, DType::i64, dim, BagMode::mean, false,
                false, false, true, false},
               37 * k);
    runBagGrad({w, DType::i64, DType::i64, dim, BagMode::sum, true, false,
                true, false, true},
               41 * k);
    runMaxGrad(k, DType::f32, dim, Target::host); // gW += g in bag order
    if (HasFatalFailure())
      return;
  }
  runPswGrads(dims, Target::host);
  runSparseGrads(dims, Target::host);
}

TEST(BackwardDiff, NoBagsGiveZeroGradients) {
  HostTensor indices(DType::i64, {2}), offsets(DType::i64, {0}),
      grad(DType::f32, {0, 8}), gw(DType::f32, {4, 8}),
      weight(DType::f32, {4, 8}), gpsw(DType::f32, {2}), rows(DType::i64, {2}),
      values(DType::f32, {2, 8});
  indices.set(0, 1), indices.set(1, 2);
  std::memset(gw.bytes.data(), 0x55, gw.bytes.size());
  std::memset(gpsw.bytes.data(), 0x55, gpsw.bytes.size());
  EmbeddingBagOptions o;
  o.mode = BagMode::sum;
  ASSERT_FALSE(static_cast<bool>(engine().embeddingBagBackward(
      grad.view, indices.view, &offsets.view, gw.view, o)));
  for (int64_t i = 0; i < 32; ++i)
    ASSERT_EQ(gw.at(i), 0.0);
  ASSERT_FALSE(static_cast<bool>(engine().embeddingBagPerSampleWeightsBackward(
      grad.view, weight.view, indices.view, &offsets.view, gpsw.view, o)));
  EXPECT_EQ(gpsw.at(0), 0.0);
  EXPECT_EQ(gpsw.at(1), 0.0);
  auto m = engine().embeddingBagSparseBackward(
      grad.view, indices.view, &offsets.view, 4, rows.view, values.view, o);
  ASSERT_TRUE(static_cast<bool>(m));
  EXPECT_EQ(*m, 0);
}

TEST(BackwardDiff, SparseBadInput) {
  HostTensor indices(DType::i64, {3}), grad(DType::f32, {3, 2}),
      rows(DType::i64, {2}), values(DType::f32, {2, 2});
  for (int i = 0; i < 3; ++i)
    indices.set(i, i);
  auto expectError = [&](llvm::Expected<int64_t> r, const std::string &msg) {
    ASSERT_FALSE(static_cast<bool>(r)) << msg;
    std::string text = llvm::toString(r.takeError());
    EXPECT_NE(text.find(msg), std::string::npos) << text;
  };
  expectError(engine().embeddingSparseBackward(grad.view, indices.view, 5,
                                               rows.view, values.view),
              "'rows' has room for 2 rows, the gradient needs 3");
  EmbeddingOptions freq;
  freq.scaleGradByFreq = true;
  expectError(engine().embeddingSparseBackward(grad.view, indices.view, 5,
                                               rows.view, values.view, freq),
              "'scale_grad_by_freq' is not supported with sparse gradients");
  EmbeddingOptions unit;
  unit.profile = Profile::unit_scaling;
  expectError(engine().embeddingSparseBackward(grad.view, indices.view, 5,
                                               rows.view, values.view, unit),
              "'sparse' is not supported by the unit-scaling profile");
  expectError(engine().embeddingSparseBackward(grad.view, indices.view, 2,
                                               rows.view, values.view),
              "index 2 at position 2 is out of range [0, 2)");
  HostTensor noD(DType::f32, {3, 0}), noDValues(DType::f32, {2, 0});
  std::memset(rows.bytes.data(), 0x7b, rows.bytes.size());
  expectError(engine().embeddingSparseBackward(noD.view, indices.view, 5,
                                               rows.view, noDValues.view, {},
                                               /*coalesced=*/true),
              "sparse gradients need D > 0");
  for (char ch : rows.bytes)
    ASSERT_EQ(ch, 0x7b) << "rows were written";
  HostTensor offsets(DType::i64, {1}), bagGrad(DType::f32, {1, 2});
  EmbeddingBagOptions max;
  max.mode = BagMode::max;
  expectError(engine().embeddingBagSparseBackward(bagGrad.view, indices.view,
                                                  &offsets.view, 5, rows.view,
                                                  values.view, max),
              "sparse gradients are not supported with mode 'max'");
}

// The dense gradients split their rows over threads (large V); the bits
// must not depend on it, for hot rows with long runs and for the rest.
TEST(BackwardDiff, IdenticalBitsWithOneAndTwoThreads) {
  std::mt19937_64 gen(3);
  const int64_t V = 30000, D = 32, N = 20000, B = 2000;
  HostTensor indices(DType::i64, {N}), grad(DType::f32, {N, D}),
      bagGrad(DType::bf16, {B, D}), offsets(DType::i64, {B});
  for (int64_t i = 0; i < N; ++i) // half hot rows, half spread out
    indices.set(i, static_cast<double>(i % 2 ? gen() % 7 : gen() % V));
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t i = 0; i < N * D; ++i)
    grad.set(i, u(gen));
  for (int64_t i = 0; i < B * D; ++i)
    bagGrad.set(i, u(gen));
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, b * 10);
  HostTensor a(DType::f32, {V, D}), b(DType::f32, {V, D});
  EmbeddingOptions freq;
  freq.scaleGradByFreq = true;
  ASSERT_FALSE(static_cast<bool>(
      engine(1).embeddingBackward(grad.view, indices.view, a.view, freq)));
  ASSERT_FALSE(static_cast<bool>(
      engine(2).embeddingBackward(grad.view, indices.view, b.view, freq)));
  EXPECT_EQ(a.bytes, b.bytes);
  auto want = ref::embeddingBackward(grad.toDouble(), D, indices.toInt(), V,
                                     std::nullopt, true, 1.0);
  EXPECT_TRUE(close(b, want));
  HostTensor c(DType::bf16, {V, D}), d(DType::bf16, {V, D});
  EmbeddingBagOptions mean;
  mean.mode = BagMode::mean;
  ASSERT_FALSE(static_cast<bool>(engine(1).embeddingBagBackward(
      bagGrad.view, indices.view, &offsets.view, c.view, mean)));
  ASSERT_FALSE(static_cast<bool>(engine(2).embeddingBagBackward(
      bagGrad.view, indices.view, &offsets.view, d.view, mean)));
  EXPECT_EQ(c.bytes, d.bytes);
}

// A caller's executor (EngineOptions::parallelFor) in place of the pool:
// ranges of uneven lengths run in reverse order give the pool's bits, for
// the forward and the split gradients, and the shared kernel cache
// compiles nothing again.
TEST(BackwardDiff, CallersExecutorGivesThePoolsBits) {
  std::mt19937_64 gen(5);
  const int64_t V = 30000, D = 32, N = 40000, B = 40000;
  HostTensor indices(DType::i64, {N}), grad(DType::f32, {N, D}),
      weight(DType::f32, {V, D}), offsets(DType::i64, {B});
  for (int64_t i = 0; i < N; ++i)
    indices.set(i, static_cast<double>(i % 2 ? gen() % 7 : gen() % V));
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t i = 0; i < N * D; ++i)
    grad.set(i, u(gen));
  for (int64_t i = 0; i < V * D; ++i)
    weight.set(i, u(gen));
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, b);
  int ranges = 0;
  EngineOptions options;
  options.kernelCache = engine(2).sharedCache();
  options.parallelFor = [&](int64_t n, int64_t grain,
                            llvm::function_ref<void(int64_t, int64_t)> body) {
    std::vector<std::pair<int64_t, int64_t>> split;
    for (int64_t b = 0; b < n;) {
      int64_t e = std::min(n, b + grain + static_cast<int64_t>(gen() % 97));
      if (n - e < grain) // no range shorter than grain
        e = n;
      split.push_back({b, e});
      b = e;
    }
    for (auto it = split.rbegin(); it != split.rend(); ++it, ++ranges)
      body(it->first, it->second);
  };
  Engine callers(options);
  EXPECT_EQ(callers.threads(), 0);

  HostTensor poolOut(DType::f32, {B, D}), callerOut(DType::f32, {B, D});
  EmbeddingBagOptions sum;
  sum.mode = BagMode::sum;
  ASSERT_FALSE(static_cast<bool>(engine(2).embeddingBag(
      indices.view, weight.view, &offsets.view, poolOut.view, sum)));
  HostTensor a(DType::f32, {V, D}), b(DType::f32, {V, D});
  EmbeddingOptions freq;
  freq.scaleGradByFreq = true;
  ASSERT_FALSE(static_cast<bool>(
      engine(2).embeddingBackward(grad.view, indices.view, a.view, freq)));
  uint64_t compiles = engine(2).cache().stats().compiles.load();

  ASSERT_FALSE(static_cast<bool>(callers.embeddingBag(
      indices.view, weight.view, &offsets.view, callerOut.view, sum)));
  ASSERT_FALSE(static_cast<bool>(
      callers.embeddingBackward(grad.view, indices.view, b.view, freq)));
  EXPECT_GT(ranges, 2) << "the calls were split through the executor";
  EXPECT_EQ(poolOut.bytes, callerOut.bytes);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(callers.cache().stats().compiles.load(), compiles);
}

TEST(BackwardDiff, BadInputIsRejectedAndNothingWritten) {
  HostTensor indices(DType::i64, {4}), grad(DType::f32, {4, 3}),
      gw(DType::f32, {5, 3});
  for (int i = 0; i < 4; ++i)
    indices.set(i, i);
  indices.set(2, 9);
  std::memset(gw.bytes.data(), 0x7b, gw.bytes.size());
  auto expectError = [&](llvm::Error err, const std::string &message) {
    ASSERT_TRUE(static_cast<bool>(err)) << message;
    std::string text = llvm::toString(std::move(err));
    EXPECT_NE(text.find(message), std::string::npos) << text;
    for (char ch : gw.bytes)
      ASSERT_EQ(ch, 0x7b) << "grad_weight was written";
  };
  expectError(engine().embeddingBackward(grad.view, indices.view, gw.view),
              "index 9 at position 2 is out of range [0, 5)");
  indices.set(2, 2);
  HostTensor wrong(DType::f32, {4, 2});
  expectError(engine().embeddingBackward(wrong.view, indices.view, gw.view),
              "'grad' must be [4, 3] f32, got [4, 2] f32");
  EmbeddingOptions sparse;
  sparse.sparse = true;
  expectError(
      engine().embeddingBackward(grad.view, indices.view, gw.view, sparse),
      "the sparse gradient is computed by embeddingSparseBackward");
  EmbeddingOptions unit;
  unit.profile = Profile::unit_scaling;
  unit.scaleGradByFreq = true;
  expectError(
      engine().embeddingBackward(grad.view, indices.view, gw.view, unit),
      "'scale_grad_by_freq' is not supported by the unit-scaling profile");
  HostTensor offsets(DType::i64, {2}), bagGrad(DType::f32, {2, 3});
  offsets.set(0, 0), offsets.set(1, 2);
  EmbeddingBagOptions max;
  max.mode = BagMode::max;
  expectError(engine().embeddingBagBackward(bagGrad.view, indices.view,
                                            &offsets.view, gw.view, max),
              "the gradient of mode 'max' needs 'max_indices'");
  HostTensor badMax(DType::i64, {2, 3});
  badMax.set(4, 5);
  expectError(engine().embeddingBagBackward(bagGrad.view, indices.view,
                                            &offsets.view, gw.view, max,
                                            nullptr, &badMax.view),
              "max_indices value 5 at position 4 is out of range [-1, 5)");
  HostTensor psw(DType::f32, {4});
  expectError(engine().embeddingBagBackward(bagGrad.view, indices.view,
                                            &offsets.view, gw.view, max,
                                            &psw.view, &badMax.view),
              "'per_sample_weights' is not allowed with mode 'max'");
  // The per_sample_weights gradient of a weighted mean or sqrtn is not
  // defined (docs/semantics.md §6.1).
  for (BagMode mode : {BagMode::mean, BagMode::sqrtn}) {
    EmbeddingBagOptions o;
    o.mode = mode;
    HostTensor weight(DType::f32, {5, 3}), gpsw(DType::f32, {4});
    expectError(engine().embeddingBagPerSampleWeightsBackward(
                    bagGrad.view, weight.view, indices.view, &offsets.view,
                    gpsw.view, o),
                std::string("the per_sample_weights gradient needs mode "
                            "'sum', got '") +
                    bagModeName(mode) + "'");
  }
}

} // namespace
