//===- EmbToSCF.cpp - the convert-emb-to-scf pass -------------------------===//
//
// The pass only collects the CPU patterns and applies them; each op's
// lowering lives in the file of its family:
//   Forward.cpp     emb.lookup, emb.bag, emb.renorm
//   DenseGrad.cpp   emb.lookup_grad, emb.bag_grad (sum / mean / sqrtn; max by
//                   dtype), emb.bag_psw_grad
//   SparseGrad.cpp  emb.lookup_sparse_grad, emb.bag_sparse_grad
// with the builders they share in Utils.h and SortAndScan.h.
//
//===----------------------------------------------------------------------===//

#include "Conversion/EmbCommon/ApplyLowering.h"
#include "Conversion/EmbCommon/MultiBagToBags.h"
#include "Conversion/EmbCommon/CPUConfig.h"
#include "PopulatePatterns.h"
#include "emb/Conversion/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace mlir::emb {
#define GEN_PASS_DEF_CONVERTEMBTOSCF
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

void mlir::emb::populateEmbToSCFPatterns(
    RewritePatternSet &patterns, const ConvertEmbToSCFOptions &options) {
  cpu::CPULoweringConfig config;
  if (options.blockBytes > 0)
    config.accumulatorBlockBytes = options.blockBytes;
  if (options.argmaxSegment > 0)
    config.argmaxSegment = options.argmaxSegment;
  cpu_lowering::populateForwardPatterns(patterns, config);
  lowering::populateMultiBagDecompositionPatterns(patterns);
  cpu_lowering::populateDenseGradPatterns(patterns, config);
  cpu_lowering::populateSparseGradPatterns(patterns, config);
  cpu_lowering::populateBagUpdatePatterns(patterns, config);
}

namespace {
struct ConvertEmbToSCFPass
    : emb::impl::ConvertEmbToSCFBase<ConvertEmbToSCFPass> {
  using Base::Base;

  void runOnOperation() override {
    if (blockBytes < 0 || argmaxSegment < 0 || argmaxSegment > INT32_MAX) {
      getOperation()->emitError(
          "convert-emb-to-scf: block-bytes must be positive and "
          "argmax-segment in [1, 2^31 - 1] (or 0: the default)");
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    emb::populateEmbToSCFPatterns(patterns, {blockBytes, argmaxSegment});
    if (failed(emb::lowering::applyEmbLowering(
            getOperation(), FrozenRewritePatternSet(std::move(patterns)),
            "CPU")))
      signalPassFailure();
  }
};
} // namespace
