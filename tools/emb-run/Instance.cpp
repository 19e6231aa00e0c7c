//===- Instance.cpp - emb-run's random instance and the call --------------===//

#include "EmbRun.h"

#include "emb/Reference/Reference.h"
#include "emb/Runtime/Numeric.h"
#include "emb/Runtime/TableMemory.h"

#include <cstring>

namespace emb::run {

namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  int64_t below(int64_t n) { return n ? static_cast<int64_t>(next() % n) : 0; }
};

std::vector<int64_t> shape(std::initializer_list<int64_t> dims) {
  return std::vector<int64_t>(dims);
}

/// The dtype and shape of state `k` (1 or 2) of --optimizer, empty when
/// the optimizer keeps fewer.
DType stateType(const Setup &s) {
  return s.dtype == DType::f64 ? DType::f64 : DType::f32;
}
std::vector<int64_t> stateShape(const Setup &s, int k) {
  if (!s.optimizer || numOptimizerStates(s.optimizer->optimizer) < k)
    return {0};
  if (s.optimizer->optimizer == Optimizer::rowwise_adagrad)
    return {s.V};
  return {s.V, s.D};
}

} // namespace

Instance::Instance(const Setup &s)
    : weight(s.quant == Quantization::none ? s.dtype : DType::f64,
             s.tables.empty() ? shape({s.V, s.D}) : shape({s.V})),
      indices(s.idxType, (s.bag && s.flags.twoD) || s.lookup ? shape({s.B, s.L})
                                                             : shape({s.N})),
      offsets(s.offType, {s.numOffsets}), psw(s.dtype, indices.view.shape),
      out(s.dtype, s.bag      ? shape({s.B, s.D})
                   : s.lookup ? shape({s.B, s.L, s.D})
                              : shape({0})),
      argmax(DType::i64, {s.B, s.D}), pooled(s.dtype, {s.B, s.D}),
      gradWeight(s.dtype, s.backward && !s.flags.sparse && !s.optimizer
                              ? shape({s.V, s.D})
                              : shape({0})),
      sparseRows(DType::i64, {s.backward && s.flags.sparse ? s.N : 0}),
      sparseValues(s.dtype, {s.backward && s.flags.sparse ? s.N : 0, s.D}),
      packed(DType::u8, s.quant == Quantization::none
                            ? shape({0, 0})
                            : shape({s.V, quantizedRowBytes(s.quant, s.D)})),
      state0(stateType(s), stateShape(s, 1)),
      state1(stateType(s), stateShape(s, 2)) {
  // A random table, uniform random indices (5% padding), bags of L, random
  // per-sample weights and (backward) incoming gradients.
  Rng rng{s.flags.seed * 0x9E3779B97F4A7C15ull + 1};
  for (int64_t i = 0; i < weight.view.numel(); ++i)
    weight.set(i, rng.uniform() * 2 - 1);
  if (s.quant != Quantization::none) {
    // The table packed as torch packs it; the reference reads its values.
    std::vector<float> f32(s.V * s.D);
    for (int64_t i = 0; i < s.V * s.D; ++i)
      f32[i] = static_cast<float>(weight.at(i));
    std::vector<uint8_t> bytes = ref::quantizeRows(f32, s.V, s.D, s.quant);
    std::memcpy(packed.view.data, bytes.data(), bytes.size());
    std::vector<double> values =
        ref::dequantizeRows(bytes, s.V, s.D, s.quant);
    std::memcpy(weight.view.data, values.data(), values.size() * 8);
  }
  for (int64_t i = 0; i < s.N; ++i) {
    // Many tables: position i is in table i / (B * L), of its rows.
    int64_t rows = s.tables.empty() ? s.V
                                    : s.tables[i / std::max<int64_t>(
                                                   s.B * s.L, 1)]
                                          .numEmbeddings;
    int64_t r = rng.below(rows);
    if (s.padRow >= 0 && s.padRow < s.V && rng.below(20) == 0)
      r = s.padRow;
    if (!s.tables.empty() && s.flags.paddingIdx != INT64_MIN &&
        rng.below(20) == 0)
      r = (s.flags.paddingIdx % rows + rows) % rows;
    indices.set(i, static_cast<double>(r));
  }
  for (int64_t b = 0; b < s.numOffsets; ++b)
    offsets.set(b, static_cast<double>(b * s.L));
  // A weighted mean's weights are positive, so that no bag's divisor
  // cancels to almost 0 (where any rounding is a large relative error).
  for (int64_t i = 0; i < s.N; ++i)
    psw.set(i, s.mode == BagMode::mean ? rng.uniform() + 0.25
                                       : rng.uniform() * 2 - 1);
  if (s.backward)
    for (int64_t i = 0; i < out.view.numel(); ++i)
      out.set(i, rng.uniform() * 2 - 1);
  // Optimizer states as after some steps: sums of squares positive.
  for (int64_t i = 0; i < state0.view.numel(); ++i)
    state0.set(i, s.optimizer->optimizer == Optimizer::adam
                      ? (rng.uniform() * 2 - 1) * 0.1
                      : rng.uniform() * 0.1);
  for (int64_t i = 0; i < state1.view.numel(); ++i)
    state1.set(i, rng.uniform() * 0.01);
  for (auto [host, view] : mirrors())
    *view = host->view;
}

std::vector<std::pair<Buffer *, Tensor *>> Instance::mirrors() {
  return {{&weight, &vWeight},
          {&indices, &vIndices},
          {&offsets, &vOffsets},
          {&psw, &vPsw},
          {&out, &vOut},
          {&argmax, &vArgmax},
          {&pooled, &vPooled},
          {&gradWeight, &vGradWeight},
          {&sparseRows, &vSparseRows},
          {&sparseValues, &vSparseValues},
          {&packed, &vPacked},
          {&state0, &vState0},
          {&state1, &vState1}};
}

void mirrorToDevice(Instance &inst) {
  auto opened = cuda::Device::open();
  if (!opened)
    die(llvm::toString(opened.takeError()));
  inst.device = std::move(*opened);
  for (auto [host, view] : inst.mirrors()) {
    auto p = inst.device->alloc(std::max<size_t>(host->size(), 16));
    if (!p)
      die(llvm::toString(p.takeError()));
    if (host->size() > 0)
      if (llvm::Error err =
              inst.device->copyToDevice(*p, host->view.data, host->size()))
        die(llvm::toString(std::move(err)));
    view->data = *p;
  }
}

/// The table the calls read: the packed rows of a quantised table, else
/// the weight.
static std::pair<Buffer *, Tensor *> callTable(Instance &inst) {
  if (inst.packed.size() > 0)
    return {&inst.packed, &inst.vPacked};
  return {&inst.weight, &inst.vWeight};
}

void moveWeightToHugePages(Instance &inst) {
  auto [host, view] = callTable(inst);
  size_t bytes = host->size();
  char *table = static_cast<char *>(allocateTable(bytes, /*hugePages=*/true));
  if (!table)
    die("cannot allocate " + std::to_string(bytes) + " bytes on huge pages");
  std::memcpy(table, host->view.data, bytes);
  inst.hugeWeight.reset(table, [bytes](char *p) { freeTable(p, bytes); });
  view->data = table;
}

void fetchFromDevice(Instance &inst) {
  if (inst.hugeWeight) {
    Buffer *host = callTable(inst).first;
    std::memcpy(host->view.data, inst.hugeWeight.get(), host->size());
  }
  if (!inst.device)
    return;
  if (llvm::Error err = inst.device->synchronize())
    die(llvm::toString(std::move(err)));
  for (auto [host, view] : inst.mirrors())
    if (host->size() > 0)
      if (llvm::Error err = inst.device->copyToHost(host->view.data, view->data,
                                                    host->size()))
        die(llvm::toString(std::move(err)));
}

namespace {

EmbeddingOptions lookupOptions(const Setup &s) {
  EmbeddingOptions o;
  o.paddingIdx = s.pad;
  o.scaleGradByFreq = s.flags.scaleGradByFreq;
  o.profile = s.profile;
  return o;
}

EmbeddingBagOptions bagOptions(const Setup &s) {
  EmbeddingBagOptions o;
  o.mode = s.mode;
  o.paddingIdx = s.pad;
  o.scaleGradByFreq = s.flags.scaleGradByFreq;
  o.includeLastOffset = s.flags.includeLastOffset;
  o.profile = s.profile;
  return o;
}

/// The sparse gradients: their row count is kept in the instance.
llvm::Error keepCount(Instance &inst, llvm::Expected<int64_t> rows) {
  if (!rows)
    return rows.takeError();
  inst.sparseCount = *rows;
  return llvm::Error::success();
}

} // namespace

llvm::Error callOp(Engine &engine, const Setup &s, Instance &inst) {
  const Flags &f = s.flags;
  const Tensor *offsets = f.twoD ? nullptr : &inst.vOffsets;
  const Tensor *psw = f.perSampleWeights ? &inst.vPsw : nullptr;
  const Tensor *argmax = s.mode == BagMode::max ? &inst.vArgmax : nullptr;
  if (s.optimizer) {
    std::vector<Tensor> states;
    for (const Tensor *t : {&inst.vState0, &inst.vState1})
      if (t->numel() > 0)
        states.push_back(*t);
    if (s.lookup)
      return engine.embeddingUpdate(inst.vOut, inst.vIndices, inst.vWeight,
                                    states, *s.optimizer, lookupOptions(s));
    return engine.embeddingBagUpdate(inst.vOut, inst.vIndices, offsets,
                                     inst.vWeight, states, *s.optimizer,
                                     bagOptions(s), psw, argmax);
  }
  if (f.opName == "embedding_backward") {
    EmbeddingOptions o = lookupOptions(s);
    o.deterministic = f.deterministic;
    if (f.sparse)
      return keepCount(inst,
                       engine.embeddingSparseBackward(
                           inst.vOut, inst.vIndices, s.V, inst.vSparseRows,
                           inst.vSparseValues, o, f.coalesced));
    return engine.embeddingBackward(inst.vOut, inst.vIndices, inst.vGradWeight,
                                    o);
  }
  if (f.opName == "embedding_bag_backward") {
    EmbeddingBagOptions o = bagOptions(s);
    o.deterministic = f.deterministic;
    if (f.sparse)
      return keepCount(inst, engine.embeddingBagSparseBackward(
                                 inst.vOut, inst.vIndices, offsets, s.V,
                                 inst.vSparseRows, inst.vSparseValues, o, psw,
                                 f.coalesced));
    return engine.embeddingBagBackward(inst.vOut, inst.vIndices, offsets,
                                       inst.vGradWeight, o, psw, argmax);
  }
  if (f.opName == "embedding") {
    EmbeddingOptions o = lookupOptions(s);
    o.maxNorm = s.norm;
    o.normType = f.normType;
    return engine.embedding(inst.vIndices, inst.vWeight, inst.vOut, o);
  }
  if (!s.tables.empty())
    return engine.embeddingBagTables(inst.vIndices, inst.vWeight, s.tables,
                                     inst.vOffsets, inst.vOut, psw);
  if (s.bag && s.quant != Quantization::none)
    return engine.embeddingBagQuantized(inst.vIndices, inst.vPacked, s.quant,
                                        offsets, inst.vOut, bagOptions(s),
                                        psw);
  if (s.bag) {
    EmbeddingBagOptions o = bagOptions(s);
    o.maxNorm = s.norm;
    o.normType = f.normType;
    return engine.embeddingBag(inst.vIndices, inst.vWeight, offsets, inst.vOut,
                               o, psw, argmax);
  }
  if (f.opName == "renorm") {
    if (!s.norm)
      die("--op renorm needs --max-norm");
    return engine.renorm(inst.vWeight, inst.vIndices, *s.norm, f.normType);
  }
  die("--op must be embedding, embedding_bag, renorm, embedding_backward "
      "or embedding_bag_backward");
}

} // namespace emb::run
