//===- TorchOps.cpp - emb_mlir._emb_torch, autograd ops for torch ---------===//
//
// The hot path of emb_mlir.torch in C++: embedding and embedding_bag as
// torch::autograd::Functions whose forward and backward call the Engine on
// the tensors' memory (zero-copy when contiguous). Outputs come from
// at::empty; the graph node is a C++ node, as torch's own. This is what
// makes a drop-in call cost about what torch's does at small sizes; the
// pure-Python path of emb_mlir/torch.py computes the same and is used when
// this module cannot be loaded (e.g. a different torch at run time).
//
// Built only when the project finds torch's C++ headers (Debian's
// python3-torch ships them).
//
//===----------------------------------------------------------------------===//

#include "BindingsCommon.h"

#include "emb/Runtime/Engine.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/python.h>

#include <cmath>
#include <optional>
#include <string>

namespace py = pybind11;
using emb::python::check;
using emb::python::ptr;
using emb::python::ReleaseIfLarge;
using emb::python::toMode;
using emb::python::toProfile;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

emb::python::EngineGetter getEngine = nullptr;

std::shared_ptr<emb::Engine> engine() { return getEngine(); }

emb::DType toDType(const at::Tensor &t, const char *name) {
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
    throw py::type_error(std::string("'") + name +
                         "' has unsupported dtype 'torch." +
                         c10::toString(t.scalar_type()) +
                         "' (expected f32, f64, f16, bf16, i32 or i64)");
  }
}

/// A contiguous CPU tensor with the data of `t` (itself when it is one).
at::Tensor prepare(const at::Tensor &t, const char *name) {
  if (!t.device().is_cpu())
    throw py::value_error(std::string("'") + name + "' is on " +
                          t.device().str() +
                          ": emb_mlir runs on the CPU (move the tensor "
                          "with .cpu())");
  return t.contiguous();
}

emb::Tensor view(const at::Tensor &t, const char *name) {
  emb::Tensor v;
  v.dtype = toDType(t, name);
  v.data = t.data_ptr();
  v.shape.assign(t.sizes().begin(), t.sizes().end());
  return v;
}

std::optional<emb::Tensor> optView(const at::Tensor &t, const char *name) {
  if (!t.defined())
    return std::nullopt;
  return view(t, name);
}

at::ScalarType floatTypeOf(const at::Tensor &t) {
  return at::isFloatingType(t.scalar_type()) ? t.scalar_type() : at::kFloat;
}

int64_t dimOf(const at::Tensor &weight) {
  return weight.dim() == 2 ? weight.size(1) : 0;
}

/// The gradients are computed outside autograd: differentiating them again
/// (create_graph with a gradient that itself requires grad) is an error,
/// as with torch.autograd.function.once_differentiable.
void rejectDoubleBackward(const variable_list &grads) {
  if (at::GradMode::is_enabled() && grads[0].defined() &&
      grads[0].requires_grad())
    throw std::runtime_error("emb_mlir.torch does not support double backward");
}

/// The caller's weight after an in-place renorm of `used`, its contiguous
/// copy when it had none of its own layout.
void writeBack(const at::Tensor &original, const at::Tensor &used) {
  if (used.is_same(original))
    return;
  at::NoGradGuard noGrad;
  original.copy_(used);
}

/// The COO gradient of a [numWeights, D] table.
at::Tensor sparseGrad(const at::Tensor &rows, const at::Tensor &values,
                      int64_t numWeights) {
  return at::_sparse_coo_tensor_unsafe(rows.unsqueeze(0), values,
                                       {numWeights, values.size(1)});
}

//===----------------------------------------------------------------------===//
// embedding
//===----------------------------------------------------------------------===//

struct EmbeddingArgs {
  std::optional<int64_t> paddingIdx;
  bool scaleGradByFreq = false;
  bool sparse = false;
  std::string profile;
  std::optional<double> maxNorm;
  double normType = 2.0;

  emb::EmbeddingOptions options() const {
    emb::EmbeddingOptions o;
    o.paddingIdx = paddingIdx;
    o.maxNorm = maxNorm;
    o.normType = normType;
    o.scaleGradByFreq = scaleGradByFreq;
    o.sparse = sparse;
    o.profile = toProfile(profile);
    return o;
  }
};

at::Tensor embeddingForward(const at::Tensor &weight, const at::Tensor &input,
                            const EmbeddingArgs &args) {
  std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
  shape.push_back(dimOf(weight));
  at::Tensor out = at::empty(
      shape, weight.options().dtype(floatTypeOf(weight)).requires_grad(false));
  // With max_norm the Engine renormalises the weight in place after it has
  // validated every argument; the version bump lets autograd see the write.
  check(engine()->embedding(view(input, "indices"), view(weight, "weight"),
                            view(out, "out"), args.options()));
  if (args.maxNorm)
    torch::autograd::impl::bump_version(weight);
  return out;
}

/// The weight gradient of embedding as an autograd node made by hand, the
/// way torch's generated code makes its own: torch::autograd::Function
/// costs ~1.5 us more per call (input/output bookkeeping, a map of saved
/// data), which at small sizes was more than torch's whole F.embedding.
struct EmbeddingBackward : torch::autograd::Node {
  at::Tensor input; // indices: never requires grad, no reference cycle
  int64_t numWeights = 0;
  EmbeddingArgs args;

  std::string name() const override { return "EmbeddingMlirBackward"; }
  void release_variables() override { input.reset(); }

  variable_list apply(variable_list &&grads) override {
    rejectDoubleBackward(grads);
    if (!input.defined())
      throw std::runtime_error(
          "emb_mlir.torch: trying to backward through the graph a second "
          "time (set retain_graph=True the first time)");
    if (!should_compute_output(0))
      return {at::Tensor()};
    at::Tensor grad = grads[0].contiguous();
    int64_t dim = grad.size(-1);
    if (args.sparse && !args.paddingIdx && args.profile == "torch") {
      // PyTorch's uncoalesced form is the incoming gradient itself: alias
      // it, as PyTorch does (the forward checked the indices).
      return {sparseGrad(input.reshape(-1).to(at::kLong),
                         grad.reshape({input.numel(), dim}), numWeights)};
    }
    if (args.sparse) {
      at::Tensor rows =
          at::empty({input.numel()}, grad.options().dtype(at::kLong));
      at::Tensor values = at::empty({input.numel(), dim}, grad.options());
      int64_t count = check(engine()->embeddingSparseBackward(
          view(grad, "grad"), view(input, "indices"), numWeights,
          view(rows, "rows"), view(values, "values"), args.options()));
      return {sparseGrad(rows.narrow(0, 0, count), values.narrow(0, 0, count),
                         numWeights)};
    }
    at::Tensor gw = at::empty({numWeights, dim}, grad.options());
    check(engine()->embeddingBackward(view(grad, "grad"),
                                      view(input, "indices"),
                                      view(gw, "grad_weight"), args.options()));
    return {gw};
  }
};

/// The forward with a graph: the output's history is a new
/// EmbeddingBackward whose next edge is the weight's.
at::Tensor embeddingWithGraph(const at::Tensor &weight, const at::Tensor &input,
                              const EmbeddingArgs &args) {
  at::Tensor out;
  {
    at::NoGradGuard noGrad;
    out = embeddingForward(weight, input, args);
  }
  auto node = std::shared_ptr<EmbeddingBackward>(new EmbeddingBackward(),
                                                 torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(weight));
  node->input = input;
  node->numWeights = weight.size(0);
  node->args = args;
  torch::autograd::set_history(out, node);
  return out;
}

at::Tensor embedding(const at::Tensor &inputIn, const at::Tensor &weightIn,
                     std::optional<int64_t> paddingIdx,
                     std::optional<double> maxNorm, double normType,
                     bool scaleGradByFreq, bool sparse,
                     const std::string &profile) {
  at::Tensor input = prepare(inputIn, "indices");
  at::Tensor weight = prepare(weightIn, "weight");
  EmbeddingArgs args{paddingIdx, scaleGradByFreq, sparse,
                     profile,    maxNorm,         normType};
  ReleaseIfLarge release(input.numel() * dimOf(weight));
  at::Tensor out;
  if (!(at::GradMode::is_enabled() && weight.requires_grad())) {
    at::NoGradGuard noGrad;
    out = embeddingForward(weight, input, args);
  } else {
    out = embeddingWithGraph(weight, input, args);
  }
  if (maxNorm)
    writeBack(weightIn, weight);
  return out;
}

//===----------------------------------------------------------------------===//
// embedding_bag
//===----------------------------------------------------------------------===//

struct BagArgs {
  std::string mode;
  bool scaleGradByFreq = false;
  bool sparse = false;
  bool includeLastOffset = false;
  std::optional<int64_t> paddingIdx;
  std::string profile;
  /// torch 1.13's Function::apply rejects undefined tensor inputs: absent
  /// offsets and per_sample_weights travel as empty placeholders.
  bool hasOffsets = false, hasPsw = false;
  std::optional<double> maxNorm;
  double normType = 2.0;

  emb::EmbeddingBagOptions options() const {
    emb::EmbeddingBagOptions o;
    o.maxNorm = maxNorm;
    o.normType = normType;
    o.mode = toMode(mode);
    o.scaleGradByFreq = scaleGradByFreq;
    o.sparse = sparse;
    o.includeLastOffset = includeLastOffset;
    o.paddingIdx = paddingIdx;
    o.profile = toProfile(profile);
    return o;
  }
};

/// B from the input form, or 0 where the form is wrong (the engine then
/// raises its message before it looks at the output).
int64_t numBags(const at::Tensor &input, const at::Tensor &offsets,
                bool includeLastOffset) {
  if (input.dim() == 2)
    return input.size(0);
  if (input.dim() == 1 && offsets.defined() && offsets.dim() == 1)
    return std::max<int64_t>(offsets.size(0) - (includeLastOffset ? 1 : 0), 0);
  return 0;
}

/// (out, max_indices) of the forward; max_indices only for mode max when
/// `withMaxIndices`.
std::pair<at::Tensor, at::Tensor>
bagForward(const at::Tensor &weight, const at::Tensor &psw,
           const at::Tensor &input, const at::Tensor &offsets,
           const BagArgs &args, bool withMaxIndices) {
  int64_t bags = numBags(input, offsets, args.includeLastOffset);
  auto opts = weight.options().dtype(floatTypeOf(weight)).requires_grad(false);
  at::Tensor out = at::empty({bags, dimOf(weight)}, opts);
  at::Tensor maxIndices;
  if (withMaxIndices && args.mode == "max")
    maxIndices = at::empty({bags, dimOf(weight)}, opts.dtype(at::kLong));
  auto off = optView(offsets, "offsets");
  auto p = optView(psw, "per_sample_weights");
  auto mi = optView(maxIndices, "max_indices");
  // max_norm: renormalised in place after validation (see embeddingForward).
  check(engine()->embeddingBag(view(input, "indices"), view(weight, "weight"),
                               ptr(off), view(out, "out"), args.options(),
                               ptr(p), ptr(mi)));
  if (args.maxNorm)
    torch::autograd::impl::bump_version(weight);
  return {out, maxIndices};
}

struct EmbeddingBagFunction : torch::autograd::Function<EmbeddingBagFunction> {
  static at::Tensor forward(AutogradContext *ctx, at::Tensor weight,
                            at::Tensor psw, at::Tensor input,
                            at::Tensor offsets, BagArgs args) {
    if (!args.hasPsw)
      psw = at::Tensor();
    if (!args.hasOffsets)
      offsets = at::Tensor();
    auto [out, maxIndices] =
        bagForward(weight, psw, input, offsets, args, /*withMaxIndices=*/true);
    ctx->save_for_backward({weight, psw, input, offsets, maxIndices});
    ctx->saved_data["mode"] = args.mode;
    ctx->saved_data["scale_grad_by_freq"] = args.scaleGradByFreq;
    ctx->saved_data["sparse"] = args.sparse;
    ctx->saved_data["include_last_offset"] = args.includeLastOffset;
    ctx->saved_data["padding_idx"] =
        args.paddingIdx ? c10::IValue(*args.paddingIdx) : c10::IValue();
    ctx->saved_data["profile"] = args.profile;
    return out;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    rejectDoubleBackward(grads);
    auto saved = ctx->get_saved_variables();
    at::Tensor weight = saved[0], psw = saved[1], input = saved[2],
               offsets = saved[3], maxIndices = saved[4];
    BagArgs args;
    args.mode = ctx->saved_data["mode"].toStringRef();
    args.scaleGradByFreq = ctx->saved_data["scale_grad_by_freq"].toBool();
    args.sparse = ctx->saved_data["sparse"].toBool();
    args.includeLastOffset = ctx->saved_data["include_last_offset"].toBool();
    c10::IValue pad = ctx->saved_data["padding_idx"];
    if (!pad.isNone())
      args.paddingIdx = pad.toInt();
    args.profile = ctx->saved_data["profile"].toStringRef();
    emb::EmbeddingBagOptions o = args.options();

    at::Tensor grad = grads[0].contiguous();
    emb::Tensor g = view(grad, "grad"), x = view(input, "indices");
    auto off = optView(offsets, "offsets");
    auto p = optView(psw, "per_sample_weights");
    int64_t numWeights = weight.size(0), dim = grad.size(1);
    at::Tensor gw, gpsw;
    if (ctx->needs_input_grad(0)) {
      if (args.sparse) {
        at::Tensor rows =
            at::empty({input.numel()}, grad.options().dtype(at::kLong));
        at::Tensor values = at::empty({input.numel(), dim}, grad.options());
        int64_t count = check(engine()->embeddingBagSparseBackward(
            g, x, ptr(off), numWeights, view(rows, "rows"),
            view(values, "values"), o, ptr(p)));
        gw = sparseGrad(rows.narrow(0, 0, count), values.narrow(0, 0, count),
                        numWeights);
      } else {
        gw = at::empty({numWeights, dim}, grad.options());
        auto mi = optView(maxIndices, "max_indices");
        check(engine()->embeddingBagBackward(
            g, x, ptr(off), view(gw, "grad_weight"), o, ptr(p), ptr(mi)));
      }
    }
    if (ctx->needs_input_grad(1)) {
      gpsw = at::empty(input.sizes(), weight.options().requires_grad(false));
      check(engine()->embeddingBagPerSampleWeightsBackward(
          g, view(weight, "weight"), x, ptr(off),
          view(gpsw, "grad_per_sample_weights"), o));
    }
    return {gw, gpsw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor embeddingBag(const at::Tensor &inputIn, const at::Tensor &weightIn,
                        std::optional<at::Tensor> offsetsIn,
                        std::optional<double> maxNorm, double normType,
                        bool scaleGradByFreq, const std::string &mode,
                        bool sparse, std::optional<at::Tensor> pswIn,
                        bool includeLastOffset,
                        std::optional<int64_t> paddingIdx,
                        const std::string &profile) {
  at::Tensor input = prepare(inputIn, "indices");
  at::Tensor weight = prepare(weightIn, "weight");
  at::Tensor offsets =
      offsetsIn ? prepare(*offsetsIn, "offsets") : at::Tensor();
  at::Tensor psw = pswIn ? prepare(*pswIn, "per_sample_weights") : at::Tensor();
  BagArgs args{mode,       scaleGradByFreq, sparse, includeLastOffset,
               paddingIdx, profile};
  args.maxNorm = maxNorm;
  args.normType = normType;
  ReleaseIfLarge release(input.numel() * dimOf(weight));
  bool needsGraph =
      at::GradMode::is_enabled() &&
      (weight.requires_grad() || (psw.defined() && psw.requires_grad()));
  at::Tensor out;
  if (!needsGraph) {
    at::NoGradGuard noGrad;
    out = bagForward(weight, psw, input, offsets, args, false).first;
  } else {
    args.hasOffsets = offsets.defined();
    args.hasPsw = psw.defined();
    at::Tensor placeholder =
        at::empty({0}, weight.options().requires_grad(false));
    out = EmbeddingBagFunction::apply(
        weight, args.hasPsw ? psw : placeholder, input,
        args.hasOffsets ? offsets : placeholder, args);
  }
  if (maxNorm)
    writeBack(weightIn, weight);
  return out;
}

} // namespace

PYBIND11_MODULE(_emb_torch, m) {
  m.doc() = "emb_mlir's torch autograd ops in C++; use emb_mlir.torch.";
  py::module_ core = py::module_::import("emb_mlir._emb_mlir");
  auto capsule = core.attr("_engine_getter").cast<py::capsule>();
  getEngine =
      reinterpret_cast<emb::python::EngineGetter>(capsule.get_pointer());

  // torch's signatures, keyword names and defaults, so that
  // emb_mlir.torch.embedding(_bag) can be these functions themselves (no
  // Python frame in between).
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
