//===- FakeCudaDriver.cpp - a libcuda stand-in for smoke tests ------------===//
//
// The CUDA driver entry points the runtime shim binds, over host memory:
// "device" pointers are host allocations, copies are memcpy, events read
// the clock, and launches do nothing. Loaded through $EMB_MLIR_LIBCUDA, it
// takes the real loading path (dlopen, dlsym of every entry, cuInit) and
// lets the tools that drive a device (emb-run --target nvptx) run end to
// end on a machine without a GPU. Results are not computed: only the
// plumbing is tested.
//
//===----------------------------------------------------------------------===//

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
using Result = int;
using Ptr = unsigned long long;
void *current = nullptr;

void *host(Ptr p) { return reinterpret_cast<void *>(static_cast<uintptr_t>(p)); }
Ptr device(void *p) { return static_cast<Ptr>(reinterpret_cast<uintptr_t>(p)); }
} // namespace

extern "C" {
Result cuInit(unsigned) { return 0; }
Result cuDeviceGetCount(int *count) {
  *count = 1;
  return 0;
}
Result cuDeviceGet(int *dev, int) {
  *dev = 0;
  return 0;
}
Result cuDeviceGetAttribute(int *value, int attribute, int) {
  // 75 / 76: compute capability 9.0; anything else (memory pools): yes.
  *value = attribute == 75 ? 9 : attribute == 76 ? 0 : 1;
  return 0;
}
Result cuDeviceGetName(char *name, int length, int) {
  std::snprintf(name, static_cast<size_t>(length), "emb fake CUDA device");
  return 0;
}
Result cuDevicePrimaryCtxRetain(void **ctx, int) {
  *ctx = reinterpret_cast<void *>(0x1);
  return 0;
}
Result cuCtxGetCurrent(void **ctx) {
  *ctx = current;
  return 0;
}
Result cuCtxSetCurrent(void *ctx) {
  current = ctx;
  return 0;
}
Result cuCtxGetDevice(int *dev) {
  *dev = 0;
  return 0;
}
Result cuModuleLoadData(void **module, const void *) {
  *module = reinterpret_cast<void *>(0x2);
  return 0;
}
Result cuModuleGetFunction(void **function, void *, const char *) {
  *function = reinterpret_cast<void *>(0x3);
  return 0;
}
Result cuLaunchKernel(void *, unsigned, unsigned, unsigned, unsigned,
                      unsigned, unsigned, unsigned, void *, void **,
                      void **) {
  return 0; // nothing runs
}
Result cuMemAlloc_v2(Ptr *p, size_t bytes) {
  *p = device(std::calloc(bytes ? bytes : 1, 1));
  return 0;
}
Result cuMemFree_v2(Ptr p) {
  std::free(host(p));
  return 0;
}
Result cuMemAllocAsync(Ptr *p, size_t bytes, void *) {
  return cuMemAlloc_v2(p, bytes);
}
Result cuMemFreeAsync(Ptr p, void *) { return cuMemFree_v2(p); }
Result cuMemcpyAsync(Ptr dst, Ptr src, size_t bytes, void *) {
  std::memcpy(host(dst), host(src), bytes);
  return 0;
}
Result cuMemcpyHtoD_v2(Ptr dst, const void *src, size_t bytes) {
  std::memcpy(host(dst), src, bytes);
  return 0;
}
Result cuMemcpyDtoH_v2(void *dst, Ptr src, size_t bytes) {
  std::memcpy(dst, host(src), bytes);
  return 0;
}
Result cuMemcpyDtoHAsync_v2(void *dst, Ptr src, size_t bytes, void *) {
  return cuMemcpyDtoH_v2(dst, src, bytes);
}
Result cuMemcpyDtoDAsync_v2(Ptr dst, Ptr src, size_t bytes, void *) {
  return cuMemcpyAsync(dst, src, bytes, nullptr);
}
Result cuMemsetD8Async(Ptr dst, unsigned char value, size_t bytes, void *) {
  std::memset(host(dst), value, bytes);
  return 0;
}
Result cuStreamSynchronize(void *) { return 0; }
Result cuEventCreate(void **event, unsigned) {
  *event = new std::chrono::steady_clock::time_point();
  return 0;
}
Result cuEventRecord(void *event, void *) {
  *static_cast<std::chrono::steady_clock::time_point *>(event) =
      std::chrono::steady_clock::now();
  return 0;
}
Result cuEventSynchronize(void *) { return 0; }
Result cuEventElapsedTime(float *ms, void *start, void *end) {
  auto *a = static_cast<std::chrono::steady_clock::time_point *>(start);
  auto *b = static_cast<std::chrono::steady_clock::time_point *>(end);
  // Never 0, so that rates stay finite.
  *ms = std::chrono::duration<float, std::milli>(*b - *a).count() + 1e-6f;
  return 0;
}
Result cuEventDestroy_v2(void *event) {
  delete static_cast<std::chrono::steady_clock::time_point *>(event);
  return 0;
}
Result cuGetErrorName(Result, const char **name) {
  *name = "CUDA_ERROR_FAKE";
  return 0;
}
Result cuGetErrorString(Result, const char **text) {
  *text = "the fake driver of the tests";
  return 0;
}
}
