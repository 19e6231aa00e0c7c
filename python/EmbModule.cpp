//===- EmbModule.cpp - emb_mlir._emb_mlir, the Python bindings ------------===//
//
// A thin layer over emb::Engine: the Python package (emb_mlir/) turns numpy
// arrays and torch tensors into (address, dtype, shape) triples, allocates
// the outputs and calls these functions. Here the triples become
// emb::Tensor views (zero-copy), the Engine validates and runs with the GIL
// released, and its errors become Python exceptions by kind:
// emb_mlir.EmbIndexError, EmbTypeError, EmbValueError (IndexError, TypeError,
// ValueError that are also RuntimeErrors, as torch's are), EmbError for
// anything else (e.g. a failed compile). Nothing is written when an
// exception is raised.
//
//===----------------------------------------------------------------------===//

#include "BindingsCommon.h"

#include "emb/Runtime/Engine.h"
#include "emb/Runtime/TableMemory.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace py = pybind11;
using emb::python::check;
using emb::python::ptr;
using emb::python::ReleaseIfLarge;
using emb::python::toMode;
using emb::python::toProfile;

namespace {

/// One table as emb_mlir.Table passes it: (num_embeddings, embedding_dim,
/// mode, padding_idx, sequence_length).
using TableTuple = std::tuple<int64_t, int64_t, std::string,
                              std::optional<int64_t>, std::optional<int64_t>>;

std::vector<emb::TableOptions>
tableOptions(const std::vector<TableTuple> &tables) {
  std::vector<emb::TableOptions> options;
  for (const auto &[rows, dim, mode, pad, length] : tables) {
    emb::TableOptions t;
    t.numEmbeddings = rows;
    t.embeddingDim = dim;
    t.mode = mode == "none" ? emb::BagMode::none : toMode(mode);
    t.paddingIdx = pad;
    t.sequenceLength = length;
    options.push_back(t);
  }
  return options;
}

/// What the Python side passes for a tensor: a C-contiguous numpy array
/// (read here through the buffer of the array), or an (address, dtype name,
/// shape) triple (torch tensors), or None for an absent optional tensor.
using TensorArg = py::handle;

const char *numpyDType(const py::dtype &dtype) {
  char kind = dtype.kind();
  size_t size = dtype.itemsize();
  if (dtype.byteorder() == '>') // '=' native, '|' not applicable
    return nullptr;
  if (kind == 'f')
    return size == 4 ? "f32" : size == 8 ? "f64" : size == 2 ? "f16" : nullptr;
  if (kind == 'i')
    return size == 4 ? "i32" : size == 8 ? "i64" : nullptr;
  if (kind == 'u' && size == 1) // the bytes of a quantised table
    return "u8";
  return nullptr;
}

emb::Tensor toTensor(TensorArg arg, const char *name) {
  emb::Tensor t;
  std::string dtypeName;
  if (py::isinstance<py::array>(arg)) {
    auto array = py::reinterpret_borrow<py::array>(arg);
    if (!(array.flags() & py::array::c_style))
      emb::python::failValue(std::string("'") + name + "' must be C-contiguous");
    const char *known = numpyDType(array.dtype());
    dtypeName = known ? known : py::str(array.dtype()).cast<std::string>();
    t.data = const_cast<void *>(array.data());
    t.shape.assign(array.shape(), array.shape() + array.ndim());
  } else {
    auto triple =
        arg.cast<std::tuple<uintptr_t, std::string, std::vector<int64_t>>>();
    dtypeName = std::get<1>(triple);
    t.data = reinterpret_cast<void *>(std::get<0>(triple));
    t.shape = std::move(std::get<2>(triple));
  }
  auto dtype = emb::parseDType(dtypeName);
  if (!dtype)
    emb::python::failType(std::string("'") + name + "' has unsupported dtype '" +
                          dtypeName +
                          "' (expected f32, f64, f16, bf16, i32, i64, or u8 "
                          "for a quantised table)");
  t.dtype = *dtype;
  return t;
}

std::optional<emb::Tensor> toOptTensor(TensorArg arg, const char *name) {
  if (arg.is_none())
    return std::nullopt;
  return toTensor(arg, name);
}

int64_t lastDim(const emb::Tensor &t) {
  return t.shape.empty() ? 0 : t.shape.back();
}

//===----------------------------------------------------------------------===//
// The process-wide engine
//===----------------------------------------------------------------------===//

std::mutex engineMutex;
std::shared_ptr<emb::Engine> theEngine, theTorchEngine;
emb::EngineOptions engineOptions;
bool threadsConfigured = false;
/// The executor of the torch operators' engine: at::parallel_for, set by
/// _emb_torch when it loads.
emb::ParallelFor torchParallelFor;

std::shared_ptr<emb::Engine> engineLocked() {
  if (!theEngine) {
    emb::EngineOptions options = engineOptions;
    if (const char *threads = std::getenv("EMB_MLIR_THREADS");
        threads && !threadsConfigured)
      options.threads = std::max(0, std::atoi(threads));
    theEngine = std::make_shared<emb::Engine>(options);
  }
  return theEngine;
}

/// The engine of numpy arrays and of emb_mlir's functions, created at first
/// use, with a pool of its own; `EMB_MLIR_THREADS` sets its threads unless
/// configure() did.
std::shared_ptr<emb::Engine> engine() {
  std::lock_guard<std::mutex> lock(engineMutex);
  return engineLocked();
}

/// The engine of the torch operators: the same kernel cache, but its
/// parallel work runs on torch's intra-op pool (at::parallel_for, so
/// torch.set_num_threads applies) rather than a second pool competing with
/// torch's for the same cores. Without _emb_torch, the engine above.
std::shared_ptr<emb::Engine> torchEngine() {
  std::lock_guard<std::mutex> lock(engineMutex);
  if (!torchParallelFor)
    return engineLocked();
  if (!theTorchEngine) {
    emb::EngineOptions options = engineOptions;
    options.kernelCache = engineLocked()->sharedCache();
    options.parallelFor = torchParallelFor;
    theTorchEngine = std::make_shared<emb::Engine>(options);
  }
  return theTorchEngine;
}

/// The engine of a call: torch tensors (passed as triples) run on torch's
/// pool, numpy arrays on the engine's own.
std::shared_ptr<emb::Engine> engineFor(TensorArg arg) {
  return py::isinstance<py::array>(arg) ? engine() : torchEngine();
}

void setTorchParallelFor(emb::ParallelFor parallelFor) {
  std::lock_guard<std::mutex> lock(engineMutex);
  torchParallelFor = std::move(parallelFor);
  theTorchEngine.reset();
}

void configure(std::optional<int> threads, std::optional<std::string> cacheDir,
               std::optional<bool> diskCache, std::optional<int64_t> maxKernels,
               std::optional<bool> compileInChild,
               std::optional<double> compileTimeout) {
  std::lock_guard<std::mutex> lock(engineMutex);
  if (threads) {
    if (*threads < 0)
      emb::python::failValue("threads must be >= 0 (0: all hardware threads)");
    engineOptions.threads = *threads;
    threadsConfigured = true;
  }
  if (cacheDir)
    engineOptions.cache.directory = *cacheDir;
  if (diskCache)
    engineOptions.cache.useDiskCache = *diskCache;
  if (maxKernels) {
    if (*maxKernels < 0)
      emb::python::failValue("max_kernels must be >= 0 (0: no bound)");
    engineOptions.cache.maxLoadedKernels = static_cast<size_t>(*maxKernels);
  }
  if (compileInChild)
    engineOptions.cache.compileInChild = *compileInChild;
  if (compileTimeout) {
    if (!(*compileTimeout >= 0))
      emb::python::failValue("compile_timeout must be >= 0 seconds (0: none)");
    engineOptions.cache.compileTimeoutSeconds = *compileTimeout;
  }
  // Calls in flight keep the old engines alive through their shared_ptr.
  theEngine.reset();
  theTorchEngine.reset();
}

py::dict info() {
  auto e = engine();
  const auto &s = e->cache().stats();
  py::dict d;
  d["threads"] = e->threads();
  // Where the torch operators run their parallel work.
  d["torch_executor"] = torchEngine()->threads() == 0
                            ? "at::parallel_for (torch's intra-op pool)"
                            : "the engine's own pool";
  d["cache_dir"] = e->cache().directory();
  d["memory_hits"] = s.memoryHits.load();
  d["disk_hits"] = s.diskHits.load();
  d["compiles"] = s.compiles.load();
  d["rejected_disk_entries"] = s.rejectedDiskEntries.load();
  d["disk_errors"] = s.diskErrors.load();
  d["evictions"] = s.evictions.load();
  d["loaded_kernels"] = e->cache().loadedKernels();
  return d;
}

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

emb::EmbeddingOptions embeddingOptions(std::optional<int64_t> paddingIdx,
                                       std::optional<double> maxNorm,
                                       double normType, bool scaleGradByFreq,
                                       bool sparse,
                                       const std::string &profile) {
  emb::EmbeddingOptions o;
  o.paddingIdx = paddingIdx;
  o.maxNorm = maxNorm;
  o.normType = normType;
  o.scaleGradByFreq = scaleGradByFreq;
  o.sparse = sparse;
  o.profile = toProfile(profile);
  return o;
}

emb::EmbeddingBagOptions
bagOptions(const std::string &mode, std::optional<int64_t> paddingIdx,
           std::optional<double> maxNorm, double normType, bool scaleGradByFreq,
           bool sparse, bool includeLastOffset, const std::string &profile) {
  emb::EmbeddingBagOptions o;
  o.mode = toMode(mode);
  o.paddingIdx = paddingIdx;
  o.maxNorm = maxNorm;
  o.normType = normType;
  o.scaleGradByFreq = scaleGradByFreq;
  o.sparse = sparse;
  o.includeLastOffset = includeLastOffset;
  o.profile = toProfile(profile);
  return o;
}

//===----------------------------------------------------------------------===//
// Tables on huge pages
//===----------------------------------------------------------------------===//

/// A writable C-contiguous [rows, dim] array over emb::allocateTable memory
/// (zero-filled; from 2 MiB with `hugePages`, on transparent huge pages),
/// freed when the array and every view of it are gone: its base is a
/// capsule that owns the block. `dtype` is f32, f64 or f16 (the Python
/// side has checked).
py::array emptyTable(int64_t rows, int64_t dim, const std::string &dtype,
                     bool hugePages) {
  const char *format = dtype == "f64" ? "float64"
                       : dtype == "f16" ? "float16"
                                        : "float32";
  py::dtype npType(format);
  size_t bytes = emb::python::tableBytes(rows, dim, npType.itemsize());
  struct Block {
    void *data;
    size_t bytes;
    ~Block() { emb::freeTable(data, bytes); }
  };
  std::unique_ptr<Block> block(
      new Block{emb::allocateTable(bytes, hugePages), bytes});
  if (!block->data)
    throw std::bad_alloc(); // MemoryError
  void *data = block->data;
  py::capsule owner(block.get(),
                    [](void *p) { delete static_cast<Block *>(p); });
  block.release();
  return py::array(npType, {rows, dim}, data, owner);
}

} // namespace

PYBIND11_MODULE(_emb_mlir, m) {
  m.doc() = "emb-mlir's generated embedding kernels (the C++ engine); use "
            "the emb_mlir package, not this module.";
  emb::python::registerFailureTranslator();

  m.def("configure", &configure, py::arg("threads") = py::none(),
        py::arg("cache_dir") = py::none(), py::arg("disk_cache") = py::none(),
        py::arg("max_kernels") = py::none(),
        py::arg("compile_in_child") = py::none(),
        py::arg("compile_timeout") = py::none());
  m.def("info", &info);
  m.def("empty_table", &emptyTable, py::arg("num_embeddings"),
        py::arg("embedding_dim"), py::arg("dtype"), py::arg("huge_pages"));
  m.attr("_engine_getter") = py::capsule(
      reinterpret_cast<void *>(
          static_cast<emb::python::EngineGetter>(&torchEngine)),
      emb::python::kEngineCapsule);
  m.attr("_set_torch_parallel_for") = py::capsule(
      reinterpret_cast<void *>(static_cast<emb::python::ParallelForSetter>(
          &setTorchParallelFor)),
      emb::python::kParallelForCapsule);

  m.def(
      "embedding",
      [](TensorArg indices, TensorArg weight, TensorArg out,
         std::optional<int64_t> paddingIdx, std::optional<double> maxNorm,
         double normType, bool scaleGradByFreq, bool sparse,
         const std::string &profile) {
        auto o = embeddingOptions(paddingIdx, maxNorm, normType,
                                  scaleGradByFreq, sparse, profile);
        emb::Tensor x = toTensor(indices, "indices"),
                    w = toTensor(weight, "weight"), y = toTensor(out, "out");
        auto e = engineFor(indices);
        ReleaseIfLarge release(maxNorm ? ReleaseIfLarge::kElements
                                       : x.numel() * lastDim(w));
        check(e->embedding(x, w, y, o));
      },
      py::arg("indices"), py::arg("weight"), py::arg("out"),
      py::arg("padding_idx"), py::arg("max_norm"), py::arg("norm_type"),
      py::arg("scale_grad_by_freq"), py::arg("sparse"), py::arg("profile"));

  m.def(
      "embedding_bag",
      [](TensorArg indices, TensorArg weight, TensorArg offsets, TensorArg out,
         const std::string &mode, std::optional<int64_t> paddingIdx,
         std::optional<double> maxNorm, double normType, bool scaleGradByFreq,
         bool sparse, bool includeLastOffset, TensorArg perSampleWeights,
         TensorArg maxIndices, const std::string &profile) {
        auto o =
            bagOptions(mode, paddingIdx, maxNorm, normType, scaleGradByFreq,
                       sparse, includeLastOffset, profile);
        emb::Tensor x = toTensor(indices, "indices"),
                    w = toTensor(weight, "weight"), y = toTensor(out, "out");
        auto off = toOptTensor(offsets, "offsets");
        auto psw = toOptTensor(perSampleWeights, "per_sample_weights");
        auto argmax = toOptTensor(maxIndices, "max_indices");
        auto e = engineFor(indices);
        ReleaseIfLarge release(maxNorm ? ReleaseIfLarge::kElements
                                       : x.numel() * lastDim(w));
        check(e->embeddingBag(x, w, ptr(off), y, o, ptr(psw), ptr(argmax)));
      },
      py::arg("indices"), py::arg("weight"), py::arg("offsets"), py::arg("out"),
      py::arg("mode"), py::arg("padding_idx"), py::arg("max_norm"),
      py::arg("norm_type"), py::arg("scale_grad_by_freq"), py::arg("sparse"),
      py::arg("include_last_offset"), py::arg("per_sample_weights"),
      py::arg("max_indices"), py::arg("profile"));

  m.def(
      "embedding_bag_tables",
      [](TensorArg indices, TensorArg weights,
         const std::vector<TableTuple> &tables,
         TensorArg offsets, TensorArg out, TensorArg perSampleWeights) {
        std::vector<emb::TableOptions> options = tableOptions(tables);
        emb::Tensor x = toTensor(indices, "indices"),
                    w = toTensor(weights, "weights"),
                    off = toTensor(offsets, "offsets"), y = toTensor(out, "out");
        auto psw = toOptTensor(perSampleWeights, "per_sample_weights");
        auto e = engineFor(indices);
        ReleaseIfLarge release(x.numel() * lastDim(y));
        check(e->embeddingBagTables(x, w, options, off, y, ptr(psw)));
      },
      py::arg("indices"), py::arg("weights"), py::arg("tables"),
      py::arg("offsets"), py::arg("out"), py::arg("per_sample_weights"));

  m.def(
      "embedding_bag_quantized",
      [](TensorArg indices, TensorArg table, const std::string &format,
         TensorArg offsets, TensorArg out, const std::string &mode,
         std::optional<int64_t> paddingIdx, bool includeLastOffset,
         TensorArg perSampleWeights) {
        emb::EmbeddingBagOptions o;
        o.mode = toMode(mode);
        o.paddingIdx = paddingIdx;
        o.includeLastOffset = includeLastOffset;
        if (format != "int8" && format != "int4")
          emb::python::failValue("bits must be 8 or 4");
        emb::Quantization q = format == "int8" ? emb::Quantization::int8
                                               : emb::Quantization::int4;
        emb::Tensor x = toTensor(indices, "indices"),
                    t = toTensor(table, "table"), y = toTensor(out, "out");
        auto off = toOptTensor(offsets, "offsets");
        auto psw = toOptTensor(perSampleWeights, "per_sample_weights");
        auto e = engineFor(indices);
        ReleaseIfLarge release(x.numel() * lastDim(y));
        check(e->embeddingBagQuantized(x, t, q, ptr(off), y, o, ptr(psw)));
      },
      py::arg("indices"), py::arg("table"), py::arg("format"),
      py::arg("offsets"), py::arg("out"), py::arg("mode"),
      py::arg("padding_idx"), py::arg("include_last_offset"),
      py::arg("per_sample_weights"));

  m.def(
      "renorm",
      [](TensorArg weight, TensorArg indices, double maxNorm, double normType) {
        emb::Tensor w = toTensor(weight, "weight"),
                    x = toTensor(indices, "indices");
        auto e = engineFor(weight);
        py::gil_scoped_release release;
        check(e->renorm(w, x, maxNorm, normType));
      },
      py::arg("weight"), py::arg("indices"), py::arg("max_norm"),
      py::arg("norm_type"));

  m.def(
      "embedding_backward",
      [](TensorArg grad, TensorArg indices, TensorArg gradWeight,
         std::optional<int64_t> paddingIdx, bool scaleGradByFreq,
         const std::string &profile) {
        auto o = embeddingOptions(paddingIdx, std::nullopt, 2.0,
                                  scaleGradByFreq, false, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    gw = toTensor(gradWeight, "grad_weight");
        auto e = engineFor(grad);
        py::gil_scoped_release release;
        check(e->embeddingBackward(g, x, gw, o));
      },
      py::arg("grad"), py::arg("indices"), py::arg("grad_weight"),
      py::arg("padding_idx"), py::arg("scale_grad_by_freq"),
      py::arg("profile"));

  m.def(
      "embedding_bag_backward",
      [](TensorArg grad, TensorArg indices, TensorArg offsets,
         TensorArg gradWeight, const std::string &mode,
         std::optional<int64_t> paddingIdx, bool scaleGradByFreq,
         bool includeLastOffset, TensorArg perSampleWeights,
         TensorArg maxIndices, const std::string &profile) {
        auto o = bagOptions(mode, paddingIdx, std::nullopt, 2.0,
                            scaleGradByFreq, false, includeLastOffset, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    gw = toTensor(gradWeight, "grad_weight");
        auto off = toOptTensor(offsets, "offsets");
        auto psw = toOptTensor(perSampleWeights, "per_sample_weights");
        auto argmax = toOptTensor(maxIndices, "max_indices");
        auto e = engineFor(grad);
        py::gil_scoped_release release;
        check(e->embeddingBagBackward(g, x, ptr(off), gw, o, ptr(psw),
                                      ptr(argmax)));
      },
      py::arg("grad"), py::arg("indices"), py::arg("offsets"),
      py::arg("grad_weight"), py::arg("mode"), py::arg("padding_idx"),
      py::arg("scale_grad_by_freq"), py::arg("include_last_offset"),
      py::arg("per_sample_weights"), py::arg("max_indices"),
      py::arg("profile"));

  m.def(
      "embedding_bag_per_sample_weights_backward",
      [](TensorArg grad, TensorArg weight, TensorArg indices, TensorArg offsets,
         TensorArg gradPsw, const std::string &mode,
         std::optional<int64_t> paddingIdx, bool includeLastOffset,
         const std::string &profile) {
        auto o = bagOptions(mode, paddingIdx, std::nullopt, 2.0, false, false,
                            includeLastOffset, profile);
        emb::Tensor g = toTensor(grad, "grad"), w = toTensor(weight, "weight"),
                    x = toTensor(indices, "indices"),
                    gp = toTensor(gradPsw, "grad_per_sample_weights");
        auto off = toOptTensor(offsets, "offsets");
        auto e = engineFor(grad);
        py::gil_scoped_release release;
        check(
            e->embeddingBagPerSampleWeightsBackward(g, w, x, ptr(off), gp, o));
      },
      py::arg("grad"), py::arg("weight"), py::arg("indices"),
      py::arg("offsets"), py::arg("grad_per_sample_weights"), py::arg("mode"),
      py::arg("padding_idx"), py::arg("include_last_offset"),
      py::arg("profile"));

  m.def(
      "embedding_sparse_backward",
      [](TensorArg grad, TensorArg indices, int64_t numWeights, TensorArg rows,
         TensorArg values, std::optional<int64_t> paddingIdx,
         bool scaleGradByFreq, const std::string &profile, bool coalesced) {
        auto o = embeddingOptions(paddingIdx, std::nullopt, 2.0,
                                  scaleGradByFreq, true, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    r = toTensor(rows, "rows"), v = toTensor(values, "values");
        auto e = engineFor(grad);
        py::gil_scoped_release release;
        return check(
            e->embeddingSparseBackward(g, x, numWeights, r, v, o, coalesced));
      },
      py::arg("grad"), py::arg("indices"), py::arg("num_weights"),
      py::arg("rows"), py::arg("values"), py::arg("padding_idx"),
      py::arg("scale_grad_by_freq"), py::arg("profile"), py::arg("coalesced"));

  m.def(
      "embedding_bag_sparse_backward",
      [](TensorArg grad, TensorArg indices, TensorArg offsets,
         int64_t numWeights, TensorArg rows, TensorArg values,
         const std::string &mode, std::optional<int64_t> paddingIdx,
         bool scaleGradByFreq, bool includeLastOffset,
         TensorArg perSampleWeights, const std::string &profile,
         bool coalesced) {
        auto o = bagOptions(mode, paddingIdx, std::nullopt, 2.0,
                            scaleGradByFreq, true, includeLastOffset, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    r = toTensor(rows, "rows"), v = toTensor(values, "values");
        auto off = toOptTensor(offsets, "offsets");
        auto psw = toOptTensor(perSampleWeights, "per_sample_weights");
        auto e = engineFor(grad);
        py::gil_scoped_release release;
        return check(e->embeddingBagSparseBackward(
            g, x, ptr(off), numWeights, r, v, o, ptr(psw), coalesced));
      },
      py::arg("grad"), py::arg("indices"), py::arg("offsets"),
      py::arg("num_weights"), py::arg("rows"), py::arg("values"),
      py::arg("mode"), py::arg("padding_idx"), py::arg("scale_grad_by_freq"),
      py::arg("include_last_offset"), py::arg("per_sample_weights"),
      py::arg("profile"), py::arg("coalesced"));

  m.def(
      "embedding_bag_update",
      [](TensorArg grad, TensorArg indices, TensorArg offsets, TensorArg weight,
         py::list states, const std::string &optimizer, double lr, double eps,
         double weightDecay, double beta1, double beta2, int64_t step,
         const std::string &mode, std::optional<int64_t> paddingIdx,
         bool scaleGradByFreq, bool includeLastOffset,
         TensorArg perSampleWeights, TensorArg maxIndices,
         const std::string &profile, bool lookup) {
        std::optional<emb::Optimizer> opt = emb::parseOptimizer(optimizer);
        if (!opt)
          emb::python::failValue("optimizer must be 'sgd', 'adagrad', "
                                 "'rowwise_adagrad' or 'adam', got '" +
                                 optimizer + "'");
        emb::OptimizerOptions o;
        o.optimizer = *opt;
        o.lr = lr;
        o.eps = eps;
        o.weightDecay = weightDecay;
        o.beta1 = beta1;
        o.beta2 = beta2;
        o.step = step;
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    w = toTensor(weight, "weight");
        std::vector<emb::Tensor> stateViews;
        static const char *const names[] = {"state 0", "state 1"};
        for (size_t k = 0; k < states.size(); ++k)
          stateViews.push_back(toTensor(states[k], names[std::min<size_t>(k, 1)]));
        auto off = toOptTensor(offsets, "offsets");
        auto psw = toOptTensor(perSampleWeights, "per_sample_weights");
        auto argmax = toOptTensor(maxIndices, "max_indices");
        auto e = engineFor(grad);
        if (lookup) {
          auto eo = embeddingOptions(paddingIdx, std::nullopt, 2.0,
                                     scaleGradByFreq, false, profile);
          py::gil_scoped_release release;
          check(e->embeddingUpdate(g, x, w, stateViews, o, eo));
          return;
        }
        auto bo = bagOptions(mode, paddingIdx, std::nullopt, 2.0,
                             scaleGradByFreq, false, includeLastOffset, profile);
        py::gil_scoped_release release;
        check(e->embeddingBagUpdate(g, x, ptr(off), w, stateViews, o, bo,
                                    ptr(psw), ptr(argmax)));
      },
      py::arg("grad"), py::arg("indices"), py::arg("offsets"),
      py::arg("weight"), py::arg("states"), py::arg("optimizer"),
      py::arg("lr"), py::arg("eps"), py::arg("weight_decay"), py::arg("beta1"),
      py::arg("beta2"), py::arg("step"), py::arg("mode"),
      py::arg("padding_idx"), py::arg("scale_grad_by_freq"),
      py::arg("include_last_offset"), py::arg("per_sample_weights"),
      py::arg("max_indices"), py::arg("profile"), py::arg("lookup"));

  m.def(
      "embedding_bag_tables_update",
      [](TensorArg grad, TensorArg indices, TensorArg weights,
         const std::vector<TableTuple> &tables,
         TensorArg offsets, py::list states, const std::string &optimizer,
         double lr, double eps, double weightDecay, double beta1, double beta2,
         int64_t step, TensorArg perSampleWeights) {
        std::optional<emb::Optimizer> opt = emb::parseOptimizer(optimizer);
        if (!opt)
          emb::python::failValue("optimizer must be 'sgd', 'adagrad', "
                                 "'rowwise_adagrad' or 'adam', got '" +
                                 optimizer + "'");
        emb::OptimizerOptions o;
        o.optimizer = *opt;
        o.lr = lr;
        o.eps = eps;
        o.weightDecay = weightDecay;
        o.beta1 = beta1;
        o.beta2 = beta2;
        o.step = step;
        std::vector<emb::TableOptions> options = tableOptions(tables);
        emb::Tensor g = toTensor(grad, "grad"), x = toTensor(indices, "indices"),
                    w = toTensor(weights, "weights"),
                    off = toTensor(offsets, "offsets");
        std::vector<emb::Tensor> stateViews;
        for (size_t k = 0; k < states.size(); ++k)
          stateViews.push_back(toTensor(states[k], k ? "state 1" : "state 0"));
        auto psw = toOptTensor(perSampleWeights, "per_sample_weights");
        auto e = engineFor(grad);
        py::gil_scoped_release release;
        check(e->embeddingBagTablesUpdate(g, x, w, options, off, stateViews, o,
                                          ptr(psw)));
      },
      py::arg("grad"), py::arg("indices"), py::arg("weights"),
      py::arg("tables"), py::arg("offsets"), py::arg("states"),
      py::arg("optimizer"), py::arg("lr"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("beta1"), py::arg("beta2"),
      py::arg("step"), py::arg("per_sample_weights"));
}
