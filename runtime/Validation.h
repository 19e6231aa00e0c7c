//===- Validation.h - the Engine's argument checks --------------*- C++ -*-===//
//
// The checks of docs/semantics.md §5 that the Engine's entry points run
// before anything is written: views, dtypes, shapes, options, index
// values. Each returns an llvm::Error whose std::error_code is an
// emb::ErrorKind (bindings raise the matching exception).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_VALIDATION_H
#define EMB_RUNTIME_VALIDATION_H

#include "emb/Runtime/Engine.h"

#include <initializer_list>
#include <string>
#include <vector>

namespace emb {


namespace validation {

llvm::Error fail(const std::string &message,
                 ErrorKind kind = ErrorKind::invalid_argument);
llvm::Error failIndex(const std::string &message);

/// "[2, 3] f32".
std::string describe(const Tensor &t);

/// Non-negative sizes whose bytes fit in int64, data unless empty.
llvm::Error checkView(const Tensor &t, const char *name);
/// A 2-D float table.
llvm::Error checkWeight(const Tensor &w, const char *name = "weight");
/// The packed table of a quantised bag ([V, quantizedRowBytes(quant, D)] u8,
/// D = out's dimension 1), `out` (2-D f32 or f16) and the options a
/// quantised table refuses (max_norm; the gradient options).
llvm::Error checkQuantizedTable(const Tensor &table, Quantization quant,
                                const Tensor &out,
                                const EmbeddingBagOptions &options);
llvm::Error checkIndexTensor(const Tensor &t, const char *name);
/// `t` has exactly `shape` and `dtype`.
llvm::Error checkOutput(const Tensor &t, const char *name,
                        const std::vector<int64_t> &shape, DType dtype);
/// `t` is the rows of each index: [*indices.shape, dim] of `dtype`.
llvm::Error checkRowsOf(const Tensor &t, const char *name,
                        const Tensor &indices, int64_t dim, DType dtype);
/// `grad` is a view of a float tensor of rank `rank` (its shape is
/// checked later); the message says it "must <mustBe>".
llvm::Error checkGradTensor(const Tensor &grad, int64_t rank,
                            const char *mustBe);
llvm::Error checkNorm(std::optional<double> maxNorm, double normType);
/// The gradient options a forward call records: checked at the forward, as
/// PyTorch does, so that a training step fails before it writes anything.
llvm::Error checkGradientOptions(Profile profile, bool scaleGradByFreq,
                                 bool sparse);
/// The options of a sparse gradient (scale_grad_by_freq, the profile).
llvm::Error checkSparseOptions(Profile profile, bool scaleGradByFreq);
llvm::Error checkNumEmbeddings(int64_t numEmbeddings);

/// padding_idx normalised to [0, V), or -1 without one.
llvm::Expected<int64_t> normalizePadding(std::optional<int64_t> paddingIdx,
                                         int64_t numEmbeddings);

/// Splits [0, n) into ranges of at least `grain` and runs them, possibly
/// in parallel (the Engine's executor).
using SplitFn = llvm::function_ref<void(
    int64_t n, int64_t grain, llvm::function_ref<void(int64_t, int64_t)>)>;

/// Every index in [0, V); the message names the first bad one (the scan is
/// split by `split`, and its result does not depend on the split).
llvm::Error checkIndexRange(const Tensor &indices, int64_t numEmbeddings,
                            SplitFn split);
/// Non-padding entries of `indices`.
int64_t liveCount(const Tensor &indices, int64_t padRow);
/// Every max_indices value in [-1, V).
llvm::Error checkMaxIndexValues(const Tensor &maxIndices,
                                int64_t numEmbeddings);

/// The checks every embedding_bag entry point shares: the input form
/// (1-D + offsets or 2-D), offsets, per_sample_weights (of `floatType`),
/// option combinations; `offsetValues` (null: not readable) are the
/// offsets' values. Returns the number of bags.
llvm::Expected<int64_t> checkBagInputs(const Tensor &indices,
                                       const Tensor *offsets,
                                       const EmbeddingBagOptions &options,
                                       const Tensor *psw, DType floatType,
                                       const Tensor *offsetValues);

/// The COO outputs against D, the dtype and the number of rows the
/// uncoalesced gradient needs (an upper bound of the coalesced one).
llvm::Error checkSparseOutputs(const Tensor &rows, const Tensor &values,
                               int64_t dim, DType dtype, int64_t needed);

/// GPU kernels move a row as 16-byte vectors when D allows: the buffers
/// they read and write rows of must then be 16-byte aligned (thread views
/// start at whole rows, so they stay aligned).
/// The hyper-parameters an optimizer reads (docs/semantics.md §6.4): lr,
/// eps and weight_decay finite and not negative, betas in [0, 1), Adam's
/// step in [1, 2^53].
llvm::Error checkOptimizerOptions(const OptimizerOptions &o);
/// numOptimizerStates(optimizer) states, each of `shape` and `dtype`,
/// named as torch names them (sum; exp_avg, exp_avg_sq).
llvm::Error checkOptimizerStates(Optimizer optimizer,
                                 llvm::ArrayRef<Tensor> states,
                                 const std::vector<int64_t> &shape,
                                 DType dtype);
llvm::Error checkGPUAlignment(Target target, int64_t dim, DType dtype,
                              std::initializer_list<const Tensor *> rows);

} // namespace validation
} // namespace emb

#endif // EMB_RUNTIME_VALIDATION_H
