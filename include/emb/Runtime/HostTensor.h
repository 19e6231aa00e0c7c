//===- HostTensor.h - a tensor that owns its host memory --------*- C++ -*-===//
//
// For tools and tests: storage plus the emb::Tensor view of it, with
// element access as double / int64 in any DType. Copies own their bytes.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_HOSTTENSOR_H
#define EMB_RUNTIME_HOSTTENSOR_H

#include "emb/Runtime/Engine.h"
#include "emb/Runtime/Numeric.h"

#include <algorithm>
#include <vector>

namespace emb {

class HostTensor {
public:
  HostTensor(DType dtype, std::vector<int64_t> shape) {
    view.dtype = dtype;
    view.shape = std::move(shape);
    bytes.assign(std::max<int64_t>(view.numel(), 1) * dtypeSize(dtype), 0);
    view.data = bytes.data();
  }
  HostTensor(const HostTensor &other) : bytes(other.bytes), view(other.view) {
    view.data = bytes.data();
  }
  HostTensor &operator=(const HostTensor &other) {
    bytes = other.bytes;
    view = other.view;
    view.data = bytes.data();
    return *this;
  }

  /// Bytes of the elements (0 for an empty tensor).
  size_t size() const { return view.numel() * dtypeSize(view.dtype); }
  double at(int64_t i) const { return loadDouble(view.data, view.dtype, i); }
  int64_t intAt(int64_t i) const { return loadInt(view.data, view.dtype, i); }
  void set(int64_t i, double v) { storeDouble(view.data, view.dtype, i, v); }
  std::vector<double> toDouble() const {
    std::vector<double> v(view.numel());
    for (int64_t i = 0; i < view.numel(); ++i)
      v[i] = at(i);
    return v;
  }
  std::vector<int64_t> toInt() const {
    std::vector<int64_t> v(view.numel());
    for (int64_t i = 0; i < view.numel(); ++i)
      v[i] = intAt(i);
    return v;
  }

  std::vector<char> bytes;
  Tensor view;
};

} // namespace emb

#endif // EMB_RUNTIME_HOSTTENSOR_H
