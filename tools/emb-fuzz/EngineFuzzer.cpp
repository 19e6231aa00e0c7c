//===- EngineFuzzer.cpp - libFuzzer target: the Engine's argument checks --===//
//
// Decodes the fuzzer's bytes into one Engine call: an op, small tensors of
// any dtype and (often wrong) shape, index and offset values in range or
// raw, options (padding_idx, max_norm, p, mode, ...) in range or raw, and
// now and then an index tensor that shares memory with the weight. Every
// buffer is allocated at exactly the size its shape says, so any read or
// write outside it is a bug that ASan reports.
//
// The oracle besides "no crash, no hang": a call that fails has written
// nothing (docs/reliability.md, "Validation before any write"): every
// buffer a call may write is compared with its copy taken before.
//
//===----------------------------------------------------------------------===//

#include "emb/Runtime/Engine.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <vector>

using namespace emb;

namespace {

int64_t elementBytes(DType d) { return static_cast<int64_t>(dtypeSize(d)); }

/// The tensors of one call, allocated from the fuzzer's bytes.
class Call {
public:
  Call(const uint8_t *data, size_t size) : in(data, size) {}

  FuzzedDataProvider in;

  int64_t small(int64_t hi = 6) { return in.ConsumeIntegralInRange<int64_t>(0, hi); }
  bool rarely() { return in.ConsumeIntegralInRange<int>(0, 7) == 0; }

  DType floatType() {
    const DType types[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
    if (rarely())
      return DType::i64; // a wrong dtype
    return types[small(3)];
  }
  DType indexType() {
    if (rarely())
      return DType::f32; // a wrong dtype
    return in.ConsumeBool() ? DType::i64 : DType::i32;
  }
  /// `shape`, now and then with a dimension changed or one dropped.
  std::vector<int64_t> like(std::vector<int64_t> shape) {
    if (rarely() && !shape.empty())
      shape[small(shape.size() - 1)] = small(9);
    if (rarely() && !shape.empty())
      shape.pop_back();
    return shape;
  }
  /// A tensor of `shape` whose bytes come from the input.
  Tensor tensor(DType dtype, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    auto &bytes = storage.emplace_back(n * elementBytes(dtype) + 1, 0);
    std::vector<uint8_t> fill = in.ConsumeBytes<uint8_t>(n * elementBytes(dtype));
    if (!fill.empty())
      std::memcpy(bytes.data(), fill.data(), fill.size());
    written.push_back(&bytes);
    return Tensor{bytes.data(), dtype, std::move(shape)};
  }
  /// Index values: in [-1, V] mostly, raw (any int64) when `wild`.
  Tensor indices(DType dtype, std::vector<int64_t> shape, int64_t V, bool wild) {
    Tensor t = tensor(dtype, std::move(shape));
    if (!wild && (dtype == DType::i32 || dtype == DType::i64))
      for (int64_t i = 0; i < t.numel(); ++i) {
        int64_t v = in.ConsumeIntegralInRange<int64_t>(V > 0 ? 0 : -1, V);
        if (dtype == DType::i32)
          static_cast<int32_t *>(t.data)[i] = static_cast<int32_t>(v);
        else
          static_cast<int64_t *>(t.data)[i] = v;
      }
    return t;
  }
  /// Offsets: ascending in [0, n] mostly, raw when `wild`.
  Tensor offsets(DType dtype, int64_t count, int64_t n, bool wild) {
    Tensor t = tensor(dtype, {count});
    if (!wild && (dtype == DType::i32 || dtype == DType::i64)) {
      int64_t at = 0;
      for (int64_t i = 0; i < count; ++i) {
        at = i == 0 ? 0 : std::min(n, at + small(3));
        if (dtype == DType::i32)
          static_cast<int32_t *>(t.data)[i] = static_cast<int32_t>(at);
        else
          static_cast<int64_t *>(t.data)[i] = at;
      }
    }
    return t;
  }
  std::optional<int64_t> paddingIdx(int64_t V) {
    if (in.ConsumeBool())
      return std::nullopt;
    return rarely() ? in.ConsumeIntegral<int64_t>()
                    : in.ConsumeIntegralInRange<int64_t>(-V - 1, V);
  }
  std::optional<double> maxNorm() {
    if (!rarely())
      return std::nullopt;
    return rarely() ? in.ConsumeFloatingPoint<double>()
                    : in.ConsumeFloatingPointInRange<double>(0.0, 3.0);
  }
  // Mode none (4) is refused by every entry point but the many-table one.
  BagMode mode() {
    return static_cast<BagMode>(rarely() ? in.ConsumeIntegral<uint8_t>()
                                         : small(4));
  }

  /// Snapshot of every buffer, to check that a failed call wrote nothing.
  std::vector<std::vector<uint8_t>> snapshot() const {
    std::vector<std::vector<uint8_t>> copy;
    for (const auto *b : written)
      copy.push_back(*b);
    return copy;
  }
  bool unchangedSince(const std::vector<std::vector<uint8_t>> &copy) const {
    for (size_t i = 0; i < written.size(); ++i)
      if (*written[i] != copy[i])
        return false;
    return true;
  }

private:
  std::deque<std::vector<uint8_t>> storage;
  std::vector<const std::vector<uint8_t> *> written;
};

Engine &engine() {
  static Engine *e = [] {
    EngineOptions o;
    o.threads = 2;
    return new Engine(o);
  }();
  return *e;
}

using Invocation = std::function<llvm::Error()>;

/// Decodes one call: every tensor is made before the returned invocation
/// runs, so that a snapshot taken between the two sees them all.
Invocation decode(Call &c) {
  Engine &e = engine();
  int op = c.small(8);
  int64_t V = c.small(9), D = 1 + c.small(7), B = c.small(5), L = c.small(4);
  bool wild = c.rarely();
  DType wt = c.floatType(), it = c.indexType();
  Tensor weight = c.tensor(wt, c.like({V, D}));
  EmbeddingBagOptions bag;
  bag.mode = c.mode();
  bag.paddingIdx = c.paddingIdx(V);
  bag.maxNorm = c.maxNorm();
  bag.includeLastOffset = c.in.ConsumeBool();
  bag.scaleGradByFreq = c.rarely();
  EmbeddingOptions one;
  one.paddingIdx = bag.paddingIdx;
  one.maxNorm = bag.maxNorm;
  one.scaleGradByFreq = bag.scaleGradByFreq;
  bool twoD = c.in.ConsumeBool();
  std::vector<int64_t> rowsShape =
      twoD ? std::vector<int64_t>{B, L, D} : std::vector<int64_t>{B * L, D};
  Tensor idx = twoD ? c.indices(it, c.like({B, L}), V, wild)
                    : c.indices(it, c.like({B * L}), V, wild);
  // Now and then the indices live inside the weight (aliasing).
  if (c.rarely() &&
      weight.numel() * elementBytes(wt) >= idx.numel() * elementBytes(it))
    idx.data = weight.data;
  std::vector<int64_t> offsShape = c.like({B + bag.includeLastOffset});
  Tensor offs = c.offsets(c.indexType(), offsShape.empty() ? 0 : offsShape[0],
                          idx.numel(), wild);
  const Tensor *offsets = twoD ? nullptr : &offs;
  Tensor psw = c.tensor(wt, c.like({idx.numel()}));
  bool pswIf = c.rarely(); // pass per_sample_weights
  Tensor bagRows = c.tensor(wt, c.like({B, D})); // a bag op's output or gradient
  switch (op) {
  case 0: {
    Tensor out = c.tensor(wt, c.like(rowsShape));
    return [=, &e] { return e.embedding(idx, weight, out, one); };
  }
  case 1: {
    Tensor maxIdx = c.tensor(DType::i64, c.like({B, D}));
    bool withMax = bag.mode == BagMode::max && c.in.ConsumeBool();
    return [=, &e] {
      return e.embeddingBag(idx, weight, offsets ? &offs : nullptr, bagRows,
                            bag, pswIf ? &psw : nullptr,
                            withMax ? &maxIdx : nullptr);
    };
  }
  case 2: {
    double maxNorm = c.in.ConsumeFloatingPoint<double>();
    double p = c.rarely() ? c.in.ConsumeFloatingPoint<double>() : 2.0;
    return [=, &e] { return e.renorm(weight, idx, maxNorm, p); };
  }
  case 3: {
    Tensor grad = c.tensor(wt, c.like(rowsShape));
    return [=, &e] { return e.embeddingBackward(grad, idx, weight, one); };
  }
  case 4:
    return [=, &e] {
      return e.embeddingBagBackward(bagRows, idx, offsets ? &offs : nullptr,
                                    weight, bag, pswIf ? &psw : nullptr);
    };
  case 5: {
    int64_t n = idx.numel();
    Tensor rows = c.tensor(DType::i64, c.like({n})),
           values = c.tensor(wt, c.like({n, D}));
    bool coalesced = c.in.ConsumeBool();
    return [=, &e] {
      return e
          .embeddingBagSparseBackward(bagRows, idx, offsets ? &offs : nullptr,
                                      V, rows, values, bag,
                                      pswIf ? &psw : nullptr, coalesced)
          .takeError();
    };
  }
  case 6: {
    OptimizerOptions opt;
    opt.optimizer = static_cast<Optimizer>(c.small(3));
    opt.lr = c.rarely() ? c.in.ConsumeFloatingPoint<double>() : 0.1;
    opt.step = c.rarely() ? c.in.ConsumeIntegral<int64_t>() : 1;
    std::vector<Tensor> states;
    for (int s = 0, n = c.small(2); s < n; ++s)
      states.push_back(c.tensor(DType::f32, c.like({V, D})));
    return [=, &e] {
      return e.embeddingBagUpdate(bagRows, idx, offsets ? &offs : nullptr,
                                  weight, states, opt, bag,
                                  pswIf ? &psw : nullptr);
    };
  }
  case 7: {
    Quantization q =
        c.in.ConsumeBool() ? Quantization::int8 : Quantization::int4;
    int64_t rowBytes = (q == Quantization::int8 ? D : (D + 1) / 2) + 8;
    Tensor table = c.tensor(DType::u8, c.like({V, rowBytes}));
    Tensor out = c.tensor(DType::f32, c.like({B, D}));
    return [=, &e] {
      return e.embeddingBagQuantized(idx, table, q, offsets ? &offs : nullptr,
                                     out, bag, pswIf ? &psw : nullptr);
    };
  }
  default: {
    std::vector<TableOptions> tables;
    int64_t total = 0, rows = 0;
    for (int t = 0, T = 1 + c.small(2); t < T; ++t) {
      TableOptions o{c.small(5), 1 + c.small(4), c.mode(), c.paddingIdx(4),
                     std::nullopt};
      // A sequence table fills L * D columns: L given or guessed (the
      // offsets decide whether the guess holds).
      int64_t length = c.small(3);
      if (o.mode == BagMode::none && c.rarely())
        o.sequenceLength = c.rarely() ? c.in.ConsumeIntegral<int64_t>() : length;
      tables.push_back(o);
      total += o.mode == BagMode::none ? length * o.embeddingDim
                                       : o.embeddingDim;
      rows += o.numEmbeddings * o.embeddingDim;
    }
    Tensor flat = c.tensor(wt, c.like({rows}));
    std::vector<int64_t> n = c.like({int64_t(tables.size()) * B + 1});
    Tensor tableOffs = c.offsets(it, n.empty() ? 0 : n[0], idx.numel(), wild);
    Tensor out = c.tensor(wt, c.like({B, total}));
    return [=, &e] {
      return e.embeddingBagTables(idx, flat, tables, tableOffs, out,
                                  pswIf ? &psw : nullptr);
    };
  }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Call call(data, size);
  Invocation invoke = decode(call);
  auto before = call.snapshot();
  llvm::Error err = invoke();
  if (err) {
    std::string message = llvm::toString(std::move(err));
    if (!call.unchangedSince(before)) {
      std::fprintf(stderr, "emb-fuzz-engine: a call that failed wrote to a "
                           "buffer first: %s\n", message.c_str());
      std::abort();
    }
  }
  return 0;
}
