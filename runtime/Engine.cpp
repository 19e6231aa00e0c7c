//===- Engine.cpp - plans of the forward ops and the executor -------------===//
//
// Every public entry point builds a Plan (runtime/EngineInternal.h) and
// runs it. Planning validates all of the arguments first
// (docs/semantics.md §5, runtime/Validation.cpp) and writes nothing, so a
// bad index, bad offsets or a bad option leave the outputs and the weight
// untouched; Engine::run obtains the kernel before it writes anything.
// The gradients' plans are in EngineGradients.cpp, the GPU target in
// EngineGPU.cpp.
//
//===----------------------------------------------------------------------===//

#include "EngineInternal.h"
#include "Validation.h"

#include "emb/Runtime/Cuda.h"
#include "emb/Runtime/Numeric.h"

#include "ThreadPool.h"

#include "llvm/ADT/ArrayRef.h"

#include <thread>

namespace emb {

using namespace validation;

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape)
    n *= s;
  return n;
}

//===----------------------------------------------------------------------===//
// Kernel arguments
//===----------------------------------------------------------------------===//

void **KernelArgs::pack(std::string &missing) {
  size_t i = 0;
  for (const KernelArg &arg : abi.args()) {
    if (ranks[unsigned(arg.slot)] != arg.rank) {
      missing = argSlotName(arg.slot);
      return nullptr;
    }
    packed[i++] = &descs[unsigned(arg.slot)];
  }
  return packed.data();
}

void fillBags(KernelArgs &args, const Tensor &indices, const Tensor *offsets,
              ArgSlot pswSlot, const Tensor *psw, int64_t begin, int64_t end,
              int64_t numBags, bool includeLast) {
  if (indices.rank() == 2) {
    int64_t bagLen = indices.shape[1];
    args.set(ArgSlot::indices,
             advance(indices.data, begin * bagLen, indices.dtype), end - begin,
             bagLen);
    if (psw)
      args.set(pswSlot, advance(psw->data, begin * bagLen, psw->dtype),
               end - begin, bagLen);
    return;
  }
  int64_t last = includeLast || end == numBags
                     ? indices.numel()
                     : loadInt(offsets->data, offsets->dtype, end);
  args.set(ArgSlot::indices, indices.data, last);
  args.set(ArgSlot::offsets, advance(offsets->data, begin, offsets->dtype),
           end - begin + (includeLast ? 1 : 0));
  if (psw)
    args.set(pswSlot, psw->data, last);
}

//===----------------------------------------------------------------------===//
// The executor
//===----------------------------------------------------------------------===//

Engine::Engine(EngineOptions options)
    : target(options.target),
      traceMemory(options.traceMemory && options.target == Target::gpu_emulated) {
  if (target == Target::nvptx) {
    options.cache.gpuRuntime = &cuda::runtimeTable();
    gpu = std::make_unique<GPUState>();
    gpu->api = options.cudaDriver;
    gpu->requestedChip = options.chip;
    gpu->ptx = options.ptx;
    gpu->stream = options.stream;
    gpu->validate = options.validateIndices;
  }
  kernelCache = options.kernelCache
                    ? options.kernelCache
                    : std::make_shared<KernelCache>(options.cache);
  executor = std::move(options.parallelFor);
  if (executor)
    return;
  int threads = options.threads > 0
                    ? options.threads
                    : std::max(1u, std::thread::hardware_concurrency());
  pool = std::make_unique<ThreadPool>(std::min(threads, kMaxThreads));
}

Engine::~Engine() = default;

int Engine::threads() const { return pool ? pool->size() : 0; }

void Engine::parallelFor(int64_t n, int64_t grain,
                         llvm::function_ref<void(int64_t, int64_t)> body) {
  if (n <= 0)
    return;
  // One range needs no executor: small calls stay on the caller's thread.
  if (n <= grain) {
    body(0, n);
    return;
  }
  if (executor)
    executor(n, grain, body);
  else
    pool->parallelFor(n, grain, body);
}

llvm::Expected<Kernel> Engine::kernel(const KernelSpec &spec) {
  return kernelCache->get(spec);
}

namespace {
/// planSpecs() on this thread: the Engine whose run() records specs
/// instead of running them, and where. Per thread, so that calls of the
/// same Engine from other threads meanwhile run as usual.
struct PlanningSink {
  const Engine *engine;
  std::vector<KernelSpec> *specs;
};
thread_local PlanningSink *planningSink = nullptr;
} // namespace

llvm::Expected<std::vector<KernelSpec>>
Engine::planSpecs(llvm::function_ref<llvm::Error(Engine &)> call) {
  std::vector<KernelSpec> specs;
  PlanningSink sink{this, &specs};
  PlanningSink *outer = planningSink;
  planningSink = &sink;
  llvm::Error err = call(*this);
  planningSink = outer;
  if (err)
    return std::move(err);
  return specs;
}

llvm::Expected<int64_t> Engine::run(llvm::Expected<Plan> plan) {
  if (!plan)
    return plan.takeError();
  return run(*plan);
}

namespace {
/// Whether a kernel of `op` writes `slot`; it reads its other arguments.
bool writes(OpKind op, ArgSlot slot) {
  switch (slot) {
  case ArgSlot::out:
  case ArgSlot::gradWeight:
  case ArgSlot::gradPerSampleWeights:
  case ArgSlot::sparseRows:
  case ArgSlot::sparseValues:
    return true;
  case ArgSlot::maxIndices: // the forward's result, the backward's input
    return op == OpKind::embedding_bag;
  case ArgSlot::weight: // renorm and the optimizer update rows in place
    return op == OpKind::renorm || op == OpKind::embedding_bag_update ||
           op == OpKind::embedding_bag_tables_update;
  case ArgSlot::optimizerState:
  case ArgSlot::optimizerState2:
    return true;
  default:
    return false;
  }
}

size_t elementBytes(const KernelSpec &spec, ArgElement element) {
  switch (element) {
  case ArgElement::weight:
    return dtypeSize(spec.weight);
  case ArgElement::indices:
    return dtypeSize(spec.indices);
  case ArgElement::offsets:
    return dtypeSize(spec.offsets);
  case ArgElement::i64:
    return 8;
  case ArgElement::bytes:
    return 1;
  case ArgElement::state:
    return spec.weight == DType::f64 ? 8 : 4;
  case ArgElement::f64:
    return 8;
  }
  return 8;
}

/// A buffer a call writes must not share memory with another buffer of the
/// call: indices or offsets rewritten after validation (by max_norm's
/// renorm, or by the op's own output) would be read out of range. Checked
/// over the whole call, its first step (renorm) included, before anything
/// runs. The weight that renorm rescales and the op then reads is the one
/// sharing allowed.
llvm::Error checkNoAliasing(const Plan &plan, const KernelABI &abi) {
  struct View {
    ArgSlot slot;
    bool written;
    uintptr_t begin, end;
  };
  std::array<View, 2 * kMaxKernelArgs> views; // no allocation per call
  size_t count = 0;
  auto collect = [&](const Plan &p, const KernelABI &abi) {
    if (p.kind != Plan::Kind::kernel)
      return;
    KernelArgs args(abi);
    p.fill(args, 0, p.count);
    for (const KernelArg &arg : abi.args()) {
      auto [begin, end] =
          args.span(arg.slot, elementBytes(p.spec, arg.element));
      if (begin != end)
        views[count++] = {arg.slot, writes(p.spec.op, arg.slot), begin, end};
    }
  };
  if (plan.first)
    collect(*plan.first, KernelABI(plan.first->spec));
  collect(plan, abi);
  for (const View &w : llvm::ArrayRef<View>(views.data(), count))
    for (const View &r : llvm::ArrayRef<View>(views.data(), count))
      if (w.written && r.slot != w.slot && w.begin < r.end && r.begin < w.end)
        return fail(std::string("'") + argSlotName(r.slot) +
                    "' shares memory with '" + argSlotName(w.slot) +
                    "', which the call writes: pass separate buffers");
  return llvm::Error::success();
}
} // namespace

llvm::Expected<int64_t> Engine::run(Plan &plan) {
  if (planningSink && planningSink->engine == this) {
    // planSpecs: the specs, in the order they would run.
    if (plan.first && plan.first->kind == Plan::Kind::kernel)
      planningSink->specs->push_back(plan.first->spec);
    if (plan.kind == Plan::Kind::kernel)
      planningSink->specs->push_back(plan.spec);
    return 0;
  }
  if (plan.kind == Plan::Kind::nothing)
    return 0;
  if (plan.kind == Plan::Kind::zero) {
    if (auto err = zero(*plan.zeroed))
      return std::move(err);
    return 0;
  }
  const KernelABI abi(plan.spec);
  if (auto err = checkNoAliasing(plan, abi))
    return std::move(err);
  // Every kernel is obtained before anything is written: a failed
  // compilation must not leave a renormalised weight behind.
  auto fn = kernelCache->get(plan.spec);
  if (!fn)
    return fn.takeError();
  if (plan.first)
    if (auto done = run(*plan.first); !done)
      return done.takeError();

  KernelCalls calls(gpu.get());
  int64_t count = 0; // a sparse gradient's rows: host memory, on any target
  auto chunk = [&](int64_t begin, int64_t end) {
    KernelArgs args(abi);
    int64_t window[2] = {begin, end - begin}; // host memory, read on the host
    if (abi.has(ArgSlot::window))
      args.set(ArgSlot::window, window, 2);
    if (abi.has(ArgSlot::sparseCount))
      args.set(ArgSlot::sparseCount, &count, 1);
    plan.fill(args, begin, end);
    calls(*fn, args);
  };
  // Split over the pool on the host (and in the emulation); in one call on
  // the GPU, where one launch covers everything and chunk bounds must not
  // be read from device memory, and in the traced emulation, whose
  // launches model the device's.
  if (plan.split && target != Target::nvptx && !traceMemory)
    parallelFor(plan.count, plan.grain, chunk);
  else if (plan.count > 0)
    chunk(0, plan.count);
  if (auto err = calls.finish())
    return std::move(err);
  return count;
}

//===----------------------------------------------------------------------===//
// Specs
//===----------------------------------------------------------------------===//

KernelSpec Planner::spec(OpKind op, DType weight, const Tensor &indices,
                         int64_t dim) const {
  KernelSpec spec;
  spec.op = op;
  engine.setTarget(spec);
  spec.weight = weight;
  spec.indices = indices.dtype;
  spec.dim = dim;
  return spec;
}

KernelSpec Planner::bagSpec(OpKind op, DType weight, const Tensor &indices,
                            const Tensor *offsets, int64_t dim,
                            const EmbeddingBagOptions &options,
                            const Tensor *psw) const {
  KernelSpec s = spec(op, weight, indices, dim);
  s.offsets = offsets ? offsets->dtype : DType::i64;
  s.mode = options.mode;
  s.twoD = indices.rank() == 2;
  s.perSampleWeights = psw != nullptr;
  s.includeLastOffset = options.includeLastOffset && !s.twoD;
  return s;
}

//===----------------------------------------------------------------------===//
// Checks every plan shares
//===----------------------------------------------------------------------===//

llvm::Error Planner::begin(const Tensor *table, const char *tableName,
                           const Tensor &indices) {
  if (auto err = engine.gpuReady())
    return err;
  if (table)
    if (auto err = checkWeight(*table, tableName))
      return err;
  return checkIndexTensor(indices, "indices");
}

llvm::Error Planner::lookupInputs(const Tensor &table, const char *tableName,
                                  const Tensor &indices, const Tensor &rows,
                                  const char *rowsName,
                                  const EmbeddingOptions &options) {
  if (auto err = begin(&table, tableName, indices))
    return err;
  if (auto err =
          checkRowsOf(rows, rowsName, indices, table.shape[1], table.dtype))
    return err;
  return checkGradientOptions(options.profile, options.scaleGradByFreq,
                              options.sparse);
}

llvm::Expected<int64_t>
Planner::padAndIndices(std::optional<int64_t> paddingIdx, const Tensor &indices,
                       int64_t numEmbeddings) {
  auto pad = normalizePadding(paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (auto err = engine.checkIndices(indices, numEmbeddings))
    return std::move(err);
  return *pad;
}

llvm::Expected<int64_t> Planner::bags(const Tensor &indices,
                                      const Tensor *offsets,
                                      const EmbeddingBagOptions &options,
                                      const Tensor *psw, const Tensor &rows,
                                      const char *rowsName, int64_t dim,
                                      DType dtype) {
  auto numBags = engine.bagInputs(indices, offsets, options, psw, dtype);
  if (!numBags)
    return numBags.takeError();
  if (auto err = checkOutput(rows, rowsName, {*numBags, dim}, dtype))
    return std::move(err);
  return *numBags;
}

llvm::Expected<int64_t>
Planner::bagInputs(const Tensor &table, const char *tableName,
                   const Tensor &indices, const Tensor *offsets,
                   const EmbeddingBagOptions &options, const Tensor *psw,
                   const Tensor &rows, const char *rowsName) {
  if (auto err = begin(&table, tableName, indices))
    return std::move(err);
  return bags(indices, offsets, options, psw, rows, rowsName, table.shape[1],
              table.dtype);
}

llvm::Error Planner::renormFirst(Plan &plan, const Tensor &weight,
                                 const Tensor &indices, double maxNorm,
                                 double normType) {
  auto renorm = renormChecked(weight, indices, maxNorm, normType);
  if (!renorm)
    return renorm.takeError();
  plan.first = std::make_shared<Plan>(std::move(*renorm));
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Forward ops
//===----------------------------------------------------------------------===//

llvm::Expected<Plan> Planner::renorm(const Tensor &weight,
                                     const Tensor &indices, double maxNorm,
                                     double normType) {
  if (auto err = begin(&weight, "weight", indices))
    return std::move(err);
  if (auto err = checkNorm(maxNorm, normType))
    return std::move(err);
  if (auto err = engine.checkIndices(indices, weight.shape[0]))
    return std::move(err);
  return renormChecked(weight, indices, maxNorm, normType);
}

llvm::Expected<Plan> Planner::renormChecked(const Tensor &weight,
                                            const Tensor &indices,
                                            double maxNorm, double normType) {
  int64_t n = indices.numel(), dim = weight.shape[1];
  if (n == 0 || dim == 0)
    return Plan::nothing();
  if (auto err = checkGPUAlignment(engine.target, dim, weight.dtype, {&weight}))
    return std::move(err);
  Plan plan;
  plan.spec = spec(OpKind::renorm, weight.dtype, indices, dim);
  plan.spec.maxNorm = maxNorm;
  plan.spec.normType = normType;
  // One call: rows repeat across the indices, and each is rescaled once.
  plan.fill = [&weight, &indices, n](KernelArgs &args, int64_t, int64_t) {
    args.set(ArgSlot::weight, weight.data, weight.shape[0], weight.shape[1]);
    args.set(ArgSlot::indices, indices.data, n);
  };
  return plan;
}

llvm::Expected<Plan> Planner::embedding(const Tensor &indices,
                                        const Tensor &weight, const Tensor &out,
                                        const EmbeddingOptions &options) {
  if (auto err = lookupInputs(weight, "weight", indices, out, "out", options))
    return std::move(err);
  int64_t numEmbeddings = weight.shape[0], dim = weight.shape[1];
  if (auto err = checkNorm(options.maxNorm, options.normType))
    return std::move(err);
  auto pad = padAndIndices(options.paddingIdx, indices, numEmbeddings);
  if (!pad)
    return pad.takeError();

  int64_t n = indices.numel();
  if (n == 0 || dim == 0)
    return Plan::nothing();
  if (auto err =
          checkGPUAlignment(engine.target, dim, weight.dtype, {&weight, &out}))
    return std::move(err);
  Plan plan;
  plan.spec = spec(OpKind::embedding, weight.dtype, indices, dim);
  bool zeroPadding = options.profile == Profile::zero_padding;
  plan.spec.paddingIdx = zeroPadding ? *pad : -1;
  plan.spec.zeroPadding = zeroPadding && *pad >= 0;
  if (options.maxNorm)
    if (auto err = renormFirst(plan, weight, indices, *options.maxNorm,
                               options.normType))
      return std::move(err);
  // Positions split over threads, each call through views of the caller's
  // buffers.
  int64_t rowBytes = dim * static_cast<int64_t>(dtypeSize(weight.dtype));
  plan.count = n;
  plan.grain = grainFor(2 * rowBytes);
  plan.split = true;
  plan.fill = [&weight, &indices, &out, dim](KernelArgs &args, int64_t b,
                                             int64_t e) {
    args.set(ArgSlot::weight, weight.data, weight.shape[0], dim);
    args.set(ArgSlot::indices, advance(indices.data, b, indices.dtype), e - b);
    args.set(ArgSlot::out, advance(out.data, b * dim, out.dtype), e - b, dim);
  };
  return plan;
}

llvm::Expected<Plan>
Planner::embeddingBag(const Tensor &indices, const Tensor &weight,
                      const Tensor *offsets, const Tensor &out,
                      const EmbeddingBagOptions &options, const Tensor *psw,
                      const Tensor *maxIndices) {
  auto checkedBags =
      bagInputs(weight, "weight", indices, offsets, options, psw, out, "out");
  if (!checkedBags)
    return checkedBags.takeError();
  int64_t numBags = *checkedBags;
  int64_t numEmbeddings = weight.shape[0], dim = weight.shape[1];
  if (maxIndices) {
    if (options.mode != BagMode::max)
      return fail(std::string("'max_indices' is only produced with mode "
                              "'max', got '") +
                  bagModeName(options.mode) + "'");
    if (auto err =
            checkOutput(*maxIndices, "max_indices", {numBags, dim}, DType::i64))
      return std::move(err);
  }
  auto pad = padAndIndices(options.paddingIdx, indices, numEmbeddings);
  if (!pad)
    return pad.takeError();

  // max_norm renormalises every referenced row, even with no bags.
  int64_t n = indices.numel();
  bool renormBags = options.maxNorm && n > 0 && dim > 0;
  if (numBags == 0 || dim == 0) {
    if (renormBags)
      return renormChecked(weight, indices, *options.maxNorm, options.normType);
    return Plan::nothing();
  }
  if (auto err = checkGPUAlignment(engine.target, dim, weight.dtype,
                                   {&weight, &out}))
    return std::move(err);
  // max_indices move as i64 vectors as long as the weight's: rows of D i64
  // ask at least that alignment.
  if (auto err =
          checkGPUAlignment(engine.target, dim, DType::i64, {maxIndices}))
    return std::move(err);
  Plan plan;
  plan.spec = bagSpec(OpKind::embedding_bag, weight.dtype, indices, offsets,
                      dim, options, psw);
  plan.spec.maxIndices = maxIndices != nullptr;
  plan.spec.paddingIdx = *pad;
  if (renormBags)
    if (auto err = renormFirst(plan, weight, indices, *options.maxNorm,
                               options.normType))
      return std::move(err);
  // Each thread runs the kernel on a contiguous range of bags, through
  // views of the caller's buffers (no copies).
  int64_t bagBytes = (n / std::max<int64_t>(numBags, 1) + 1) * dim *
                     static_cast<int64_t>(dtypeSize(weight.dtype));
  plan.count = numBags;
  plan.grain = grainFor(bagBytes);
  plan.split = true;
  bool includeLast = plan.spec.includeLastOffset;
  plan.fill = [&weight, &indices, &out, offsets, psw, maxIndices, numBags, dim,
               includeLast](KernelArgs &args, int64_t b, int64_t e) {
    args.set(ArgSlot::weight, weight.data, weight.shape[0], dim);
    fillBags(args, indices, offsets, ArgSlot::perSampleWeights, psw, b, e,
             numBags, includeLast);
    args.set(ArgSlot::out, advance(out.data, b * dim, out.dtype), e - b, dim);
    if (maxIndices)
      args.set(ArgSlot::maxIndices,
               advance(maxIndices->data, b * dim, DType::i64), e - b, dim);
  };
  return plan;
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

llvm::Error Engine::renorm(const Tensor &weight, const Tensor &indices,
                           double maxNorm, double normType) {
  return run(Planner{*this}.renorm(weight, indices, maxNorm, normType))
      .takeError();
}

llvm::Error Engine::embedding(const Tensor &indices, const Tensor &weight,
                              const Tensor &out,
                              const EmbeddingOptions &options) {
  return run(Planner{*this}.embedding(indices, weight, out, options))
      .takeError();
}

llvm::Error Engine::embeddingBag(const Tensor &indices, const Tensor &weight,
                                 const Tensor *offsets, const Tensor &out,
                                 const EmbeddingBagOptions &options,
                                 const Tensor *psw, const Tensor *maxIndices) {
  return run(Planner{*this}.embeddingBag(indices, weight, offsets, out, options,
                                         psw, maxIndices))
      .takeError();
}

llvm::Error Engine::embeddingBackward(const Tensor &grad, const Tensor &indices,
                                      const Tensor &gradWeight,
                                      const EmbeddingOptions &options) {
  return run(Planner{*this}.embeddingBackward(grad, indices, gradWeight,
                                              options))
      .takeError();
}

llvm::Error
Engine::embeddingBagBackward(const Tensor &grad, const Tensor &indices,
                             const Tensor *offsets, const Tensor &gradWeight,
                             const EmbeddingBagOptions &options,
                             const Tensor *psw, const Tensor *maxIndices) {
  return run(Planner{*this}.embeddingBagBackward(
                 grad, indices, offsets, gradWeight, options, psw, maxIndices))
      .takeError();
}

llvm::Error Engine::embeddingBagPerSampleWeightsBackward(
    const Tensor &grad, const Tensor &weight, const Tensor &indices,
    const Tensor *offsets, const Tensor &gradPsw,
    const EmbeddingBagOptions &options) {
  return run(Planner{*this}.perSampleWeightsBackward(grad, weight, indices,
                                                     offsets, gradPsw, options))
      .takeError();
}

llvm::Expected<int64_t> Engine::embeddingSparseBackward(
    const Tensor &grad, const Tensor &indices, int64_t numEmbeddings,
    const Tensor &rows, const Tensor &values, const EmbeddingOptions &options,
    bool coalesced) {
  return run(Planner{*this}.sparseBackward(grad, indices, numEmbeddings, rows,
                                           values, options, coalesced));
}

llvm::Expected<int64_t> Engine::embeddingBagSparseBackward(
    const Tensor &grad, const Tensor &indices, const Tensor *offsets,
    int64_t numEmbeddings, const Tensor &rows, const Tensor &values,
    const EmbeddingBagOptions &options, const Tensor *psw, bool coalesced) {
  return run(Planner{*this}.bagSparseBackward(grad, indices, offsets,
                                              numEmbeddings, rows, values,
                                              options, psw, coalesced));
}

} // namespace emb
