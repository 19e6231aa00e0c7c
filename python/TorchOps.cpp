//===- TorchOps.cpp - emb_mlir._emb_torch: the emb_mlir torch operators ---===//
//
// emb_mlir's ops as torch operators (TORCH_LIBRARY(emb_mlir)), so that the
// dispatcher, autograd, torch.jit.trace, torch.compile and torch.export see
// them as they see torch's own:
//
//   embedding, embedding_bag                  the forwards (functional)
//   embedding_renorm_                         max_norm: renormalises in place
//   embedding_backward, embedding_bag_backward, embedding_sparse_backward,
//   embedding_bag_sparse_backward, embedding_bag_per_sample_weights_backward
//
// Each has a CPU kernel that calls the Engine on the tensors' memory
// (zero-copy when contiguous; outputs from at::empty). The forwards also
// have an Autograd kernel: the one autograd implementation of emb_mlir.torch
// (hand-made graph nodes, as torch's generated code makes them: cheaper
// than torch::autograd::Function at small sizes), whose backward calls the
// backward operators through the dispatcher, so that torch.compile traces
// them too. Their fake (meta) kernels, for torch.compile and torch.export,
// are registered from Python (emb_mlir/_torch_library.py).
//
// The module's Python functions `embedding` and `embedding_bag` have
// torch.nn.functional's signatures and call the operators through the
// dispatcher (no Python frame): emb_mlir.torch's eager path.
//
// Errors: the kernels raise emb_mlir.EmbIndexError, EmbTypeError and
// EmbValueError (also RuntimeErrors, as torch's are) through torch's
// python_error, which reaches Python unchanged from every caller.
//
// Built when the project finds torch's C++ headers (Debian: libtorch-dev;
// pip wheels of torch 2.x ship them).
//
//===----------------------------------------------------------------------===//

#include "BindingsCommon.h"

#include "emb/Runtime/Engine.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>
#include <torch/python.h>

#include <optional>
#include <string>
#include <tuple>
#include <type_traits>

/// at::parallel_for compiled inside libtorch (torch >= 2.10 exports it in
/// its stable C shim). at::parallel_for itself is a header template whose
/// OpenMP backend is a `#pragma omp parallel` in the caller's code: here,
/// compiled without torch's OpenMP runtime, it would run serially (and
/// with clang's, it would be a second pool). Older torches lack the symbol
/// (a weak reference: null) and the operators keep the engine's own pool.
extern "C" __attribute__((weak)) int32_t
torch_parallel_for(int64_t begin, int64_t end, int64_t grainSize,
                   void (*func)(int64_t, int64_t, void *), void *context);

namespace py = pybind11;
using at::Tensor;
using c10::optional;
using emb::python::Failure;
using emb::python::ptr;
using emb::python::ReleaseIfLarge;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

namespace {

emb::python::EngineGetter getEngine = nullptr;

std::shared_ptr<emb::Engine> engine() { return getEngine(); }

//===----------------------------------------------------------------------===//
// Errors: emb_mlir's Python exception classes, from any caller
//===----------------------------------------------------------------------===//

/// Raises the Python exception of `failure`'s kind (emb_mlir.EmbIndexError
/// and the others, each also a RuntimeError) as torch's python_error: the
/// dispatcher and the autograd engine pass it through unchanged, so that a
/// kernel's error reaches Python with its class whether this module's
/// functions, torch.ops, backward() or a compiled graph called the kernel.
[[noreturn]] void throwTorch(const Failure &failure) {
  py::gil_scoped_acquire gil;
  PyErr_SetString(emb::python::pythonClassOf(failure), failure.what());
  python_error error;
  error.persist();
  throw error;
}

void check(llvm::Error err) {
  if (!err)
    return;
  try {
    emb::python::raise(std::move(err));
  } catch (const Failure &failure) {
    throwTorch(failure);
  }
}

int64_t check(llvm::Expected<int64_t> value) {
  if (!value)
    check(value.takeError());
  return *value;
}

[[noreturn]] void failValue(const std::string &message) {
  throwTorch(Failure(emb::ErrorKind::invalid_argument, message));
}

//===----------------------------------------------------------------------===//
// Views of tensors
//===----------------------------------------------------------------------===//

emb::DType toDType(const Tensor &t, const char *name) {
  switch (t.scalar_type()) {
  case at::kFloat:
    return emb::DType::f32;
  case at::kDouble:
    return emb::DType::f64;
  case at::kHalf:
    return emb::DType::f16;
  case at::kBFloat16:
    return emb::DType::bf16;
  case at::kInt:
    return emb::DType::i32;
  case at::kLong:
    return emb::DType::i64;
  default:
    throwTorch(Failure(emb::ErrorKind::wrong_dtype,
                       std::string("'") + name +
                           "' has unsupported dtype 'torch." +
                           c10::toString(t.scalar_type()) +
                           "' (expected f32, f64, f16, bf16, i32 or i64)"));
  }
}

/// A contiguous CPU tensor with the values of `t`: itself when it is one;
/// a tensor with the negative or conjugate bit is resolved (its memory
/// holds the values before negation).
Tensor prepare(const Tensor &t, const char *name) {
  if (!t.device().is_cpu())
    failValue(std::string("'") + name + "' is on " + t.device().str() +
              ": emb_mlir runs on the CPU (move the tensor with .cpu())");
  if (t.is_neg() || t.is_conj())
    return t.resolve_conj().resolve_neg().contiguous();
  return t.contiguous();
}

optional<Tensor> prepare(const optional<Tensor> &t, const char *name) {
  if (!t || !t->defined())
    return c10::nullopt;
  return prepare(*t, name);
}

emb::Tensor view(const Tensor &t, const char *name) {
  emb::Tensor v;
  v.dtype = toDType(t, name);
  v.data = t.data_ptr();
  v.shape.assign(t.sizes().begin(), t.sizes().end());
  return v;
}

std::optional<emb::Tensor> optView(const optional<Tensor> &t,
                                   const char *name) {
  if (!t)
    return std::nullopt;
  return view(*t, name);
}

at::ScalarType floatTypeOf(const Tensor &t) {
  return at::isFloatingType(t.scalar_type()) ? t.scalar_type() : at::kFloat;
}

int64_t dimOf(const Tensor &weight) {
  return weight.dim() == 2 ? weight.size(1) : 0;
}

/// B from the input form, or 0 where the form is wrong (the Engine then
/// raises its message before it looks at the output).
int64_t numBags(const Tensor &input, const optional<Tensor> &offsets,
                bool includeLastOffset) {
  if (input.dim() == 2)
    return input.size(0);
  if (input.dim() == 1 && offsets && offsets->dim() == 1)
    return std::max<int64_t>(offsets->size(0) - (includeLastOffset ? 1 : 0),
                             0);
  return 0;
}

std::string str(c10::string_view s) { return std::string(s.data(), s.size()); }

emb::EmbeddingOptions embeddingOptions(optional<int64_t> paddingIdx,
                                       bool scaleGradByFreq, bool sparse,
                                       c10::string_view profile) {
  emb::EmbeddingOptions o;
  o.paddingIdx = paddingIdx ? std::optional<int64_t>(*paddingIdx)
                            : std::nullopt;
  o.scaleGradByFreq = scaleGradByFreq;
  o.sparse = sparse;
  try {
    o.profile = emb::python::toProfile(str(profile));
  } catch (const Failure &failure) {
    throwTorch(failure);
  }
  return o;
}

emb::EmbeddingBagOptions bagOptions(c10::string_view mode,
                                    optional<int64_t> paddingIdx,
                                    bool scaleGradByFreq, bool sparse,
                                    bool includeLastOffset,
                                    c10::string_view profile) {
  emb::EmbeddingBagOptions o;
  try {
    o.mode = emb::python::toMode(str(mode));
    o.profile = emb::python::toProfile(str(profile));
  } catch (const Failure &failure) {
    throwTorch(failure);
  }
  o.paddingIdx = paddingIdx ? std::optional<int64_t>(*paddingIdx)
                            : std::nullopt;
  o.scaleGradByFreq = scaleGradByFreq;
  o.sparse = sparse;
  o.includeLastOffset = includeLastOffset;
  return o;
}

//===----------------------------------------------------------------------===//
// The operators, through the dispatcher
//===----------------------------------------------------------------------===//

template <typename Signature>
c10::TypedOperatorHandle<Signature> findOp(const char *name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "")
      .typed<Signature>();
}

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

#define EMB_OP(fn, name, Sig)                                                  \
  const c10::TypedOperatorHandle<Sig> &fn() {                                  \
    static const auto handle = findOp<Sig>("emb_mlir::" name);                 \
    return handle;                                                             \
  }
EMB_OP(embeddingOp, "embedding", EmbeddingSig)
EMB_OP(bagOp, "embedding_bag", BagSig)
EMB_OP(renormOp, "embedding_renorm_", RenormSig)
EMB_OP(embeddingBackwardOp, "embedding_backward", EmbeddingBackwardSig)
EMB_OP(embeddingSparseBackwardOp, "embedding_sparse_backward",
       EmbeddingSparseBackwardSig)
EMB_OP(bagBackwardOp, "embedding_bag_backward", BagBackwardSig)
EMB_OP(bagSparseBackwardOp, "embedding_bag_sparse_backward",
       BagSparseBackwardSig)
EMB_OP(pswBackwardOp, "embedding_bag_per_sample_weights_backward",
       PswBackwardSig)
#undef EMB_OP

//===----------------------------------------------------------------------===//
// CPU kernels: the Engine on the tensors' memory
//===----------------------------------------------------------------------===//

Tensor embeddingCPU(const Tensor &inputIn, const Tensor &weightIn,
                    optional<int64_t> paddingIdx, bool scaleGradByFreq,
                    bool sparse, c10::string_view profile) {
  Tensor input = prepare(inputIn, "indices");
  Tensor weight = prepare(weightIn, "weight");
  std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
  shape.push_back(dimOf(weight));
  Tensor out = at::empty(shape, weight.options().dtype(floatTypeOf(weight)));
  ReleaseIfLarge release(out.numel());
  check(engine()->embedding(
      view(input, "indices"), view(weight, "weight"), view(out, "out"),
      embeddingOptions(paddingIdx, scaleGradByFreq, sparse, profile)));
  return out;
}

std::tuple<Tensor, Tensor>
bagCPU(const Tensor &inputIn, const Tensor &weightIn,
       const optional<Tensor> &offsetsIn, c10::string_view mode,
       const optional<Tensor> &pswIn, bool includeLastOffset,
       optional<int64_t> paddingIdx, bool scaleGradByFreq, bool sparse,
       c10::string_view profile, bool withMaxIndices) {
  Tensor input = prepare(inputIn, "indices");
  Tensor weight = prepare(weightIn, "weight");
  optional<Tensor> offsets = prepare(offsetsIn, "offsets");
  optional<Tensor> psw = prepare(pswIn, "per_sample_weights");
  emb::EmbeddingBagOptions o = bagOptions(mode, paddingIdx, scaleGradByFreq,
                                          sparse, includeLastOffset, profile);
  int64_t bags = numBags(input, offsets, includeLastOffset);
  auto opts = weight.options().dtype(floatTypeOf(weight));
  Tensor out = at::empty({bags, dimOf(weight)}, opts);
  bool max = withMaxIndices && o.mode == emb::BagMode::max;
  Tensor maxIndices = at::empty({max ? bags : 0, max ? dimOf(weight) : 0},
                                opts.dtype(at::kLong));
  auto off = optView(offsets, "offsets");
  auto p = optView(psw, "per_sample_weights");
  std::optional<emb::Tensor> mi;
  if (max)
    mi = view(maxIndices, "max_indices");
  ReleaseIfLarge release(input.numel() * dimOf(weight));
  check(engine()->embeddingBag(view(input, "indices"), view(weight, "weight"),
                               ptr(off), view(out, "out"), o, ptr(p), ptr(mi)));
  return {out, maxIndices};
}

/// Renormalises the rows of `weightIn` that `input` references, in place
/// (through a contiguous copy when it has none of its own layout).
void renormCPU(const Tensor &weightIn, const Tensor &inputIn, double maxNorm,
               double normType) {
  Tensor weight = prepare(weightIn, "weight");
  Tensor input = prepare(inputIn, "indices");
  ReleaseIfLarge release(input.numel() * dimOf(weight));
  check(engine()->renorm(view(weight, "weight"), view(input, "indices"),
                         maxNorm, normType));
  if (!weight.is_same(weightIn))
    weightIn.copy_(weight);
}

Tensor embeddingBackwardCPU(const Tensor &gradIn, const Tensor &inputIn,
                            int64_t numWeights, optional<int64_t> paddingIdx,
                            bool scaleGradByFreq, c10::string_view profile) {
  Tensor grad = prepare(gradIn, "grad");
  Tensor input = prepare(inputIn, "indices");
  if (numWeights < 0)
    failValue("'num_embeddings' must be non-negative, got " +
              std::to_string(numWeights));
  Tensor gw = at::empty({numWeights, grad.dim() ? grad.size(-1) : 0},
                        grad.options());
  ReleaseIfLarge release(gw.numel());
  check(engine()->embeddingBackward(
      view(grad, "grad"), view(input, "indices"), view(gw, "grad_weight"),
      embeddingOptions(paddingIdx, scaleGradByFreq, false, profile)));
  return gw;
}

std::tuple<Tensor, Tensor>
embeddingSparseBackwardCPU(const Tensor &gradIn, const Tensor &inputIn,
                           int64_t numWeights, optional<int64_t> paddingIdx,
                           bool scaleGradByFreq, c10::string_view profile,
                           bool coalesced) {
  Tensor grad = prepare(gradIn, "grad");
  Tensor input = prepare(inputIn, "indices");
  int64_t dim = grad.dim() ? grad.size(-1) : 0;
  Tensor rows = at::empty({input.numel()}, grad.options().dtype(at::kLong));
  Tensor values = at::empty({input.numel(), dim}, grad.options());
  ReleaseIfLarge release(values.numel());
  int64_t count = check(engine()->embeddingSparseBackward(
      view(grad, "grad"), view(input, "indices"), numWeights,
      view(rows, "rows"), view(values, "values"),
      embeddingOptions(paddingIdx, scaleGradByFreq, true, profile),
      coalesced));
  return {rows.narrow(0, 0, count), values.narrow(0, 0, count)};
}

Tensor bagBackwardCPU(const Tensor &gradIn, const Tensor &inputIn,
                      const optional<Tensor> &offsetsIn, int64_t numWeights,
                      c10::string_view mode, const optional<Tensor> &pswIn,
                      bool includeLastOffset, optional<int64_t> paddingIdx,
                      bool scaleGradByFreq, const optional<Tensor> &maxIn,
                      c10::string_view profile) {
  Tensor grad = prepare(gradIn, "grad");
  Tensor input = prepare(inputIn, "indices");
  optional<Tensor> offsets = prepare(offsetsIn, "offsets");
  optional<Tensor> psw = prepare(pswIn, "per_sample_weights");
  optional<Tensor> maxIndices = prepare(maxIn, "max_indices");
  if (numWeights < 0)
    failValue("'num_embeddings' must be non-negative, got " +
              std::to_string(numWeights));
  Tensor gw = at::empty({numWeights, grad.dim() == 2 ? grad.size(1) : 0},
                        grad.options());
  auto off = optView(offsets, "offsets");
  auto p = optView(psw, "per_sample_weights");
  auto mi = optView(maxIndices, "max_indices");
  ReleaseIfLarge release(gw.numel());
  check(engine()->embeddingBagBackward(
      view(grad, "grad"), view(input, "indices"), ptr(off),
      view(gw, "grad_weight"),
      bagOptions(mode, paddingIdx, scaleGradByFreq, false, includeLastOffset,
                 profile),
      ptr(p), ptr(mi)));
  return gw;
}

std::tuple<Tensor, Tensor> bagSparseBackwardCPU(
    const Tensor &gradIn, const Tensor &inputIn,
    const optional<Tensor> &offsetsIn, int64_t numWeights,
    c10::string_view mode, const optional<Tensor> &pswIn,
    bool includeLastOffset, optional<int64_t> paddingIdx, bool scaleGradByFreq,
    c10::string_view profile, bool coalesced) {
  Tensor grad = prepare(gradIn, "grad");
  Tensor input = prepare(inputIn, "indices");
  optional<Tensor> offsets = prepare(offsetsIn, "offsets");
  optional<Tensor> psw = prepare(pswIn, "per_sample_weights");
  int64_t dim = grad.dim() == 2 ? grad.size(1) : 0;
  Tensor rows = at::empty({input.numel()}, grad.options().dtype(at::kLong));
  Tensor values = at::empty({input.numel(), dim}, grad.options());
  auto off = optView(offsets, "offsets");
  auto p = optView(psw, "per_sample_weights");
  ReleaseIfLarge release(values.numel());
  int64_t count = check(engine()->embeddingBagSparseBackward(
      view(grad, "grad"), view(input, "indices"), ptr(off), numWeights,
      view(rows, "rows"), view(values, "values"),
      bagOptions(mode, paddingIdx, scaleGradByFreq, true, includeLastOffset,
                 profile),
      ptr(p), coalesced));
  return {rows.narrow(0, 0, count), values.narrow(0, 0, count)};
}

Tensor pswBackwardCPU(const Tensor &gradIn, const Tensor &weightIn,
                      const Tensor &inputIn, const optional<Tensor> &offsetsIn,
                      c10::string_view mode, bool includeLastOffset,
                      optional<int64_t> paddingIdx, c10::string_view profile) {
  Tensor grad = prepare(gradIn, "grad");
  Tensor weight = prepare(weightIn, "weight");
  Tensor input = prepare(inputIn, "indices");
  optional<Tensor> offsets = prepare(offsetsIn, "offsets");
  Tensor out = at::empty(input.sizes(), weight.options().dtype(
                                            floatTypeOf(weight)));
  auto off = optView(offsets, "offsets");
  ReleaseIfLarge release(input.numel() * dimOf(weight));
  check(engine()->embeddingBagPerSampleWeightsBackward(
      view(grad, "grad"), view(weight, "weight"), view(input, "indices"),
      ptr(off), view(out, "grad_per_sample_weights"),
      bagOptions(mode, paddingIdx, false, false, includeLastOffset, profile)));
  return out;
}

//===----------------------------------------------------------------------===//
// Autograd kernels
//===----------------------------------------------------------------------===//

/// The gradients are computed outside autograd: differentiating them again
/// (create_graph with a gradient that itself requires grad) is an error,
/// as with torch.autograd.function.once_differentiable.
void rejectDoubleBackward(const variable_list &grads) {
  if (at::GradMode::is_enabled() && grads[0].defined() &&
      grads[0].requires_grad())
    throw std::runtime_error("emb_mlir.torch does not support double backward");
}

/// The COO gradient of a [numWeights, D] table.
Tensor sparseGrad(const Tensor &rows, const Tensor &values,
                  int64_t numWeights) {
  return at::_sparse_coo_tensor_unsafe(rows.unsqueeze(0), values,
                                       {numWeights, values.size(1)});
}

/// The forward-mode tangent of `t` (undefined without one).
Tensor tangentOf(const Tensor &t) {
  return t.defined() ? t._fw_grad(/*level=*/0) : Tensor();
}

/// Graph nodes are held by std::shared_ptr in torch 1.x and by
/// c10::intrusive_ptr in recent torch 2.x: make them the way set_history
/// takes them.
template <typename P, typename = void>
struct TakesSharedNodes : std::false_type {};
template <typename P>
struct TakesSharedNodes<
    P, std::void_t<decltype(torch::autograd::set_history(
           std::declval<Tensor &>(), std::declval<const P &>()))>>
    : std::true_type {};

template <typename T,
          typename SharedNode = std::shared_ptr<torch::autograd::Node>>
auto makeNode() {
  if constexpr (TakesSharedNodes<SharedNode>::value)
    return std::make_shared<T>();
  else
    return c10::make_intrusive<T>();
}

/// The weight gradient of embedding.
struct EmbeddingBackward : torch::autograd::Node {
  SavedVariable input; // indices: never requires grad
  int64_t numWeights = 0;
  optional<int64_t> paddingIdx;
  bool scaleGradByFreq = false, sparse = false;
  std::string profile;

  std::string name() const override { return "EmbeddingMlirBackward"; }
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    input.reset_data();
  }

  variable_list apply(variable_list &&grads) override {
    rejectDoubleBackward(grads);
    Tensor x = input.unpack();
    if (!x.defined())
      throw std::runtime_error(
          "emb_mlir.torch: trying to backward through the graph a second "
          "time (set retain_graph=True the first time)");
    // An undefined gradient (a downstream backward returned None) is zero.
    if (!should_compute_output(0) || !grads[0].defined())
      return {Tensor()};
    const Tensor &grad = grads[0];
    if (sparse && !paddingIdx && profile == "torch" && !scaleGradByFreq) {
      // PyTorch's uncoalesced form: every position's row of the incoming
      // gradient, with a copy of the indices (never the caller's buffer,
      // which the caller may refill after backward()).
      int64_t dim = grad.size(-1);
      Tensor rows = x.reshape(-1).to(at::kLong, /*non_blocking=*/false,
                                     /*copy=*/true);
      return {sparseGrad(rows, grad.reshape({x.numel(), dim}), numWeights)};
    }
    if (sparse) {
      auto [rows, values] = embeddingSparseBackwardOp().call(
          grad, x, numWeights, paddingIdx, scaleGradByFreq, profile, false);
      return {sparseGrad(rows, values, numWeights)};
    }
    return {embeddingBackwardOp().call(grad, x, numWeights, paddingIdx,
                                       scaleGradByFreq, profile)};
  }
};

Tensor embeddingAutograd(const Tensor &input, const Tensor &weight,
                         optional<int64_t> paddingIdx, bool scaleGradByFreq,
                         bool sparse, c10::string_view profile) {
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    out = embeddingOp().call(input, weight, paddingIdx, scaleGradByFreq,
                             sparse, profile);
  }
  // Forward-mode AD: the lookup is linear in the weight.
  if (Tensor tangent = tangentOf(weight); tangent.defined()) {
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    out._set_fw_grad(embeddingOp().call(input, tangent, paddingIdx,
                                        scaleGradByFreq, sparse, profile),
                     /*level=*/0, /*is_inplace_op=*/false);
  }
  if (!(at::GradMode::is_enabled() && weight.requires_grad()))
    return out;
  auto node = makeNode<EmbeddingBackward>();
  node->set_next_edges(torch::autograd::collect_next_edges(weight));
  node->input = SavedVariable(input, /*is_output=*/false);
  node->numWeights = weight.size(0);
  node->paddingIdx = paddingIdx;
  node->scaleGradByFreq = scaleGradByFreq;
  node->sparse = sparse;
  node->profile = str(profile);
  torch::autograd::set_history(out, node);
  return out;
}

/// The gradients of embedding_bag: the weight's and per_sample_weights'.
struct EmbeddingBagBackward : torch::autograd::Node {
  SavedVariable weight, input, offsets, psw, maxIndices;
  bool hasOffsets = false, hasPsw = false;
  int64_t numWeights = 0;
  std::string mode, profile;
  bool includeLastOffset = false, scaleGradByFreq = false, sparse = false;
  optional<int64_t> paddingIdx;

  std::string name() const override { return "EmbeddingBagMlirBackward"; }
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    weight.reset_data();
    input.reset_data();
    offsets.reset_data();
    psw.reset_data();
    maxIndices.reset_data();
  }

  variable_list apply(variable_list &&grads) override {
    rejectDoubleBackward(grads);
    Tensor x = input.unpack();
    if (!x.defined())
      throw std::runtime_error(
          "emb_mlir.torch: trying to backward through the graph a second "
          "time (set retain_graph=True the first time)");
    if (!grads[0].defined())
      return {Tensor(), Tensor()};
    const Tensor &grad = grads[0];
    optional<Tensor> off, p;
    if (hasOffsets)
      off = offsets.unpack();
    if (hasPsw)
      p = psw.unpack();
    Tensor gw, gpsw;
    if (should_compute_output(0)) {
      if (sparse) {
        auto [rows, values] = bagSparseBackwardOp().call(
            grad, x, off, numWeights, mode, p, includeLastOffset, paddingIdx,
            scaleGradByFreq, profile, false);
        gw = sparseGrad(rows, values, numWeights);
      } else {
        optional<Tensor> mi;
        if (mode == "max")
          mi = maxIndices.unpack();
        gw = bagBackwardOp().call(grad, x, off, numWeights, mode, p,
                                  includeLastOffset, paddingIdx,
                                  scaleGradByFreq, mi, profile);
      }
    }
    if (should_compute_output(1))
      gpsw = pswBackwardOp().call(grad, weight.unpack(), x, off, mode,
                                  includeLastOffset, paddingIdx, profile);
    return {gw, gpsw};
  }
};

std::tuple<Tensor, Tensor>
bagAutograd(const Tensor &input, const Tensor &weight,
            const optional<Tensor> &offsets, c10::string_view mode,
            const optional<Tensor> &psw, bool includeLastOffset,
            optional<int64_t> paddingIdx, bool scaleGradByFreq, bool sparse,
            c10::string_view profile, bool withMaxIndices) {
  bool pswRequiresGrad = psw && psw->defined() && psw->requires_grad();
  bool needsGraph = at::GradMode::is_enabled() &&
                    (weight.requires_grad() || pswRequiresGrad);
  Tensor weightTangent = tangentOf(weight);
  Tensor pswTangent = psw ? tangentOf(*psw) : Tensor();
  bool forwardAD = weightTangent.defined() || pswTangent.defined();
  bool isMax = str(mode) == "max";
  Tensor out, maxIndices;
  {
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    std::tie(out, maxIndices) =
        bagOp().call(input, weight, offsets, mode, psw, includeLastOffset,
                     paddingIdx, scaleGradByFreq, sparse, profile,
                     withMaxIndices || (isMax && (needsGraph || forwardAD)));
    if (forwardAD) {
      // Linear in the weight for every mode (max: the tangent of the row
      // each element came from) and in per_sample_weights.
      Tensor tangent;
      if (isMax) {
        if (weightTangent.defined()) {
          Tensor valid = maxIndices.ge(0);
          tangent = weightTangent.gather(0, maxIndices.clamp_min(0))
                        .mul(valid.to(weightTangent.scalar_type()));
        }
      } else {
        if (weightTangent.defined())
          tangent = std::get<0>(bagOp().call(
              input, weightTangent, offsets, mode, psw, includeLastOffset,
              paddingIdx, scaleGradByFreq, sparse, profile, false));
        if (pswTangent.defined()) {
          Tensor t = std::get<0>(bagOp().call(
              input, weight, offsets, mode, pswTangent, includeLastOffset,
              paddingIdx, scaleGradByFreq, sparse, profile, false));
          tangent = tangent.defined() ? tangent.add(t) : t;
        }
      }
      if (tangent.defined())
        out._set_fw_grad(tangent, /*level=*/0, /*is_inplace_op=*/false);
    }
  }
  if (needsGraph) {
    auto node = makeNode<EmbeddingBagBackward>();
    node->set_next_edges(torch::autograd::collect_next_edges(
        weight, psw ? *psw : Tensor()));
    node->weight = SavedVariable(weight, false);
    node->input = SavedVariable(input, false);
    node->hasOffsets = offsets && offsets->defined();
    if (node->hasOffsets)
      node->offsets = SavedVariable(*offsets, false);
    node->hasPsw = psw && psw->defined();
    if (node->hasPsw)
      node->psw = SavedVariable(*psw, false);
    if (isMax)
      node->maxIndices = SavedVariable(maxIndices, false);
    node->numWeights = weight.size(0);
    node->mode = str(mode);
    node->profile = str(profile);
    node->includeLastOffset = includeLastOffset;
    node->scaleGradByFreq = scaleGradByFreq;
    node->sparse = sparse;
    node->paddingIdx = paddingIdx;
    torch::autograd::set_history(out, node);
  }
  if (!withMaxIndices) // computed for the graph only: not an output
    maxIndices = at::empty({0, 0}, maxIndices.options());
  return {out, maxIndices};
}

/// renorm_ under autograd: a write torch's own renorm makes under no_grad;
/// the version bump lets autograd see it (a saved weight then fails loudly
/// in backward instead of silently using the new values).
void renormAutograd(const Tensor &weight, const Tensor &input, double maxNorm,
                    double normType) {
  {
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    renormOp().call(weight, input, maxNorm, normType);
  }
  torch::autograd::impl::bump_version(weight);
}

//===----------------------------------------------------------------------===//
// The eager entry points: torch.nn.functional's signatures
//===----------------------------------------------------------------------===//

/// With max_norm, the whole call is validated before the renorm writes the
/// weight (the Engine plans it without running it), as the functional API
/// guarantees; the operators then run.
Tensor embedding(const Tensor &input, const Tensor &weight,
                 optional<int64_t> paddingIdx, optional<double> maxNorm,
                 double normType, bool scaleGradByFreq, bool sparse,
                 const std::string &profile) {
  {
    if (maxNorm) {
      Tensor x = prepare(input, "indices"), w = prepare(weight, "weight");
      std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
      shape.push_back(dimOf(w));
      emb::Tensor out{w.data_ptr(), toDType(w, "weight"), shape};
      if (!at::isFloatingType(w.scalar_type()))
        out.dtype = emb::DType::f32;
      emb::EmbeddingOptions o =
          embeddingOptions(paddingIdx, scaleGradByFreq, sparse, profile);
      o.maxNorm = *maxNorm;
      o.normType = normType;
      auto planned = engine()->planSpecs([&](emb::Engine &e) {
        return e.embedding(view(x, "indices"), view(w, "weight"), out, o);
      });
      if (!planned)
        check(planned.takeError());
      renormOp().call(weight, input, *maxNorm, normType);
    }
    return embeddingOp().call(input, weight, paddingIdx, scaleGradByFreq,
                              sparse, profile);
  }
}

Tensor embeddingBag(const Tensor &input, const Tensor &weight,
                    optional<Tensor> offsets, optional<double> maxNorm,
                    double normType, bool scaleGradByFreq,
                    const std::string &mode, bool sparse,
                    optional<Tensor> psw, bool includeLastOffset,
                    optional<int64_t> paddingIdx, const std::string &profile) {
  {
    if (maxNorm) {
      Tensor x = prepare(input, "indices"), w = prepare(weight, "weight");
      optional<Tensor> off = prepare(offsets, "offsets");
      optional<Tensor> p = prepare(psw, "per_sample_weights");
      auto offView = optView(off, "offsets");
      auto pView = optView(p, "per_sample_weights");
      emb::Tensor out{w.data_ptr(), toDType(w, "weight"),
                      {numBags(x, off, includeLastOffset), dimOf(w)}};
      if (!at::isFloatingType(w.scalar_type()))
        out.dtype = emb::DType::f32;
      emb::EmbeddingBagOptions o = bagOptions(
          mode, paddingIdx, scaleGradByFreq, sparse, includeLastOffset,
          profile);
      o.maxNorm = *maxNorm;
      o.normType = normType;
      auto planned = engine()->planSpecs([&](emb::Engine &e) {
        return e.embeddingBag(view(x, "indices"), view(w, "weight"),
                              ptr(offView), out, o, ptr(pView));
      });
      if (!planned)
        check(planned.takeError());
      renormOp().call(weight, input, *maxNorm, normType);
    }
    return std::get<0>(bagOp().call(input, weight, offsets, mode, psw,
                                     includeLastOffset, paddingIdx,
                                     scaleGradByFreq, sparse, profile, false));
  }
}

} // namespace

TORCH_LIBRARY(emb_mlir, m) {
  m.def("embedding(Tensor input, Tensor weight, int? padding_idx=None, "
        "bool scale_grad_by_freq=False, bool sparse=False, "
        "str profile='torch') -> Tensor");
  m.def("embedding_bag(Tensor input, Tensor weight, Tensor? offsets, "
        "str mode, Tensor? per_sample_weights=None, "
        "bool include_last_offset=False, int? padding_idx=None, "
        "bool scale_grad_by_freq=False, bool sparse=False, "
        "str profile='torch', bool max_indices=False) -> (Tensor, Tensor)");
  m.def("embedding_renorm_(Tensor(a!) weight, Tensor input, float max_norm, "
        "float norm_type=2.0) -> ()");
  m.def("embedding_backward(Tensor grad, Tensor input, int num_weights, "
        "int? padding_idx=None, bool scale_grad_by_freq=False, "
        "str profile='torch') -> Tensor");
  m.def("embedding_sparse_backward(Tensor grad, Tensor input, "
        "int num_weights, int? padding_idx=None, "
        "bool scale_grad_by_freq=False, str profile='torch', "
        "bool coalesced=False) -> (Tensor, Tensor)");
  m.def("embedding_bag_backward(Tensor grad, Tensor input, Tensor? offsets, "
        "int num_weights, str mode, Tensor? per_sample_weights=None, "
        "bool include_last_offset=False, int? padding_idx=None, "
        "bool scale_grad_by_freq=False, Tensor? max_indices=None, "
        "str profile='torch') -> Tensor");
  m.def("embedding_bag_sparse_backward(Tensor grad, Tensor input, "
        "Tensor? offsets, int num_weights, str mode, "
        "Tensor? per_sample_weights=None, bool include_last_offset=False, "
        "int? padding_idx=None, bool scale_grad_by_freq=False, "
        "str profile='torch', bool coalesced=False) -> (Tensor, Tensor)");
  m.def("embedding_bag_per_sample_weights_backward(Tensor grad, "
        "Tensor weight, Tensor input, Tensor? offsets, str mode, "
        "bool include_last_offset=False, int? padding_idx=None, "
        "str profile='torch') -> Tensor");
}

TORCH_LIBRARY_IMPL(emb_mlir, CPU, m) {
  m.impl("embedding", &embeddingCPU);
  m.impl("embedding_bag", &bagCPU);
  m.impl("embedding_renorm_", &renormCPU);
  m.impl("embedding_backward", &embeddingBackwardCPU);
  m.impl("embedding_sparse_backward", &embeddingSparseBackwardCPU);
  m.impl("embedding_bag_backward", &bagBackwardCPU);
  m.impl("embedding_bag_sparse_backward", &bagSparseBackwardCPU);
  m.impl("embedding_bag_per_sample_weights_backward", &pswBackwardCPU);
}

TORCH_LIBRARY_IMPL(emb_mlir, Autograd, m) {
  m.impl("embedding", &embeddingAutograd);
  m.impl("embedding_bag", &bagAutograd);
  m.impl("embedding_renorm_", &renormAutograd);
}

PYBIND11_MODULE(_emb_torch, m) {
  m.doc() = "emb_mlir's torch operators (torch.ops.emb_mlir); use "
            "emb_mlir.torch.";
  emb::python::registerFailureTranslator();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (python_error &error) {
      error.restore();
    }
  });
  py::module_ core = py::module_::import("emb_mlir._emb_mlir");
  auto capsule = core.attr("_engine_getter").cast<py::capsule>();
  getEngine =
      reinterpret_cast<emb::python::EngineGetter>(capsule.get_pointer());
  // One thread pool in a torch process: the operators' parallel work runs
  // on torch's intra-op pool (torch.set_num_threads applies), not on a
  // second pool competing with torch's spinning workers for the cores.
  if (torch_parallel_for) {
    auto setter = reinterpret_cast<emb::python::ParallelForSetter>(
        core.attr("_set_torch_parallel_for")
            .cast<py::capsule>()
            .get_pointer());
    setter([](int64_t n, int64_t grain,
              llvm::function_ref<void(int64_t, int64_t)> body) {
      torch_parallel_for(
          0, n, grain,
          [](int64_t begin, int64_t end, void *context) {
            (*static_cast<llvm::function_ref<void(int64_t, int64_t)> *>(
                context))(begin, end);
          },
          &body);
    });
  }

  // torch's signatures, keyword names and defaults, so that
  // emb_mlir.torch.embedding(_bag) call these with no Python frame of ours.
  m.def("embedding", &embedding, py::arg("input"), py::arg("weight"),
        py::arg("padding_idx") = py::none(), py::arg("max_norm") = py::none(),
        py::arg("norm_type") = 2.0, py::arg("scale_grad_by_freq") = false,
        py::arg("sparse") = false, py::kw_only(), py::arg("profile") = "torch",
        "torch.nn.functional.embedding, with kernels generated by emb-mlir "
        "(profile: 'torch', 'zero-padding' or 'unit-scaling').");
  m.def("embedding_bag", &embeddingBag, py::arg("input"), py::arg("weight"),
        py::arg("offsets") = py::none(), py::arg("max_norm") = py::none(),
        py::arg("norm_type") = 2.0, py::arg("scale_grad_by_freq") = false,
        py::arg("mode") = "mean", py::arg("sparse") = false,
        py::arg("per_sample_weights") = py::none(),
        py::arg("include_last_offset") = false,
        py::arg("padding_idx") = py::none(), py::kw_only(),
        py::arg("profile") = "torch",
        "torch.nn.functional.embedding_bag, with kernels generated by "
        "emb-mlir (profile: 'torch', 'zero-padding' or 'unit-scaling').");
}
