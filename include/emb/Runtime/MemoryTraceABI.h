//===- MemoryTraceABI.h - traced emulated kernels and their collector -*- C++ -*-===//
//
// The contract between a GPU kernel emulated on the host with its memory
// accesses traced (`emb-emulate-gpu-on-host{trace-memory=true}`) and the
// collector that turns the accesses into warp-level memory transactions
// (lib/JIT/MemoryTrace.cpp). Plain C++: no MLIR or LLVM dependency.
//
// A traced kernel's shared object defines a global table of three function
// pointers, `__emb_memory_trace`, null at load, which the JIT fills before
// the kernel is first called (like the GPU runtime table of
// GPURuntimeABI.h). Each emulated launch calls
//   launch(kernel, sites, grid x, y, z, block x, y, z)
// once, then access(...) before every global load, store or atomic of
// every thread, threads in the order a block's warps hold them (x fastest),
// then end(). `sites` describes the launch's memory operations, one line
// each, in site order: "<load|store|atomic> <bytes> <what>".
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_MEMORYTRACEABI_H
#define EMB_RUNTIME_MEMORYTRACEABI_H

#include <cstddef>
#include <cstdint>

namespace emb {

/// The symbol of the table in every traced kernel.
inline constexpr const char *kMemoryTraceTableSymbol = "__emb_memory_trace";

enum MemoryTraceSlot : int32_t {
  kMemoryTraceLaunch = 0,
  kMemoryTraceAccess = 1,
  kMemoryTraceEnd = 2,
  kMemoryTraceNumSlots = 3
};

/// table[launch]: a launch of `kernel` (NUL-terminated) begins.
using MemoryTraceLaunchFn = void (*)(const char *kernel, const char *sites,
                                     int64_t gx, int64_t gy, int64_t gz,
                                     int64_t bx, int64_t by, int64_t bz);
/// table[access]: thread `thread` (linear in its block) of block `block`
/// (linear in the grid) runs site `site`, on `bytes` bytes at byte `offset`
/// of the buffer whose aligned base pointer is `base`. (The collector
/// places every buffer at a 256-byte boundary, as cudaMalloc does,
/// whatever the host's alignment.)
using MemoryTraceAccessFn = void (*)(int64_t site, int64_t block,
                                     int64_t thread, int64_t base,
                                     int64_t offset, int64_t bytes);
/// table[end]: the launch is over.
using MemoryTraceEndFn = void (*)();

struct MemoryTraceTable {
  MemoryTraceLaunchFn launch = nullptr;
  MemoryTraceAccessFn access = nullptr;
  MemoryTraceEndFn end = nullptr;
};

static_assert(sizeof(MemoryTraceTable) ==
                  kMemoryTraceNumSlots * sizeof(void *),
              "one pointer per slot");
static_assert(
    offsetof(MemoryTraceTable, launch) ==
            kMemoryTraceLaunch * sizeof(void *) &&
        offsetof(MemoryTraceTable, access) ==
            kMemoryTraceAccess * sizeof(void *) &&
        offsetof(MemoryTraceTable, end) == kMemoryTraceEnd * sizeof(void *),
    "the members are in slot order");

} // namespace emb

#endif // EMB_RUNTIME_MEMORYTRACEABI_H
