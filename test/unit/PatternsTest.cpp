//===- PatternsTest.cpp - the public pattern sets in a foreign driver -----===//
//
// populateEmbToSCFPatterns and populateEmbToGPUPatterns are the entry points
// for a downstream compiler that mixes our lowerings into its own
// conversion. Here they run under upstream's greedy driver (not our pass's
// walk): every op of the dialect must be rewritten, and the result verify.
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <gtest/gtest.h>

using namespace mlir;

namespace {

// One function per op of the dialect (and per pattern of ops with two).
constexpr const char *kEveryOp = R"mlir(
func.func @lookup(%w: tensor<?x16xf32>, %x: tensor<4x8xi32>) -> tensor<4x8x16xf32> {
  %0 = emb.lookup %w[%x] {padding_idx = -1 : i64, padding_mode = #emb.padding_mode<zero>}
      : tensor<?x16xf32>[tensor<4x8xi32>] -> tensor<4x8x16xf32>
  return %0 : tensor<4x8x16xf32>
}
func.func @bag(%w: tensor<?x64xf16>, %x: tensor<?xi64>, %off: tensor<?xi64>, %p: tensor<?xf16>) -> tensor<?x64xf16> {
  %0 = emb.bag sum %w[%x] offsets(%off : tensor<?xi64>) per_sample_weights(%p : tensor<?xf16>)
      : tensor<?x64xf16>[tensor<?xi64>] -> tensor<?x64xf16>
  return %0 : tensor<?x64xf16>
}
func.func @multi_bag(%t0: tensor<100x16xf16>, %t1: tensor<?x8xf16>, %x: tensor<?xi64>, %o: tensor<?xi32>) -> tensor<?x32xf16> {
  %0 = emb.multi_bag %t0, %t1[%x] offsets(%o : tensor<?xi32>)
      {modes = [#emb.mode<mean>, #emb.mode<none>], padding_idx = array<i64: 3, -1>, sequence_lengths = array<i64: 0, 2>}
      : (tensor<100x16xf16>, tensor<?x8xf16>)[tensor<?xi64>] -> tensor<?x32xf16>
  return %0 : tensor<?x32xf16>
}
func.func @renorm(%w: tensor<10x4xf32>, %x: tensor<?xi64>) -> tensor<10x4xf32> {
  %0 = emb.renorm %w[%x] {max_norm = 1.0 : f64, norm_type = 2.0 : f64}
      : tensor<10x4xf32>[tensor<?xi64>] -> tensor<10x4xf32>
  return %0 : tensor<10x4xf32>
}
func.func @lookup_grad(%g: tensor<?x8xf32>, %x: tensor<?xi64>) -> tensor<300x8xf32> {
  %0 = emb.lookup_grad %g[%x] {num_embeddings = 300 : i64, padding_idx = 0 : i64, scale_grad_by_freq, grad_scale = 2.0 : f64}
      : tensor<?x8xf32>[tensor<?xi64>] -> tensor<300x8xf32>
  return %0 : tensor<300x8xf32>
}
func.func @lookup_grad_deterministic(%g: tensor<?x8xf32>, %x: tensor<?xi64>) -> tensor<300x8xf32> {
  %0 = emb.lookup_grad %g[%x] {num_embeddings = 300 : i64, deterministic}
      : tensor<?x8xf32>[tensor<?xi64>] -> tensor<300x8xf32>
  return %0 : tensor<300x8xf32>
}
func.func @bag_grad_mean(%g: tensor<?x4xf16>, %x: tensor<?xi32>, %o: tensor<?xi64>) -> tensor<50x4xf16> {
  %0 = emb.bag_grad mean %g[%x] offsets(%o : tensor<?xi64>) {num_embeddings = 50 : i64}
      : tensor<?x4xf16>[tensor<?xi32>] -> tensor<50x4xf16>
  return %0 : tensor<50x4xf16>
}
func.func @bag_grad_mean_deterministic(%g: tensor<?x4xf16>, %x: tensor<?xi32>, %o: tensor<?xi64>) -> tensor<50x4xf16> {
  %0 = emb.bag_grad mean %g[%x] offsets(%o : tensor<?xi64>) {num_embeddings = 50 : i64, deterministic}
      : tensor<?x4xf16>[tensor<?xi32>] -> tensor<50x4xf16>
  return %0 : tensor<50x4xf16>
}
func.func @bag_grad_max(%g: tensor<?x32xf32>, %x: tensor<?x4xi64>, %m: tensor<?x32xi64>) -> tensor<100x32xf32> {
  %r = emb.bag_grad max %g[%x] max_indices(%m : tensor<?x32xi64>) {num_embeddings = 100 : i64}
      : tensor<?x32xf32>[tensor<?x4xi64>] -> tensor<100x32xf32>
  return %r : tensor<100x32xf32>
}
func.func @bag_psw_grad(%g: tensor<?x16xf32>, %w: tensor<?x16xf32>, %x: tensor<?x?xi64>) -> tensor<?x?xf32> {
  %0 = emb.bag_psw_grad %g, %w[%x] {padding_idx = 0 : i64}
      : tensor<?x16xf32>, tensor<?x16xf32>[tensor<?x?xi64>] -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
func.func @lookup_sparse_grad(%g: tensor<3x4xf32>, %x: tensor<3xi64>) -> (tensor<?xi64>, tensor<?x4xf32>) {
  %r, %v = emb.lookup_sparse_grad %g[%x] {num_embeddings = 10 : i64, padding_idx = 0 : i64, grad_scale = 2.0 : f64}
      : tensor<3x4xf32>[tensor<3xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return %r, %v : tensor<?xi64>, tensor<?x4xf32>
}
func.func @bag_sparse_grad(%g: tensor<?x4xf32>, %x: tensor<?xi64>, %o: tensor<?xi64>) -> (tensor<?xi64>, tensor<?x4xf32>) {
  %r, %v = emb.bag_sparse_grad mean %g[%x] offsets(%o : tensor<?xi64>) {num_embeddings = 10 : i64, coalesced}
      : tensor<?x4xf32>[tensor<?xi64>] -> tensor<?xi64>, tensor<?x4xf32>
  return %r, %v : tensor<?xi64>, tensor<?x4xf32>
}
)mlir";

class PatternsTest : public ::testing::Test {
protected:
  PatternsTest() {
    // What the patterns create (the passes declare the same dependencies).
    context
        .loadDialect<emb::EmbDialect, func::FuncDialect, arith::ArithDialect,
                     bufferization::BufferizationDialect, gpu::GPUDialect,
                     math::MathDialect, memref::MemRefDialect, scf::SCFDialect,
                     tensor::TensorDialect, vector::VectorDialect>();
  }

  /// Applies `populate`'s patterns with the greedy driver; the number of
  /// emb ops left (-1 when the driver or the verifier fails). The GPU
  /// patterns' output, emb.on_buffers, is not one: bufferisation inlines it
  /// (destinations.mlir, GPUEmulated.* run it through).
  int lowerWith(function_ref<void(RewritePatternSet &)> populate) {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(kEveryOp, &context);
    if (!module)
      return -1;
    RewritePatternSet patterns(&context);
    populate(patterns);
    if (failed(applyPatternsGreedily(*module, std::move(patterns))) ||
        failed(verify(*module)))
      return -1;
    int left = 0;
    module->walk([&](Operation *op) {
      left +=
          isa<emb::EmbDialect>(op->getDialect()) && !isa<emb::OnBuffersOp>(op);
    });
    return left;
  }

  MLIRContext context;
};

TEST_F(PatternsTest, SCFPatternsLowerEveryOpUnderTheGreedyDriver) {
  EXPECT_EQ(lowerWith([](RewritePatternSet &patterns) {
              emb::populateEmbToSCFPatterns(patterns);
            }),
            0);
}

TEST_F(PatternsTest, GPUPatternsLowerEveryOpUnderTheGreedyDriver) {
  EXPECT_EQ(lowerWith([](RewritePatternSet &patterns) {
              emb::populateEmbToGPUPatterns(patterns);
            }),
            0);
}

TEST_F(PatternsTest, PinnedConfigurationsLowerEveryOpToo) {
  // What a downstream compiler pins instead of the heuristics.
  EXPECT_EQ(lowerWith([](RewritePatternSet &patterns) {
              emb::populateEmbToSCFPatterns(patterns, {/*blockBytes=*/256});
            }),
            0);
  EXPECT_EQ(lowerWith([](RewritePatternSet &patterns) {
              emb::populateEmbToGPUPatterns(
                  patterns, {/*threadsPerBlock=*/64, /*maxThreadsPerRow=*/4});
            }),
            0);
}

TEST_F(PatternsTest, AnEmptySetLeavesEveryOp) {
  // The count above is not vacuous: without the patterns, all 12 ops stay.
  EXPECT_EQ(lowerWith([](RewritePatternSet &) {}), 12);
}

} // namespace
