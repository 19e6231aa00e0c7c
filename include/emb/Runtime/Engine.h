//===- Engine.h - the public C++ API of emb-mlir ----------------*- C++ -*-===//
//
// Describe the call, get a kernel generated for exactly this shape and these
// options (compiled once, cached in memory and on disk), run it on the
// caller's buffers over a pool of threads. Every argument is validated
// before anything is written (docs/semantics.md §5); errors are returned as
// llvm::Error values with a clear message, never aborts. A buffer a call
// writes (its output, a gradient, the weight that max_norm rescales) must
// not share memory with another argument of the call: that is an error
// too, found before anything runs.
//
//   emb::Engine engine;
//   emb::EmbeddingBagOptions opts;
//   opts.mode = emb::BagMode::sum;
//   if (llvm::Error err = engine.embeddingBag(indices, weight, &offsets, out,
//   opts))
//     llvm::errs() << llvm::toString(std::move(err)) << "\n";
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_ENGINE_H
#define EMB_RUNTIME_ENGINE_H

#include "emb/Core/Types.h"
// The Engine's cache and kernels are the JIT's (cache(), kernel(),
// EngineOptions::cache), and its calls run KernelSpecs (planSpecs()).
#include "emb/JIT/JIT.h"
#include "emb/JIT/KernelSpec.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace emb {

/// What an error of the Engine reports, as the std::error_code of its
/// llvm::StringError, so that bindings raise the matching exception (the
/// Python package: IndexError, TypeError, ValueError, RuntimeError).
enum class ErrorKind {
  invalid_argument = 1, ///< a bad shape, rank, option or offsets
  index_out_of_range,   ///< an index (or max_indices value) outside [0, V)
  wrong_dtype,          ///< a tensor of a dtype the argument does not accept
};
const std::error_category &errorCategory();
std::error_code make_error_code(ErrorKind kind);
/// The kind of an error's code; nullopt for errors not made by the Engine
/// (e.g. a failed kernel compile).
std::optional<ErrorKind> errorKind(std::error_code code);

/// A view of caller memory: contiguous, row-major.
struct Tensor {
  void *data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;

  int64_t numel() const;
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
};

/// Which system's behaviour to reproduce where they differ
/// (docs/semantics.md): `torch` (default), `zero-padding` (Lucid, torch.js:
/// padding rows look up as zeros), `unit-scaling` (Graphcore: gradients
/// scaled by sqrt(V / numel(x)); rejects scale_grad_by_freq and sparse).
enum class Profile { torch, zero_padding, unit_scaling };
std::optional<Profile> parseProfile(std::string_view name);
const char *profileName(Profile profile);

struct EmbeddingOptions {
  std::optional<int64_t> paddingIdx;
  /// Renormalise the referenced rows of the weight in place first.
  std::optional<double> maxNorm;
  double normType = 2.0;
  /// Gradient options: checked for consistency here, used by the backward.
  bool scaleGradByFreq = false;
  bool sparse = false;
  /// Dense gradients on GPU targets: bit-reproducible (rows summed in input
  /// order after a stable sort by row) instead of atomic adds in no fixed
  /// order. The host kernels are always deterministic.
  bool deterministic = false;
  Profile profile = Profile::torch;
};

struct EmbeddingBagOptions {
  BagMode mode = BagMode::mean;
  std::optional<int64_t> paddingIdx;
  std::optional<double> maxNorm;
  double normType = 2.0;
  bool scaleGradByFreq = false;
  bool sparse = false;
  bool includeLastOffset = false;
  /// As in EmbeddingOptions.
  bool deterministic = false;
  Profile profile = Profile::torch;
};

namespace cuda {
struct DriverAPI;
} // namespace cuda
struct GPUState;

/// The most threads an Engine runs (EngineOptions::threads is clamped to
/// it: each is an OS thread, and thousands of them only fail to start).
constexpr int kMaxThreads = 1024;

/// How an Engine runs the parts of a call in parallel: calls `body` on
/// contiguous ranges that cover [0, n) exactly once, each at least `grain`
/// long unless n is shorter, on any threads (the caller's included), and
/// returns when all have run. The Engine's results do not depend on the
/// ranges: every range computes rows (bags, gradient rows) that no other
/// range touches, in a fixed order. A library that owns a thread pool
/// passes its own here (emb_mlir's torch operators pass at::parallel_for),
/// so that a process has one pool, not one per library.
using ParallelFor = std::function<void(
    int64_t n, int64_t grain, llvm::function_ref<void(int64_t, int64_t)> body)>;

struct EngineOptions {
  /// Worker threads of the Engine's own pool (the caller's thread
  /// included); 0: all hardware threads; at most kMaxThreads. Unused with
  /// `parallelFor`.
  int threads = 0;
  /// Run the parallel parts of every call through the caller's executor
  /// instead of the Engine's own pool (which is then not started).
  ParallelFor parallelFor;
  /// Share another Engine's kernel cache (Engine::sharedCache()): kernels
  /// are compiled and held once for both. Null: a cache of its own, made
  /// from `cache`.
  std::shared_ptr<KernelCache> kernelCache;
  /// Where kernels run: `host` (default); `nvptx`: on an NVIDIA GPU, every
  /// Tensor's data being a device pointer (CUdeviceptr) of the current
  /// context's device; or `gpu_emulated`: the same GPU kernels run on the
  /// host (host pointers) to test the GPU lowering without a GPU. Every op
  /// has GPU kernels; the sparse gradients synchronise (their size is read
  /// back from the device), and their `rows` / `values` must hold every
  /// non-padding position (every position when trusted indices are not
  /// read). GPU kernels move 16-byte vectors when D allows: the weight,
  /// the output, max_indices and the gradients' rows must then be 16-byte
  /// aligned (indices, offsets and per-sample weights: their natural
  /// alignment).
  Target target = Target::host;
  /// gpu_emulated only (ignored otherwise): the emulated kernels report
  /// every global load, store and atomic of every thread to the
  /// memory-trace collector, which counts the memory transactions a GPU
  /// would issue (emb/JIT/MemoryTrace.h: takeMemoryTrace()). Slower; for
  /// analysis, not for production.
  bool traceMemory = false;
  KernelCacheOptions cache;

  // nvptx only (docs/gpu.md). The CUDA driver is loaded at the first call;
  // no driver, no device or no context is an error at that call.
  /// The chip kernels are compiled for (`sm_90`); empty: the current
  /// context's device (without a current context: device 0's primary
  /// context, made current).
  std::string chip;
  /// PTX ISA version x10; 0: the chip's default.
  unsigned ptx = 0;
  /// The CUstream every kernel runs on, in call order; null: the legacy
  /// default stream. Calls return once the work is enqueued.
  void *stream = nullptr;
  /// Copy the indices (offsets, max_indices) to the host and validate them
  /// before anything is enqueued, as on the host (docs/semantics.md §5):
  /// exact errors, at the cost of a copy and a stream synchronisation per
  /// call. False: they are trusted (no copy, no synchronisation); an
  /// out-of-range index is then undefined behaviour on the device.
  bool validateIndices = true;
  /// The driver API; null: libcuda.so.1 (tests pass a fake one).
  const cuda::DriverAPI *cudaDriver = nullptr;
};

class ThreadPool;
struct Plan;

/// One table of Engine::embeddingBagTables (docs/semantics.md §6.3).
struct TableOptions {
  int64_t numEmbeddings = 0, embeddingDim = 0;
  BagMode mode = BagMode::sum;
  /// In [-V, V) (a negative value counts from V), or none.
  std::optional<int64_t> paddingIdx;
  /// Mode none (a sequence table): the length L every bag of the table has;
  /// unset, the first bag's (0 without bags). Its rows fill L * D columns.
  /// Required on a GPU with validateIndices off (the offsets are not read).
  std::optional<int64_t> sequenceLength;
};

class Engine {
public:
  explicit Engine(EngineOptions options = {});
  ~Engine();

  /// `out` ([*indices.shape, D], dtype of weight) = weight[indices]. With
  /// `maxNorm`, the referenced rows of `weight` are renormalised in place
  /// first (after validation).
  llvm::Error embedding(const Tensor &indices, const Tensor &weight,
                        const Tensor &out,
                        const EmbeddingOptions &options = {});

  /// `out` ([B, D]) = the pooled rows of each bag. `offsets` is null for 2-D
  /// indices; `perSampleWeights` (not with max: with mean it is the
  /// weighted mean, with sqrtn the divisor is sqrt(sum psw^2)) and
  /// `maxIndices` ([B, D] i64, max only) may be null.
  llvm::Error embeddingBag(const Tensor &indices, const Tensor &weight,
                           const Tensor *offsets, const Tensor &out,
                           const EmbeddingBagOptions &options = {},
                           const Tensor *perSampleWeights = nullptr,
                           const Tensor *maxIndices = nullptr);

  /// embedding_bag of a row-wise quantised table (docs/semantics.md §6.2):
  /// `table` is [V, quantizedRowBytes(quant, D)] u8, as torch's
  /// embedding_bag_byte_prepack / embedding_bag_4bit_prepack make it; `out`
  /// is [B, D] f32 or f16 (D is out's) and `perSampleWeights` has out's
  /// dtype. Every mode, padding_idx and include_last_offset work as in
  /// embeddingBag; max_norm, scale_grad_by_freq and sparse are errors (a
  /// quantised table has no gradient).
  llvm::Error embeddingBagQuantized(const Tensor &indices, const Tensor &table,
                                    Quantization quant, const Tensor *offsets,
                                    const Tensor &out,
                                    const EmbeddingBagOptions &options = {},
                                    const Tensor *perSampleWeights = nullptr);

  /// Many tables in one call (docs/semantics.md §6.3; FBGEMM's
  /// table-batched embedding_bag, TorchRec's KJT layout): `weights` holds
  /// every table of `tables`, flat and one after another (table t's
  /// [V_t, D_t] rows, row-major); `indices` (1-D) the indices of every
  /// table, concatenated; `offsets` (T * B + 1 entries, table-major) the
  /// bags: bag b of table t is indices[offsets[t*B + b] : offsets[t*B + b +
  /// 1]], offsets[0] = 0, non-decreasing, the last = len(indices). `out`
  /// ([B, sum C_t], the weights' dtype) receives table t's pooled rows in
  /// columns [sum_{s<t} C_s, sum_{s<=t} C_s), C_t = D_t; a sequence table
  /// (mode none, bags of one length L_t) puts its L_t rows side by side in
  /// C_t = L_t * D_t columns (a padding entry: zeros). `perSampleWeights` (the
  /// indices' shape) weigh every table's entries; no table may then be max.
  /// One kernel runs every table; errors name the table.
  llvm::Error embeddingBagTables(const Tensor &indices, const Tensor &weights,
                                 llvm::ArrayRef<TableOptions> tables,
                                 const Tensor &offsets, const Tensor &out,
                                 const Tensor *perSampleWeights = nullptr);

  /// Renormalises in place every distinct row of `weight` referenced by
  /// `indices` whose p-norm exceeds `maxNorm`.
  llvm::Error renorm(const Tensor &weight, const Tensor &indices,
                     double maxNorm, double normType = 2.0);

  /// Dense weight gradient of embedding: `gradWeight` ([V, D], the dtype of
  /// `grad`) from `grad` ([*indices.shape, D]). Uses padding_idx,
  /// scale_grad_by_freq and the profile of `options` (unit-scaling scales by
  /// sqrt(V / numel(indices))); for sparse gradients see
  /// embeddingSparseBackward.
  /// Deterministic on the host: rows are accumulated in input order, in f32
  /// (f64 for f64), whatever the thread count. The GPU kernels add with
  /// atomics, in no fixed order, unless `options.deterministic`.
  llvm::Error embeddingBackward(const Tensor &grad, const Tensor &indices,
                                const Tensor &gradWeight,
                                const EmbeddingOptions &options = {});

  /// Dense weight gradient of embedding_bag from `grad` ([B, D]), with the
  /// bag structure and options of the forward call; mode max needs the
  /// forward's `maxIndices` ([B, D] i64, each -1 or a row).
  llvm::Error embeddingBagBackward(const Tensor &grad, const Tensor &indices,
                                   const Tensor *offsets,
                                   const Tensor &gradWeight,
                                   const EmbeddingBagOptions &options = {},
                                   const Tensor *perSampleWeights = nullptr,
                                   const Tensor *maxIndices = nullptr);

  /// Gradient of per_sample_weights (mode sum only: not defined for the
  /// weighted mean and sqrtn): `gradPerSampleWeights` (the
  /// shape of `indices`, the dtype of `weight`) = dot(grad[bag j],
  /// weight[x_j]) for every entry j, 0 for padding entries.
  llvm::Error embeddingBagPerSampleWeightsBackward(
      const Tensor &grad, const Tensor &weight, const Tensor &indices,
      const Tensor *offsets, const Tensor &gradPerSampleWeights,
      const EmbeddingBagOptions &options = {});

  /// Sparse (COO) weight gradient of embedding (of a [numEmbeddings, D]
  /// table): the first M rows of `rows`
  /// ([C] i64) and `values` ([C, D], the dtype of `grad`) receive the
  /// gradient, and M is returned. Uncoalesced (PyTorch's form): one row per
  /// non-padding position, in input order, so C >= that count. `coalesced`:
  /// distinct rows in ascending order, contributions summed in input order.
  /// Never touches V-sized memory. scale_grad_by_freq is an error with
  /// sparse gradients (as in PyTorch), and so is the unit-scaling profile.
  llvm::Expected<int64_t> embeddingSparseBackward(
      const Tensor &grad, const Tensor &indices, int64_t numEmbeddings,
      const Tensor &rows, const Tensor &values,
      const EmbeddingOptions &options = {}, bool coalesced = false);

  /// Sparse weight gradient of embedding_bag (sum or mean), as above; the
  /// row of entry j is grad[bag j] * psw_j (/ n_bag for mean).
  llvm::Expected<int64_t> embeddingBagSparseBackward(
      const Tensor &grad, const Tensor &indices, const Tensor *offsets,
      int64_t numEmbeddings, const Tensor &rows, const Tensor &values,
      const EmbeddingBagOptions &options = {},
      const Tensor *perSampleWeights = nullptr, bool coalesced = false);

  /// The weight gradient of embedding_bag fused with an optimizer step
  /// (docs/semantics.md §6.4; FBGEMM's split-table update): the rows of
  /// `weight` ([V, D]) that the gradient touches are updated in place, with
  /// `states` (numOptimizerStates(optimizer.optimizer) tensors: adagrad's
  /// sum of squares [V, D], rowwise_adagrad's [V], adam's exp_avg and
  /// exp_avg_sq [V, D]; f32, f64 for an f64 weight); no [V, D] gradient is
  /// made. The bag structure and options (mode, padding_idx,
  /// scale_grad_by_freq, include_last_offset, profile) are the forward
  /// call's; `maxIndices` is the forward's argmax of mode max. Each row is
  /// summed in input order and updated once: the same bits for any thread
  /// count. Every argument is checked before anything is written.
  llvm::Error embeddingBagUpdate(const Tensor &grad, const Tensor &indices,
                                 const Tensor *offsets, const Tensor &weight,
                                 llvm::ArrayRef<Tensor> states,
                                 const OptimizerOptions &optimizer,
                                 const EmbeddingBagOptions &options = {},
                                 const Tensor *perSampleWeights = nullptr,
                                 const Tensor *maxIndices = nullptr);
  /// The same for embedding: `grad` is [*indices.shape, D] (the lookup is
  /// run as the sum bag of 2-D indices [N, 1]).
  llvm::Error embeddingUpdate(const Tensor &grad, const Tensor &indices,
                              const Tensor &weight,
                              llvm::ArrayRef<Tensor> states,
                              const OptimizerOptions &optimizer,
                              const EmbeddingOptions &options = {});
  /// The many-table bag's (embeddingBagTables') weight gradient fused with
  /// an optimizer step, every table in one call: `grad` ([B, sum C_t]) is
  /// the gradient of its output; `weights`, `tables`, `indices`, `offsets`
  /// and `perSampleWeights` are the forward's; `states` are flat like
  /// `weights` (each state of every table, one after another: sum V_t *
  /// D_t elements, or sum V_t for rowwise_adagrad; f32, f64 for f64). Each
  /// table is updated as embeddingBagUpdate updates one (no max table: it
  /// needs the forward's max_indices); each thread owns a share of every
  /// table's rows (1024 parts of each: kTableRowParts). Host only for now.
  llvm::Error embeddingBagTablesUpdate(const Tensor &grad,
                                       const Tensor &indices,
                                       const Tensor &weights,
                                       llvm::ArrayRef<TableOptions> tables,
                                       const Tensor &offsets,
                                       llvm::ArrayRef<Tensor> states,
                                       const OptimizerOptions &optimizer,
                                       const Tensor *perSampleWeights = nullptr);
  /// The kernel for `spec` (compiling it if needed): for benchmarks and
  /// tools. It stays loaded while the handle lives.
  llvm::Expected<Kernel> kernel(const KernelSpec &spec);

  /// The specs of the kernels that the calls `call` makes on this Engine
  /// would run, in the order they would run (a forward op with max_norm:
  /// renorm, then the op): the calls are validated and planned as usual but
  /// nothing is compiled, run or written. Empty when they would run no
  /// kernel (empty inputs). For tools that print the kernel of a call
  /// (`emb-run --print-ir`). Only the calls `call` makes on this thread are
  /// planned: other threads' calls of this Engine meanwhile run as usual.
  llvm::Expected<std::vector<KernelSpec>>
  planSpecs(llvm::function_ref<llvm::Error(Engine &)> call);

  KernelCache &cache() { return *kernelCache; }
  /// The cache, for EngineOptions::kernelCache of another Engine.
  std::shared_ptr<KernelCache> sharedCache() const { return kernelCache; }
  /// The threads of the Engine's own pool; 0 when it runs on the caller's
  /// executor (EngineOptions::parallelFor).
  int threads() const;

  /// nvptx: makes the stream of later calls `stream` (a CUstream); not to
  /// be called while other threads run calls of this Engine.
  void setStream(void *stream);

private:
  // Each entry point builds a Plan (runtime/EngineInternal.h) with a
  // Planner and runs it: validation, spec and argument filler first, then
  // the kernel calls.
  friend struct Planner;
  /// Executes a plan: obtains its kernel, runs its first step, fills and
  /// calls its chunks. The number of rows of a sparse gradient, else 0.
  llvm::Expected<int64_t> run(Plan &plan);
  llvm::Expected<int64_t> run(llvm::Expected<Plan> plan);

  /// The spec's target fields (chip and PTX version on nvptx).
  void setTarget(KernelSpec &spec) const;
  /// What a check of index values reads: `t` on the host; on nvptx a host
  /// copy in `storage`, or null when indices are trusted. Empty tensors
  /// and null pointers stay as they are.
  llvm::Expected<const Tensor *> readable(const Tensor *t, Tensor &copy,
                                          std::vector<char> &storage);
  /// Checks the indices (as checkIndices) and counts the rows an
  /// uncoalesced sparse gradient needs: the non-padding positions (all of
  /// them when trusted device indices are not read). One read of them.
  llvm::Expected<int64_t> sparseRowsNeeded(const Tensor &indices,
                                           int64_t numEmbeddings,
                                           int64_t padRow);
  /// Zeros `t` (host memory, or device memory on nvptx).
  llvm::Error zero(const Tensor &t);
  /// nvptx: loads the driver and makes sure a context is current (the
  /// chip of the call is its device's, unless EngineOptions::chip is set).
  llvm::Error gpuReady();
  /// Every index in [0, V), read through readable().
  llvm::Error checkIndices(const Tensor &indices, int64_t numEmbeddings);
  /// Every index of table t (positions offsets[t*B] to offsets[(t+1)*B])
  /// in [0, V_t), read through readable(); errors name the table.
  /// `hostOffsets`, when given, are the offsets' values already read (on
  /// a device: not copied again).
  llvm::Error checkTableIndices(const Tensor &indices, const Tensor &offsets,
                                llvm::ArrayRef<int64_t> numEmbeddings,
                                int64_t numBags,
                                const Tensor *hostOffsets = nullptr);
  /// Every max_indices value in [-1, V), read through readable().
  llvm::Error checkMaxIndices(const Tensor &maxIndices, int64_t numEmbeddings);
  /// The bag checks, offsets' values read through readable(); the number
  /// of bags.
  llvm::Expected<int64_t> bagInputs(const Tensor &indices,
                                    const Tensor *offsets,
                                    const EmbeddingBagOptions &options,
                                    const Tensor *psw, DType floatType);

  /// Runs `body` over [0, n) on the caller's executor or the own pool.
  void parallelFor(int64_t n, int64_t grain,
                   llvm::function_ref<void(int64_t, int64_t)> body);

  std::shared_ptr<KernelCache> kernelCache;
  ParallelFor executor;            // EngineOptions::parallelFor, or empty
  std::unique_ptr<ThreadPool> pool; // without an executor
  Target target = Target::host;
  bool traceMemory = false;      // gpu_emulated only
  std::unique_ptr<GPUState> gpu; // nvptx only
};

} // namespace emb

template <> struct std::is_error_code_enum<emb::ErrorKind> : std::true_type {};

#endif // EMB_RUNTIME_ENGINE_H
