//===- EngineGPU.cpp - the Engine's GPU target ----------------------------===//
//
// What the nvptx target adds to a call: the driver loaded and a context
// current (gpuReady), the chip in the spec, kernels run in a cuda::Call on
// the Engine's stream, index values read through a host copy (or trusted),
// and device memory zeroed on the stream.
//
//===----------------------------------------------------------------------===//

#include "EngineInternal.h"

#include "emb/Runtime/Cuda.h"

#include <cstring>

namespace emb {

namespace {

/// The chip of this thread's current GPU call (its context's device, or the
/// requested one): threads of one Engine may drive different devices.
thread_local std::string callChip;

cuda::DevicePtr devicePtr(const void *p) {
  return static_cast<cuda::DevicePtr>(reinterpret_cast<uintptr_t>(p));
}

} // namespace

//===----------------------------------------------------------------------===//
// Kernel calls
//===----------------------------------------------------------------------===//

void KernelCalls::operator()(const Kernel &kernel, KernelArgs &args) {
  std::string missing;
  void **packed = args.pack(missing);
  if (!packed)
    return record("the arguments of the kernel lack '" + missing + "'");
  if (!gpu)
    return kernel(packed);
  cuda::Call scope(*gpu->api, gpu->stream);
  kernel(packed);
  if (llvm::Error err = scope.finish())
    record(llvm::toString(std::move(err)));
}

void KernelCalls::record(std::string error) {
  std::lock_guard<std::mutex> lock(mutex);
  if (first.empty())
    first = std::move(error);
}

llvm::Error KernelCalls::finish() {
  if (first.empty())
    return llvm::Error::success();
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (gpu ? "the GPU call failed: " : "") + first);
}

//===----------------------------------------------------------------------===//
// The Engine on a GPU
//===----------------------------------------------------------------------===//

llvm::Error Engine::gpuReady() {
  if (target != Target::nvptx)
    return llvm::Error::success();
  std::lock_guard<std::mutex> lock(gpu->mutex);
  if (!gpu->api) {
    auto api = cuda::driver();
    if (!api)
      return api.takeError();
    gpu->api = *api;
  }
  // Also makes a context current when the caller has none.
  auto chip = cuda::currentChip(*gpu->api);
  if (!chip)
    return chip.takeError();
  callChip = gpu->requestedChip.empty() ? *chip : gpu->requestedChip;
  return llvm::Error::success();
}

void Engine::setTarget(KernelSpec &spec) const {
  spec.target = target;
  spec.traceMemory = traceMemory;
  if (target == Target::nvptx) {
    spec.chip = callChip;
    spec.ptx = gpu->ptx;
  }
}

void Engine::setStream(void *stream) {
  if (gpu)
    gpu->stream = stream;
}

llvm::Expected<const Tensor *> Engine::readable(const Tensor *t, Tensor &copy,
                                                std::vector<char> &storage) {
  if (!t || target != Target::nvptx || !t->data || t->numel() == 0)
    return t;
  if (!gpu->validate)
    return nullptr;
  size_t bytes = static_cast<size_t>(t->numel()) * dtypeSize(t->dtype);
  storage.resize(bytes);
  // Ordered after the work already on the stream (which may be writing the
  // indices), and complete on return.
  if (auto err = cuda::check(*gpu->api,
                             gpu->api->memcpyDtoHAsync(storage.data(),
                                                       devicePtr(t->data),
                                                       bytes, gpu->stream),
                             "cuMemcpyDtoHAsync (index validation)"))
    return std::move(err);
  if (auto err =
          cuda::check(*gpu->api, gpu->api->streamSynchronize(gpu->stream),
                      "cuStreamSynchronize (index validation)"))
    return std::move(err);
  copy = *t;
  copy.data = storage.data();
  return &copy;
}

llvm::Error Engine::zero(const Tensor &t) {
  size_t bytes = static_cast<size_t>(t.numel()) * dtypeSize(t.dtype);
  if (bytes == 0)
    return llvm::Error::success();
  if (target != Target::nvptx) {
    std::memset(t.data, 0, bytes);
    return llvm::Error::success();
  }
  return cuda::check(
      *gpu->api,
      gpu->api->memsetD8Async(devicePtr(t.data), 0, bytes, gpu->stream),
      "cuMemsetD8Async");
}

} // namespace emb
