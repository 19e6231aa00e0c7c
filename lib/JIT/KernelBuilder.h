//===- KernelBuilder.h - private helpers of the kernel builder --*- C++ -*-===//

#ifndef EMB_LIB_JIT_KERNELBUILDER_H
#define EMB_LIB_JIT_KERNELBUILDER_H

#include "emb/JIT/KernelSpec.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

namespace emb::jit {

/// Adds the packed entry point of the kernel of `spec` (KernelABI.h) to
/// `module`, lowered to the LLVM dialect: `_emb_packed_<symbol>(void **)`
/// loads one descriptor pointer per argument and calls the kernel's C
/// interface, `_mlir_ciface_<symbol>`.
mlir::LogicalResult addPackedEntryPoint(mlir::ModuleOp module,
                                        const KernelSpec &spec);

} // namespace emb::jit

#endif // EMB_LIB_JIT_KERNELBUILDER_H
