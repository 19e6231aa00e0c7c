//===- emb-opt.cpp - mlir-opt with the emb dialect and its passes ---------===//
//
// `emb-opt` is `mlir-opt` with the emb dialect registered next to every
// upstream dialect, extension and pass.
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"
#include "emb/Pipelines/Pipelines.h"
#include "emb/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::emb::registerEmbConversionPasses();
  mlir::emb::registerEmbTransformsPasses();
  mlir::emb::registerEmbPipelines();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates gpu.modules to LLVM IR.
  mlir::registerAllGPUToLLVMIRTranslations(registry);
  registry.insert<mlir::emb::EmbDialect>();

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "emb-opt: the emb dialect and its passes\n", registry));
}
