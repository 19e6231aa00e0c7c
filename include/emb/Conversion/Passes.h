//===- Passes.h - emb conversion passes -------------------------*- C++ -*-===//

#ifndef EMB_CONVERSION_PASSES_H
#define EMB_CONVERSION_PASSES_H

#include "emb/Dialect/EmbDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
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

/// Adds the patterns that lower the forward emb ops to scf + vector.
void populateEmbToSCFPatterns(RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "emb/Conversion/Passes.h.inc"

} // namespace emb
} // namespace mlir

#endif // EMB_CONVERSION_PASSES_H
