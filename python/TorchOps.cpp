//===- TorchOps.cpp - emb_mlir._emb_torch: autograd and the eager calls ---===//
//
// The autograd of emb_mlir's torch operators (TorchKernels.cpp defines
// them): the Autograd kernels of the forwards are the one autograd
// implementation of emb_mlir.torch, hand-made graph nodes (as torch's
// generated code makes them: cheaper than torch::autograd::Function at
// small sizes) whose backward calls the backward operators through the
// dispatcher, so that torch.compile traces them too; forward-mode tangents.
//
// The module's Python functions `embedding` and `embedding_bag` have
// torch.nn.functional's signatures and call the operators through the
// dispatcher (no Python frame): emb_mlir.torch's eager path.
//
// Built when the project finds torch's C++ headers (Debian: libtorch-dev;
// pip wheels of torch 2.x ship them).
//
//===----------------------------------------------------------------------===//

#include "TorchCommon.h"

#include "emb/Runtime/TableMemory.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

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
using emb::python::ptr;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;
using namespace emb::torch_ops;

namespace {

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

/// The saved indices of a node; released after a first backward without
/// retain_graph, which is then the error torch's own nodes give.
Tensor unpackIndices(SavedVariable &indices) {
  Tensor x = indices.unpack();
  if (!x.defined())
    throw std::runtime_error(
        "emb_mlir.torch: trying to backward through the graph a second "
        "time (set retain_graph=True the first time)");
  return x;
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
    Tensor x = unpackIndices(input);
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
    Tensor x = unpackIndices(input);
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
  // mean and sqrtn divide by a function of the weights (docs/semantics.md
  // §6.1): their tangent is not the bag of the weights' tangent, and their
  // per_sample_weights gradient is not defined.
  if (pswTangent.defined() && str(mode) != "sum")
    failValue("the forward-mode tangent of per_sample_weights needs mode "
              "'sum', got '" +
              str(mode) + "'");
  Tensor out, maxIndices;
  {
    at::AutoDispatchBelowADInplaceOrView belowAutograd;
    std::tie(out, maxIndices) =
        bagOp().call(input, weight, offsets, mode, psw, includeLastOffset,
                     paddingIdx, scaleGradByFreq, sparse, profile,
                     withMaxIndices || (isMax && (needsGraph || forwardAD)));
    if (forwardAD) {
      // Linear in the weight for every mode (max: the tangent of the row
      // each element came from) and, with sum, in per_sample_weights.
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

/// emb_mlir.torch.empty_table: from 2 MiB (with `hugePages`) on transparent
/// huge pages, else (or where the memory cannot be mapped) torch's zeros.
/// `dtype` is f32, f64, f16 or bf16 (the Python side has checked).
Tensor emptyTable(int64_t rows, int64_t dim, const std::string &dtype,
                  bool hugePages) {
  at::ScalarType type = dtype == "f64"    ? at::kDouble
                        : dtype == "f16"  ? at::kHalf
                        : dtype == "bf16" ? at::kBFloat16
                                          : at::kFloat;
  emb::python::tableBytes(rows, dim, c10::elementSize(type)); // checks
  Tensor table;
  if (hugePages)
    table = hugePageTensor({rows, dim}, type, emb::kHugePageBytes);
  if (!table.defined())
    table = at::zeros({rows, dim}, at::TensorOptions().dtype(type));
  return table;
}

} // namespace

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
  emb::torch_ops::getEngine =
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
  m.def("empty_table", &emptyTable, py::arg("num_embeddings"),
        py::arg("embedding_dim"), py::arg("dtype"), py::arg("huge_pages"),
        "A zero-filled [num_embeddings, embedding_dim] table (use "
        "emb_mlir.torch.empty_table).");
}

