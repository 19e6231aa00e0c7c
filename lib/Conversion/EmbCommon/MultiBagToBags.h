//===- MultiBagToBags.h - emb.multi_bag as one emb.bag per table -*- C++ -*-===//
//
// The table-batched bag (docs/semantics.md §6.3) in the terms both targets
// lower already: each table's bags become an emb.bag over its slice of the
// offsets (include_last_offset: the next table's first offset closes the
// last bag), written into its columns of the output. One function, one call
// of the runtime; on the CPU the bag range a thread owns covers every
// table. emb.multi_bag_update (its gradient fused with an optimizer step)
// likewise becomes one emb.bag_update per table, over the table's own
// slice of the indices, each table taken out of the flat buffers and put
// back before the next (in place after bufferisation). Private to
// lib/Conversion.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBCOMMON_MULTIBAGTOBAGS_H
#define EMB_LIB_CONVERSION_EMBCOMMON_MULTIBAGTOBAGS_H

namespace mlir {
class RewritePatternSet;
namespace emb::lowering {

/// Adds the decompositions of emb.multi_bag into emb.bag ops and of
/// emb.multi_bag_update into emb.bag_update ops.
void populateMultiBagDecompositionPatterns(RewritePatternSet &patterns);

} // namespace emb::lowering
} // namespace mlir

#endif // EMB_LIB_CONVERSION_EMBCOMMON_MULTIBAGTOBAGS_H
