//===- EmbToGPU.cpp - the convert-emb-to-gpu pass -------------------------===//
//
// The pass only collects the GPU patterns and applies them; each op's
// lowering lives in the file of its family:
//   Forward.cpp            emb.lookup, emb.bag, emb.renorm
//   MultiBag.cpp           emb.multi_bag (one launch for every table)
//   DenseGrad.cpp          emb.lookup_grad, emb.bag_grad (atomics),
//                          emb.bag_psw_grad
//   DeterministicGrad.cpp  emb.lookup_grad, emb.bag_grad {deterministic}
//   SparseGrad.cpp         emb.lookup_sparse_grad, emb.bag_sparse_grad
// with the builders they share in Utils.h and SortAndScan.h. No kernel
// uses barriers, shuffles or shared memory: all are emulatable on the host
// (emb-emulate-gpu-on-host).
//
//===----------------------------------------------------------------------===//

#include "Conversion/EmbCommon/ApplyLowering.h"
#include "Conversion/EmbCommon/MultiBagToBags.h"
#include "Conversion/EmbCommon/GPUConfig.h"
#include "PopulatePatterns.h"
#include "emb/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/Support/MathExtras.h"

namespace mlir::emb {
#define GEN_PASS_DEF_CONVERTEMBTOGPU
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

void mlir::emb::populateEmbToGPUPatterns(
    RewritePatternSet &patterns, const ConvertEmbToGPUOptions &options) {
  gpu_config::GPULaunchConfig config;
  if (options.threadsPerBlock > 0)
    config.threadsPerBlock = options.threadsPerBlock;
  if (options.maxThreadsPerRow > 0)
    config.maxThreadsPerRow = options.maxThreadsPerRow;
  if (options.entriesInFlight > 0) // the pass checks [1, 16]; a caller too
    config.entriesInFlight = std::min<int64_t>(options.entriesInFlight, 16);
  gpu_lowering::populateForwardPatterns(patterns, config);
  gpu_lowering::populateMultiBagPatterns(patterns, config);
  lowering::populateMultiBagDecompositionPatterns(patterns);
  gpu_lowering::populateDenseGradPatterns(patterns, config);
  gpu_lowering::populateDeterministicGradPatterns(patterns, config);
  gpu_lowering::populateSparseGradPatterns(patterns, config);
  gpu_lowering::populateBagUpdatePatterns(patterns, config);
}

namespace {
/// A pinned launch shape must keep a row's thread group inside one warp
/// and a whole number of groups per block.
bool isPowerOf2In(int64_t v, int64_t lo, int64_t hi) {
  return v == 0 || (v >= lo && v <= hi && llvm::isPowerOf2_64(v));
}

struct ConvertEmbToGPUPass
    : emb::impl::ConvertEmbToGPUBase<ConvertEmbToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    if (!isPowerOf2In(threadsPerBlock, 32, 1024) ||
        !isPowerOf2In(maxThreadsPerRow, 1, 32) || entriesInFlight < 0 ||
        entriesInFlight > 16) {
      getOperation()->emitError(
          "convert-emb-to-gpu: threads-per-block must be a power of two in "
          "[32, 1024], max-threads-per-row one in [1, 32] and "
          "entries-in-flight in [1, 16] (or 0: the heuristic)");
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    emb::populateEmbToGPUPatterns(
        patterns, {threadsPerBlock, maxThreadsPerRow, entriesInFlight});
    if (failed(emb::lowering::applyEmbLowering(
            getOperation(), FrozenRewritePatternSet(std::move(patterns)),
            "GPU")))
      return signalPassFailure();
    // The host code now launches kernels.
    if (auto module = dyn_cast<ModuleOp>(getOperation()))
      module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                      UnitAttr::get(&getContext()));
  }
};
} // namespace
