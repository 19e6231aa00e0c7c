//===- Emb.cpp - C API of emb-mlir ----------------------------------------===//

#include "emb-c/Emb.h"

#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"
#include "emb/Pipelines/Pipelines.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/TableMemory.h"
#include "emb/Transforms/Passes.h"

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Registration.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

MLIR_DEFINE_CAPI_DIALECT_REGISTRATION(Emb, emb, mlir::emb::EmbDialect)

void mlirEmbRegisterAllDialects(MlirDialectRegistry registry) {
  mlir::DialectRegistry *r = unwrap(registry);
  mlir::registerAllDialects(*r);
  mlir::registerAllExtensions(*r);
  r->insert<mlir::emb::EmbDialect>();
}

void mlirRegisterEmbPasses(void) {
  static std::once_flag once;
  std::call_once(once, [] {
    mlir::emb::registerEmbConversionPasses();
    mlir::emb::registerEmbTransformsPasses();
    mlir::emb::registerEmbPipelines();
  });
}

struct EmbEngine {
  emb::Engine engine;
  explicit EmbEngine(emb::EngineOptions o) : engine(std::move(o)) {}
};

namespace {
void setCacheDir(emb::EngineOptions &options, const char *cacheDir) {
  if (cacheDir && !*cacheDir)
    options.cache.useDiskCache = false;
  else if (cacheDir)
    options.cache.directory = cacheDir;
}
} // namespace

EmbEngine *embEngineCreate(int threads, const char *cacheDir) {
  emb::EngineOptions options;
  options.threads = threads;
  setCacheDir(options, cacheDir);
  return new EmbEngine(std::move(options));
}

EmbEngine *embEngineCreateWithExecutor(EmbParallelFor parallelFor,
                                       void *userData, const char *cacheDir) {
  if (!parallelFor)
    return nullptr;
  emb::EngineOptions options;
  setCacheDir(options, cacheDir);
  options.parallelFor =
      [parallelFor, userData](int64_t n, int64_t grain,
                              llvm::function_ref<void(int64_t, int64_t)> body) {
        parallelFor(
            userData, n, grain,
            [](void *context, int64_t begin, int64_t end) {
              (*static_cast<llvm::function_ref<void(int64_t, int64_t)> *>(
                  context))(begin, end);
            },
            &body);
      };
  return new EmbEngine(std::move(options));
}

void embEngineDestroy(EmbEngine *engine) { delete engine; }

namespace {

/// The value of a C enum as the caller stored it: loading an enum object
/// that holds a value outside its enumerators is undefined in C++.
template <typename Enum> int rawValue(const Enum &e) {
  static_assert(sizeof(Enum) == sizeof(int), "a C enum is an int");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

emb::Tensor view(const EmbTensor &t) {
  emb::Tensor v;
  v.data = t.data;
  v.dtype = static_cast<emb::DType>(rawValue(t.dtype)); // checked
  if (t.rank > 0 && t.shape)
    v.shape.assign(t.shape, t.shape + t.rank);
  return v;
}

int report(llvm::Error err, char *error, size_t size) {
  if (!err)
    return 0;
  std::string message = llvm::toString(std::move(err));
  if (error && size > 0) {
    size_t n = std::min(size - 1, message.size());
    std::memcpy(error, message.data(), n);
    error[n] = '\0';
  }
  return 1;
}

int fail(const std::string &message, char *error, size_t size) {
  return report(
      llvm::createStringError(llvm::inconvertibleErrorCode(), message), error,
      size);
}

int checkDtype(const EmbTensor &t, char *error, size_t size) {
  int dtype = rawValue(t.dtype);
  if (dtype < EMB_F32 || dtype > EMB_U8)
    return fail("invalid dtype " + std::to_string(dtype) + " in a tensor",
                error, size);
  if (t.rank < 0)
    return fail("invalid rank " + std::to_string(t.rank) + " in a tensor",
                error, size);
  if (t.rank > 0 && !t.shape)
    return fail("a tensor of rank " + std::to_string(t.rank) + " but no shape",
                error, size);
  return 0;
}

} // namespace

int embEmbedding(EmbEngine *engine, EmbTensor indices, EmbTensor weight,
                 EmbTensor out, int hasPaddingIdx, int64_t paddingIdx,
                 char *error, size_t errorSize) {
  if (checkDtype(indices, error, errorSize) ||
      checkDtype(weight, error, errorSize) || checkDtype(out, error, errorSize))
    return 1;
  emb::EmbeddingOptions options;
  if (hasPaddingIdx)
    options.paddingIdx = paddingIdx;
  return report(
      engine->engine.embedding(view(indices), view(weight), view(out), options),
      error, errorSize);
}

namespace {
/// The checks and options both bag entry points share: every tensor's
/// dtype and rank, the mode; 0 when they are fine. `mode` by reference: a
/// copy would load the caller's value as an EmbBagMode, undefined when it
/// is not one of the enumerators (UBSan found it).
int bagOptions(EmbTensor indices, EmbTensor table, const EmbTensor *offsets,
               EmbTensor out, const EmbBagMode &mode, int includeLastOffset,
               int hasPaddingIdx, int64_t paddingIdx,
               const EmbTensor *perSampleWeights,
               emb::EmbeddingBagOptions &options, char *error,
               size_t errorSize) {
  if (checkDtype(indices, error, errorSize) ||
      checkDtype(table, error, errorSize) ||
      checkDtype(out, error, errorSize) ||
      (offsets && checkDtype(*offsets, error, errorSize)) ||
      (perSampleWeights && checkDtype(*perSampleWeights, error, errorSize)))
    return 1;
  int rawMode = rawValue(mode);
  if (rawMode < EMB_SUM || rawMode > EMB_NONE)
    return fail("invalid bag mode " + std::to_string(rawMode), error,
                errorSize);
  options.mode = static_cast<emb::BagMode>(rawMode);
  options.includeLastOffset = includeLastOffset != 0;
  if (hasPaddingIdx)
    options.paddingIdx = paddingIdx;
  return 0;
}
} // namespace

int embEmbeddingBag(EmbEngine *engine, EmbTensor indices, EmbTensor weight,
                    const EmbTensor *offsets, EmbTensor out, EmbBagMode mode,
                    int includeLastOffset, int hasPaddingIdx,
                    int64_t paddingIdx, const EmbTensor *perSampleWeights,
                    char *error, size_t errorSize) {
  emb::EmbeddingBagOptions options;
  if (bagOptions(indices, weight, offsets, out, mode, includeLastOffset,
                 hasPaddingIdx, paddingIdx, perSampleWeights, options, error,
                 errorSize))
    return 1;
  emb::Tensor off, psw;
  if (offsets)
    off = view(*offsets);
  if (perSampleWeights)
    psw = view(*perSampleWeights);
  return report(engine->engine.embeddingBag(
                    view(indices), view(weight), offsets ? &off : nullptr,
                    view(out), options, perSampleWeights ? &psw : nullptr),
                error, errorSize);
}

int embEmbeddingBagQuantized(EmbEngine *engine, EmbTensor indices,
                             EmbTensor table, EmbQuantization format,
                             const EmbTensor *offsets, EmbTensor out,
                             EmbBagMode mode, int includeLastOffset,
                             int hasPaddingIdx, int64_t paddingIdx,
                             const EmbTensor *perSampleWeights, char *error,
                             size_t errorSize) {
  emb::EmbeddingBagOptions options;
  if (bagOptions(indices, table, offsets, out, mode, includeLastOffset,
                 hasPaddingIdx, paddingIdx, perSampleWeights, options, error,
                 errorSize))
    return 1;
  int rawFormat = rawValue(format);
  if (rawFormat != EMB_INT8 && rawFormat != EMB_INT4)
    return fail("invalid quantised format " + std::to_string(rawFormat), error,
                errorSize);
  emb::Tensor off, psw;
  if (offsets)
    off = view(*offsets);
  if (perSampleWeights)
    psw = view(*perSampleWeights);
  return report(engine->engine.embeddingBagQuantized(
                    view(indices), view(table),
                    rawFormat == EMB_INT8 ? emb::Quantization::int8
                                          : emb::Quantization::int4,
                    offsets ? &off : nullptr, view(out), options,
                    perSampleWeights ? &psw : nullptr),
                error, errorSize);
}

int embEmbeddingBagTables(EmbEngine *engine, EmbTensor indices,
                          EmbTensor weights, const EmbTable *tables,
                          int numTables, EmbTensor offsets, EmbTensor out,
                          const EmbTensor *perSampleWeights, char *error,
                          size_t errorSize) {
  if (checkDtype(indices, error, errorSize) ||
      checkDtype(weights, error, errorSize) ||
      checkDtype(offsets, error, errorSize) ||
      checkDtype(out, error, errorSize) ||
      (perSampleWeights && checkDtype(*perSampleWeights, error, errorSize)))
    return 1;
  if (numTables < 0 || (numTables > 0 && !tables))
    return fail("invalid table list", error, errorSize);
  std::vector<emb::TableOptions> options(numTables);
  for (int t = 0; t < numTables; ++t) {
    int rawMode = rawValue(tables[t].mode);
    if (rawMode < EMB_SUM || rawMode > EMB_NONE)
      return fail("table " + std::to_string(t) + ": invalid bag mode " +
                      std::to_string(rawMode),
                  error, errorSize);
    options[t].numEmbeddings = tables[t].numEmbeddings;
    options[t].embeddingDim = tables[t].embeddingDim;
    options[t].mode = static_cast<emb::BagMode>(rawMode);
    if (tables[t].hasPaddingIdx)
      options[t].paddingIdx = tables[t].paddingIdx;
    if (tables[t].hasSequenceLength)
      options[t].sequenceLength = tables[t].sequenceLength;
  }
  emb::Tensor psw;
  if (perSampleWeights)
    psw = view(*perSampleWeights);
  return report(engine->engine.embeddingBagTables(
                    view(indices), view(weights), options, view(offsets),
                    view(out), perSampleWeights ? &psw : nullptr),
                error, errorSize);
}

int embEmbeddingBagUpdate(EmbEngine *engine, EmbTensor grad, EmbTensor indices,
                          const EmbTensor *offsets, EmbTensor weight,
                          const EmbTensor *states, int numStates,
                          const EmbOptimizerOptions *optimizer, EmbBagMode mode,
                          int includeLastOffset, int hasPaddingIdx,
                          int64_t paddingIdx, int scaleGradByFreq,
                          const EmbTensor *perSampleWeights,
                          const EmbTensor *maxIndices, char *error,
                          size_t errorSize) {
  emb::EmbeddingBagOptions options;
  if (bagOptions(indices, weight, offsets, grad, mode, includeLastOffset,
                 hasPaddingIdx, paddingIdx, perSampleWeights, options, error,
                 errorSize) ||
      (maxIndices && checkDtype(*maxIndices, error, errorSize)))
    return 1;
  options.scaleGradByFreq = scaleGradByFreq != 0;
  if (!optimizer)
    return fail("no optimizer options", error, errorSize);
  int rawOptimizer = rawValue(optimizer->optimizer);
  if (rawOptimizer < EMB_SGD || rawOptimizer > EMB_ADAM)
    return fail("invalid optimizer " + std::to_string(rawOptimizer), error,
                errorSize);
  if (numStates < 0 || numStates > 2 || (numStates > 0 && !states))
    return fail("invalid state list", error, errorSize);
  std::vector<emb::Tensor> stateViews;
  for (int k = 0; k < numStates; ++k) {
    if (checkDtype(states[k], error, errorSize))
      return 1;
    stateViews.push_back(view(states[k]));
  }
  emb::OptimizerOptions o;
  o.optimizer = static_cast<emb::Optimizer>(rawOptimizer);
  o.lr = optimizer->lr;
  o.eps = optimizer->eps;
  o.weightDecay = optimizer->weightDecay;
  o.beta1 = optimizer->beta1;
  o.beta2 = optimizer->beta2;
  o.step = optimizer->step;
  emb::Tensor off, psw, argmax;
  if (offsets)
    off = view(*offsets);
  if (perSampleWeights)
    psw = view(*perSampleWeights);
  if (maxIndices)
    argmax = view(*maxIndices);
  return report(engine->engine.embeddingBagUpdate(
                    view(grad), view(indices), offsets ? &off : nullptr,
                    view(weight), stateViews, o, options,
                    perSampleWeights ? &psw : nullptr,
                    maxIndices ? &argmax : nullptr),
                error, errorSize);
}

void *embAllocateTable(size_t bytes, int hugePages) {
  return emb::allocateTable(bytes, hugePages != 0);
}

void embFreeTable(void *table, size_t bytes) { emb::freeTable(table, bytes); }

int embHugePagesAdvised(const void *p) { return emb::hugePagesAdvised(p); }
