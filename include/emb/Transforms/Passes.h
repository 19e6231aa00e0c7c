//===- Passes.h - emb transformation passes ---------------------*- C++ -*-===//

#ifndef EMB_TRANSFORMS_PASSES_H
#define EMB_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Pass/Pass.h"

namespace mlir::emb {

#define GEN_PASS_DECL
#include "emb/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "emb/Transforms/Passes.h.inc"

} // namespace mlir::emb

#endif // EMB_TRANSFORMS_PASSES_H
