//===- PopulatePatterns.h - the CPU pattern families ------------*- C++ -*-===//
//
// One function per op family, each defined in the file of that name; the
// public populateEmbToSCFPatterns (EmbToSCF.cpp) adds them all.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBTOSCF_POPULATEPATTERNS_H
#define EMB_LIB_CONVERSION_EMBTOSCF_POPULATEPATTERNS_H

namespace mlir {
class RewritePatternSet;
namespace emb::cpu {
struct CPULoweringConfig;
} // namespace emb::cpu
namespace emb::cpu_lowering {

/// Forward.cpp: emb.lookup, emb.bag, emb.renorm.
void populateForwardPatterns(RewritePatternSet &patterns,
                             const cpu::CPULoweringConfig &config);
/// DenseGrad.cpp: emb.lookup_grad, emb.bag_grad, emb.bag_psw_grad.
void populateDenseGradPatterns(RewritePatternSet &patterns,
                               const cpu::CPULoweringConfig &config);
/// SparseGrad.cpp: emb.lookup_sparse_grad, emb.bag_sparse_grad.
void populateSparseGradPatterns(RewritePatternSet &patterns,
                                const cpu::CPULoweringConfig &config);

/// BagUpdate.cpp: emb.bag_update.
void populateBagUpdatePatterns(RewritePatternSet &patterns,
                               const cpu::CPULoweringConfig &config);

} // namespace emb::cpu_lowering
} // namespace mlir

#endif // EMB_LIB_CONVERSION_EMBTOSCF_POPULATEPATTERNS_H
