//===- GPUModel.cpp - the bandwidth a gather kernel can sustain -----------===//

#include "emb/JIT/GPUModel.h"

#include <algorithm>
#include <cmath>

using namespace emb;

namespace {

constexpr int64_t kSector = 32;

/// Bytes of the sectors a warp touches when `lanes` groups each read
/// `groupBytes` contiguous, sector-aligned bytes.
double sectorBytes(double groupBytes, double groups) {
  return std::ceil(groupBytes / kSector) * kSector * groups;
}

} // namespace

const std::vector<GPUChip> &emb::gpuChips() {
  // NVIDIA's datasheets: A100 80GB SXM4 2039 GB/s, 108 SMs; H100 SXM5
  // 3.35 TB/s, 132 SMs; H200 SXM 4.8 TB/s, 132 SMs (the same GH100).
  static const std::vector<GPUChip> chips{{"A100", "sm_80", 2039, 108, 64},
                                          {"H100", "sm_90", 3350, 132, 64},
                                          {"H200", "sm_90", 4800, 132, 64}};
  return chips;
}

double emb::residentWarps(double occupancy, const GPUChip &chip,
                          double launchWarps) {
  double byOccupancy = occupancy * chip.maxWarpsPerSM;
  return std::min(byOccupancy, launchWarps / chip.sms);
}

BandwidthEstimate emb::estimateBandwidth(const GatherLayout &layout,
                                         const GPUChip &chip,
                                         double latencyNs) {
  BandwidthEstimate e;
  e.bytesInFlight = chip.sms * layout.residentWarps * layout.loadsInFlight *
                    layout.bytesPerRequest;
  // GB/s x ns = bytes.
  e.bytesNeeded = chip.bandwidthGBs * latencyNs;
  e.fraction = e.bytesNeeded > 0 ? std::min(1.0, e.bytesInFlight / e.bytesNeeded)
                                 : 0;
  e.usefulFraction = e.fraction * layout.efficiency;
  return e;
}

GatherLayout emb::pytorchBagLayout(int64_t elementBytes, int64_t dim,
                                   const GPUChip &chip) {
  GatherLayout l;
  l.name = "PyTorch (thread per feature)";
  // A warp is blockDim.x = 32 consecutive features of one bag's row:
  // min(32, D) scalars.
  double lanes = std::min<int64_t>(32, dim);
  double used = lanes * elementBytes;
  l.bytesPerRequest = sectorBytes(used, 1);
  l.loadsInFlight = 1; // the entry loop: an index load, then its row's
  // 1024 blocks of 8 warps, whatever the batch.
  l.residentWarps = residentWarps(1.0, chip, 1024.0 * 8);
  // The indices are read a sector at a time, each sector once per warp.
  l.efficiency = used / l.bytesPerRequest;
  return l;
}

GatherLayout emb::fbgemmBagLayout(int64_t elementBytes, int64_t dim,
                                  int64_t bags, const GPUChip &chip) {
  GatherLayout l;
  l.name = "FBGEMM (lane group per bag, 4-wide)";
  int64_t vecBytes = 4 * elementBytes;
  int64_t vecs = (dim + 3) / 4;
  int64_t perLane = (dim + 127) / 128; // kMaxVecsPerThread
  int64_t group = 32;                  // kThreadGroupSize
  while (group > 8 && group / 2 * perLane * 4 >= dim)
    group /= 2;
  int64_t groups = 32 / group;
  // One load per lane of each row: the group reads min(vecs, group) vecs
  // of one row, the warp 32 / group rows.
  double groupBytes = std::min(vecs, group) * vecBytes;
  l.bytesPerRequest = sectorBytes(groupBytes, groups);
  l.loadsInFlight = perLane; // `#pragma unroll kMaxVecsPerThread`
  // Blocks of 512 threads (16 warps), 16 * groups bags per block, at most
  // 64 x SMs blocks (grid-stride beyond).
  double blocks = std::min<double>(std::ceil(double(bags) / (16 * groups)),
                                   64.0 * chip.sms);
  l.residentWarps = residentWarps(1.0, chip, blocks * 16);
  // The lanes read their indices together (one per lane, then shuffled):
  // 32 indices of 8 bytes per request, fully used.
  l.efficiency = groupBytes * groups / l.bytesPerRequest;
  return l;
}
