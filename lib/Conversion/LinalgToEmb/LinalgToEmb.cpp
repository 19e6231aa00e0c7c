//===- LinalgToEmb.cpp - raise-linalg-to-emb: the pass --------------------===//
//
// Raises the linalg forms other compilers emit for embedding and
// embedding_bag (torch-mlir's TorchToLinalg, IREE's phases) to emb ops by
// what they compute: the patterns are in Gather.cpp (emb.lookup) and
// Bags.cpp (emb.bag).
//
//===----------------------------------------------------------------------===//

#include "Matchers.h"

#include "emb/Conversion/Passes.h"

#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::emb {
#define GEN_PASS_DEF_RAISELINALGTOEMB
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

struct RaiseLinalgToEmbPass
    : emb::impl::RaiseLinalgToEmbBase<RaiseLinalgToEmbPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    emb::raising::populateGatherPatterns(patterns);
    emb::raising::populateBagPatterns(patterns);
    // One walk, no folding: IR that does not match stays exactly as it was.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
