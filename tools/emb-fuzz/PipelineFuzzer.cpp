//===- PipelineFuzzer.cpp - libFuzzer target: parser, verifier, pipelines -===//
//
// The input is MLIR text (the seed corpus: the lit tests' inputs, split at
// `// -----`). It is parsed and verified with the emb dialect and every
// upstream dialect registered; a module that holds emb ops then goes
// through one of our lowering pipelines, chosen by the input's length:
// emb-cpu-pipeline, the GPU emulation pipeline (with or without its
// memory trace) or emb-nvptx-pipeline (PTX text: no ptxas). Errors are fine; a crash, a hang or a memory error is
// a finding.
//
//===----------------------------------------------------------------------===//

#include "emb/Dialect/EmbDialect.h"
#include "emb/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include <cstdint>
#include <string>

using namespace mlir;

namespace {

MLIRContext &context() {
  static MLIRContext *ctx = [] {
    DialectRegistry registry;
    registerAllDialects(registry);
    registerAllExtensions(registry);
    registerAllToLLVMIRTranslations(registry);
    registerAllGPUToLLVMIRTranslations(registry);
    registry.insert<emb::EmbDialect>();
    auto *c = new MLIRContext(registry, MLIRContext::Threading::DISABLED);
    c->loadAllAvailableDialects();
    return c;
  }();
  return *ctx;
}

void runPipeline(ModuleOp module, void (*build)(OpPassManager &)) {
  OwningOpRef<ModuleOp> copy = module.clone();
  PassManager pm(copy->getContext());
  build(pm);
  (void)pm.run(*copy);
}

void nvptx(OpPassManager &pm) {
  emb::NVPTXPipelineOptions options;
  options.chip = "sm_90";
  options.format = "isa"; // PTX text: no ptxas needed
  emb::buildEmbNVPTXPipeline(pm, options);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (64 << 10))
    return 0; // big inputs only slow the search down
  MLIRContext &ctx = context();
  ScopedDiagnosticHandler quiet(&ctx, [](Diagnostic &) { return success(); });
  // A copy: the lexer reads up to a NUL terminator.
  std::string text(reinterpret_cast<const char *>(data), size);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &ctx);
  if (!module)
    return 0;
  bool hasEmb = false;
  module->walk([&](Operation *op) {
    hasEmb |= op->getDialect() &&
              op->getDialect()->getNamespace() == emb::EmbDialect::getDialectNamespace();
  });
  if (!hasEmb)
    return 0;
  // One pipeline per input, chosen by its length: four times the inputs
  // per second, and mutations reach every pipeline.
  auto emulation = [](OpPassManager &pm) {
    emb::buildEmbGPUEmulationPipeline(pm);
  };
  auto traced = [](OpPassManager &pm) {
    emb::buildEmbGPUEmulationPipeline(pm, /*traceMemory=*/true);
  };
  void (*pipelines[])(OpPassManager &) = {emb::buildEmbCPUPipeline, emulation,
                                          nvptx, traced};
  runPipeline(*module, pipelines[size % 4]);
  return 0;
}
