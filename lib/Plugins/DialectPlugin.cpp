//===- DialectPlugin.cpp - the emb dialect as an mlir-opt plugin ----------===//
//
//   mlir-opt --load-dialect-plugin=lib/EmbDialectPlugin.so input.mlir
//
//===----------------------------------------------------------------------===//

#include "emb/Dialect/EmbDialect.h"

#include "mlir/Tools/Plugins/DialectPlugin.h"

extern "C" LLVM_ATTRIBUTE_WEAK ::mlir::DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "EmbDialect", LLVM_VERSION_STRING,
          [](::mlir::DialectRegistry *registry) {
            registry->insert<::mlir::emb::EmbDialect>();
          }};
}
