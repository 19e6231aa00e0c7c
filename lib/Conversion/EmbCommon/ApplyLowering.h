//===- ApplyLowering.h - the driver of the emb lowering passes --*- C++ -*-===//
//
// convert-emb-to-scf and convert-emb-to-gpu are thin: they collect their
// patterns (populateEmbTo{SCF,GPU}Patterns) and call applyEmbLowering,
// which rewrites every emb op, in walk order, and fails the pass on any op
// left (private to lib/Conversion).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBCOMMON_APPLYLOWERING_H
#define EMB_LIB_CONVERSION_EMBCOMMON_APPLYLOWERING_H

#include "mlir/Rewrite/FrozenRewritePatternSet.h"

namespace mlir::emb::lowering {

/// Applies `patterns` once to each op of the emb dialect under `root` (in
/// post-order, ops collected before any rewrite, so a pattern may erase
/// ops that follow it), in rounds while emb ops remain (a decomposition,
/// such as emb.multi_bag into emb.bag ops, leaves ops for the next round;
/// at most 3). An op no pattern rewrites is an error: the
/// pattern's own diagnostic if it emitted one, else "has no <target>
/// lowering". Returns failure after the first such op.
///
/// The patterns of one op must exclude each other (their predicates are
/// checked before any diagnostic): a pattern that reports an error and is
/// followed by one that succeeds would leave an error on a passing run.
LogicalResult applyEmbLowering(Operation *root,
                               const FrozenRewritePatternSet &patterns,
                               StringRef target);

} // namespace mlir::emb::lowering

#endif // EMB_LIB_CONVERSION_EMBCOMMON_APPLYLOWERING_H
