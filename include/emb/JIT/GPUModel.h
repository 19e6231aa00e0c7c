//===- GPUModel.h - the bandwidth a gather kernel can sustain -*- C++ -*-===//
//
// An analytical estimate, without a GPU, of the fraction of a chip's DRAM
// bandwidth a gather kernel can sustain (docs/gpu.md, "A bandwidth model").
// Little's law: to stream at bandwidth BW through a memory whose latency is
// T, BW x T bytes must be in flight. A kernel keeps
//   in flight = SMs x resident warps per SM x row loads in flight per
//               thread x bytes of sectors per warp request
// so it sustains min(1, in flight / (BW x T)) of the peak; of that, the
// coalescing efficiency is useful data. The figures of our kernels come
// from the memory trace (bytes per request, efficiency), ptxas
// (occupancy) and the PTX (row loads in flight); those of PyTorch's and
// FBGEMM's kernels from their sources' launch layouts.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_JIT_GPUMODEL_H
#define EMB_JIT_GPUMODEL_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>
#include <vector>

namespace emb {

/// A GPU's published figures.
struct GPUChip {
  std::string name; ///< A100, H100, H200
  std::string sm;   ///< the chip the kernels are compiled for
  double bandwidthGBs = 0;
  int64_t sms = 0;
  int64_t maxWarpsPerSM = 64;
};
/// A100 80GB SXM (sm_80), H100 SXM (sm_90), H200 SXM (sm_90).
const std::vector<GPUChip> &gpuChips();
/// The DRAM latency the model assumes under load, in ns (docs/gpu.md).
constexpr double kLoadedLatencyNs = 600;

/// How a kernel moves its rows, as the model sees it.
struct GatherLayout {
  std::string name;
  /// Bytes of the sectors one warp's row load touches.
  double bytesPerRequest = 0;
  /// Row loads one thread has outstanding at once.
  double loadsInFlight = 1;
  /// Warps resident per SM: occupancy x the SM's warps, at most what the
  /// launch has per SM.
  double residentWarps = 0;
  /// Useful bytes / bytes of sectors fetched from DRAM, over all the
  /// kernel's traffic (MemorySiteStats::dramEfficiency).
  double efficiency = 1;
};

struct BandwidthEstimate {
  double bytesInFlight = 0; ///< over the chip
  double bytesNeeded = 0;   ///< bandwidth x latency
  /// min(1, in flight / needed): the fraction of peak DRAM bandwidth the
  /// kernel keeps busy; x efficiency: the fraction that is useful data.
  double fraction = 0, usefulFraction = 0;
};

BandwidthEstimate estimateBandwidth(const GatherLayout &layout,
                                    const GPUChip &chip,
                                    double latencyNs = kLoadedLatencyNs);

/// Resident warps per SM for a kernel at `occupancy` on `chip` whose launch
/// has `launchWarps` warps in all (grid-stride kernels: the grid's).
double residentWarps(double occupancy, const GPUChip &chip,
                     double launchWarps);

/// PyTorch 2.x's CUDA embedding_bag forward (EmbeddingBag.cu): blocks of
/// (32, 8) threads, a grid of 1024 blocks, a thread per (bag, feature),
/// scalar loads, one entry at a time. `elementBytes`: the table's; `dim`:
/// D. Full occupancy is assumed (the best case for it).
GatherLayout pytorchBagLayout(int64_t elementBytes, int64_t dim,
                              const GPUChip &chip);
/// FBGEMM's table-batched forward (embedding_forward_split_kernel
/// _template.cu, CUDA): a group of min(32, D / 4) lanes per bag, 4
/// elements per lane per load (16 bytes in f32, 8 in f16), ceil(D / 128)
/// loads per lane per row unrolled, rows one after another; blocks of 512
/// threads, at most 64 x SMs blocks. Full occupancy is assumed.
GatherLayout fbgemmBagLayout(int64_t elementBytes, int64_t dim, int64_t bags,
                             const GPUChip &chip);

} // namespace emb

#endif // EMB_JIT_GPUMODEL_H
