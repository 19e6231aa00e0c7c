//===- EmbDialect.cpp - the emb dialect -----------------------------------===//

#include "emb/Dialect/EmbDialect.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::emb;

#include "emb/Dialect/EmbOpsDialect.cpp.inc"

#include "emb/Dialect/EmbEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "emb/Dialect/EmbAttrs.cpp.inc"

void EmbDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "emb/Dialect/EmbAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "emb/Dialect/EmbOps.cpp.inc"
      >();
}
