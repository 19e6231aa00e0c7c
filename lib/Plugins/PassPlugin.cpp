//===- PassPlugin.cpp - the emb passes and pipelines as an mlir-opt plugin ===//
//
//   mlir-opt --load-dialect-plugin=lib/EmbDialectPlugin.so \
//            --load-pass-plugin=lib/EmbPassPlugin.so --emb-cpu-pipeline
//            input.mlir
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/Pipelines/Pipelines.h"
#include "emb/Transforms/Passes.h"

#include "mlir/Tools/Plugins/PassPlugin.h"

extern "C" LLVM_ATTRIBUTE_WEAK ::mlir::PassPluginLibraryInfo
mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "EmbPasses", LLVM_VERSION_STRING, []() {
            ::mlir::emb::registerEmbConversionPasses();
            ::mlir::emb::registerEmbTransformsPasses();
            ::mlir::emb::registerEmbPipelines();
          }};
}
