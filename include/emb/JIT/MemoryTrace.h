//===- MemoryTrace.h - warp-level memory transactions -------*- C++ -*-===//
//
// The collector behind `__emb_memory_trace` (Runtime/MemoryTraceABI.h):
// traced GPU kernels, emulated on the host, report every global access of
// every thread; the collector groups them as a GPU would issue them and
// counts what the memory system would be asked for. The model
// (docs/gpu.md, "Memory transactions without a GPU"):
//   - a warp is 32 consecutive threads of a block (linear id, x fastest);
//   - its lanes run each memory operation (site) in lockstep: the k-th
//     execution of a site by every lane of the warp is one request;
//   - a request touches the 32-byte sectors and 128-byte lines that hold
//     its lanes' bytes; its used bytes are the distinct bytes the lanes
//     ask for (a broadcast counts once);
//   - every buffer starts at a 256-byte boundary (as cudaMalloc's do).
// Coalescing efficiency = used bytes / bytes of the sectors touched, per
// request (what the L1 serves: Nsight's sectors per request). The DRAM
// efficiency counts each sector once per warp (a warp's re-reads of a
// sector, such as the consecutive indices of its bag, hit a cache): the
// warp's distinct bytes / its distinct sectors' bytes; per site for a
// site, per kind of access across the sites for a kernel's totals (a bag
// reads 4 entries' indices at 4 sites, from one or two sectors).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_JIT_MEMORYTRACE_H
#define EMB_JIT_MEMORYTRACE_H

#include "emb/Runtime/MemoryTraceABI.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace emb {

/// One memory operation of a kernel, over every launch traced.
struct MemorySiteStats {
  std::string kind; ///< load, store or atomic
  int64_t bytes = 0; ///< per lane and execution
  std::string what;  ///< the operation and its memref type
  int64_t requests = 0;     ///< warp-level executions
  int64_t laneAccesses = 0; ///< thread-level executions
  int64_t usedBytes = 0;    ///< distinct bytes per request, summed
  int64_t sectors = 0;      ///< 32-byte sectors per request, summed
  int64_t lines = 0;        ///< 128-byte lines per request, summed
  int64_t warpUsedBytes = 0; ///< distinct bytes per warp, summed
  int64_t warpSectors = 0;   ///< distinct sectors per warp, summed

  /// used bytes / bytes of the sectors touched (1 when nothing ran).
  double efficiency() const {
    return sectors ? static_cast<double>(usedBytes) / (32.0 * sectors) : 1.0;
  }
  /// Distinct bytes / distinct sectors' bytes, per warp (1 when nothing
  /// ran).
  double dramEfficiency() const {
    return warpSectors ? static_cast<double>(warpUsedBytes) / (32.0 * warpSectors)
                       : 1.0;
  }
  double sectorsPerRequest() const {
    return requests ? static_cast<double>(sectors) / requests : 0.0;
  }
  /// Bytes of the sectors one request touches, on average.
  double bytesPerRequest() const { return 32.0 * sectorsPerRequest(); }
  void add(const MemorySiteStats &other);
};

/// One kernel (by name and sites), over every launch traced.
struct KernelMemoryStats {
  std::string kernel;
  int64_t launches = 0, warps = 0, threads = 0;
  std::vector<MemorySiteStats> sites;
  /// By kind of access: distinct bytes and distinct sectors per warp,
  /// across the kind's sites, summed over warps.
  std::map<std::string, std::pair<int64_t, int64_t>> warpDistinct;

  /// The sites of `kind` (load, store, atomic; empty: all) summed; the
  /// DRAM figures from warpDistinct.
  MemorySiteStats total(const std::string &kind = "") const;
  /// The load site that touches the most sectors: the gather of a
  /// forward kernel (null when the kernel loads nothing).
  const MemorySiteStats *heaviestLoad() const;
};

/// The table the JIT puts into every traced kernel.
const MemoryTraceTable &memoryTraceTable();

/// What the traced kernels of every thread ran since the last call, in
/// the order their kernels were first seen; clears it. Call it after the
/// traced calls have returned.
std::vector<KernelMemoryStats> takeMemoryTrace();

} // namespace emb

#endif // EMB_JIT_MEMORYTRACE_H
