//===- Emb.cpp - C API of emb-mlir ----------------------------------------===//

#include "emb-c/Emb.h"

#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"
#include "emb/Pipelines/Pipelines.h"
#include "emb/Runtime/Engine.h"
#include "emb/Transforms/Passes.h"

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Registration.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"

#include <cstring>
#include <mutex>

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

EmbEngine *embEngineCreate(int threads, const char *cacheDir) {
  emb::EngineOptions options;
  options.threads = threads;
  if (cacheDir && !*cacheDir)
    options.cache.useDiskCache = false;
  else if (cacheDir)
    options.cache.directory = cacheDir;
  return new EmbEngine(std::move(options));
}

void embEngineDestroy(EmbEngine *engine) { delete engine; }

namespace {

emb::Tensor view(const EmbTensor &t) {
  emb::Tensor v;
  v.data = t.data;
  v.dtype = static_cast<emb::DType>(t.dtype);
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

int checkDtype(const EmbTensor &t, char *error, size_t size) {
  if (t.dtype >= EMB_F32 && t.dtype <= EMB_I64 && t.rank >= 0)
    return 0;
  return report(llvm::createStringError(llvm::inconvertibleErrorCode(),
                                        "invalid dtype or rank in a tensor"),
                error, size);
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

int embEmbeddingBag(EmbEngine *engine, EmbTensor indices, EmbTensor weight,
                    const EmbTensor *offsets, EmbTensor out, EmbBagMode mode,
                    int includeLastOffset, int hasPaddingIdx,
                    int64_t paddingIdx, const EmbTensor *perSampleWeights,
                    char *error, size_t errorSize) {
  if (checkDtype(indices, error, errorSize) ||
      checkDtype(weight, error, errorSize) ||
      checkDtype(out, error, errorSize) ||
      (offsets && checkDtype(*offsets, error, errorSize)) ||
      (perSampleWeights && checkDtype(*perSampleWeights, error, errorSize)))
    return 1;
  if (mode < EMB_SUM || mode > EMB_MAX)
    return report(llvm::createStringError(llvm::inconvertibleErrorCode(),
                                          "invalid bag mode"),
                  error, errorSize);
  emb::EmbeddingBagOptions options;
  options.mode = static_cast<emb::BagMode>(mode);
  options.includeLastOffset = includeLastOffset != 0;
  if (hasPaddingIdx)
    options.paddingIdx = paddingIdx;
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
