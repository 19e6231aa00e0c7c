//===- BindingsCommon.h - what both extension modules share -----*- C++ -*-===//
//
// Shared by the two extension modules (_emb_mlir and _emb_torch): an
// llvm::Error of the Engine becomes the Python exception of its kind, and
// the option strings (profile, mode) become the Engine's enums.
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

/// IndexError, TypeError or ValueError by the error's kind; RuntimeError
/// for errors the Engine did not classify (e.g. a failed compile).
[[noreturn]] inline void raise(llvm::Error err) {
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
    throw pybind11::index_error(message);
  case emb::ErrorKind::wrong_dtype:
    throw pybind11::type_error(message);
  case emb::ErrorKind::invalid_argument:
    throw pybind11::value_error(message);
  }
  throw std::runtime_error(message);
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

inline const emb::Tensor *ptr(const std::optional<emb::Tensor> &t) {
  return t ? &*t : nullptr;
}

/// Releases the GIL around calls that do enough work for other Python
/// threads to gain (`elements` read or written); small calls keep it
/// (releasing costs ~0.1 us).
class ReleaseIfLarge {
public:
  static constexpr int64_t kElements = 1 << 16;
  explicit ReleaseIfLarge(int64_t elements) {
    if (elements >= kElements)
      release.emplace();
  }

private:
  std::optional<pybind11::gil_scoped_release> release;
};

inline emb::Profile toProfile(const std::string &name) {
  auto profile = emb::parseProfile(name);
  if (!profile)
    throw pybind11::value_error("unknown profile '" + name +
                                "' (expected 'torch', 'zero-padding' or "
                                "'unit-scaling')");
  return *profile;
}

inline emb::BagMode toMode(const std::string &name) {
  if (name == "sum")
    return emb::BagMode::sum;
  if (name == "mean")
    return emb::BagMode::mean;
  if (name == "max")
    return emb::BagMode::max;
  throw pybind11::value_error("mode must be 'sum', 'mean' or 'max', got '" +
                              name + "'");
}

/// The process-wide engine of _emb_mlir, handed to _emb_torch in a capsule
/// so that emb_mlir.configure() applies to both.
using EngineGetter = std::shared_ptr<emb::Engine> (*)();
constexpr const char *kEngineCapsule = "emb_mlir._engine_getter";

} // namespace emb::python

#endif // EMB_PYTHON_BINDINGSCOMMON_H
