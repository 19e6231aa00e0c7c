//===- QuantizedTest.cpp - bags of row-wise quantised tables --------------===//
//
// docs/semantics.md §6.2: the reference's packing against hand-computed
// rows, then Engine::embeddingBagQuantized (host and GPU-emulated kernels)
// against the f64 reference bag of the dequantised table, for int8 and
// int4 rows, every mode, per_sample_weights, padding, the three bag forms,
// f32 / f16 outputs and D odd and even; bad input is an error before any
// write.
//
//===----------------------------------------------------------------------===//

#include "emb/Reference/Reference.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"
#include "emb/Runtime/Numeric.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>

using namespace emb;

namespace {

using Host = HostTensor;

std::string cacheDir() {
  llvm::SmallString<128> dir;
  llvm::sys::fs::current_path(dir);
  return std::string(dir) + "/emb-test-kernel-cache";
}

Engine &engine(Target target = Target::host) {
  static std::map<Target, std::unique_ptr<Engine>> engines;
  auto &e = engines[target];
  if (!e) {
    EngineOptions o;
    o.threads = 2;
    o.target = target;
    o.cache.directory = cacheDir();
    e = std::make_unique<Engine>(o);
  }
  return *e;
}

float f32At(const std::vector<uint8_t> &bytes, size_t at) {
  float v;
  std::memcpy(&v, bytes.data() + at, 4);
  return v;
}
float f16At(const std::vector<uint8_t> &bytes, size_t at) {
  uint16_t h;
  std::memcpy(&h, bytes.data() + at, 2);
  return halfToFloat(h);
}

TEST(QuantizeRows, Int8RowByHand) {
  // min -1, max 1.55: scale = 2.55 / 255, q = round((w + 1) * 255 / 2.55).
  std::vector<float> w{-1.0f, 0.0f, 1.55f, 0.275f};
  auto packed = ref::quantizeRows(w, 1, 4, Quantization::int8);
  ASSERT_EQ(packed.size(), 12u);
  EXPECT_EQ(packed[0], 0);
  EXPECT_EQ(packed[1], 100);
  EXPECT_EQ(packed[2], 255);
  EXPECT_EQ(packed[3], 128); // 127.5 rounds to even
  EXPECT_EQ(f32At(packed, 4), (1.55f - -1.0f) / 255.0f);
  EXPECT_EQ(f32At(packed, 8), -1.0f);
  auto values = ref::dequantizeRows(packed, 1, 4, Quantization::int8);
  for (int d = 0; d < 4; ++d)
    EXPECT_NEAR(values[d], w[d], 0.01);
}

TEST(QuantizeRows, Int4OddRowByHand) {
  // min 0, max 1.5: scale = f16(0.1), elements 2k in the low nibble; an odd
  // D leaves the last high nibble 0.
  std::vector<float> w{0.0f, 1.5f, 0.3f};
  auto packed = ref::quantizeRows(w, 1, 3, Quantization::int4);
  ASSERT_EQ(packed.size(), 2u + 4u);
  float scale = f16At(packed, 2);
  EXPECT_EQ(scale, halfToFloat(floatToHalf(0.1f)));
  EXPECT_EQ(f16At(packed, 4), 0.0f);
  int q1 = static_cast<int>(std::lrintf(1.5f * (1.0f / scale)));
  int q2 = static_cast<int>(std::lrintf(0.3f * (1.0f / scale)));
  EXPECT_EQ(packed[0], (q1 << 4) | 0);
  EXPECT_EQ(packed[1], q2);
  // A constant row: scale 1, every q 0, bias the f16 value.
  auto flat = ref::quantizeRows({2.5f, 2.5f}, 1, 2, Quantization::int4);
  EXPECT_EQ(flat[0], 0);
  EXPECT_EQ(f16At(flat, 1), 1.0f);
  EXPECT_EQ(f16At(flat, 3), 2.5f);
}

struct Case {
  Quantization quant;
  DType out;
  int64_t dim;
  BagMode mode;
  int form; // 0: 1-D, 1: 1-D + include_last_offset, 2: 2-D
  bool psw, padding;
};

std::string describe(const Case &c) {
  return std::string(quantizationName(c.quant)) + " " + bagModeName(c.mode) +
         " out=" + dtypeName(c.out) + " D=" + std::to_string(c.dim) +
         " form=" + std::to_string(c.form) + (c.psw ? " psw" : "") +
         (c.padding ? " pad" : "");
}

void runCase(const Case &c, uint64_t seed, Target target) {
  SCOPED_TRACE(describe(c) + " seed=" + std::to_string(seed) + " " +
               targetName(target));
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  int64_t V = 1 + gen() % 30, numBags = gen() % 9, bagLen = gen() % 5;
  std::vector<float> table(V * c.dim);
  for (float &x : table)
    x = static_cast<float>(u(gen) * 3);
  std::vector<uint8_t> bytes = ref::quantizeRows(table, V, c.dim, c.quant);
  int64_t rowBytes = quantizedRowBytes(c.quant, c.dim);
  Host packed(DType::u8, {V, rowBytes});
  std::memcpy(packed.view.data, bytes.data(), bytes.size());

  bool twoD = c.form == 2;
  std::vector<int64_t> lengths(numBags);
  int64_t n = 0;
  for (auto &l : lengths)
    n += (l = twoD ? bagLen : gen() % 6);
  Host indices(DType::i64, twoD ? std::vector<int64_t>{numBags, bagLen}
                                : std::vector<int64_t>{n});
  std::optional<int64_t> pad;
  if (c.padding)
    pad = static_cast<int64_t>(gen() % V);
  for (int64_t i = 0; i < n; ++i)
    indices.set(i, static_cast<double>(pad && gen() % 4 == 0 ? *pad
                                                             : gen() % V));
  std::vector<int64_t> offs{0};
  for (int64_t l : lengths)
    offs.push_back(offs.back() + l);
  if (c.form != 1)
    offs.pop_back();
  Host offsets(DType::i32, {static_cast<int64_t>(offs.size())});
  for (size_t i = 0; i < offs.size(); ++i)
    offsets.set(i, offs[i]);
  Host psw(c.out, indices.view.shape);
  for (int64_t i = 0; i < n; ++i)
    psw.set(i, c.mode == BagMode::mean ? std::abs(u(gen)) + 0.25 : u(gen));
  Host out(c.out, {numBags, c.dim});

  EmbeddingBagOptions o;
  o.mode = c.mode;
  o.paddingIdx = pad;
  o.includeLastOffset = c.form == 1;
  llvm::Error err = engine(target).embeddingBagQuantized(
      indices.view, packed.view, c.quant, twoD ? nullptr : &offsets.view,
      out.view, o, c.psw ? &psw.view : nullptr);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));

  auto want = ref::embeddingBag(
      ref::dequantizeRows(bytes, V, c.dim, c.quant), c.dim, indices.toInt(),
      twoD ? std::vector<int64_t>{} : offsets.toInt(), numBags, bagLen,
      c.mode, c.psw ? psw.toDouble() : std::vector<double>{}, c.form == 1,
      pad);
  // The kernels dequantise with one f32 fma per element (the reference is
  // exact), then accumulate in f32.
  double tol = c.out == DType::f32 ? 1e-5 : 2e-3;
  for (int64_t i = 0; i < numBags * c.dim; ++i)
    ASSERT_LE(std::fabs(out.at(i) - want.output[i]),
              tol * std::max(1.0, std::fabs(want.output[i])))
        << "element " << i << ": got " << out.at(i) << ", want "
        << want.output[i];
}

void runMatrix(Target target, uint64_t seeds) {
  int k = 0;
  for (Quantization q : {Quantization::int8, Quantization::int4})
    for (int64_t dim : {1, 2, 3, 16, 17, 64, 130})
      for (BagMode mode :
           {BagMode::sum, BagMode::mean, BagMode::max, BagMode::sqrtn}) {
        ++k;
        Case c{q,
               k % 2 ? DType::f32 : DType::f16,
               dim,
               mode,
               k % 3,
               mode != BagMode::max && k % 4 < 2,
               k % 5 < 2};
        for (uint64_t seed = 1; seed <= seeds; ++seed)
          runCase(c, seed * 131 + k, target);
        if (::testing::Test::HasFatalFailure())
          return;
      }
}

TEST(QuantizedBag, EveryFormatModeAndDim) { runMatrix(Target::host, 3); }

TEST(GPUEmulated, QuantizedBagEveryFormatModeAndDim) {
  runMatrix(Target::gpu_emulated, 1);
}

TEST(QuantizedBag, BadInputIsAnErrorAndNothingIsWritten) {
  const int64_t V = 4, D = 8;
  Host packed(DType::u8, {V, D + 8}), ids(DType::i64, {3}),
      offs(DType::i64, {1}), out(DType::f32, {1, D});
  for (int i = 0; i < 3; ++i)
    ids.set(i, i);
  std::memset(out.view.data, 0x5a, out.size());
  std::vector<char> before(static_cast<char *>(out.view.data),
                           static_cast<char *>(out.view.data) + out.size());
  auto expectError = [&](llvm::Error err, const std::string &message) {
    ASSERT_TRUE(static_cast<bool>(err)) << message;
    std::string got = llvm::toString(std::move(err));
    EXPECT_NE(got.find(message), std::string::npos) << got;
    EXPECT_EQ(std::memcmp(before.data(), out.view.data, out.size()), 0)
        << message;
  };
  EmbeddingBagOptions o;
  o.mode = BagMode::sum;
  expectError(engine().embeddingBagQuantized(ids.view, packed.view,
                                             Quantization::int4, &offs.view,
                                             out.view, o),
              "'table' rows are 16 bytes, but int4 rows of D = 8 (out's "
              "dimension 1) are 8 (ceil(D/2) + 4)");
  Host floats(DType::f32, {V, D + 8});
  expectError(engine().embeddingBagQuantized(ids.view, floats.view,
                                             Quantization::int8, &offs.view,
                                             out.view, o),
              "'table' of a quantised bag must be a 2-D tensor of u8");
  Host wide(DType::f64, {1, D});
  expectError(engine().embeddingBagQuantized(ids.view, packed.view,
                                             Quantization::int8, &offs.view,
                                             wide.view, o),
              "'out' of a quantised bag must be a 2-D tensor of f32 or f16");
  EmbeddingBagOptions norm = o;
  norm.maxNorm = 1.0;
  expectError(engine().embeddingBagQuantized(ids.view, packed.view,
                                             Quantization::int8, &offs.view,
                                             out.view, norm),
              "'max_norm' is not supported with a quantised table");
  EmbeddingBagOptions sparse = o;
  sparse.sparse = true;
  expectError(engine().embeddingBagQuantized(ids.view, packed.view,
                                             Quantization::int8, &offs.view,
                                             out.view, sparse),
              "a quantised table has no gradient");
  Host halfWeights(DType::f16, {3});
  expectError(engine().embeddingBagQuantized(
                  ids.view, packed.view, Quantization::int8, &offs.view,
                  out.view, o, &halfWeights.view),
              "per_sample_weights");
  ids.set(1, V);
  expectError(engine().embeddingBagQuantized(ids.view, packed.view,
                                             Quantization::int8, &offs.view,
                                             out.view, o),
              "index 4 at position 1 is out of range [0, 4)");
  expectError(engine().embeddingBagQuantized(ids.view, packed.view,
                                             Quantization::none, &offs.view,
                                             out.view, o),
              "a quantised bag needs int8 or int4 rows");
}

} // namespace
