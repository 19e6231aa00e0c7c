//===- GPUPipeline.cpp - the emb NVPTX and GPU-emulation pipelines --------===//

#include "emb/Conversion/Passes.h"
#include "emb/Pipelines/Pipelines.h"
#include "emb/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <cstdlib>

using namespace mlir;

namespace {

/// emb ops -> gpu.launch on buffers -> outlined kernels (shared by both
/// pipelines, so that the emulation runs exactly the kernels the NVPTX
/// pipeline compiles).
void addOutlinedKernelPasses(OpPassManager &pm) {
  pm.addPass(emb::createConvertEmbToGPU());
  // The kernels write the buffers of emb.on_buffers ops; a new result that
  // is materialised in a buffer gets that buffer as its init, so that the
  // kernels write straight into it (no copy).
  pm.addPass(bufferization::createEmptyTensorEliminationPass());
  // Bufferise first: canonicalisation would turn the kernels' aligned
  // memref.load of a to_buffer back into tensor.extract, losing the
  // alignment (and NVPTX then splits each index load in two).
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Constants and index math go back into the kernels (canonicalisation
  // hoisted them out of gpu.launch), so that they are not kernel params.
  pm.addPass(createGpuLaunchSinkIndexComputationsPass());
  pm.addPass(createGpuKernelOutliningPass());
}

} // namespace

std::string mlir::emb::cudaToolkitPath() {
  for (const char *var : {"CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"})
    if (const char *dir = std::getenv(var);
        dir && *dir && llvm::sys::fs::is_directory(dir))
      return dir;
  if (llvm::sys::fs::is_directory("/usr/local/cuda"))
    return "/usr/local/cuda";
  if (auto ptxas = llvm::sys::findProgramByName("ptxas"))
    return llvm::sys::path::parent_path(llvm::sys::path::parent_path(*ptxas))
        .str();
  return "";
}

void mlir::emb::buildEmbNVPTXPipeline(OpPassManager &pm,
                                      const NVPTXPipelineOptions &options) {
  emb::EmbCheckNVPTXTargetOptions check;
  check.chip = options.chip;
  check.ptx = options.ptx;
  pm.addPass(emb::createEmbCheckNVPTXTarget(check));
  addOutlinedKernelPasses(pm);
  pm.addPass(emb::createEmbSetKernelOccupancy());

  // A bad chip stops the pipeline at the check above; the version here is
  // only a placeholder then.
  std::string error;
  FailureOr<unsigned> ptx =
      emb::resolvePTXVersion(options.chip, options.ptx, error);
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = "+ptx" + std::to_string(succeeded(ptx) ? *ptx : 80u);
  target.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(target));

  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createSCFToControlFlowPass());
  kernels.addPass(memref::createExpandStridedMetadataPass());
  kernels.addPass(createLowerAffinePass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.indexBitwidth = 64; // 64-bit addressing: tables over 2^31 elements
  kernels.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  kernels.addPass(createReconcileUnrealizedCastsPass());
  kernels.addPass(createCanonicalizerPass());

  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = cudaToolkitPath();
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void mlir::emb::buildEmbNVPTXRuntimePipeline(
    OpPassManager &pm, const NVPTXPipelineOptions &options) {
  buildEmbNVPTXPipeline(pm, options);
  pm.addPass(emb::createConvertGPUToEmbRuntime());
  addHostToLLVMPasses(pm);
}

void mlir::emb::buildEmbGPUEmulationPipeline(OpPassManager &pm,
                                             bool traceMemory) {
  addOutlinedKernelPasses(pm);
  emb::EmbEmulateGPUOnHostOptions emulate;
  emulate.traceMemory = traceMemory;
  pm.addPass(emb::createEmbEmulateGPUOnHost(emulate));
  pm.addPass(createCanonicalizerPass());
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  addHostToLLVMPasses(pm);
}
