//===- FusedUpdateTest.cpp - the backward fused with an optimizer ---------===//
//
// docs/semantics.md §6.4: Engine::embeddingBagUpdate / embeddingUpdate
// against the unfused reference in f64 (the dense gradient, then the
// update of the touched rows): every optimizer, every bag mode and the
// lookup, padding, per_sample_weights, scale_grad_by_freq, weight decay,
// every float dtype; the same bits for any thread count; bad arguments are
// errors with nothing written.
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

/// The relative tolerance of a weight of `d` after one step (one rounding
/// of the result), and of an f32 state.
double tolerance(DType d) {
  return d == DType::f64 ? 1e-12 : d == DType::f32 ? 1e-5
                                 : d == DType::f16 ? 2e-3
                                                   : 1.6e-2;
}

struct Case {
  Optimizer optimizer = Optimizer::sgd;
  BagMode mode = BagMode::sum;
  bool lookup = false; // Engine::embeddingUpdate
  DType dtype = DType::f32;
  bool psw = false, padding = false, byFreq = false, twoD = false;
  double weightDecay = 0.0;
  int64_t V = 40, D = 8, B = 6;
  uint64_t seed = 1;
  Target target = Target::host;
};

std::string describe(const Case &c) {
  return std::string(optimizerName(c.optimizer)) + " " +
         (c.lookup ? "lookup" : bagModeName(c.mode)) + " " +
         dtypeName(c.dtype) + (c.psw ? " psw" : "") +
         (c.padding ? " pad" : "") + (c.byFreq ? " freq" : "") +
         (c.twoD ? " 2d" : "") + " wd=" + std::to_string(c.weightDecay) +
         " V=" + std::to_string(c.V) + " D=" + std::to_string(c.D) +
         " seed=" + std::to_string(c.seed) + " " + targetName(c.target);
}

void runCase(const Case &c) {
  SCOPED_TRACE(describe(c));
  std::mt19937_64 gen(c.seed);
  std::uniform_real_distribution<double> u(-1, 1), pos(0.25, 1);
  int64_t V = c.V, D = c.D, B = c.B;
  DType stateType = c.dtype == DType::f64 ? DType::f64 : DType::f32;
  // Indices: a few hot rows (repeats), empty bags.
  std::vector<int64_t> ids, offs{0};
  int64_t L = 3;
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = c.twoD || c.lookup ? L : gen() % 5;
    for (int64_t k = 0; k < len; ++k)
      ids.push_back(gen() % 3 == 0 ? gen() % 4 : gen() % V);
    offs.push_back(ids.size());
  }
  offs.pop_back();
  int64_t n = ids.size();
  std::optional<int64_t> pad;
  if (c.padding)
    pad = 1;
  Host weight(c.dtype, {V, D});
  for (int64_t i = 0; i < V * D; ++i)
    weight.set(i, u(gen));
  // Gradients and weights positive: no cancellation in the sums, whose f32
  // rounding would then decide the sign of an adagrad step.
  int64_t rows = c.lookup ? n : B;
  Host grad(c.dtype, {rows, D}), psw(c.dtype, {n});
  for (int64_t i = 0; i < rows * D; ++i)
    grad.set(i, pos(gen));
  for (int64_t i = 0; i < n; ++i)
    psw.set(i, pos(gen));
  std::vector<Host> states;
  for (int k = 0; k < numOptimizerStates(c.optimizer); ++k) {
    std::vector<int64_t> shape{V};
    if (c.optimizer != Optimizer::rowwise_adagrad)
      shape.push_back(D);
    Host s(stateType, shape);
    for (int64_t i = 0; i < s.view.numel(); ++i)
      s.set(i, c.optimizer == Optimizer::adam && k == 0 ? u(gen) * 0.1
                                                        : pos(gen) * 0.1);
    states.push_back(s);
  }
  Host indices(DType::i64, {n}), offsets(DType::i64, {(int64_t)offs.size()});
  for (int64_t i = 0; i < n; ++i)
    indices.set(i, ids[i]);
  for (size_t i = 0; i < offs.size(); ++i)
    offsets.set(i, offs[i]);
  bool twoD = c.twoD && !c.lookup;
  if (twoD)
    indices.view.shape = {B, L};
  if (c.lookup)
    indices.view.shape = {B, L}; // a lookup of any rank: grad [B * L, D]
  OptimizerOptions o;
  o.optimizer = c.optimizer;
  o.lr = 0.05;
  o.eps = 1e-6;
  o.weightDecay = c.weightDecay;
  o.beta1 = 0.8;
  o.beta2 = 0.95;
  o.step = 3;

  // The forward's max_indices, from the reference forward.
  std::vector<double> w0 = weight.toDouble();
  ref::Bags bags;
  if (!twoD)
    bags.offsets = offs;
  else {
    bags.numBags = B;
    bags.bagLength = L;
  }
  Host maxIdx(DType::i64, {B, D});
  std::vector<int64_t> argmax;
  if (c.mode == BagMode::max && !c.lookup) {
    auto fwd = ref::embeddingBag(w0, D, ids, twoD ? std::vector<int64_t>{} : offs,
                                 twoD ? B : 0, twoD ? L : 0, BagMode::max, {},
                                 false, pad);
    argmax = fwd.maxIndices;
    for (int64_t i = 0; i < B * D; ++i)
      maxIdx.set(i, argmax[i]);
  }
  std::vector<double> pswValues = c.psw ? psw.toDouble() : std::vector<double>{};
  std::vector<std::vector<double>> want;
  for (Host &s : states)
    want.push_back(s.toDouble());
  std::vector<Tensor> stateViews;
  for (Host &s : states)
    stateViews.push_back(s.view);

  llvm::Error err = llvm::Error::success();
  std::vector<double> gw;
  if (c.lookup) {
    grad.view.shape = {B, L, D};
    EmbeddingOptions eo;
    eo.paddingIdx = pad;
    eo.scaleGradByFreq = c.byFreq;
    err = engine(2, c.target).embeddingUpdate(grad.view, indices.view,
                                              weight.view, stateViews, o, eo);
    gw = ref::embeddingBackward(grad.toDouble(), D, ids, V, pad, c.byFreq, 1.0);
  } else {
    EmbeddingBagOptions bo;
    bo.mode = c.mode;
    bo.paddingIdx = pad;
    bo.scaleGradByFreq = c.byFreq;
    err = engine(2, c.target).embeddingBagUpdate(
        grad.view, indices.view, twoD ? nullptr : &offsets.view, weight.view,
        stateViews, o, bo, c.psw ? &psw.view : nullptr,
        c.mode == BagMode::max ? &maxIdx.view : nullptr);
    gw = ref::embeddingBagBackward(grad.toDouble(), D, ids, bags, c.mode,
                                   pswValues, argmax, V, pad, c.byFreq, 1.0);
  }
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));
  std::vector<bool> touched = ref::touchedRows(
      ids, c.lookup ? BagMode::sum : c.mode, argmax, V, pad);
  std::vector<double> wantW = w0;
  ref::optimizerStep(wantW, want, gw, touched, D, o);
  for (int64_t i = 0; i < V * D; ++i) {
    double got = weight.at(i), e = wantW[i];
    if (!touched[i / D]) {
      ASSERT_EQ(got, w0[i]) << "untouched row " << i / D << " changed";
      continue;
    }
    ASSERT_LE(std::fabs(got - e), tolerance(c.dtype) * std::max(1.0, std::fabs(e)))
        << "row " << i / D << " column " << i % D << " before " << w0[i];
  }
  for (size_t k = 0; k < states.size(); ++k)
    for (int64_t i = 0; i < states[k].view.numel(); ++i) {
      double got = states[k].at(i), e = want[k][i];
      ASSERT_LE(std::fabs(got - e), tolerance(stateType) * std::max(1.0, std::fabs(e)))
          << "state " << k << " element " << i;
    }
}

const Optimizer kOptimizers[] = {Optimizer::sgd, Optimizer::adagrad,
                                 Optimizer::rowwise_adagrad, Optimizer::adam};

void runMatrix(Target target) {
  const DType dtypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
  const BagMode modes[] = {BagMode::sum, BagMode::mean, BagMode::sqrtn,
                           BagMode::max};
  int variant = 0;
  for (Optimizer opt : kOptimizers)
    for (BagMode mode : modes)
      for (int k = 0; k < 2; ++k, ++variant) {
        Case c;
        c.optimizer = opt;
        c.mode = mode;
        c.dtype = dtypes[variant % 4];
        bool max = mode == BagMode::max;
        c.psw = !max && k == 1;
        c.padding = !max && variant % 3 == 0;
        c.byFreq = !max && variant % 5 == 1;
        c.twoD = variant % 4 == 2;
        c.weightDecay = k == 1 ? 0.01 : 0.0;
        c.D = (int64_t[]){8, 5, 16, 1, 33}[variant % 5];
        c.seed = 11 + variant;
        c.target = target;
        runCase(c);
        if (::testing::Test::HasFatalFailure())
          return;
      }
}

TEST(FusedUpdate, EveryOptimizerModeAndDtypeAgainstTheUnfusedStep) {
  runMatrix(Target::host);
}

// The GPU kernels, run on the host by emb-emulate-gpu-on-host.
TEST(GPUEmulated, FusedUpdateEveryOptimizerModeAndDtype) {
  runMatrix(Target::gpu_emulated);
}

TEST(GPUEmulated, FusedUpdateLookupAndLargeDim) {
  for (Optimizer opt : kOptimizers) {
    Case c;
    c.lookup = true;
    c.optimizer = opt;
    c.padding = true;
    c.byFreq = true;
    c.weightDecay = 0.1;
    c.D = 300;
    c.seed = 77;
    c.target = Target::gpu_emulated;
    runCase(c);
    if (HasFatalFailure())
      return;
  }
}

TEST(FusedUpdate, LookupWithPaddingAndFrequencyScaling) {
  int variant = 0;
  for (Optimizer opt : kOptimizers)
    for (DType dtype : {DType::f32, DType::bf16}) {
      Case c;
      c.lookup = true;
      c.optimizer = opt;
      c.dtype = dtype;
      c.padding = variant % 2 == 0;
      c.byFreq = variant % 3 != 2;
      c.weightDecay = variant % 2 ? 0.1 : 0.0;
      c.D = 12;
      c.seed = 101 + variant++;
      runCase(c);
      if (HasFatalFailure())
        return;
    }
}

// Large D takes the block loop of the lowering, large V the split of rows
// over threads.
TEST(FusedUpdate, LargeDimAndManyRows) {
  for (Optimizer opt : kOptimizers) {
    Case c;
    c.optimizer = opt;
    c.mode = BagMode::mean;
    c.D = 300;
    c.V = 9000;
    c.B = 40;
    c.seed = 5;
    runCase(c);
    if (HasFatalFailure())
      return;
  }
}

// Each row is summed in input order and updated by one thread: one and two
// threads give the same bits.
TEST(FusedUpdate, SameBitsForAnyThreadCount) {
  const int64_t V = 20000, D = 16, N = 50000;
  std::mt19937_64 gen(3);
  std::uniform_real_distribution<double> u(-1, 1);
  Host w(DType::f32, {V, D}), g(DType::f32, {N, D}), x(DType::i64, {N}),
      h(DType::f32, {V});
  for (int64_t i = 0; i < V * D; ++i)
    w.set(i, u(gen));
  for (int64_t i = 0; i < N * D; ++i)
    g.set(i, u(gen));
  for (int64_t i = 0; i < N; ++i)
    x.set(i, gen() % 64 == 0 ? 7 : gen() % V); // one hot row
  Host w1 = w, h1 = h;
  OptimizerOptions o;
  o.optimizer = Optimizer::rowwise_adagrad;
  ASSERT_FALSE(static_cast<bool>(
      engine(1).embeddingUpdate(g.view, x.view, w.view, {h.view}, o)));
  ASSERT_FALSE(static_cast<bool>(
      engine(2).embeddingUpdate(g.view, x.view, w1.view, {h1.view}, o)));
  EXPECT_EQ(w.bytes, w1.bytes);
  EXPECT_EQ(h.bytes, h1.bytes);
}

// Bad hyper-parameters and states are errors, and nothing is written.
TEST(FusedUpdate, BadArgumentsAreErrorsBeforeAnyWrite) {
  const int64_t V = 10, D = 4;
  Host w(DType::f32, {V, D}), g(DType::f32, {3, D}), x(DType::i64, {3}),
      sum(DType::f32, {V, D}), rowSum(DType::f32, {V}), sum64(DType::f64, {V, D});
  for (int64_t i = 0; i < V * D; ++i)
    w.set(i, 0.5);
  for (int64_t i = 0; i < 3 * D; ++i)
    g.set(i, 1.0);
  for (int64_t i = 0; i < 3; ++i)
    x.set(i, i);
  Host before = w;
  auto expectError = [&](OptimizerOptions o, std::vector<Tensor> states,
                         const std::string &message) {
    llvm::Error err = engine().embeddingUpdate(g.view, x.view, w.view, states, o);
    ASSERT_TRUE(static_cast<bool>(err)) << message;
    std::string text = llvm::toString(std::move(err));
    EXPECT_NE(text.find(message), std::string::npos) << text;
    EXPECT_EQ(w.bytes, before.bytes);
  };
  OptimizerOptions o;
  o.optimizer = Optimizer::adagrad;
  expectError(o, {}, "keeps 1 state tensor(s) (sum), got 0");
  expectError(o, {rowSum.view}, "'sum' must be [10, 4] f32");
  expectError(o, {sum64.view}, "'sum' must be [10, 4] f32");
  o.optimizer = Optimizer::rowwise_adagrad;
  expectError(o, {sum.view}, "'sum' must be [10] f32");
  o.optimizer = Optimizer::sgd;
  o.lr = NAN;
  expectError(o, {}, "'lr' must be a finite non-negative number");
  o.lr = 0.1;
  o.weightDecay = -1;
  expectError(o, {}, "'weight_decay'");
  o.weightDecay = 0;
  o.optimizer = Optimizer::adam;
  o.beta1 = 1.0;
  expectError(o, {sum.view, sum.view}, "'beta1' must be in [0, 1)");
  o.beta1 = 0.9;
  o.step = 0;
  expectError(o, {sum.view, sum.view}, "'step' must be in [1, 2^53]");
  o.step = 1;
  // Both moments in one buffer: the call writes both.
  expectError(o, {sum.view, sum.view}, "shares memory with");
  // The table as its own state.
  o.optimizer = Optimizer::adagrad;
  expectError(o, {w.view}, "shares memory with");
  Host bad(DType::i64, {3});
  bad.set(0, 10);
  o.optimizer = Optimizer::sgd;
  llvm::Error err = engine().embeddingUpdate(g.view, bad.view, w.view, {}, o);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("out of range"), std::string::npos);
  EXPECT_EQ(w.bytes, before.bytes);
}

// Kernels of windowed and sparse gradients depend on V only through its
// count of 8-bit digits: tables of nearby sizes share one kernel (no compile
// per V).
TEST(FusedUpdate, TablesWithAsManyRowDigitsShareAKernel) {
  enum Kind { fused, dense, sparse, coalesced };
  auto specOf = [](int64_t V, Kind kind) {
    Host w(DType::f32, {V, 4}), g(DType::f32, {2, 4}), x(DType::i64, {2}),
        gw(DType::f32, {V, 4}), rows(DType::i64, {2}), values(DType::f32, {2, 4});
    auto specs = engine().planSpecs([&](Engine &e) -> llvm::Error {
      switch (kind) {
      case fused:
        return e.embeddingUpdate(g.view, x.view, w.view, {}, {});
      case dense:
        return e.embeddingBackward(g.view, x.view, gw.view);
      default:
        return e.embeddingSparseBackward(g.view, x.view, V, rows.view,
                                         values.view, {}, kind == coalesced)
            .takeError();
      }
    });
    EXPECT_TRUE(static_cast<bool>(specs));
    return specs && !specs->empty() ? specs->back().str() : std::string();
  };
  for (Kind kind : {fused, dense, sparse, coalesced}) {
    SCOPED_TRACE(kind);
    EXPECT_EQ(specOf(300, kind), specOf(65535, kind));
    EXPECT_NE(specOf(65535, kind), specOf(65536, kind));
    EXPECT_EQ(specOf(2, kind), specOf(255, kind));
  }
}

// Many tables in one call: each table updated exactly as a single-table
// step of its slice updates it (the same kernels of its rows: equal bits).
// A sequence table (mode none, bags of L = 3) steps as a sum table of
// one-entry bags whose gradient rows are its L * D columns, row by row.
void tablesAgainstOneStepPerTable(Target target, Optimizer opt, DType dtype,
                                  bool psw, uint64_t seed) {
  SCOPED_TRACE(std::string(optimizerName(opt)) + " " + dtypeName(dtype) +
               (psw ? " psw " : " ") + targetName(target));
  const int64_t L = 3;
  std::vector<TableOptions> tables = {
      {300, 8, BagMode::sum, std::nullopt, std::nullopt},
      {40, 5, BagMode::mean, 0, std::nullopt},
      {7, 16, BagMode::sqrtn, std::nullopt, std::nullopt},
      {9000, 4, BagMode::sum, -1, std::nullopt},
      {50, 6, BagMode::none, 1, std::nullopt}};
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1, 1), pos(0.25, 1);
  int64_t T = tables.size(), B = 9, totalDim = 0, elements = 0, rows = 0;
  for (const TableOptions &t : tables) {
    totalDim += t.embeddingDim * (t.mode == BagMode::none ? L : 1);
    elements += t.numEmbeddings * t.embeddingDim;
    rows += t.numEmbeddings;
  }
  std::vector<int64_t> ids, offs{0};
  for (const TableOptions &t : tables)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t k = t.mode == BagMode::none ? L : gen() % 5; k > 0; --k)
        ids.push_back(gen() % 3 == 0 ? 0 : gen() % t.numEmbeddings);
      offs.push_back(ids.size());
    }
  int64_t n = ids.size();
  bool rowwise = opt == Optimizer::rowwise_adagrad;
  DType stateType = dtype == DType::f64 ? DType::f64 : DType::f32;
  Host weights(dtype, {elements}), grad(dtype, {B, totalDim}),
      x(DType::i64, {n}), o(DType::i64, {T * B + 1}), p(dtype, {n});
  for (int64_t i = 0; i < elements; ++i)
    weights.set(i, u(gen));
  for (int64_t i = 0; i < B * totalDim; ++i)
    grad.set(i, pos(gen));
  for (int64_t i = 0; i < n; ++i) {
    x.set(i, ids[i]);
    p.set(i, pos(gen));
  }
  for (int64_t i = 0; i <= T * B; ++i)
    o.set(i, offs[i]);
  std::vector<Host> states;
  for (int k = 0; k < numOptimizerStates(opt); ++k) {
    Host s(stateType, {rowwise ? rows : elements});
    for (int64_t i = 0; i < s.view.numel(); ++i)
      s.set(i, pos(gen) * 0.1);
    states.push_back(s);
  }
  OptimizerOptions oo;
  oo.optimizer = opt;
  oo.lr = 0.05;
  oo.step = 2;
  oo.weightDecay = 0.01;
  // The reference: one single-table step per table, on copies.
  Host wantW = weights;
  std::vector<Host> wantS = states;
  int64_t at = 0, rowAt = 0, column = 0;
  for (int64_t t = 0; t < T; ++t) {
    const TableOptions &table = tables[t];
    int64_t V = table.numEmbeddings, D = table.embeddingDim;
    int64_t lo = offs[t * B], hi = offs[(t + 1) * B];
    // A sequence table's bags are its entries, one each.
    bool sequence = table.mode == BagMode::none;
    int64_t bags = sequence ? hi - lo : B, perBag = sequence ? L : 1;
    Host tx(DType::i64, {hi - lo}), to(DType::i64, {bags}),
        tp(dtype, {hi - lo}), tg(dtype, {bags, D});
    for (int64_t i = lo; i < hi; ++i) {
      tx.set(i - lo, ids[i]);
      tp.set(i - lo, p.at(i));
    }
    for (int64_t b = 0; b < bags; ++b) {
      to.set(b, sequence ? b : offs[t * B + b] - lo);
      for (int64_t d = 0; d < D; ++d)
        tg.set(b * D + d, grad.at((b / perBag) * totalDim + column +
                                  (b % perBag) * D + d));
    }
    Tensor w = wantW.view;
    w.data = static_cast<char *>(w.data) + at * dtypeSize(dtype);
    w.shape = {V, D};
    std::vector<Tensor> sv;
    for (Host &s : wantS) {
      Tensor v = s.view;
      v.data = static_cast<char *>(v.data) +
               (rowwise ? rowAt : at) * dtypeSize(stateType);
      v.shape = rowwise ? std::vector<int64_t>{V} : std::vector<int64_t>{V, D};
      sv.push_back(v);
    }
    EmbeddingBagOptions bo;
    bo.mode = sequence ? BagMode::sum : table.mode;
    bo.paddingIdx = table.paddingIdx;
    ASSERT_FALSE(static_cast<bool>(engine(2, target).embeddingBagUpdate(
        tg.view, tx.view, &to.view, w, sv, oo, bo, psw ? &tp.view : nullptr)));
    at += V * D;
    rowAt += V;
    column += D * perBag;
  }
  std::vector<Tensor> views;
  for (Host &s : states)
    views.push_back(s.view);
  // The last offset closes the last bag of the last table (T * B + 1).
  llvm::Error err = engine(2, target).embeddingBagTablesUpdate(
      grad.view, x.view, weights.view, tables, o.view, views, oo,
      psw ? &p.view : nullptr);
  ASSERT_FALSE(static_cast<bool>(err)) << llvm::toString(std::move(err));
  auto firstDifference = [](const Host &got, const Host &want) -> int64_t {
    for (int64_t i = 0; i < want.view.numel(); ++i)
      if (got.at(i) != want.at(i))
        return i;
    return -1;
  };
  int64_t i = firstDifference(weights, wantW);
  EXPECT_EQ(i, -1) << "weight element " << i << ": " << weights.at(i)
                   << " vs one step per table " << wantW.at(i);
  for (size_t k = 0; k < states.size(); ++k) {
    int64_t j = firstDifference(states[k], wantS[k]);
    EXPECT_EQ(j, -1) << "state " << k << " element " << j << ": "
                     << states[k].at(j) << " vs " << wantS[k].at(j);
  }
}

TEST(FusedUpdate, ManyTablesInOneCallEqualOneStepPerTable) {
  uint64_t seed = 1;
  for (Optimizer opt : kOptimizers)
    for (DType dtype : {DType::f32, DType::bf16}) {
      tablesAgainstOneStepPerTable(Target::host, opt, dtype, seed % 2, seed);
      ++seed;
      if (HasFatalFailure())
        return;
    }
}


TEST(FusedUpdate, ManyTablesRefuseMaxTablesAndBadStates) {
  std::vector<TableOptions> tables = {
      {10, 4, BagMode::sum, std::nullopt, std::nullopt},
      {5, 4, BagMode::max, std::nullopt, std::nullopt}};
  Host w(DType::f32, {60}), g(DType::f32, {1, 8}), x(DType::i64, {2}),
      o(DType::i64, {3}), h(DType::f32, {15}), bad(DType::f32, {14});
  o.set(0, 0);
  o.set(1, 1);
  o.set(2, 2);
  for (int64_t i = 0; i < 8; ++i)
    g.set(i, 1.0);
  OptimizerOptions oo;
  oo.optimizer = Optimizer::rowwise_adagrad;
  llvm::Error err = engine().embeddingBagTablesUpdate(g.view, x.view, w.view,
                                                      tables, o.view, {h.view},
                                                      oo);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("table 1 is 'max'"),
            std::string::npos);
  tables[1].mode = BagMode::sum;
  err = engine().embeddingBagTablesUpdate(g.view, x.view, w.view, tables,
                                          o.view, {bad.view}, oo);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("'sum' must be [15] f32"),
            std::string::npos);
  Host before = w;
  // A sequence table's bags must have its length, checked before a write.
  std::vector<TableOptions> sequence = tables;
  sequence[1].mode = BagMode::none;
  sequence[1].sequenceLength = 2;
  Host g2(DType::f32, {1, 4 + 2 * 4});
  err = engine().embeddingBagTablesUpdate(g2.view, x.view, w.view, sequence,
                                          o.view, {h.view}, oo);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("bag 0 has 1 entries"),
            std::string::npos);
  EXPECT_EQ(w.bytes, before.bytes);
  ASSERT_FALSE(static_cast<bool>(engine().embeddingBagTablesUpdate(
      g.view, x.view, w.view, tables, o.view, {h.view}, oo)));
  EXPECT_NE(w.bytes, before.bytes);
  err = engine(2, Target::gpu_emulated)
            .embeddingBagTablesUpdate(g.view, x.view, w.view, tables, o.view,
                                      {h.view}, oo);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("host only"),
            std::string::npos);
}

} // namespace

