//===- Cuda.h - the CUDA runtime shim of emb-mlir ---------------*- C++ -*-===//
//
// nvptx kernels run through the CUDA driver API, which is loaded with
// dlopen("libcuda.so.1") at first use: emb-mlir builds, links and runs on
// machines without a driver, and a missing driver or device is an error at
// the first GPU call, never at load time. `$EMB_MLIR_LIBCUDA` names another
// library (tests use the toolkit's stub).
//
// The generated host code of a kernel calls four functions through a
// table (convert-gpu-to-emb-runtime; the contract: GPURuntimeABI.h):
// launch, alloc, free and copy. They run in
// the scope of a `Call`, which names the stream every launch, scratch
// allocation and free goes to, and collects the first error.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_CUDA_H
#define EMB_RUNTIME_CUDA_H

#include "emb/Runtime/GPURuntimeABI.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace emb::cuda {

/// CUresult, CUcontext, CUdevice, CUstream, ... as the driver API spells
/// them, without cuda.h.
using Result = int;
using Context = void *;
using Module = void *;
using Function = void *;
using Stream = void *;
using Event = void *;
using DevicePtr = uint64_t;

/// The driver functions the runtime uses. Optional entries (stream-ordered
/// allocation, CUDA 11.2+) may be null.
struct DriverAPI {
  Result (*init)(unsigned flags);
  Result (*deviceGetCount)(int *count);
  Result (*deviceGet)(int *device, int ordinal);
  Result (*deviceGetAttribute)(int *value, int attribute, int device);
  Result (*deviceGetName)(char *name, int length, int device);
  Result (*primaryCtxRetain)(Context *context, int device);
  Result (*ctxGetCurrent)(Context *context);
  Result (*ctxSetCurrent)(Context context);
  Result (*ctxGetDevice)(int *device);
  Result (*moduleLoadData)(Module *module, const void *image);
  Result (*moduleGetFunction)(Function *function, Module module,
                              const char *name);
  /// Optional (CUDA 12.4): checks the launches' parameter counts.
  Result (*funcGetParamInfo)(Function function, size_t index, size_t *offset,
                             size_t *size);
  Result (*launchKernel)(Function function, unsigned gridX, unsigned gridY,
                         unsigned gridZ, unsigned blockX, unsigned blockY,
                         unsigned blockZ, unsigned sharedBytes, Stream stream,
                         void **params, void **extra);
  Result (*memAlloc)(DevicePtr *ptr, size_t bytes);
  Result (*memFree)(DevicePtr ptr);
  Result (*memAllocAsync)(DevicePtr *ptr, size_t bytes, Stream stream);
  Result (*memFreeAsync)(DevicePtr ptr, Stream stream);
  Result (*memcpyAsync)(DevicePtr dst, DevicePtr src, size_t bytes,
                        Stream stream);
  Result (*memcpyHtoD)(DevicePtr dst, const void *src, size_t bytes);
  Result (*memcpyDtoH)(void *dst, DevicePtr src, size_t bytes);
  Result (*memcpyDtoHAsync)(void *dst, DevicePtr src, size_t bytes,
                            Stream stream);
  Result (*memcpyDtoDAsync)(DevicePtr dst, DevicePtr src, size_t bytes,
                            Stream stream);
  Result (*memsetD8Async)(DevicePtr dst, unsigned char value, size_t bytes,
                          Stream stream);
  Result (*streamSynchronize)(Stream stream);
  Result (*eventCreate)(Event *event, unsigned flags);
  Result (*eventRecord)(Event event, Stream stream);
  Result (*eventSynchronize)(Event event);
  Result (*eventElapsedTime)(float *ms, Event start, Event end);
  Result (*eventDestroy)(Event event);
  Result (*getErrorName)(Result result, const char **name);
  Result (*getErrorString)(Result result, const char **text);
};

/// The driver, loaded and initialised (cuInit) once per process; the error
/// (no library, a stub library, no device, ...) is repeated to every caller.
llvm::Expected<const DriverAPI *> driver();

/// "cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE (invalid argument)".
llvm::Error check(const DriverAPI &api, Result result, const char *what);

/// The table the JIT copies into every nvptx kernel it loads.
const GPURuntimeTable &runtimeTable();

/// Makes a context current on this thread when none is: the primary
/// context of device 0, as the CUDA runtime API does. Returns the chip of
/// the current context's device, e.g. "sm_90".
llvm::Expected<std::string> currentChip(const DriverAPI &api);

/// The scope of one Engine call on the GPU: the host code's launches,
/// allocations and frees run on `stream`, on this thread's current context.
/// finish() returns the first error; calls after an error launch nothing
/// (frees still run).
class Call {
public:
  Call(const DriverAPI &api, Stream stream);
  ~Call();
  Call(const Call &) = delete;
  Call &operator=(const Call &) = delete;
  llvm::Error finish();

  struct State;

private:
  std::unique_ptr<State> state;
};

/// Device memory and timing for tools, tests and benchmarks (callers of the
/// Engine bring their own device memory).
class Device {
public:
  /// Device `ordinal`'s primary context, made current on this thread.
  static llvm::Expected<std::unique_ptr<Device>>
  open(int ordinal = 0, const DriverAPI *api = nullptr);

  const std::string &name() const { return deviceName; }
  const std::string &chip() const { return deviceChip; }
  const DriverAPI &api() const { return *driverApi; }

  llvm::Expected<void *> alloc(size_t bytes);
  void free(void *ptr);
  llvm::Error copyToDevice(void *dst, const void *src, size_t bytes);
  llvm::Error copyToHost(void *dst, const void *src, size_t bytes);
  llvm::Error copyOnDevice(void *dst, const void *src, size_t bytes,
                           Stream stream = nullptr);
  llvm::Error synchronize(Stream stream = nullptr);

  /// Milliseconds per run of `fn` (which enqueues work on `stream`), from
  /// events around `iters` runs after one warm-up run.
  llvm::Expected<double> time(llvm::function_ref<llvm::Error()> fn, int iters,
                              Stream stream = nullptr);

private:
  const DriverAPI *driverApi = nullptr;
  std::string deviceName, deviceChip;
};

} // namespace emb::cuda

#endif // EMB_RUNTIME_CUDA_H
