//===- ApplyLowering.cpp - the driver of the emb lowering passes ----------===//

#include "Conversion/EmbCommon/ApplyLowering.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Rewrite/PatternApplicator.h"

using namespace mlir;

LogicalResult
mlir::emb::lowering::applyEmbLowering(Operation *root,
                                      const FrozenRewritePatternSet &patterns,
                                      StringRef target) {
  SmallVector<Operation *> ops;
  root->walk([&](Operation *op) {
    if (isa<EmbDialect>(op->getDialect()))
      ops.push_back(op);
  });
  PatternApplicator applicator(patterns);
  applicator.applyDefaultCostModel();
  // A pattern reports why it cannot lower its op (a dynamic D, say); only
  // an op without any pattern needs the generic message.
  bool reported = false;
  ScopedDiagnosticHandler noticeErrors(root->getContext(), [&](Diagnostic &d) {
    reported |= d.getSeverity() == DiagnosticSeverity::Error;
    return failure(); // still shown by the handlers before this one
  });
  PatternRewriter rewriter(root->getContext());
  for (Operation *op : ops) {
    rewriter.setInsertionPoint(op);
    reported = false;
    if (succeeded(applicator.matchAndRewrite(op, rewriter)))
      continue;
    if (!reported)
      op->emitOpError() << "has no " << target << " lowering";
    return failure();
  }
  return success();
}
