//===- Pipelines.h - named emb pipelines ------------------------*- C++ -*-===//

#ifndef EMB_PIPELINES_PIPELINES_H
#define EMB_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include "mlir/Pass/PassRegistry.h"

namespace mlir::emb {

/// emb -> scf + vector -> bufferised -> LLVM dialect, for the host CPU.
/// The input is a module of functions on tensors (or on memrefs converted
/// with bufferization.to_tensor / materialize_in_destination, as the JIT
/// emits them).
void buildEmbCPUPipeline(OpPassManager &pm);

/// The host tail of the CPU pipeline: scf / vector / memref / arith to the
/// LLVM dialect.
void addHostToLLVMPasses(OpPassManager &pm);

struct NVPTXPipelineOptions : public PassPipelineOptions<NVPTXPipelineOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip", llvm::cl::desc("NVIDIA chip (sm_70 ... sm_120a)"),
      llvm::cl::init("sm_90")};
  PassOptions::Option<unsigned> ptx{
      *this, "ptx",
      llvm::cl::desc("PTX ISA version times ten; 0: the chip's default"),
      llvm::cl::init(0)};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("isa (PTX text), bin (cubin: needs ptxas) or fatbin"),
      llvm::cl::init("isa")};
};

/// emb -> gpu.launch (convert-emb-to-gpu) -> bufferised -> outlined
/// gpu.func -> NVVM -> gpu.binary for `chip`. The chip and PTX version are
/// checked first (emb-check-nvptx-target). The host function keeps its
/// gpu.launch_func ops: the runtime launches the binary itself.
void buildEmbNVPTXPipeline(OpPassManager &pm,
                           const NVPTXPipelineOptions &options);

/// The CUDA toolkit that gpu-module-to-binary uses (ptxas for cubins,
/// libdevice for pow): `$CUDA_ROOT`, `$CUDA_HOME`, `$CUDA_PATH`,
/// /usr/local/cuda, or the toolkit of the `ptxas` on PATH; empty if none.
/// LLVM 22's own default is empty, so the pipeline passes this one.
std::string cudaToolkitPath();

/// emb-nvptx-pipeline, then the host side to the LLVM dialect with
/// convert-gpu-to-emb-runtime: what the JIT compiles for Target::nvptx.
void buildEmbNVPTXRuntimePipeline(OpPassManager &pm,
                                  const NVPTXPipelineOptions &options);

struct GPUEmulationPipelineOptions
    : public PassPipelineOptions<GPUEmulationPipelineOptions> {
  PassOptions::Option<bool> traceMemory{
      *this, "trace-memory",
      llvm::cl::desc("Report every global memory access of the emulated "
                     "kernels to the memory-trace table (MemoryTraceABI.h)"),
      llvm::cl::init(false)};
};

/// The GPU kernels of buildEmbNVPTXPipeline run on the host instead
/// (emb-emulate-gpu-on-host), lowered to the LLVM dialect like the CPU
/// kernels: the GPU lowering is tested on machines without a GPU. With
/// `traceMemory`, their global accesses are also traced (docs/gpu.md).
void buildEmbGPUEmulationPipeline(OpPassManager &pm, bool traceMemory = false);

/// Registers `emb-cpu-pipeline`, `emb-nvptx-pipeline` and
/// `emb-gpu-emulation-pipeline` with the pass registry (for emb-opt).
void registerEmbPipelines();

} // namespace mlir::emb

#endif // EMB_PIPELINES_PIPELINES_H
