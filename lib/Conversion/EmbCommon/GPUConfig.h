//===- GPUConfig.h - GPU launch heuristics ----------------------*- C++ -*-===//
//
// Every launch-shape decision of the GPU lowering in one place (the CPU
// side has CPUConfig.h). A kernel gives each row (lookup) or bag a group
// of `threadsPerRow` threads, a power of two up to a warp, each moving
// 16-byte vectors; a block holds kThreadsPerBlock threads, so
// kThreadsPerBlock / threadsPerRow rows; the grid covers the rows.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_CONVERSION_GPUCONFIG_H
#define EMB_CONVERSION_GPUCONFIG_H

#include <cstdint>

namespace mlir::emb::gpu_config {

/// Threads per block: 8 warps, enough to hide latency with several blocks
/// per SM and small enough to leave registers for f32 accumulators.
constexpr int64_t kThreadsPerBlock = 256;

/// Bytes one thread loads at once: `ld.global.v4.f32` (16 bytes).
constexpr int64_t kVectorBytes = 16;

constexpr int64_t kWarpSize = 32;

/// Elements per access: the widest vector of up to 16 bytes whose length
/// divides D (D = 128 f32: 4; D = 36 f16: 4, 8 bytes; odd D: 1), so that
/// every row, and every chunk of it, starts aligned for the vector.
/// runtime/Validation.cpp's checkGPUAlignment asks the buffers for the
/// alignment this gives.
constexpr int64_t vectorWidth(int64_t dim, int64_t elementBytes) {
  int64_t vec = kVectorBytes / elementBytes;
  while (vec > 1 && dim % vec != 0)
    vec /= 2;
  return vec;
}

/// Threads per row: enough to cover D with vectors in one pass, a power of
/// two (so a group never straddles a warp), at most a warp. D = 128 f32 is
/// 32 threads of one float4 each; D = 32 f32 is 8 threads.
constexpr int64_t threadsPerRow(int64_t dim, int64_t vec,
                                int64_t maxThreads = kWarpSize) {
  int64_t needed = (dim + vec - 1) / vec;
  int64_t t = 1;
  while (t < needed && t < maxThreads)
    t *= 2;
  return t;
}

/// Bag entries whose rows a thread loads before accumulating the first of
/// them: the row loads in flight per thread that Little's law asks for when
/// a small batch leaves few warps per SM (docs/gpu.md, "A bandwidth
/// model": 1 in flight models f16 bags at D = 32 at 72% of an H200).
constexpr int64_t kEntriesInFlight = 4;

/// Elements a thread of a max bag holds: each keeps an f32 value and an
/// i64 argmax (3 registers), and with kEntriesInFlight rows in flight 8 of
/// them (f16 / bf16 in 16 bytes) spilled under the 64 registers of the
/// occupancy floor (emb-set-kernel-occupancy); 4 (8-byte loads of f16)
/// do not.
constexpr int64_t kMaxBagLanesPerThread = 4;

/// The launch shape choices of convert-emb-to-gpu a caller (or a lit test)
/// may pin through the pass's options; each defaults to the heuristic
/// above. Both are powers of two, threadsPerRow <= a warp <= a block.
struct GPULaunchConfig {
  int64_t threadsPerBlock = kThreadsPerBlock;
  int64_t maxThreadsPerRow = kWarpSize;
  int64_t entriesInFlight = kEntriesInFlight;
};

/// The deterministic gradients' sort and scan (EmbToGPU/SortAndScan.h):
/// elements per thread of an exclusive scan, entries per thread of a radix
/// pass, and the bits of one radix digit.
constexpr int64_t kScanBlock = 256;
constexpr int64_t kSortChunk = 256;
constexpr int64_t kRadixBits = 8;

} // namespace mlir::emb::gpu_config

#endif // EMB_CONVERSION_GPUCONFIG_H
