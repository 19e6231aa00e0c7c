//===- EmbDialect.h - the emb dialect ---------------------------*- C++ -*-===//
//
// Public header of the emb dialect: the dialect, its enums and attributes,
// and its ops. Include this one header to use the dialect.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_DIALECT_EMBDIALECT_H
#define EMB_DIALECT_EMBDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "emb/Dialect/EmbOpsDialect.h.inc"

#include "emb/Dialect/EmbEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "emb/Dialect/EmbAttrs.h.inc"

namespace mlir::emb {
/// The bytes of one row of `dim` elements in the quantised format `q`:
/// `dim + 8` for int8, `ceil(dim / 2) + 4` for int4 (docs/semantics.md §6.2).
int64_t quantizedRowBytes(Quantization q, int64_t dim);
} // namespace mlir::emb

#define GET_OP_CLASSES
#include "emb/Dialect/EmbOps.h.inc"

#endif // EMB_DIALECT_EMBDIALECT_H
