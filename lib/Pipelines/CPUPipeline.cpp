//===- CPUPipeline.cpp - the emb CPU pipeline -----------------------------===//

#include "Conversion/EmbCommon/CPUConfig.h"
#include "emb/Conversion/Passes.h"
#include "emb/Pipelines/Pipelines.h"
#include "emb/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlir::emb::buildEmbCPUPipeline(OpPassManager &pm) {
  // emb -> scf loops over whole-row vectors, still on tensors.
  pm.addPass(emb::createConvertEmbToSCF());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Write outputs straight into their destinations: the tensor.empty of
  // each lowered op is replaced by the buffer it is materialised in.
  pm.addPass(bufferization::createEmptyTensorEliminationPass());
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  pm.addPass(createCanonicalizerPass());
  // What else a whole model holds (linalg named ops and generics around the
  // raised emb ops: matmuls, reductions, elementwise) becomes loops too; a
  // module of emb ops alone has no linalg left, and is unchanged.
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  // Results whose size only the kernel knows (coalesced sparse gradients)
  // are built in the caller's buffer, not in scratch memory copied there.
  pm.addNestedPass<func::FuncOp>(emb::createEmbForwardAllocsToCopyTargets());
  // Only scratch buffers are allocated (renorm with p = 0; a model's
  // intermediate tensors): free them.
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  // Hide the latency of random row reads.
  // distance and line size: the pass's defaults are CPUConfig.h's.
  emb::EmbPrefetchRowsOptions prefetch;
  prefetch.bytesAhead = emb::cpu::kPrefetchBytesAhead;
  pm.addPass(emb::createEmbPrefetchRows(prefetch));
  addHostToLLVMPasses(pm);
}

void mlir::emb::addHostToLLVMPasses(OpPassManager &pm) {
  pm.addPass(createSCFToControlFlowPass());
  // ceildiv of grid sizes; and bf16 conversions as integer ops: LLVM 22's
  // own lowering of a wide `fptrunc <128 x float> to <128 x bfloat>` after
  // an fdiv (a mean bag's epilogue) takes seconds to minutes in
  // SelectionDAG on x86 hosts without AVX512-BF16 (a D = 5000 bf16 mean
  // bag did not compile in 10 minutes); the expansion rounds to nearest
  // even as LLVM does.
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::emb::registerEmbPipelines() {
  PassPipelineRegistration<>(
      "emb-cpu-pipeline",
      "Lower emb ops to the LLVM dialect for the host CPU (emb -> scf + "
      "vector -> bufferised -> LLVM)",
      [](OpPassManager &pm) { buildEmbCPUPipeline(pm); });
  PassPipelineRegistration<NVPTXPipelineOptions>(
      "emb-nvptx-pipeline",
      "Lower emb ops to NVIDIA kernels: emb -> gpu.launch -> outlined "
      "gpu.func -> NVVM -> gpu.binary (PTX, or a cubin through ptxas); the "
      "host code keeps gpu.launch_func",
      [](OpPassManager &pm, const NVPTXPipelineOptions &options) {
        buildEmbNVPTXPipeline(pm, options);
      });
  PassPipelineRegistration<NVPTXPipelineOptions>(
      "emb-nvptx-runtime-pipeline",
      "emb-nvptx-pipeline, then the host side to the LLVM dialect: "
      "launches, scratch allocations and frees become calls of the emb CUDA "
      "runtime shim (convert-gpu-to-emb-runtime); what the JIT compiles "
      "for the nvptx target",
      [](OpPassManager &pm, const NVPTXPipelineOptions &options) {
        buildEmbNVPTXRuntimePipeline(pm, options);
      });
  PassPipelineRegistration<GPUEmulationPipelineOptions>(
      "emb-gpu-emulation-pipeline",
      "Lower emb ops to the GPU kernels of emb-nvptx-pipeline, then run them "
      "on the host (emb-emulate-gpu-on-host) and lower to the LLVM dialect: "
      "to test GPU kernels without a GPU",
      [](OpPassManager &pm, const GPUEmulationPipelineOptions &options) {
        buildEmbGPUEmulationPipeline(pm, options.traceMemory);
      });
}
