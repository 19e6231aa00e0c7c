//===- ApplyLowering.cpp - the driver of the emb lowering passes ----------===//

#include "Conversion/EmbCommon/ApplyLowering.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Rewrite/PatternApplicator.h"

#include <thread>

using namespace mlir;

/// Every emb op but the lowered form the GPU patterns build
/// (emb.on_buffers: bufferisation inlines it).
static bool isToLower(Operation *op) {
  return isa<emb::EmbDialect>(op->getDialect()) && !isa<emb::OnBuffersOp>(op);
}

LogicalResult
mlir::emb::lowering::applyEmbLowering(Operation *root,
                                      const FrozenRewritePatternSet &patterns,
                                      StringRef target) {
  PatternApplicator applicator(patterns);
  applicator.applyDefaultCostModel();
  // A pattern reports why it cannot lower its op (a dynamic D, say); an op
  // without any pattern, or whose patterns all declined silently, gets a
  // message here. The handler is the context's, so under a multi-threaded
  // pass manager it also sees other functions' diagnostics: it counts only
  // those of this thread, where this instance's patterns run.
  bool reported = false;
  std::thread::id self = std::this_thread::get_id();
  ScopedDiagnosticHandler noticeErrors(root->getContext(), [&](Diagnostic &d) {
    if (std::this_thread::get_id() == self &&
        d.getSeverity() == DiagnosticSeverity::Error)
      reported = true;
    return failure(); // still shown by the handlers before this one
  });
  PatternRewriter rewriter(root->getContext());
  // Rounds: a decomposition (emb.multi_bag into emb.bag ops) leaves emb ops
  // for the next round to lower; every other pattern leaves none.
  for (int round = 0; round < 3; ++round) {
    SmallVector<Operation *> ops;
    root->walk([&](Operation *op) {
      if (isToLower(op))
        ops.push_back(op);
    });
    if (ops.empty())
      return success();
    for (Operation *op : ops) {
      rewriter.setInsertionPoint(op);
      reported = false;
      bool tried = false;
      auto canApply = [&](const Pattern &) {
        tried = true;
        return true;
      };
      if (succeeded(applicator.matchAndRewrite(op, rewriter, canApply)))
        continue;
      if (!tried)
        op->emitOpError() << "has no " << target << " lowering";
      else if (!reported)
        op->emitOpError() << "is not lowered by any " << target << " pattern";
      return failure();
    }
  }
  bool left = false;
  root->walk([&](Operation *op) {
    if (!left && isToLower(op)) {
      op->emitOpError() << "is still left after the " << target
                        << " lowering's rounds";
      left = true;
    }
  });
  return failure(left);
}
