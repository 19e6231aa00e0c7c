//===- Passes.h - emb transformation passes ---------------------*- C++ -*-===//

#ifndef EMB_TRANSFORMS_PASSES_H
#define EMB_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::emb {

#define GEN_PASS_DECL
#include "emb/Transforms/Passes.h.inc"

/// The PTX ISA version (times ten) for `chip` when `ptx` is 0, else `ptx`;
/// an error message when the chip is unknown or the version too old for it
/// (or newer than LLVM 22's NVPTX backend knows).
FailureOr<unsigned> resolvePTXVersion(StringRef chip, unsigned ptx,
                                      std::string &error);

#define GEN_PASS_REGISTRATION
#include "emb/Transforms/Passes.h.inc"

} // namespace mlir::emb

#endif // EMB_TRANSFORMS_PASSES_H
