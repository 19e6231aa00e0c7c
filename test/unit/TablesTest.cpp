//===- TablesTest.cpp - many tables in one call ---------------------------===//
//
// docs/semantics.md §6.3: Engine::embeddingBagTables (host and
// GPU-emulated kernels) against T single-table reference bags written into
// their columns: mixed V, D (odd and even), modes, padding, empty bags and
// tables, sequence tables (mode none: one-entry bags side by side),
// per_sample_weights, every float dtype; bad input is an error that names
// the table, before any write.
//
//===----------------------------------------------------------------------===//

#include "emb/Reference/Reference.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"

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

Engine &engine(Target target = Target::host) {
  static std::map<Target, std::unique_ptr<Engine>> engines;
  auto &e = engines[target];
  if (!e) {
    llvm::SmallString<128> dir;
    llvm::sys::fs::current_path(dir);
    EngineOptions o;
    o.threads = 2;
    o.target = target;
    o.cache.directory = std::string(dir) + "/emb-test-kernel-cache";
    e = std::make_unique<Engine>(o);
  }
  return *e;
}

double tolerance(DType d) {
  return d == DType::f64 ? 1e-12 : d == DType::f32 ? 2e-5
                                 : d == DType::f16 ? 4e-3
                                                   : 3e-2;
}

/// The length of every bag of sequence table `t` in runCase.
int64_t sequenceLengthOf(const TableOptions &table, size_t t) {
  return table.numEmbeddings
             ? table.sequenceLength.value_or(1 + (table.numEmbeddings + t) % 4)
             : 0;
}

/// A random instance of `tables` with B bags each, run on `target` and
/// compared with one reference bag per table (a sequence table: one
/// reference bag per entry).
void runCase(std::vector<TableOptions> tables, DType dtype, bool psw,
             uint64_t seed, Target target, int64_t bags = -1) {
  SCOPED_TRACE("dtype=" + std::string(dtypeName(dtype)) +
               " T=" + std::to_string(tables.size()) +
               " seed=" + std::to_string(seed) + " " + targetName(target));
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  int64_t T = tables.size(), B = bags >= 0 ? bags : gen() % 7, total = 0,
          elements = 0;
  for (size_t t = 0; t < tables.size(); ++t) {
    const TableOptions &table = tables[t];
    total += table.embeddingDim *
             (table.mode == BagMode::none ? sequenceLengthOf(table, t) : 1);
    elements += table.numEmbeddings * table.embeddingDim;
  }
  // Without bags a sequence table's length is not in the offsets: say it.
  for (size_t t = 0; t < tables.size(); ++t)
    if (B == 0 && tables[t].mode == BagMode::none)
      tables[t].sequenceLength = sequenceLengthOf(tables[t], t);
  Host weights(dtype, {elements});
  for (int64_t i = 0; i < elements; ++i)
    weights.set(i, u(gen));
  std::vector<int64_t> offs{0}, ids;
  for (size_t t = 0; t < tables.size(); ++t)
    for (int64_t b = 0; b < B; ++b) {
      const TableOptions &table = tables[t];
      int64_t len = table.mode == BagMode::none ? sequenceLengthOf(table, t)
                    : table.numEmbeddings       ? gen() % 5
                                                : 0; // empty bags too
      for (int64_t k = 0; k < len; ++k)
        ids.push_back(gen() % table.numEmbeddings);
      offs.push_back(ids.size());
    }
  int64_t n = ids.size();
  Host indices(DType::i64, {n}), offsets(DType::i32, {T * B + 1}),
      weightsOfEntries(dtype, {n}), out(dtype, {B, total});
  for (int64_t i = 0; i < n; ++i) {
    indices.set(i, ids[i]);
    weightsOfEntries.set(i, std::abs(u(gen)) + 0.25);
  }
  for (int64_t i = 0; i <= T * B; ++i)
    offsets.set(i, offs[i]);
  std::memset(out.view.data, 0x5a, out.size());

  llvm::Error err = engine(target).embeddingBagTables(
      indices.view, weights.view, tables, offsets.view, out.view,
      psw ? &weightsOfEntries.view : nullptr);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));

  std::vector<double> w = weights.toDouble(), x = indices.toDouble(),
                      p = weightsOfEntries.toDouble();
  int64_t at = 0, column = 0;
  for (int64_t t = 0; t < T; ++t) {
    const TableOptions &table = tables[t];
    int64_t V = table.numEmbeddings, D = table.embeddingDim;
    std::vector<double> tw(w.begin() + at, w.begin() + at + V * D);
    int64_t first = offs[t * B], last = offs[(t + 1) * B];
    std::vector<int64_t> tx(ids.begin() + first, ids.begin() + last);
    std::vector<double> tp;
    if (psw)
      tp.assign(p.begin() + first, p.begin() + last);
    // A sequence table's L rows side by side: its entries as bags of one.
    bool sequence = table.mode == BagMode::none;
    int64_t L = sequence ? sequenceLengthOf(table, t) : 1;
    std::vector<int64_t> to;
    if (sequence)
      for (int64_t j = 0; j <= last - first; ++j)
        to.push_back(j);
    else
      for (int64_t b = 0; b <= B; ++b)
        to.push_back(offs[t * B + b] - first);
    std::optional<int64_t> pad;
    if (table.paddingIdx)
      pad = *table.paddingIdx < 0 ? *table.paddingIdx + V : *table.paddingIdx;
    auto want = ref::embeddingBag(tw, D, tx, to, 0, 0,
                                  sequence ? BagMode::sum : table.mode, tp,
                                  /*includeLastOffset=*/true, pad);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t d = 0; d < L * D; ++d) {
        double g = out.at(b * total + column + d),
               e = want.output[b * L * D + d];
        ASSERT_LE(std::fabs(g - e), tolerance(dtype) * std::max(1.0, std::abs(e)))
            << "table " << t << " bag " << b << " column " << d;
      }
    at += V * D;
    column += L * D;
  }
}

std::vector<TableOptions> someTables(int variant) {
  std::vector<TableOptions> t;
  BagMode modes[] = {BagMode::sum, BagMode::mean, BagMode::max,
                     BagMode::sqrtn};
  int64_t dims[] = {4, 7, 16, 1, 32, 3};
  int64_t rows[] = {10, 1, 50, 3, 0, 20};
  for (int k = 0; k < 2 + variant % 5; ++k) {
    TableOptions o;
    o.numEmbeddings = rows[(k + variant) % 6];
    o.embeddingDim = dims[(k * 2 + variant) % 6];
    o.mode = modes[(k + variant) % 4];
    if ((k + variant) % 3 == 0 && o.numEmbeddings > 0)
      o.paddingIdx = (k % 2) ? -1 : 0;
    if (k == 1 && variant % 3 == 1) {
      o.mode = BagMode::none; // a sequence table
      if (variant == 4 && o.numEmbeddings > 0)
        o.paddingIdx = -1;
      if (variant == 7)
        o.sequenceLength = 2; // given, not the first bag's
    }
    t.push_back(o);
  }
  return t;
}

void runMatrix(Target target) {
  const DType dtypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
  for (int variant = 0; variant < 10; ++variant) {
    std::vector<TableOptions> tables = someTables(variant);
    bool anyMax = false;
    for (const TableOptions &t : tables)
      anyMax |= t.mode == BagMode::max;
    for (uint64_t seed = 1; seed <= 2; ++seed)
      runCase(tables, dtypes[variant % 4], !anyMax && seed == 2,
              seed * 101 + variant, target);
    if (::testing::Test::HasFatalFailure())
      return;
  }
}

TEST(Tables, EveryModeDtypeAndShapeAgainstOneBagPerTable) {
  runMatrix(Target::host);
}

TEST(GPUEmulated, TablesEveryModeDtypeAndShape) {
  runMatrix(Target::gpu_emulated);
}

// The GPU kernel gives each table its own range of blocks, with its own
// thread layout, and tables of one layout share code (their start, columns
// and padding row chosen by the block): enough bags that every table spans
// several blocks, columns aligned for 16-byte vectors (the stores follow
// the columns), three padded D = 64 sums (rows 7, 0, 5) and an unpadded one.
TEST(GPUEmulated, TablesSpanManyBlocksWithWideVectors) {
  std::vector<TableOptions> tables(8);
  tables[0] = {1000, 64, BagMode::sum, 7, std::nullopt};
  tables[1] = {50, 8, BagMode::mean, std::nullopt, std::nullopt};
  tables[2] = {300, 64, BagMode::sum, 0, std::nullopt};
  tables[3] = {20, 16, BagMode::none, 3, std::nullopt}; // L = 4
  tables[4] = {700, 64, BagMode::sum, 5, std::nullopt};
  tables[5] = {90, 64, BagMode::sum, std::nullopt, std::nullopt};
  tables[6] = {300, 32, BagMode::sqrtn, 0, std::nullopt};
  tables[7] = {40, 4, BagMode::max, -1, std::nullopt};
  for (DType dtype : {DType::f32, DType::f16, DType::f64})
    for (bool psw : {false, true}) {
      std::vector<TableOptions> some = tables;
      if (psw) // no max with per_sample_weights
        some.pop_back();
      runCase(some, dtype, psw, 11, Target::gpu_emulated, 700);
      if (HasFatalFailure())
        return;
    }
}

// Many bags, so that the call is split over threads by ranges of bags.
TEST(Tables, SplitOverThreads) {
  std::vector<TableOptions> tables(3);
  tables[0] = {1000, 64, BagMode::sum, std::nullopt, std::nullopt};
  tables[1] = {50, 8, BagMode::mean, 0, std::nullopt};
  tables[2] = {300, 17, BagMode::max, std::nullopt, std::nullopt};
  std::mt19937_64 gen(7);
  const int64_t B = 20000;
  std::vector<int64_t> offs{0};
  std::vector<int64_t> ids;
  for (const TableOptions &t : tables)
    for (int64_t b = 0; b < B; ++b) {
      for (int k = 0; k < 3; ++k)
        ids.push_back(gen() % t.numEmbeddings);
      offs.push_back(ids.size());
    }
  int64_t elements = 1000 * 64 + 50 * 8 + 300 * 17, total = 64 + 8 + 17;
  Host weights(DType::f32, {elements}), indices(DType::i64, {(int64_t)ids.size()}),
      offsets(DType::i64, {(int64_t)offs.size()}), out(DType::f32, {B, total});
  for (int64_t i = 0; i < elements; ++i)
    weights.set(i, std::sin(0.1 * i));
  for (size_t i = 0; i < ids.size(); ++i)
    indices.set(i, ids[i]);
  for (size_t i = 0; i < offs.size(); ++i)
    offsets.set(i, offs[i]);
  ASSERT_FALSE(static_cast<bool>(engine().embeddingBagTables(
      indices.view, weights.view, tables, offsets.view, out.view)));
  // Bag 12345 of table 2 (max): its three rows, at columns 72..88.
  for (int64_t d = 0; d < 17; ++d) {
    double want = -INFINITY;
    for (int k = 0; k < 3; ++k) {
      int64_t r = ids[offs[2 * B + 12345] + k];
      want = std::max(want, weights.at(64000 + 400 + r * 17 + d));
    }
    EXPECT_EQ(out.at(12345 * total + 72 + d), want) << d;
  }
}

TEST(Tables, BadInputNamesTheTableAndWritesNothing) {
  std::vector<TableOptions> tables(2);
  tables[0] = {5, 4, BagMode::sum, std::nullopt, std::nullopt};
  tables[1] = {3, 2, BagMode::max, std::nullopt, std::nullopt};
  Host weights(DType::f32, {5 * 4 + 3 * 2}), indices(DType::i64, {4}),
      offsets(DType::i64, {3}), out(DType::f32, {1, 6});
  int64_t ids[] = {1, 4, 2, 0};
  for (int i = 0; i < 4; ++i)
    indices.set(i, ids[i]);
  offsets.set(0, 0), offsets.set(1, 2), offsets.set(2, 4);
  std::memset(out.view.data, 0x5a, out.size());
  std::vector<char> before(static_cast<char *>(out.view.data),
                           static_cast<char *>(out.view.data) + out.size());
  auto expectError = [&](llvm::Error err, const std::string &message) {
    ASSERT_TRUE(static_cast<bool>(err)) << message;
    std::string got = llvm::toString(std::move(err));
    EXPECT_NE(got.find(message), std::string::npos) << got;
    EXPECT_EQ(std::memcmp(before.data(), out.view.data, out.size()), 0);
  };
  // Index 2 of table 1 (3 rows) is fine; 4 in table 1 is not.
  indices.set(2, 4);
  expectError(engine().embeddingBagTables(indices.view, weights.view, tables,
                                          offsets.view, out.view),
              "table 1: index 4 at position 0 is out of range [0, 3)");
  indices.set(2, 2);
  Host shortWeights(DType::f32, {25});
  expectError(engine().embeddingBagTables(indices.view, shortWeights.view,
                                          tables, offsets.view, out.view),
              "'weights' has 25 elements, the tables need 26");
  Host twoBags(DType::i64, {4});
  expectError(engine().embeddingBagTables(indices.view, weights.view, tables,
                                          twoBags.view, out.view),
              "T * B + 1 entries for T = 2 tables");
  Host psw(DType::f32, {4});
  expectError(engine().embeddingBagTables(indices.view, weights.view, tables,
                                          offsets.view, out.view, &psw.view),
              "'per_sample_weights' are not allowed with mode 'max' (table 1)");
  offsets.set(2, 3);
  expectError(engine().embeddingBagTables(indices.view, weights.view, tables,
                                          offsets.view, out.view),
              "the last offset (offsets[T * B] = 3) must equal the number "
              "of indices 4");
  offsets.set(2, 4);
  std::vector<TableOptions> badPad = tables;
  badPad[0].paddingIdx = 5;
  expectError(engine().embeddingBagTables(indices.view, weights.view, badPad,
                                          offsets.view, out.view),
              "table 0: 'padding_idx' 5 is out of range [-5, 5)");
  // Tables of no rows add no elements, but their dims still add up.
  std::vector<TableOptions> huge(4, {0, int64_t(1) << 62, BagMode::sum,
                                     std::nullopt, std::nullopt});
  Host none(DType::f32, {0}), noIndices(DType::i64, {0}),
      fiveOffsets(DType::i64, {5});
  expectError(engine().embeddingBagTables(noIndices.view, none.view, huge,
                                          fiveOffsets.view, out.view),
              "the tables' embedding dimensions are too large");
  // On a GPU target every table stores vectors that divide the output's
  // row (6 f32 columns: 8 bytes), so the output must start aligned for it.
  EngineOptions gpuOptions;
  gpuOptions.target = Target::gpu_emulated;
  Engine gpu(gpuOptions);
  Host misaligned(DType::f32, {1, 7});
  Tensor shifted = out.view;
  shifted.data = static_cast<float *>(misaligned.view.data) + 1;
  expectError(gpu.embeddingBagTables(indices.view, weights.view, tables,
                                     offsets.view, shifted),
              "GPU kernels need 8-byte aligned rows");
  EXPECT_FALSE(static_cast<bool>(gpu.embeddingBagTables(
      indices.view, weights.view, tables, offsets.view, out.view)));
  std::memcpy(out.view.data, before.data(), out.size());
  // A sequence table's bags have one length (the first bag's, or the one
  // given); a length only for mode none; mode none only for many tables.
  std::vector<TableOptions> sequence = tables;
  sequence[1].mode = BagMode::none; // L = 2 from its bag: 4 + 2 * 2 columns
  expectError(engine().embeddingBagTables(indices.view, weights.view, sequence,
                                          offsets.view, out.view),
              "'out'");
  Host fits(DType::f32, {1, 4 + 2 * 2});
  EXPECT_FALSE(static_cast<bool>(engine().embeddingBagTables(
      indices.view, weights.view, sequence, offsets.view, fits.view)));
  EXPECT_EQ(fits.at(4 + 2), weights.at(20 + 0 * 2)); // entry 1's row: 0
  sequence[1].sequenceLength = 3;
  Host seqOut(DType::f32, {1, 4 + 3 * 2});
  expectError(engine().embeddingBagTables(indices.view, weights.view, sequence,
                                          offsets.view, seqOut.view),
              "table 1 is 'none' (a sequence table, bags of length 3): bag 0 "
              "has 2 entries");
  sequence[1].sequenceLength = 2;
  sequence[0].sequenceLength = 2;
  expectError(engine().embeddingBagTables(indices.view, weights.view, sequence,
                                          offsets.view, out.view),
              "table 0: a sequence length is only for mode 'none', the table "
              "is 'sum'");
  EmbeddingBagOptions unpooled;
  unpooled.mode = BagMode::none;
  unpooled.includeLastOffset = true;
  Host table(DType::f32, {5, 4});
  expectError(engine().embeddingBag(indices.view, table.view, &offsets.view,
                                    out.view, unpooled),
              "mode 'none' (no pooling) is only for the sequence tables of a "
              "many-table bag");
  Host wide(DType::f32, {1, 7});
  expectError(engine().embeddingBagTables(indices.view, weights.view, tables,
                                          offsets.view, wide.view),
              "'out'");
}

} // namespace
