//===- main.cpp - a consumer of the installed emb-mlir package ------------===//
//
// Registers the emb dialect in its own context, parses an emb program, runs
// the CPU pipeline on it, then calls the JIT through emb::Engine and checks
// the result, and allocates a table on huge pages. Prints "emb-consumer: ok"
// on success.
//
//===----------------------------------------------------------------------===//

#include "emb/Dialect/EmbDialect.h"
#include "emb/Pipelines/Pipelines.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/TableMemory.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

static const char *kProgram = R"mlir(
func.func @bag(%w: memref<?x4xf32>, %idx: memref<?xi64>, %off: memref<?xi64>,
               %out: memref<?x4xf32>) attributes {llvm.emit_c_interface} {
  %tw = bufferization.to_tensor %w restrict : memref<?x4xf32> to tensor<?x4xf32>
  %ti = bufferization.to_tensor %idx restrict : memref<?xi64> to tensor<?xi64>
  %to = bufferization.to_tensor %off restrict : memref<?xi64> to tensor<?xi64>
  %r = emb.bag mean %tw[%ti] offsets(%to : tensor<?xi64>) : tensor<?x4xf32>[tensor<?xi64>] -> tensor<?x4xf32>
  bufferization.materialize_in_destination %r in restrict writable %out
      : (tensor<?x4xf32>, memref<?x4xf32>) -> ()
  return
}
)mlir";

static int fail(const char *what) {
  std::fprintf(stderr, "emb-consumer: %s\n", what);
  return 1;
}

int main() {
  // 1. The dialect and the pipeline in the consumer's own context.
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::emb::EmbDialect>();
  mlir::MLIRContext context(registry);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(kProgram, &context);
  if (!module)
    return fail("could not parse the emb program");
  mlir::PassManager pm(&context);
  mlir::emb::buildEmbCPUPipeline(pm);
  if (mlir::failed(pm.run(*module)))
    return fail("emb-cpu-pipeline failed");
  bool lowered = true;
  module->walk([&](mlir::Operation *op) {
    if (op->getDialect() && op->getDialect()->getNamespace() == "emb")
      lowered = false;
  });
  if (!lowered)
    return fail("emb ops left after the pipeline");

  // 2. The JIT: embedding_bag(mode=mean) on 3 rows, 2 bags.
  std::vector<float> table = {1, 2, 3, 4, 10, 20, 30, 40, -1, -2, -3, -4};
  std::vector<int64_t> ids = {0, 1, 2}, offsets = {0, 2};
  std::vector<float> out(2 * 4, 0);
  emb::EngineOptions options;
  options.cache.useDiskCache = false;
  emb::Engine engine(options);
  emb::EmbeddingBagOptions bag;
  bag.mode = emb::BagMode::mean;
  emb::Tensor w{table.data(), emb::DType::f32, {3, 4}};
  emb::Tensor x{ids.data(), emb::DType::i64, {3}};
  emb::Tensor o{offsets.data(), emb::DType::i64, {2}};
  emb::Tensor r{out.data(), emb::DType::f32, {2, 4}};
  if (llvm::Error err = engine.embeddingBag(x, w, &o, r, bag)) {
    std::fprintf(stderr, "emb-consumer: %s\n",
                 llvm::toString(std::move(err)).c_str());
    return 1;
  }
  const float want[8] = {5.5f, 11, 16.5f, 22, -1, -2, -3, -4};
  for (int i = 0; i < 8; ++i)
    if (std::fabs(out[i] - want[i]) > 1e-6f)
      return fail("wrong result from the generated kernel");

  // 3. A bad index is an error value, and nothing is written.
  ids[1] = 7;
  out.assign(8, 0);
  llvm::Error err = engine.embeddingBag(x, w, &o, r, bag);
  if (!err)
    return fail("an out-of-range index was accepted");
  std::string message = llvm::toString(std::move(err));
  if (message != "index 7 at position 1 is out of range [0, 3)")
    return fail("unexpected error message");
  for (float v : out)
    if (v != 0)
      return fail("the output was written despite the error");

  // 4. A table on transparent huge pages (2 MiB aligned, zero-filled).
  size_t bytes = 8 << 20;
  auto *big = static_cast<float *>(emb::allocateTable(bytes));
  if (!big || reinterpret_cast<uintptr_t>(big) % emb::kHugePageBytes != 0 ||
      big[bytes / sizeof(float) - 1] != 0)
    return fail("emb::allocateTable");
  emb::freeTable(big, bytes);
  std::printf("emb-consumer: ok\n");
  return 0;
}
