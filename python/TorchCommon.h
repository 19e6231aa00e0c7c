//===- TorchCommon.h - what the torch operators' two files share -*- C++ -*-===//
//
// _emb_torch is two files: TorchKernels.cpp defines the operators
// (TORCH_LIBRARY(emb_mlir)) and their CPU kernels over the Engine;
// TorchOps.cpp their autograd and the module's eager entry points. This is
// what both use: errors, views of tensors, options, and the operators as
// typed dispatcher handles.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_PYTHON_TORCHCOMMON_H
#define EMB_PYTHON_TORCHCOMMON_H

#include "BindingsCommon.h"

#include "emb/Runtime/Engine.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/python.h>

#include <optional>
#include <string>
#include <tuple>

namespace emb::torch_ops {

using at::Tensor;
using c10::optional;

/// The engine of the torch operators (_emb_mlir's, set at module load).
extern emb::python::EngineGetter getEngine;
inline std::shared_ptr<emb::Engine> engine() { return getEngine(); }

// Errors: the Python exception class of a Failure's kind, raised as torch's
// python_error (TorchKernels.cpp).
[[noreturn]] void throwTorch(const emb::python::Failure &failure);
void check(llvm::Error err);
int64_t check(llvm::Expected<int64_t> value);
[[noreturn]] void failValue(const std::string &message);

// Views of tensors.
emb::DType toDType(const Tensor &t, const char *name);
/// A contiguous CPU tensor with the values of `t` (negative / conjugate
/// bits resolved).
Tensor prepare(const Tensor &t, const char *name);
optional<Tensor> prepare(const optional<Tensor> &t, const char *name);
emb::Tensor view(const Tensor &t, const char *name);
std::optional<emb::Tensor> optView(const optional<Tensor> &t,
                                   const char *name);
at::ScalarType floatTypeOf(const Tensor &t);
int64_t dimOf(const Tensor &weight);
int64_t numBags(const Tensor &input, const optional<Tensor> &offsets,
                bool includeLastOffset);
std::string str(c10::string_view s);
emb::EmbeddingOptions embeddingOptions(optional<int64_t> paddingIdx,
                                       bool scaleGradByFreq, bool sparse,
                                       c10::string_view profile);
emb::EmbeddingBagOptions bagOptions(c10::string_view mode,
                                    optional<int64_t> paddingIdx,
                                    bool scaleGradByFreq, bool sparse,
                                    bool includeLastOffset,
                                    c10::string_view profile);

/// A zero-filled contiguous CPU tensor of `sizes` on transparent huge pages
/// (emb::allocateTable: 2 MiB aligned, advised MADV_HUGEPAGE before the
/// first touch), the memory freed with its storage; undefined when it would
/// be smaller than `minBytes` or the memory cannot be had.
Tensor hugePageTensor(at::IntArrayRef sizes, at::ScalarType dtype,
                      size_t minBytes);

// The operators' C++ signatures, and their dispatcher handles.
using EmbeddingSig = Tensor(const Tensor &, const Tensor &, optional<int64_t>,
                            bool, bool, c10::string_view);
using BagSig = std::tuple<Tensor, Tensor>(
    const Tensor &, const Tensor &, const optional<Tensor> &, c10::string_view,
    const optional<Tensor> &, bool, optional<int64_t>, bool, bool,
    c10::string_view, bool);
using RenormSig = void(const Tensor &, const Tensor &, double, double);
using EmbeddingBackwardSig = Tensor(const Tensor &, const Tensor &, int64_t,
                                    optional<int64_t>, bool, c10::string_view);
using EmbeddingSparseBackwardSig = std::tuple<Tensor, Tensor>(
    const Tensor &, const Tensor &, int64_t, optional<int64_t>, bool,
    c10::string_view, bool);
using BagBackwardSig = Tensor(const Tensor &, const Tensor &,
                              const optional<Tensor> &, int64_t,
                              c10::string_view, const optional<Tensor> &, bool,
                              optional<int64_t>, bool, const optional<Tensor> &,
                              c10::string_view);
using BagSparseBackwardSig = std::tuple<Tensor, Tensor>(
    const Tensor &, const Tensor &, const optional<Tensor> &, int64_t,
    c10::string_view, const optional<Tensor> &, bool, optional<int64_t>, bool,
    c10::string_view, bool);
using PswBackwardSig = Tensor(const Tensor &, const Tensor &, const Tensor &,
                              const optional<Tensor> &, c10::string_view, bool,
                              optional<int64_t>, c10::string_view);

const c10::TypedOperatorHandle<EmbeddingSig> &embeddingOp();
const c10::TypedOperatorHandle<BagSig> &bagOp();
const c10::TypedOperatorHandle<RenormSig> &renormOp();
const c10::TypedOperatorHandle<EmbeddingBackwardSig> &embeddingBackwardOp();
const c10::TypedOperatorHandle<EmbeddingSparseBackwardSig> &
embeddingSparseBackwardOp();
const c10::TypedOperatorHandle<BagBackwardSig> &bagBackwardOp();
const c10::TypedOperatorHandle<BagSparseBackwardSig> &bagSparseBackwardOp();
const c10::TypedOperatorHandle<PswBackwardSig> &pswBackwardOp();

} // namespace emb::torch_ops

#endif // EMB_PYTHON_TORCHCOMMON_H
