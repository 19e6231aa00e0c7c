//===- Pipelines.h - named emb pipelines ------------------------*- C++ -*-===//

#ifndef EMB_PIPELINES_PIPELINES_H
#define EMB_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace mlir::emb {

/// emb -> scf + vector -> bufferised -> LLVM dialect, for the host CPU.
/// The input is a module of functions on tensors (or on memrefs converted
/// with bufferization.to_tensor / materialize_in_destination, as the JIT
/// emits them).
void buildEmbCPUPipeline(OpPassManager &pm);

/// Registers `emb-cpu-pipeline` with the pass registry (for emb-opt).
void registerEmbPipelines();

} // namespace mlir::emb

#endif // EMB_PIPELINES_PIPELINES_H
