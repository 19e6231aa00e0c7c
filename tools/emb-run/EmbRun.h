//===- EmbRun.h - the pieces of emb-run -------------------------*- C++ -*-===//
//
// emb-run is a small driver: flags (Flags.cpp) -> a random instance of one
// op, mirrored to the device on a GPU (Instance.cpp) -> the call, as a user
// writes it, through the Engine -> checks against the f64 reference
// (Check.cpp) -> timing against a memcpy probe (Bench.cpp) -> a report
// (emb-run.cpp). The kernel it prints and reports is the one the Engine
// plans for the call (Engine::planSpecs).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_TOOLS_EMBRUN_EMBRUN_H
#define EMB_TOOLS_EMBRUN_EMBRUN_H

#include "emb/Runtime/Cuda.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace emb::run {

/// The command line (hand-parsed: libLLVM registers global options,
/// `--threads` among them, that llvm::cl would clash with).
struct Flags {
  std::string opName = "embedding_bag", modeName = "sum", profileFlag = "torch";
  std::string dtypeName_ = "f32", indexDtype = "i64", offsetDtype, cacheDir;
  std::string targetFlag = "host", chip; // chip: empty = the device's
  std::string quantized = "none";
  std::string tables; // --tables "V1xD1:mode,V2xD2:mode"
  std::string optimizer; // --optimizer: the backward fused with a step
  double lr = 0.01, weightDecay = 0.0, eps = 1e-8;
  int64_t ptx = 0;
  bool emulate = false;
  int64_t numEmbeddings = 100000, dim = 128, batch = 4096, bagSize = 32;
  int64_t paddingIdx = INT64_MIN;
  double maxNorm = NAN, normType = 2.0;
  bool perSampleWeights = false, includeLastOffset = false, twoD = false;
  bool scaleGradByFreq = false, check = false, bench = false, json = false;
  bool printIR = false, noDiskCache = false, sparse = false, coalesced = false;
  bool trustIndices = false, deterministic = false, hugePages = false;
  bool resources = false, transactions = false;
  int threads = 0, iters = 20;
  uint64_t seed = 1;
};

Flags parseFlags(int argc, char **argv);
[[noreturn]] void usageError(const std::string &message);
[[noreturn]] void die(const std::string &message);

/// What the flags mean, checked: dtypes, the op's family, sizes, options.
struct Setup {
  Flags flags;
  DType dtype = DType::f32, idxType = DType::i64, offType = DType::i64;
  Profile profile = Profile::torch;
  BagMode mode = BagMode::sum;
  /// --quantized: the table is packed rows; `dtype` is the output's.
  Quantization quant = Quantization::none;
  /// --tables: many tables in one call, flat in `weight` (of `V` elements,
  /// D = the sum of their dims); B bags of L per table (N = T * B * L).
  std::vector<TableOptions> tables;
  /// --optimizer: the gradient of the backward op fused with this step
  /// (docs/semantics.md §6.4) instead of written out.
  std::optional<OptimizerOptions> optimizer;
  bool nvptx = false, onDevice = false;
  bool backward = false, bag = false, lookup = false;
  int64_t V = 0, D = 0, B = 0, L = 0, N = 0, numOffsets = 0;
  std::optional<int64_t> pad;
  int64_t padRow = -1; ///< normalised, or -1
  std::optional<double> norm;
};
Setup resolve(const Flags &flags);
/// The Engine of the run: the flags' target, threads and cache.
EngineOptions engineOptions(const Setup &s);
/// --transactions, after the traced call: the memory transactions of each
/// GPU kernel it ran and the bandwidth model (Transactions.cpp).
int printTransactions(const Setup &s, const std::vector<KernelSpec> &specs);

using Buffer = HostTensor;

/// The random instance: host buffers, and the views the calls use (the
/// buffers, or their device copies on a GPU). Not copyable: `views` point
/// into it.
struct Instance {
  explicit Instance(const Setup &s);
  Instance(const Instance &) = delete;
  Instance &operator=(const Instance &) = delete;

  Buffer weight, indices, offsets, psw, out, argmax, pooled;
  /// Backward: `out` is the incoming gradient, `gradWeight` the result
  /// (dense), or `sparseRows` / `sparseValues` with `sparseCount` rows.
  Buffer gradWeight, sparseRows, sparseValues;
  /// With --quantized, `weight` holds the packed table's values (f64,
  /// dequantised exactly: the reference's table) and `packed` its rows.
  Buffer packed;
  /// --optimizer: its states (adagrad's sum, adam's moments).
  Buffer state0, state1;
  Tensor vState0, vState1;
  Tensor vWeight, vIndices, vOffsets, vPsw, vOut, vArgmax, vPooled, vGradWeight,
      vSparseRows, vSparseValues, vPacked;
  int64_t sparseCount = 0;
  std::unique_ptr<cuda::Device> device; ///< on a GPU only
  /// --huge-pages: the table the calls use, on 2 MiB pages (a copy of
  /// `weight`, copied back after the call).
  std::shared_ptr<char> hugeWeight;

  /// Every buffer with the view the calls use.
  std::vector<std::pair<Buffer *, Tensor *>> mirrors();
};
/// Device copies of every buffer (the views then point to them).
void mirrorToDevice(Instance &inst);
/// --huge-pages: the calls' table on transparent huge pages (allocateTable).
void moveWeightToHugePages(Instance &inst);
/// The results back into the host buffers, after the GPU is done (and the
/// table from its huge pages).
void fetchFromDevice(Instance &inst);
/// The call of the flags' op, as a user writes it.
llvm::Error callOp(Engine &engine, const Setup &s, Instance &inst);

struct CheckResult {
  bool ok = true;
  double worst = 0; ///< the largest relative error
};
/// --check: the outputs against the f64 reference, computed on
/// `weightBefore` (the table before the call; with --optimizer also the
/// states before it); `gradScale` is the planned kernel's.
CheckResult checkResults(const Setup &s, const Instance &inst,
                         const Buffer &weightBefore, double gradScale,
                         const std::vector<Buffer> &statesBefore = {});

struct BenchResult {
  double ms = 0, bytes = 0, gbps = 0, probe = 0;
  /// The random-row gather probe's median time for the same rows (host
  /// forward calls on an AVX-512 machine only).
  std::optional<double> gatherMs;
};
/// --bench: median time of repeated calls and the ratios to a copy probe
/// and (host forward) to a gather probe of the same rows, timed in turn
/// with the calls.

BenchResult benchCall(const Setup &s, Instance &inst, int nthreads,
                      const std::function<llvm::Error()> &call);
/// The gather probe of a host forward call (GatherProbe.cpp): each call
/// of the result reads the instance's rows, as the kernel does, at the
/// hardware's limit. Empty where there is none (backward, GPU, no
/// AVX-512).
std::function<void()> gatherProbe(const Setup &s, Instance &inst,
                                  int nthreads);
/// --op jit: the JIT's own costs.
int benchJit(const Flags &f);

} // namespace emb::run

#endif // EMB_TOOLS_EMBRUN_EMBRUN_H
