//===- EmbModule.cpp - emb_mlir._emb_mlir, the Python bindings ------------===//
//
// A thin layer over emb::Engine: the Python package (emb_mlir/) turns numpy
// arrays and torch tensors into (address, dtype, shape) triples, allocates
// the outputs and calls these functions. Here the triples become
// emb::Tensor views (zero-copy), the Engine validates and runs with the GIL
// released, and its errors become Python exceptions by kind: IndexError,
// TypeError, ValueError (RuntimeError for anything else, e.g. a failed
// compile). Nothing is written when an exception is raised.
//
//===----------------------------------------------------------------------===//

#include "emb/Runtime/Engine.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace {

/// What the Python side passes for a tensor: (address, dtype name, shape).
using TensorArg = std::tuple<uintptr_t, std::string, std::vector<int64_t>>;

emb::Tensor toTensor(const TensorArg &arg, const char *name) {
  auto dtype = emb::parseDType(std::get<1>(arg));
  if (!dtype)
    throw py::type_error(std::string("'") + name + "' has unsupported dtype '" +
                         std::get<1>(arg) +
                         "' (expected f32, f64, f16, bf16, i32 or i64)");
  emb::Tensor t;
  t.data = reinterpret_cast<void *>(std::get<0>(arg));
  t.dtype = *dtype;
  t.shape = std::get<2>(arg);
  return t;
}

std::optional<emb::Tensor> toTensor(const std::optional<TensorArg> &arg,
                                    const char *name) {
  if (!arg)
    return std::nullopt;
  return toTensor(*arg, name);
}

const emb::Tensor *ptr(const std::optional<emb::Tensor> &t) {
  return t ? &*t : nullptr;
}

[[noreturn]] void raise(llvm::Error err) {
  std::error_code code;
  std::string message;
  llvm::handleAllErrors(std::move(err), [&](const llvm::ErrorInfoBase &e) {
    if (message.empty()) {
      code = e.convertToErrorCode();
      message = e.message();
    }
  });
  switch (emb::errorKind(code).value_or(emb::ErrorKind{})) {
  case emb::ErrorKind::index_out_of_range:
    throw py::index_error(message);
  case emb::ErrorKind::wrong_dtype:
    throw py::type_error(message);
  case emb::ErrorKind::invalid_argument:
    throw py::value_error(message);
  }
  throw std::runtime_error(message);
}

void check(llvm::Error err) {
  if (err)
    raise(std::move(err));
}

int64_t check(llvm::Expected<int64_t> value) {
  if (!value)
    raise(value.takeError());
  return *value;
}

emb::Profile toProfile(const std::string &name) {
  auto profile = emb::parseProfile(name);
  if (!profile)
    throw py::value_error("unknown profile '" + name +
                          "' (expected 'torch', 'zero-padding' or "
                          "'unit-scaling')");
  return *profile;
}

emb::BagMode toMode(const std::string &name) {
  if (name == "sum")
    return emb::BagMode::sum;
  if (name == "mean")
    return emb::BagMode::mean;
  if (name == "max")
    return emb::BagMode::max;
  throw py::value_error("mode must be 'sum', 'mean' or 'max', got '" + name +
                        "'");
}

//===----------------------------------------------------------------------===//
// The process-wide engine
//===----------------------------------------------------------------------===//

std::mutex engineMutex;
std::shared_ptr<emb::Engine> theEngine;
emb::EngineOptions engineOptions;

/// The engine, created at first use; `EMB_MLIR_THREADS` sets the threads.
std::shared_ptr<emb::Engine> engine() {
  std::lock_guard<std::mutex> lock(engineMutex);
  if (!theEngine) {
    if (const char *threads = std::getenv("EMB_MLIR_THREADS");
        threads && engineOptions.threads == 0)
      engineOptions.threads = std::atoi(threads);
    theEngine = std::make_shared<emb::Engine>(engineOptions);
  }
  return theEngine;
}

void configure(std::optional<int> threads, std::optional<std::string> cacheDir,
               std::optional<bool> diskCache) {
  std::lock_guard<std::mutex> lock(engineMutex);
  if (threads) {
    if (*threads < 0)
      throw py::value_error("threads must be >= 0 (0: all hardware threads)");
    engineOptions.threads = *threads;
  }
  if (cacheDir)
    engineOptions.cache.directory = *cacheDir;
  if (diskCache)
    engineOptions.cache.useDiskCache = *diskCache;
  // Calls in flight keep the old engine alive through their shared_ptr.
  theEngine.reset();
}

py::dict info() {
  auto e = engine();
  const auto &s = e->cache().stats();
  py::dict d;
  d["threads"] = e->threads();
  d["cache_dir"] = e->cache().directory();
  d["memory_hits"] = s.memoryHits.load();
  d["disk_hits"] = s.diskHits.load();
  d["compiles"] = s.compiles.load();
  d["rejected_disk_entries"] = s.rejectedDiskEntries.load();
  d["disk_errors"] = s.diskErrors.load();
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

} // namespace

PYBIND11_MODULE(_emb_mlir, m) {
  m.doc() = "emb-mlir's generated embedding kernels (the C++ engine); use "
            "the emb_mlir package, not this module.";

  m.def("configure", &configure, py::arg("threads") = py::none(),
        py::arg("cache_dir") = py::none(), py::arg("disk_cache") = py::none());
  m.def("info", &info);

  m.def(
      "embedding",
      [](const TensorArg &indices, const TensorArg &weight,
         const TensorArg &out, std::optional<int64_t> paddingIdx,
         std::optional<double> maxNorm, double normType, bool scaleGradByFreq,
         bool sparse, const std::string &profile) {
        auto o = embeddingOptions(paddingIdx, maxNorm, normType,
                                  scaleGradByFreq, sparse, profile);
        emb::Tensor x = toTensor(indices, "indices"),
                    w = toTensor(weight, "weight"), y = toTensor(out, "out");
        auto e = engine();
        py::gil_scoped_release release;
        check(e->embedding(x, w, y, o));
      },
      py::arg("indices"), py::arg("weight"), py::arg("out"),
      py::arg("padding_idx"), py::arg("max_norm"), py::arg("norm_type"),
      py::arg("scale_grad_by_freq"), py::arg("sparse"), py::arg("profile"));

  m.def(
      "embedding_bag",
      [](const TensorArg &indices, const TensorArg &weight,
         const std::optional<TensorArg> &offsets, const TensorArg &out,
         const std::string &mode, std::optional<int64_t> paddingIdx,
         std::optional<double> maxNorm, double normType, bool scaleGradByFreq,
         bool sparse, bool includeLastOffset,
         const std::optional<TensorArg> &perSampleWeights,
         const std::optional<TensorArg> &maxIndices,
         const std::string &profile) {
        auto o =
            bagOptions(mode, paddingIdx, maxNorm, normType, scaleGradByFreq,
                       sparse, includeLastOffset, profile);
        emb::Tensor x = toTensor(indices, "indices"),
                    w = toTensor(weight, "weight"), y = toTensor(out, "out");
        auto off = toTensor(offsets, "offsets");
        auto psw = toTensor(perSampleWeights, "per_sample_weights");
        auto argmax = toTensor(maxIndices, "max_indices");
        auto e = engine();
        py::gil_scoped_release release;
        check(e->embeddingBag(x, w, ptr(off), y, o, ptr(psw), ptr(argmax)));
      },
      py::arg("indices"), py::arg("weight"), py::arg("offsets"), py::arg("out"),
      py::arg("mode"), py::arg("padding_idx"), py::arg("max_norm"),
      py::arg("norm_type"), py::arg("scale_grad_by_freq"), py::arg("sparse"),
      py::arg("include_last_offset"), py::arg("per_sample_weights"),
      py::arg("max_indices"), py::arg("profile"));

  m.def(
      "renorm",
      [](const TensorArg &weight, const TensorArg &indices, double maxNorm,
         double normType) {
        emb::Tensor w = toTensor(weight, "weight"),
                    x = toTensor(indices, "indices");
        auto e = engine();
        py::gil_scoped_release release;
        check(e->renorm(w, x, maxNorm, normType));
      },
      py::arg("weight"), py::arg("indices"), py::arg("max_norm"),
      py::arg("norm_type"));

  m.def(
      "embedding_backward",
      [](const TensorArg &grad, const TensorArg &indices,
         const TensorArg &gradWeight, std::optional<int64_t> paddingIdx,
         bool scaleGradByFreq, const std::string &profile) {
        auto o = embeddingOptions(paddingIdx, std::nullopt, 2.0,
                                  scaleGradByFreq, false, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    gw = toTensor(gradWeight, "grad_weight");
        auto e = engine();
        py::gil_scoped_release release;
        check(e->embeddingBackward(g, x, gw, o));
      },
      py::arg("grad"), py::arg("indices"), py::arg("grad_weight"),
      py::arg("padding_idx"), py::arg("scale_grad_by_freq"),
      py::arg("profile"));

  m.def(
      "embedding_bag_backward",
      [](const TensorArg &grad, const TensorArg &indices,
         const std::optional<TensorArg> &offsets, const TensorArg &gradWeight,
         const std::string &mode, std::optional<int64_t> paddingIdx,
         bool scaleGradByFreq, bool includeLastOffset,
         const std::optional<TensorArg> &perSampleWeights,
         const std::optional<TensorArg> &maxIndices,
         const std::string &profile) {
        auto o = bagOptions(mode, paddingIdx, std::nullopt, 2.0,
                            scaleGradByFreq, false, includeLastOffset, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    gw = toTensor(gradWeight, "grad_weight");
        auto off = toTensor(offsets, "offsets");
        auto psw = toTensor(perSampleWeights, "per_sample_weights");
        auto argmax = toTensor(maxIndices, "max_indices");
        auto e = engine();
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
      [](const TensorArg &grad, const TensorArg &weight,
         const TensorArg &indices, const std::optional<TensorArg> &offsets,
         const TensorArg &gradPsw, const std::string &mode,
         std::optional<int64_t> paddingIdx, bool includeLastOffset,
         const std::string &profile) {
        auto o = bagOptions(mode, paddingIdx, std::nullopt, 2.0, false, false,
                            includeLastOffset, profile);
        emb::Tensor g = toTensor(grad, "grad"), w = toTensor(weight, "weight"),
                    x = toTensor(indices, "indices"),
                    gp = toTensor(gradPsw, "grad_per_sample_weights");
        auto off = toTensor(offsets, "offsets");
        auto e = engine();
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
      [](const TensorArg &grad, const TensorArg &indices, int64_t numWeights,
         const TensorArg &rows, const TensorArg &values,
         std::optional<int64_t> paddingIdx, bool scaleGradByFreq,
         const std::string &profile, bool coalesced) {
        auto o = embeddingOptions(paddingIdx, std::nullopt, 2.0,
                                  scaleGradByFreq, true, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    r = toTensor(rows, "rows"), v = toTensor(values, "values");
        auto e = engine();
        py::gil_scoped_release release;
        return check(
            e->embeddingSparseBackward(g, x, numWeights, r, v, o, coalesced));
      },
      py::arg("grad"), py::arg("indices"), py::arg("num_weights"),
      py::arg("rows"), py::arg("values"), py::arg("padding_idx"),
      py::arg("scale_grad_by_freq"), py::arg("profile"), py::arg("coalesced"));

  m.def(
      "embedding_bag_sparse_backward",
      [](const TensorArg &grad, const TensorArg &indices,
         const std::optional<TensorArg> &offsets, int64_t numWeights,
         const TensorArg &rows, const TensorArg &values,
         const std::string &mode, std::optional<int64_t> paddingIdx,
         bool scaleGradByFreq, bool includeLastOffset,
         const std::optional<TensorArg> &perSampleWeights,
         const std::string &profile, bool coalesced) {
        auto o = bagOptions(mode, paddingIdx, std::nullopt, 2.0,
                            scaleGradByFreq, true, includeLastOffset, profile);
        emb::Tensor g = toTensor(grad, "grad"),
                    x = toTensor(indices, "indices"),
                    r = toTensor(rows, "rows"), v = toTensor(values, "values");
        auto off = toTensor(offsets, "offsets");
        auto psw = toTensor(perSampleWeights, "per_sample_weights");
        auto e = engine();
        py::gil_scoped_release release;
        return check(e->embeddingBagSparseBackward(
            g, x, ptr(off), numWeights, r, v, o, ptr(psw), coalesced));
      },
      py::arg("grad"), py::arg("indices"), py::arg("offsets"),
      py::arg("num_weights"), py::arg("rows"), py::arg("values"),
      py::arg("mode"), py::arg("padding_idx"), py::arg("scale_grad_by_freq"),
      py::arg("include_last_offset"), py::arg("per_sample_weights"),
      py::arg("profile"), py::arg("coalesced"));
}
