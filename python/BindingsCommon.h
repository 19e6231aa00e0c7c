//===- BindingsCommon.h - what both extension modules share -----*- C++ -*-===//
//
// Shared by the two extension modules (_emb_mlir and _emb_torch): an
// llvm::Error of the Engine becomes a Failure of its kind (and in Python
// the exception class of that kind), and the option strings (profile,
// mode) become the Engine's enums.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_PYTHON_BINDINGSCOMMON_H
#define EMB_PYTHON_BINDINGSCOMMON_H

#include "emb/Runtime/Engine.h"

#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace emb::python {

/// An error of an emb_mlir call with its kind: the Python exception class
/// is chosen where it crosses into Python (emb_mlir.EmbIndexError,
/// EmbTypeError, EmbValueError: each also a RuntimeError, as torch raises;
/// plain EmbError for errors the Engine did not classify, e.g. a failed
/// compile).
struct Failure : std::runtime_error {
  std::optional<emb::ErrorKind> kind;
  Failure(std::optional<emb::ErrorKind> kind, const std::string &message)
      : std::runtime_error(message), kind(kind) {}
};

[[noreturn]] inline void failValue(const std::string &message) {
  throw Failure(emb::ErrorKind::invalid_argument, message);
}
[[noreturn]] inline void failType(const std::string &message) {
  throw Failure(emb::ErrorKind::wrong_dtype, message);
}

/// The Failure of an Engine error (its first message).
[[noreturn]] inline void raise(llvm::Error err) {
  std::error_code code;
  std::string message;
  llvm::handleAllErrors(std::move(err), [&](const llvm::ErrorInfoBase &e) {
    if (message.empty()) {
      code = e.convertToErrorCode();
      message = e.message();
    }
  });
  throw Failure(emb::errorKind(code), message);
}

inline void check(llvm::Error err) {
  if (err)
    raise(std::move(err));
}

inline int64_t check(llvm::Expected<int64_t> value) {
  if (!value)
    raise(value.takeError());
  return *value;
}

/// The Python class of a Failure, from emb_mlir._errors (which the module
/// imports at load time; the handles live as long as the interpreter).
inline PyObject *pythonClassOf(const Failure &failure) {
  static PyObject *classes[4] = {nullptr, nullptr, nullptr, nullptr};
  if (!classes[0]) {
    pybind11::module_ errors = pybind11::module_::import("emb_mlir._errors");
    const char *names[4] = {"EmbError", "EmbIndexError", "EmbTypeError",
                            "EmbValueError"};
    for (int i = 0; i < 4; ++i)
      classes[i] = pybind11::object(errors.attr(names[i])).release().ptr();
  }
  if (!failure.kind)
    return classes[0];
  switch (*failure.kind) {
  case emb::ErrorKind::index_out_of_range:
    return classes[1];
  case emb::ErrorKind::wrong_dtype:
    return classes[2];
  case emb::ErrorKind::invalid_argument:
    return classes[3];
  }
  return classes[0];
}

/// Makes every Failure that reaches a function of this module the Python
/// exception of its kind.
inline void registerFailureTranslator() {
  pybind11::module_::import("emb_mlir._errors"); // before any call fails
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const Failure &failure) {
      PyErr_SetString(pythonClassOf(failure), failure.what());
    }
  });
}

inline const emb::Tensor *ptr(const std::optional<emb::Tensor> &t) {
  return t ? &*t : nullptr;
}

/// Releases the GIL around calls that do enough work for other Python
/// threads to gain (`elements` read or written); small calls keep it
/// (releasing costs ~0.1 us). A thread that does not hold it (a kernel of
/// the torch ops run by the autograd engine's thread) has nothing to
/// release.
class ReleaseIfLarge {
public:
  static constexpr int64_t kElements = 1 << 16;
  explicit ReleaseIfLarge(int64_t elements) {
    if (elements >= kElements && PyGILState_Check())
      release.emplace();
  }

private:
  std::optional<pybind11::gil_scoped_release> release;
};

inline emb::Profile toProfile(const std::string &name) {
  auto profile = emb::parseProfile(name);
  if (!profile)
    failValue("unknown profile '" + name +
              "' (expected 'torch', 'zero-padding' or 'unit-scaling')");
  return *profile;
}

inline emb::BagMode toMode(const std::string &name) {
  if (name == "sum")
    return emb::BagMode::sum;
  if (name == "mean")
    return emb::BagMode::mean;
  if (name == "max")
    return emb::BagMode::max;
  if (name == "sqrtn")
    return emb::BagMode::sqrtn;
  failValue("mode must be 'sum', 'mean', 'max' or 'sqrtn', got '" + name +
            "'");
}

/// The bytes of a [rows, dim] table of `itemSize`-byte elements (the
/// empty_table functions of both modules); fails on negative sizes and on
/// sizes no memory holds.
inline size_t tableBytes(int64_t rows, int64_t dim, size_t itemSize) {
  if (rows < 0 || dim < 0)
    failValue("a table's sizes must be non-negative, got [" +
              std::to_string(rows) + ", " + std::to_string(dim) + "]");
  size_t elements, bytes;
  if (__builtin_mul_overflow(size_t(rows), size_t(dim), &elements) ||
      __builtin_mul_overflow(elements, itemSize, &bytes) ||
      bytes > size_t(INT64_MAX))
    failValue("a table of [" + std::to_string(rows) + ", " +
              std::to_string(dim) + "] does not fit in memory");
  return bytes;
}

/// The engine of the torch operators (_emb_mlir's, sharing its kernel
/// cache and configure()), handed to _emb_torch in a capsule.
using EngineGetter = std::shared_ptr<emb::Engine> (*)();
constexpr const char *kEngineCapsule = "emb_mlir._engine_getter";
/// How _emb_torch gives that engine torch's executor (at::parallel_for).
using ParallelForSetter = void (*)(emb::ParallelFor);
constexpr const char *kParallelForCapsule = "emb_mlir._set_torch_parallel_for";

} // namespace emb::python

#endif // EMB_PYTHON_BINDINGSCOMMON_H
