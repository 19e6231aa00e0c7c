//===- CudaRuntime.cpp - the CUDA driver, loaded at first use -------------===//
//
// The driver API through dlopen (nothing links against libcuda), the four
// functions the generated host code of nvptx kernels calls (launch, alloc,
// free, copy: include/emb/Runtime/GPURuntimeABI.h), and device helpers for
// tools.
//
//===----------------------------------------------------------------------===//

#include "emb/Runtime/Cuda.h"

#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

namespace emb::cuda {

namespace {

llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

// CUresult values the messages explain.
constexpr Result kSuccess = 0;
constexpr Result kStubLibrary = 34;
constexpr Result kNoDevice = 100;
// CUdevice_attribute values.
constexpr int kComputeCapabilityMajor = 75;
constexpr int kComputeCapabilityMinor = 76;
constexpr int kMemoryPoolsSupported = 115;

struct LoadedDriver {
  DriverAPI api{};
  std::string error; // empty: loaded and initialised
};

/// dlopen + dlsym of every entry, then cuInit(0).
LoadedDriver loadDriver() {
  LoadedDriver d;
  const char *env = std::getenv("EMB_MLIR_LIBCUDA");
  std::string path = env && *env ? env : "libcuda.so.1";
  void *lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    d.error = "the CUDA driver is not available: dlopen(\"" + path +
              "\") failed (" + dlerror() +
              "); GPU kernels need an NVIDIA driver (use the host target, "
              "or gpu_emulated to test GPU kernels on the host)";
    return d;
  }
  std::string missing;
  auto bind = [&](auto &slot, const char *name, bool required = true) {
    void *sym = dlsym(lib, name);
    if (!sym && required)
      missing += std::string(missing.empty() ? "" : ", ") + name;
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(sym);
  };
  DriverAPI &a = d.api;
  bind(a.init, "cuInit");
  bind(a.deviceGetCount, "cuDeviceGetCount");
  bind(a.deviceGet, "cuDeviceGet");
  bind(a.deviceGetAttribute, "cuDeviceGetAttribute");
  bind(a.deviceGetName, "cuDeviceGetName");
  bind(a.primaryCtxRetain, "cuDevicePrimaryCtxRetain");
  bind(a.ctxGetCurrent, "cuCtxGetCurrent");
  bind(a.ctxSetCurrent, "cuCtxSetCurrent");
  bind(a.ctxGetDevice, "cuCtxGetDevice");
  bind(a.moduleLoadData, "cuModuleLoadData");
  bind(a.moduleGetFunction, "cuModuleGetFunction");
  bind(a.launchKernel, "cuLaunchKernel");
  bind(a.funcGetParamInfo, "cuFuncGetParamInfo", /*required=*/false);
  bind(a.memAlloc, "cuMemAlloc_v2");
  bind(a.memFree, "cuMemFree_v2");
  bind(a.memAllocAsync, "cuMemAllocAsync", /*required=*/false);
  bind(a.memFreeAsync, "cuMemFreeAsync", /*required=*/false);
  bind(a.memcpyAsync, "cuMemcpyAsync");
  bind(a.memcpyHtoD, "cuMemcpyHtoD_v2");
  bind(a.memcpyDtoH, "cuMemcpyDtoH_v2");
  bind(a.memcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  bind(a.memcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  bind(a.memsetD8Async, "cuMemsetD8Async");
  bind(a.streamSynchronize, "cuStreamSynchronize");
  bind(a.eventCreate, "cuEventCreate");
  bind(a.eventRecord, "cuEventRecord");
  bind(a.eventSynchronize, "cuEventSynchronize");
  bind(a.eventElapsedTime, "cuEventElapsedTime_v2", /*required=*/false);
  if (!a.eventElapsedTime)
    bind(a.eventElapsedTime, "cuEventElapsedTime");
  bind(a.eventDestroy, "cuEventDestroy_v2");
  bind(a.getErrorName, "cuGetErrorName");
  bind(a.getErrorString, "cuGetErrorString");
  if (!missing.empty()) {
    d.error = path + " lacks " + missing + " (a CUDA driver older than 11.2?)";
    return d;
  }
  if (Result r = a.init(0)) {
    if (r == kStubLibrary)
      d.error = path + " is the CUDA toolkit's stub library, not a driver: "
                       "GPU kernels need an NVIDIA driver";
    else if (r == kNoDevice)
      d.error = "no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)";
    else
      d.error = llvm::toString(check(a, r, "cuInit"));
  }
  return d;
}

} // namespace

llvm::Expected<const DriverAPI *> driver() {
  static const LoadedDriver loaded = loadDriver();
  if (!loaded.error.empty())
    return fail(loaded.error);
  return &loaded.api;
}

llvm::Error check(const DriverAPI &api, Result result, const char *what) {
  if (result == kSuccess)
    return llvm::Error::success();
  const char *name = nullptr, *text = nullptr;
  if (api.getErrorName && api.getErrorName(result, &name) != kSuccess)
    name = nullptr;
  if (api.getErrorString && api.getErrorString(result, &text) != kSuccess)
    text = nullptr;
  std::string message = std::string(what) + " failed: ";
  message += name ? name : "CUDA error " + std::to_string(result);
  if (text)
    message += std::string(" (") + text + ")";
  return fail(message);
}

llvm::Expected<std::string> currentChip(const DriverAPI &api) {
  Context context = nullptr;
  if (auto err = check(api, api.ctxGetCurrent(&context), "cuCtxGetCurrent"))
    return std::move(err);
  if (!context) {
    int count = 0;
    if (auto err = check(api, api.deviceGetCount(&count), "cuDeviceGetCount"))
      return std::move(err);
    if (count == 0)
      return fail("no CUDA device");
    int device = 0;
    if (auto err = check(api, api.deviceGet(&device, 0), "cuDeviceGet"))
      return std::move(err);
    if (auto err = check(api, api.primaryCtxRetain(&context, device),
                         "cuDevicePrimaryCtxRetain"))
      return std::move(err);
    if (auto err = check(api, api.ctxSetCurrent(context), "cuCtxSetCurrent"))
      return std::move(err);
  }
  int device = 0, major = 0, minor = 0;
  if (auto err = check(api, api.ctxGetDevice(&device), "cuCtxGetDevice"))
    return std::move(err);
  if (auto err = check(
          api, api.deviceGetAttribute(&major, kComputeCapabilityMajor, device),
          "cuDeviceGetAttribute"))
    return std::move(err);
  if (auto err = check(
          api, api.deviceGetAttribute(&minor, kComputeCapabilityMinor, device),
          "cuDeviceGetAttribute"))
    return std::move(err);
  return "sm_" + std::to_string(major * 10 + minor);
}

//===----------------------------------------------------------------------===//
// The calls of the generated host code
//===----------------------------------------------------------------------===//

struct Call::State {
  const DriverAPI *api;
  Stream stream;
  Context context = nullptr;
  /// cuMemAllocAsync / cuMemFreeAsync: the driver has them and the device
  /// supports memory pools.
  bool streamOrdered = false;
  std::string error; // the first one
  State *outer = nullptr;

  void record(llvm::Error err) {
    if (!err)
      return;
    if (error.empty())
      error = llvm::toString(std::move(err));
    else
      llvm::consumeError(std::move(err));
  }
};

namespace {

thread_local Call::State *current = nullptr;

/// A kernel loaded in a context; `params` is its parameter count when the
/// driver can tell (cuFuncGetParamInfo, CUDA 12.4), else -1.
struct LoadedFunction {
  Context context;
  Function function;
  int64_t params;
};

/// What a kernel's cache global points to: the kernel in every context it
/// was launched in.
struct LoadedKernel {
  std::mutex mutex;
  std::vector<LoadedFunction> contexts;
};

LoadedKernel &loadedKernel(void **cache) {
  void *p = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
  if (!p) {
    auto *fresh = new LoadedKernel;
    void *expected = nullptr;
    if (__atomic_compare_exchange_n(cache, &expected, fresh, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      p = fresh;
    } else {
      delete fresh;
      p = expected;
    }
  }
  return *static_cast<LoadedKernel *>(p);
}

llvm::Expected<LoadedFunction> kernelFunction(Call::State &s, void **cache,
                                              const void *binary,
                                              const char *kernel) {
  LoadedKernel &k = loadedKernel(cache);
  std::lock_guard<std::mutex> lock(k.mutex);
  for (const LoadedFunction &f : k.contexts)
    if (f.context == s.context)
      return f;
  Module module = nullptr;
  Function function = nullptr;
  if (auto err = check(*s.api, s.api->moduleLoadData(&module, binary),
                       "cuModuleLoadData"))
    return std::move(err);
  if (auto err =
          check(*s.api, s.api->moduleGetFunction(&function, module, kernel),
                "cuModuleGetFunction"))
    return std::move(err);
  int64_t params = -1;
  if (s.api->funcGetParamInfo) {
    size_t offset = 0, size = 0;
    params = 0;
    while (s.api->funcGetParamInfo(function, static_cast<size_t>(params),
                                   &offset, &size) == kSuccess)
      ++params;
  }
  k.contexts.push_back({s.context, function, params});
  return k.contexts.back();
}

/// The state of the enclosing Call, or null after reporting its absence.
Call::State *activeCall(const char *what) {
  if (!current)
    std::fprintf(stderr,
                 "emb-mlir: a GPU kernel's %s ran outside an emb::cuda::Call "
                 "(nvptx kernels run through the Engine); nothing was done\n",
                 what);
  return current;
}

void launchKernel(void **cache, const void *binary, int64_t /*size*/,
                  const char *kernel, int64_t gx, int64_t gy, int64_t gz,
                  int64_t bx, int64_t by, int64_t bz, void **params,
                  int32_t numParams) {
  Call::State *s = activeCall("launch");
  if (!s || !s->error.empty())
    return;
  if (gx <= 0 || gy <= 0 || gz <= 0)
    return;
  if (gx > 0x7fffffff || gy > 65535 || gz > 65535 || bx > 1024 || by > 1024 ||
      bz > 64 || bx * by * bz > 1024) {
    s->record(fail(llvm::Twine("the launch of ") + kernel + " (grid " +
                   llvm::Twine(gx) + " x " + llvm::Twine(gy) + " x " +
                   llvm::Twine(gz) + ", block " + llvm::Twine(bx) + " x " +
                   llvm::Twine(by) + " x " + llvm::Twine(bz) +
                   ") exceeds the device's limits (grid 2^31 - 1 x 65535 x "
                   "65535, block 1024 x 1024 x 64 and 1024 threads)"));
    return;
  }
  auto loaded = kernelFunction(*s, cache, binary, kernel);
  if (!loaded)
    return s->record(loaded.takeError());
  // The host code packs each memref as its descriptor's fields: a count
  // that differs from the kernel's would launch on garbage.
  if (loaded->params >= 0 && loaded->params != numParams)
    return s->record(fail(llvm::Twine("the kernel ") + kernel + " takes " +
                          llvm::Twine(loaded->params) +
                          " parameters, its launch passes " +
                          llvm::Twine(numParams)));
  s->record(check(*s->api,
                  s->api->launchKernel(
                      loaded->function, static_cast<unsigned>(gx),
                      static_cast<unsigned>(gy), static_cast<unsigned>(gz),
                      static_cast<unsigned>(bx), static_cast<unsigned>(by),
                      static_cast<unsigned>(bz), 0, s->stream, params, nullptr),
                  "cuLaunchKernel"));
}

/// Scratch (f32 accumulators, row counts, renorm flags): stream-ordered when
/// the driver has it, so it is reused without synchronising.
void *allocScratch(int64_t bytes) {
  Call::State *s = activeCall("allocation");
  if (!s || !s->error.empty() || bytes <= 0)
    return nullptr;
  DevicePtr p = 0;
  Result r =
      s->streamOrdered
          ? s->api->memAllocAsync(&p, static_cast<size_t>(bytes), s->stream)
          : s->api->memAlloc(&p, static_cast<size_t>(bytes));
  s->record(check(*s->api, r, "cuMemAlloc"));
  return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
}

void freeScratch(void *ptr) {
  Call::State *s = activeCall("free");
  if (!s || !ptr)
    return;
  auto p = static_cast<DevicePtr>(reinterpret_cast<uintptr_t>(ptr));
  Result r = s->streamOrdered ? s->api->memFreeAsync(p, s->stream)
                              : s->api->memFree(p);
  s->record(check(*s->api, r, "cuMemFree"));
}

/// A copy in any direction (unified addressing), complete on return: the
/// host reads what it copied (a result size) right after.
void copyMemory(void *dst, const void *src, int64_t bytes) {
  Call::State *s = activeCall("copy");
  if (!s || !s->error.empty() || bytes <= 0)
    return;
  auto d = static_cast<DevicePtr>(reinterpret_cast<uintptr_t>(dst));
  auto from = static_cast<DevicePtr>(reinterpret_cast<uintptr_t>(src));
  s->record(
      check(*s->api,
            s->api->memcpyAsync(d, from, static_cast<size_t>(bytes), s->stream),
            "cuMemcpyAsync"));
  if (s->error.empty())
    s->record(check(*s->api, s->api->streamSynchronize(s->stream),
                    "cuStreamSynchronize"));
}

} // namespace

const GPURuntimeTable &runtimeTable() {
  // Typed: a function whose signature drifts from GPURuntimeABI.h does not
  // compile.
  static const GPURuntimeTable table = {&launchKernel, &allocScratch,
                                        &freeScratch, &copyMemory};
  return table;
}

Call::Call(const DriverAPI &api, Stream stream)
    : state(std::make_unique<State>()) {
  state->api = &api;
  state->stream = stream;
  state->record(
      check(api, api.ctxGetCurrent(&state->context), "cuCtxGetCurrent"));
  if (state->error.empty() && !state->context)
    state->error = "no current CUDA context";
  int device = 0, pools = 0;
  if (state->error.empty() && api.memAllocAsync && api.memFreeAsync &&
      api.ctxGetDevice(&device) == kSuccess &&
      api.deviceGetAttribute(&pools, kMemoryPoolsSupported, device) == kSuccess)
    state->streamOrdered = pools != 0;
  state->outer = current;
  current = state.get();
}

Call::~Call() { current = state->outer; }

llvm::Error Call::finish() {
  if (state->error.empty())
    return llvm::Error::success();
  std::string error = std::move(state->error);
  state->error.clear();
  return fail(error);
}

//===----------------------------------------------------------------------===//
// Device helpers
//===----------------------------------------------------------------------===//

llvm::Expected<std::unique_ptr<Device>> Device::open(int ordinal,
                                                     const DriverAPI *api) {
  if (!api) {
    auto loaded = driver();
    if (!loaded)
      return loaded.takeError();
    api = *loaded;
  }
  int count = 0;
  if (auto err = check(*api, api->deviceGetCount(&count), "cuDeviceGetCount"))
    return std::move(err);
  if (ordinal < 0 || ordinal >= count)
    return fail("no CUDA device " + llvm::Twine(ordinal) + " (" +
                llvm::Twine(count) + " present)");
  int device = 0;
  Context context = nullptr;
  if (auto err = check(*api, api->deviceGet(&device, ordinal), "cuDeviceGet"))
    return std::move(err);
  if (auto err = check(*api, api->primaryCtxRetain(&context, device),
                       "cuDevicePrimaryCtxRetain"))
    return std::move(err);
  if (auto err = check(*api, api->ctxSetCurrent(context), "cuCtxSetCurrent"))
    return std::move(err);
  auto d = std::unique_ptr<Device>(new Device());
  d->driverApi = api;
  char name[256] = {0};
  if (auto err = check(*api, api->deviceGetName(name, sizeof(name), device),
                       "cuDeviceGetName"))
    return std::move(err);
  d->deviceName = name;
  auto chip = currentChip(*api);
  if (!chip)
    return chip.takeError();
  d->deviceChip = *chip;
  return std::move(d);
}

static DevicePtr dptr(const void *p) {
  return static_cast<DevicePtr>(reinterpret_cast<uintptr_t>(p));
}

llvm::Expected<void *> Device::alloc(size_t bytes) {
  DevicePtr p = 0;
  if (auto err = check(*driverApi, driverApi->memAlloc(&p, bytes ? bytes : 1),
                       "cuMemAlloc"))
    return std::move(err);
  return reinterpret_cast<void *>(static_cast<uintptr_t>(p));
}

void Device::free(void *ptr) {
  if (ptr)
    llvm::consumeError(
        check(*driverApi, driverApi->memFree(dptr(ptr)), "cuMemFree"));
}

llvm::Error Device::copyToDevice(void *dst, const void *src, size_t bytes) {
  return check(*driverApi, driverApi->memcpyHtoD(dptr(dst), src, bytes),
               "cuMemcpyHtoD");
}

llvm::Error Device::copyToHost(void *dst, const void *src, size_t bytes) {
  return check(*driverApi, driverApi->memcpyDtoH(dst, dptr(src), bytes),
               "cuMemcpyDtoH");
}

llvm::Error Device::copyOnDevice(void *dst, const void *src, size_t bytes,
                                 Stream stream) {
  return check(*driverApi,
               driverApi->memcpyDtoDAsync(dptr(dst), dptr(src), bytes, stream),
               "cuMemcpyDtoDAsync");
}

llvm::Error Device::synchronize(Stream stream) {
  return check(*driverApi, driverApi->streamSynchronize(stream),
               "cuStreamSynchronize");
}

llvm::Expected<double> Device::time(llvm::function_ref<llvm::Error()> fn,
                                    int iters, Stream stream) {
  if (llvm::Error err = fn()) // warm-up: compiles, loads modules
    return std::move(err);
  Event start = nullptr, end = nullptr;
  if (auto err =
          check(*driverApi, driverApi->eventCreate(&start, 0), "cuEventCreate"))
    return std::move(err);
  if (auto err =
          check(*driverApi, driverApi->eventCreate(&end, 0), "cuEventCreate")) {
    driverApi->eventDestroy(start);
    return std::move(err);
  }
  auto run = [&]() -> llvm::Expected<double> {
    if (auto err = check(*driverApi, driverApi->eventRecord(start, stream),
                         "cuEventRecord"))
      return std::move(err);
    for (int i = 0; i < iters; ++i)
      if (llvm::Error err = fn())
        return std::move(err);
    if (auto err = check(*driverApi, driverApi->eventRecord(end, stream),
                         "cuEventRecord"))
      return std::move(err);
    if (auto err = check(*driverApi, driverApi->eventSynchronize(end),
                         "cuEventSynchronize"))
      return std::move(err);
    float ms = 0;
    if (auto err =
            check(*driverApi, driverApi->eventElapsedTime(&ms, start, end),
                  "cuEventElapsedTime"))
      return std::move(err);
    return static_cast<double>(ms) / std::max(iters, 1);
  };
  auto result = run();
  driverApi->eventDestroy(start);
  driverApi->eventDestroy(end);
  return result;
}

} // namespace emb::cuda
