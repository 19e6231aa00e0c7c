//===- EngineInternal.h - plans, kernel arguments, GPU state ----*- C++ -*-===//
//
// Each entry point of the Engine validates its arguments and builds a Plan:
// the KernelSpec, how to split the work into calls (chunks of rows or bags
// over the thread pool, or one call), and a filler that sets the kernel's
// arguments of one chunk by slot (KernelABI). Engine::run executes plans:
// it obtains the kernel before anything is written, runs the plan's first
// step (renorm, for max_norm), then the chunks.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_ENGINEINTERNAL_H
#define EMB_RUNTIME_ENGINEINTERNAL_H

#include "emb/JIT/KernelABI.h"
#include "emb/Runtime/Engine.h"

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace emb {

/// A memref descriptor of rank 1 or 2, laid out as MLIR's C interface reads
/// it: {allocated, aligned, offset, sizes[rank], strides[rank]}.
/// Left uninitialised until set: a call packs only the slots it set.
struct MemRefDesc {
  void *allocated, *aligned;
  int64_t offset;
  int64_t sizesAndStrides[4];
};

/// The arguments of one kernel call, set by slot and packed in the order of
/// the spec's KernelABI. Lives as long as the call.
class KernelArgs {
public:
  explicit KernelArgs(const KernelABI &abi) : abi(abi) {}
  KernelArgs(const KernelABI &&) = delete; // `abi` must outlive the call

  /// A contiguous 1-D view of `n` elements.
  void set(ArgSlot slot, void *data, int64_t n) {
    MemRefDesc &d = at(slot, 1, data);
    d.sizesAndStrides[0] = n;
    d.sizesAndStrides[1] = 1;
  }
  /// A row-major 2-D view of `rows` x `cols`.
  void set(ArgSlot slot, void *data, int64_t rows, int64_t cols) {
    MemRefDesc &d = at(slot, 2, data);
    d.sizesAndStrides[0] = rows;
    d.sizesAndStrides[1] = cols;
    d.sizesAndStrides[2] = cols;
    d.sizesAndStrides[3] = 1;
  }

  /// The bytes [begin, end) the view of `slot` spans, for elements of
  /// `elementBytes`; empty when the slot is unset or its view is.
  std::pair<uintptr_t, uintptr_t> span(ArgSlot slot,
                                       size_t elementBytes) const {
    unsigned rank = ranks[unsigned(slot)];
    if (rank == 0)
      return {0, 0};
    const MemRefDesc &d = descs[unsigned(slot)];
    uint64_t n = 1;
    for (unsigned i = 0; i < rank; ++i)
      n *= static_cast<uint64_t>(d.sizesAndStrides[i]);
    auto begin = reinterpret_cast<uintptr_t>(d.aligned);
    return {begin, begin + static_cast<uintptr_t>(n * elementBytes)};
  }

  /// One descriptor pointer per argument of the ABI, or null when a slot
  /// was not set or was set with another rank than the ABI's (`missing`
  /// then names it).
  void **pack(std::string &missing);

private:
  MemRefDesc &at(ArgSlot slot, unsigned rank, void *data) {
    ranks[unsigned(slot)] = rank;
    MemRefDesc &d = descs[unsigned(slot)];
    d.allocated = d.aligned = data;
    d.offset = 0;
    return d;
  }

  const KernelABI &abi;
  std::array<MemRefDesc, kNumArgSlots> descs;
  std::array<unsigned, kNumArgSlots> ranks{};
  std::array<void *, kMaxKernelArgs> packed;
};

struct Plan {
  enum class Kind {
    nothing, ///< nothing to compute (empty inputs)
    zero,    ///< the result is zeros: `zeroed` is cleared
    kernel   ///< the kernel of `spec`, over chunks
  };
  Kind kind = Kind::kernel;
  KernelSpec spec;
  const Tensor *zeroed = nullptr;
  /// Run before the chunks, once this plan's kernel is compiled (max_norm:
  /// renorm the rows the call reads).
  std::shared_ptr<Plan> first;
  /// The calls cover [0, count): split over the pool in chunks of at least
  /// `grain` (host and emulated targets), or in one call.
  int64_t count = 1, grain = 1;
  bool split = false;
  /// Sets the arguments of the call over [begin, end) by slot; the window
  /// of a dense gradient and the count of a sparse one are set by the
  /// executor.
  std::function<void(KernelArgs &, int64_t begin, int64_t end)> fill;

  static Plan nothing() {
    Plan p;
    p.kind = Kind::nothing;
    return p;
  }
  static Plan zero(const Tensor &t) {
    Plan p;
    p.kind = Kind::zero;
    p.zeroed = &t;
    return p;
  }
};

/// The nvptx target's state (runtime/EngineGPU.cpp).
struct GPUState {
  std::mutex mutex;
  const cuda::DriverAPI *api = nullptr;
  std::string requestedChip;
  unsigned ptx = 0;
  void *stream = nullptr;
  bool validate = true;
};

/// Runs kernels: directly on the host; on nvptx in a cuda::Call on the
/// engine's stream (runtime/EngineGPU.cpp). Keeps the first error.
class KernelCalls {
public:
  explicit KernelCalls(GPUState *gpu) : gpu(gpu) {}
  void operator()(const Kernel &kernel, KernelArgs &args);
  llvm::Error finish();

private:
  void record(std::string error);

  GPUState *gpu;
  std::mutex mutex;
  std::string first;
};

/// Builds the plan of each entry point (runtime/Engine.cpp: the forward
/// ops; runtime/EngineGradients.cpp: the gradients): validation first, then
/// the spec and the argument filler. Nothing is written while planning.
struct Planner {
  Engine &engine;

  llvm::Expected<Plan> renorm(const Tensor &weight, const Tensor &indices,
                              double maxNorm, double normType);
  /// renorm's plan for arguments already validated (the forward ops'
  /// max_norm: their indices are not read a second time).
  llvm::Expected<Plan> renormChecked(const Tensor &weight,
                                     const Tensor &indices, double maxNorm,
                                     double normType);
  llvm::Expected<Plan> embedding(const Tensor &indices, const Tensor &weight,
                                 const Tensor &out,
                                 const EmbeddingOptions &options);
  llvm::Expected<Plan> embeddingBag(const Tensor &indices, const Tensor &weight,
                                    const Tensor *offsets, const Tensor &out,
                                    const EmbeddingBagOptions &options,
                                    const Tensor *psw,
                                    const Tensor *maxIndices);
  llvm::Expected<Plan> embeddingBagQuantized(
      const Tensor &indices, const Tensor &table, Quantization quant,
      const Tensor *offsets, const Tensor &out,
      const EmbeddingBagOptions &options, const Tensor *psw);
  /// What the many-table plans check first (the tables, the flat weights,
  /// the indices' form, the T * B + 1 offsets, per_sample_weights): the
  /// tables' specs and rows, their dims' sum, B and the dtype; `maxTable`
  /// is the first max table, or -1.
  struct CheckedTables {
    std::vector<TableSpec> specs;
    std::vector<int64_t> rows;
    int64_t totalDim = 0, numBags = 0, maxTable = -1;
    DType dtype = DType::f32;
    /// The host copy of device offsets read here (empty: none was made),
    /// so that the index checks do not copy them again.
    std::vector<char> offsetCopy;
  };
  llvm::Expected<CheckedTables>
  tablesInputs(const Tensor &indices, const Tensor &weights,
               llvm::ArrayRef<TableOptions> tables, const Tensor &offsets,
               const Tensor *psw);
  /// Then every table's indices in its range, and (GPU) its start's
  /// alignment in `weights`.
  llvm::Error tablesIndices(const CheckedTables &checked,
                            const Tensor &indices, const Tensor &offsets,
                            const Tensor &weights);
  /// Many tables' gradient fused with an optimizer step
  /// (runtime/EngineExtensions.cpp).
  llvm::Expected<Plan> embeddingBagTablesUpdate(
      const Tensor &grad, const Tensor &indices, const Tensor &weights,
      llvm::ArrayRef<TableOptions> tables, const Tensor &offsets,
      llvm::ArrayRef<Tensor> states, const OptimizerOptions &optimizer,
      const Tensor *psw);
  llvm::Expected<Plan> embeddingBagTables(const Tensor &indices,
                                          const Tensor &weights,
                                          llvm::ArrayRef<TableOptions> tables,
                                          const Tensor &offsets,
                                          const Tensor &out,
                                          const Tensor *psw);
  llvm::Expected<Plan> embeddingBackward(const Tensor &grad,
                                         const Tensor &indices,
                                         const Tensor &gradWeight,
                                         const EmbeddingOptions &options);
  llvm::Expected<Plan>
  embeddingBagBackward(const Tensor &grad, const Tensor &indices,
                       const Tensor *offsets, const Tensor &gradWeight,
                       const EmbeddingBagOptions &options, const Tensor *psw,
                       const Tensor *maxIndices);
  llvm::Expected<Plan>
  perSampleWeightsBackward(const Tensor &grad, const Tensor &weight,
                           const Tensor &indices, const Tensor *offsets,
                           const Tensor &gradPsw,
                           const EmbeddingBagOptions &options);
  llvm::Expected<Plan> sparseBackward(const Tensor &grad, const Tensor &indices,
                                      int64_t numEmbeddings, const Tensor &rows,
                                      const Tensor &values,
                                      const EmbeddingOptions &options,
                                      bool coalesced);
  llvm::Expected<Plan> bagSparseBackward(
      const Tensor &grad, const Tensor &indices, const Tensor *offsets,
      int64_t numEmbeddings, const Tensor &rows, const Tensor &values,
      const EmbeddingBagOptions &options, const Tensor *psw, bool coalesced);

  /// The fused optimizer step (runtime/EngineGradients.cpp); `what` names
  /// the gradient's input in errors ("grad").
  llvm::Expected<Plan>
  embeddingBagUpdate(const Tensor &grad, const Tensor &indices,
                     const Tensor *offsets, const Tensor &weight,
                     llvm::ArrayRef<Tensor> states,
                     const OptimizerOptions &optimizer,
                     const EmbeddingBagOptions &options, const Tensor *psw,
                     const Tensor *maxIndices);

  /// A sparse gradient's padding row, and the number of rows the
  /// uncoalesced gradient needs (the indices are checked on the way),
  /// after the checks of num_embeddings and the outputs.
  struct SparseRows {
    int64_t padRow, needed;
  };
  llvm::Expected<SparseRows>
  sparseOutputs(const Tensor &indices, int64_t numEmbeddings,
                std::optional<int64_t> paddingIdx, const Tensor &grad,
                const Tensor &rows, const Tensor &values);

  /// The checks every entry point starts with: the GPU ready (nvptx), the
  /// table (`tableName`: the weight or its gradient; none for the sparse
  /// gradients) and the indices.
  llvm::Error begin(const Tensor *table, const char *tableName,
                    const Tensor &indices);
  /// The checks of embedding and its dense gradient: begin(), then `rows`
  /// ([*indices.shape, D], the table's dtype: the output or the incoming
  /// gradient), then the gradient options.
  llvm::Error lookupInputs(const Tensor &table, const char *tableName,
                           const Tensor &indices, const Tensor &rows,
                           const char *rowsName,
                           const EmbeddingOptions &options);
  /// padding_idx normalised to [0, V) (or -1), then every index checked.
  llvm::Expected<int64_t> padAndIndices(std::optional<int64_t> paddingIdx,
                                        const Tensor &indices,
                                        int64_t numEmbeddings);
  /// The bag checks (Engine::bagInputs), then `rows` ([bags, D] of
  /// `dtype`: the output or the incoming gradient); the number of bags.
  llvm::Expected<int64_t> bags(const Tensor &indices, const Tensor *offsets,
                               const EmbeddingBagOptions &options,
                               const Tensor *psw, const Tensor &rows,
                               const char *rowsName, int64_t dim, DType dtype);
  /// The checks of embedding_bag and its dense gradient: begin(), then
  /// bags() with the table's D and dtype.
  llvm::Expected<int64_t>
  bagInputs(const Tensor &table, const char *tableName, const Tensor &indices,
            const Tensor *offsets, const EmbeddingBagOptions &options,
            const Tensor *psw, const Tensor &rows, const char *rowsName);
  /// A dense gradient's padding row, after its indices are checked; the
  /// `sparse` option set is an error (`sparseEntry` computes that one).
  llvm::Expected<int64_t> densePadding(bool sparse, const char *sparseEntry,
                                       std::optional<int64_t> paddingIdx,
                                       const Tensor &indices,
                                       int64_t numEmbeddings);
  /// Makes `plan` renormalise the rows of `indices` first (max_norm).
  llvm::Error renormFirst(Plan &plan, const Tensor &weight,
                          const Tensor &indices, double maxNorm,
                          double normType);

  /// A spec of `op` on this Engine's target.
  KernelSpec spec(OpKind op, DType weight, const Tensor &indices,
                  int64_t dim) const;
  /// The same, with the bag form and options of a bag op.
  KernelSpec bagSpec(OpKind op, DType weight, const Tensor &indices,
                     const Tensor *offsets, int64_t dim,
                     const EmbeddingBagOptions &options,
                     const Tensor *psw) const;
};

/// Sets the bag inputs of the bags [begin, end) of `numBags`: the indices
/// (2-D: rows begin..end; 1-D: from 0 to where bag end - 1 ends, since the
/// offsets are absolute), the offsets of those bags and the per-sample
/// values of those indices (`pswSlot`: the weights or their gradient).
/// With 1-D indices, offsets[end] is read unless `end` is the last bag.
void fillBags(KernelArgs &args, const Tensor &indices, const Tensor *offsets,
              ArgSlot pswSlot, const Tensor *psw, int64_t begin, int64_t end,
              int64_t numBags, bool includeLast);

/// `p` advanced by `elements` of `dtype`.
inline void *advance(void *p, int64_t elements, DType dtype) {
  return static_cast<char *>(p) +
         elements * static_cast<int64_t>(dtypeSize(dtype));
}

/// Bytes of rows a forward chunk must move for a split over threads to
/// pay: waking a worker costs tens of microseconds on a busy machine (a
/// 64-bag call took 72 us split in two, 5.5 us on one thread).
constexpr int64_t kMinBytesPerChunk = 1 << 20;
/// Items per chunk, for items that move `itemBytes` each.
inline int64_t grainFor(int64_t itemBytes) {
  return std::max<int64_t>(1,
                           kMinBytesPerChunk / std::max<int64_t>(itemBytes, 1));
}
/// Gradient rows per thread below which splitting does not pay (every
/// thread scans all the indices).
constexpr int64_t kMinGradRowsPerChunk = 4096;

} // namespace emb

#endif // EMB_RUNTIME_ENGINEINTERNAL_H
