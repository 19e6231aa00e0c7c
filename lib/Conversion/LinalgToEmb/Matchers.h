//===- Matchers.h - what the raising patterns share ------------*- C++ -*-===//
//
// Private to raise-linalg-to-emb: the checks of a gather's body that both
// the lookup (Gather.cpp) and the bag patterns (Bags.cpp) use, and their
// pattern sets.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_CONVERSION_LINALGTOEMB_MATCHERS_H
#define EMB_CONVERSION_LINALGTOEMB_MATCHERS_H

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace mlir::emb::raising {

/// An element type emb tables have (f32, f64, f16, bf16).
bool isEmbFloat(Type t);

/// Adds to `checks` the ops computing an assert's condition when it is a
/// conjunction (arith.andi) of bound checks (0 <= x, x < V, x <u V) of the
/// gathered index `in` of `weight`; fails on any other condition.
LogicalResult collectBoundChecks(Value condition, BlockArgument in,
                                 Value weight,
                                 llvm::SmallPtrSetImpl<Operation *> &checks);

/// Keeps a gather's bounds checks when it is raised: 0 <= x < V for every
/// index, as an scf.for of asserts with the same messages, before the op.
void emitBoundChecks(PatternRewriter &rewriter, Location loc, Value weight,
                     Value indices, ArrayRef<cf::AssertOp> asserts);

/// The gather of rows as emb.lookup (Gather.cpp).
void populateGatherPatterns(RewritePatternSet &patterns);

/// embedding_bag and gathers reduced over the sequence as emb.bag
/// (Bags.cpp).
void populateBagPatterns(RewritePatternSet &patterns);

} // namespace mlir::emb::raising

#endif // EMB_CONVERSION_LINALGTOEMB_MATCHERS_H
