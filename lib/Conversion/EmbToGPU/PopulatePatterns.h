//===- PopulatePatterns.h - the GPU pattern families ------------*- C++ -*-===//
//
// One function per op family, each defined in the file of that name; the
// public populateEmbToGPUPatterns (EmbToGPU.cpp) adds them all. The atomic
// and the deterministic dense gradients are two patterns of one op, chosen
// by the op's `deterministic` attribute.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBTOGPU_POPULATEPATTERNS_H
#define EMB_LIB_CONVERSION_EMBTOGPU_POPULATEPATTERNS_H

namespace mlir {
class RewritePatternSet;
namespace emb::gpu_config {
struct GPULaunchConfig;
} // namespace emb::gpu_config
namespace emb::gpu_lowering {

/// Forward.cpp: emb.lookup, emb.bag, emb.renorm.
void populateForwardPatterns(RewritePatternSet &patterns,
                             const gpu_config::GPULaunchConfig &config);
/// MultiBag.cpp: emb.multi_bag as one launch (ahead of the decomposition
/// into one emb.bag per table, which stays as the fallback).
void populateMultiBagPatterns(RewritePatternSet &patterns,
                              const gpu_config::GPULaunchConfig &config);
/// DenseGrad.cpp: emb.lookup_grad, emb.bag_grad (atomics),
/// emb.bag_psw_grad.
void populateDenseGradPatterns(RewritePatternSet &patterns,
                               const gpu_config::GPULaunchConfig &config);
/// DeterministicGrad.cpp: emb.lookup_grad, emb.bag_grad {deterministic}.
void populateDeterministicGradPatterns(
    RewritePatternSet &patterns, const gpu_config::GPULaunchConfig &config);
/// SparseGrad.cpp: emb.lookup_sparse_grad, emb.bag_sparse_grad.
void populateSparseGradPatterns(RewritePatternSet &patterns,
                                const gpu_config::GPULaunchConfig &config);
/// BagUpdate.cpp: emb.bag_update.
void populateBagUpdatePatterns(RewritePatternSet &patterns,
                               const gpu_config::GPULaunchConfig &config);

} // namespace emb::gpu_lowering
} // namespace mlir

#endif // EMB_LIB_CONVERSION_EMBTOGPU_POPULATEPATTERNS_H
