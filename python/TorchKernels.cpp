//===- TorchKernels.cpp - the emb_mlir torch operators and their CPU kernels ===//
//
// TORCH_LIBRARY(emb_mlir) defines the operators (torch.ops.emb_mlir.*):
//
//   embedding, embedding_bag                  the forwards (functional)
//   embedding_renorm_                         max_norm: renormalises in place
//   embedding_backward, embedding_bag_backward, embedding_sparse_backward,
//   embedding_bag_sparse_backward, embedding_bag_per_sample_weights_backward
//
// and registers their CPU kernels: the Engine on the tensors' memory
// (zero-copy when contiguous; outputs from at::empty, large ones from 32
// MiB on transparent huge pages). Their autograd is in
// TorchOps.cpp; their fake (meta) kernels, for torch.compile and
// torch.export, are registered from Python (emb_mlir/_torch_library.py).
//
// Errors: the kernels raise emb_mlir.EmbIndexError, EmbTypeError and
// EmbValueError (also RuntimeErrors, as torch's are) through torch's
// python_error, which reaches Python unchanged from every caller.
//
//===----------------------------------------------------------------------===//

#include "TorchCommon.h"

#include "emb/Runtime/TableMemory.h"

#include <torch/library.h>

namespace py = pybind11;
using emb::python::Failure;
using emb::python::ptr;
using emb::python::ReleaseIfLarge;

namespace emb::torch_ops {

emb::python::EngineGetter getEngine = nullptr;

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
  case at::kByte: // the packed rows of a quantised table
    return emb::DType::u8;
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

Tensor hugePageTensor(at::IntArrayRef sizes, at::ScalarType dtype,
                      size_t minBytes) {
  size_t bytes = c10::elementSize(dtype);
  for (int64_t size : sizes)
    if (size < 0 || __builtin_mul_overflow(bytes, size_t(size), &bytes))
      return Tensor();
  if (bytes < std::max(minBytes, emb::kHugePageBytes))
    return Tensor();
  void *data = emb::allocateTable(bytes, /*hugePages=*/true);
  if (!data)
    return Tensor();
  return at::from_blob(
      data, sizes, [bytes](void *p) { emb::freeTable(p, bytes); },
      at::TensorOptions().dtype(dtype).device(at::kCPU));
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

} // namespace emb::torch_ops

namespace {
using namespace emb::torch_ops;

/// Outputs from this size go on huge pages. glibc's malloc maps every block
/// this large afresh (its dynamic mmap threshold stops at 32 MiB), so such
/// an output pays a first-touch fault per 4 KiB page, on huge pages one per
/// 2 MiB. Smaller ones come back warm from malloc's heap in a loop, which
/// no fresh mapping beats (allocate + fill_, one thread: 24 MiB 0.6 ms from
/// the heap, 1.7 ms on fresh huge pages; 32 MiB 13.6 ms vs 2.5 ms).
constexpr size_t kHugePageOutputBytes = size_t(32) << 20;

/// An uninitialised result of `sizes`: from kHugePageOutputBytes on huge
/// pages (embedding's rows, the [V, D] dense gradients, sparse values),
/// else (or where no mapping can be had) at::empty.
Tensor largeResult(at::IntArrayRef sizes, const at::TensorOptions &options) {
  Tensor t = hugePageTensor(sizes, c10::typeMetaToScalarType(options.dtype()),
                            kHugePageOutputBytes);
  return t.defined() ? t : at::empty(sizes, options);
}

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
  Tensor out =
      largeResult(shape, weight.options().dtype(floatTypeOf(weight)));
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

/// embedding_bag of a row-wise quantised table (docs/semantics.md §6.2):
/// `packed` as torch's prepack ops make it, D given (an odd int4 D is not
/// in the row bytes), the output of `outputDtype` (float or half).
Tensor bagQuantizedCPU(const Tensor &inputIn, const Tensor &packedIn,
                       const optional<Tensor> &offsetsIn, c10::string_view mode,
                       int64_t bits, int64_t embeddingDim,
                       const optional<Tensor> &pswIn, bool includeLastOffset,
                       optional<int64_t> paddingIdx, at::ScalarType outDtype) {
  if (bits != 8 && bits != 4)
    failValue("bits must be 8 or 4, got " + std::to_string(bits));
  if (embeddingDim < 0)
    failValue("'embedding_dim' must be non-negative, got " +
              std::to_string(embeddingDim));
  Tensor input = prepare(inputIn, "indices");
  Tensor packed = prepare(packedIn, "packed");
  optional<Tensor> offsets = prepare(offsetsIn, "offsets");
  optional<Tensor> psw = prepare(pswIn, "per_sample_weights");
  emb::EmbeddingBagOptions o =
      bagOptions(mode, paddingIdx, false, false, includeLastOffset, "torch");
  Tensor out = at::empty({numBags(input, offsets, includeLastOffset),
                          embeddingDim},
                         packed.options().dtype(outDtype));
  auto off = optView(offsets, "offsets");
  auto p = optView(psw, "per_sample_weights");
  ReleaseIfLarge release(input.numel() * embeddingDim);
  check(engine()->embeddingBagQuantized(
      view(input, "indices"), view(packed, "table"),
      bits == 8 ? emb::Quantization::int8 : emb::Quantization::int4, ptr(off),
      view(out, "out"), o, ptr(p)));
  return out;
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
  Tensor gw = largeResult({numWeights, grad.dim() ? grad.size(-1) : 0},
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
  Tensor values = largeResult({input.numel(), dim}, grad.options());
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
  Tensor gw = largeResult({numWeights, grad.dim() == 2 ? grad.size(1) : 0},
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
  Tensor values = largeResult({input.numel(), dim}, grad.options());
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
  m.def("embedding_bag_quantized(Tensor input, Tensor packed, "
        "Tensor? offsets, str mode, int bits, int embedding_dim, "
        "Tensor? per_sample_weights=None, bool include_last_offset=False, "
        "int? padding_idx=None, ScalarType output_dtype=float) -> Tensor");
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
  m.impl("embedding_bag_quantized", &bagQuantizedCPU);
  m.impl("embedding_renorm_", &renormCPU);
  m.impl("embedding_backward", &embeddingBackwardCPU);
  m.impl("embedding_sparse_backward", &embeddingSparseBackwardCPU);
  m.impl("embedding_bag_backward", &bagBackwardCPU);
  m.impl("embedding_bag_sparse_backward", &bagSparseBackwardCPU);
  m.impl("embedding_bag_per_sample_weights_backward", &pswBackwardCPU);
}
