//===- Passes.h - emb conversion passes -------------------------*- C++ -*-===//

#ifndef EMB_CONVERSION_PASSES_H
#define EMB_CONVERSION_PASSES_H

#include "emb/Dialect/EmbDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
namespace emb {

#define GEN_PASS_DECL
#include "emb/Conversion/Passes.h.inc"

/// Adds the patterns of convert-emb-to-scf: one per emb op (three for
/// emb.bag_grad: sum / mean, and max by dtype), lowering it on tensors to scf +
/// vector (lib/Conversion/EmbToSCF, one file per op family). Each pattern
/// replaces its op in one rewrite and reports an error on an op it cannot
/// lower (a dynamic embedding_dim).
/// `options` pins what the pass options pin (zero: the heuristic).
void populateEmbToSCFPatterns(RewritePatternSet &patterns,
                              const ConvertEmbToSCFOptions &options = {});

/// Adds the patterns of convert-emb-to-gpu: one per emb op, two for
/// emb.lookup_grad and emb.bag_grad (atomic, or `deterministic`), lowering
/// it to gpu.launch on buffers (lib/Conversion/EmbToGPU, one file per op
/// family). A module using them needs the `gpu.container_module` attribute
/// before gpu-kernel-outlining.
/// `options` pins what the pass options pin (zero: the heuristic); they
/// must be valid (ConvertEmbToGPU's option descriptions).
void populateEmbToGPUPatterns(RewritePatternSet &patterns,
                              const ConvertEmbToGPUOptions &options = {});

#define GEN_PASS_REGISTRATION
#include "emb/Conversion/Passes.h.inc"

} // namespace emb
} // namespace mlir

#endif // EMB_CONVERSION_PASSES_H
