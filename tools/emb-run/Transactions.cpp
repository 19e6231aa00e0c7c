//===- Transactions.cpp - emb-run --transactions --------------------------===//
//
// The call's GPU kernels run emulated on the host with every global access
// traced (JIT/MemoryTrace.h): per kernel and memory operation, the warp
// requests, the 32-byte sectors and 128-byte lines they touch and the
// coalescing efficiency. Where ptxas is found, the bandwidth model of
// JIT/GPUModel.h follows for each chip, and for a bag forward the same
// model applied to PyTorch's and FBGEMM's launch layouts.
//
//===----------------------------------------------------------------------===//

#include "EmbRun.h"

#include "emb/JIT/GPUModel.h"
#include "emb/JIT/GPUResources.h"
#include "emb/JIT/JIT.h"
#include "emb/JIT/MemoryTrace.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

using namespace emb;
using namespace emb::run;

namespace {

/// The model's inputs and result for one kernel on one chip.
struct ModelRow {
  const GPUChip *chip;
  GatherLayout layout;
  BandwidthEstimate estimate;
  double occupancy = 0;
  /// Row loads in flight in the PTX's own order (ours only; -1: n/a).
  int64_t inOrder = -1;
};

/// The ptxas report, among `reports` of `device`, of the kernel traced as
/// `name` (`module::entry`) in the emulated `emulated`: kernels are named
/// after their spec's symbol, which differs between the two.
const GPUKernelResources *
resourcesOf(const std::vector<GPUKernelResources> &reports,
            const KernelSpec &emulated, const KernelSpec &device,
            llvm::StringRef name) {
  llvm::StringRef entry = name.rsplit("::").second;
  std::string prefix = emulated.symbolName();
  if (!entry.starts_with(prefix))
    return nullptr;
  std::string want = device.symbolName() + entry.drop_front(prefix.size()).str();
  for (const GPUKernelResources &r : reports)
    if (r.entry == want)
      return &r;
  return nullptr;
}

/// Our kernel's model rows, one per chip (none without ptxas or a load).
/// The ptxas report comes from the first of the call's specs that has the
/// kernel.
std::vector<ModelRow> modelOf(const KernelMemoryStats &k,
                              const std::vector<KernelSpec> &specs,
                              std::string &unavailable) {
  std::vector<ModelRow> rows;
  const MemorySiteStats *gather = k.heaviestLoad();
  if (!gather || !havePtxas()) {
    unavailable = !gather ? "the kernel loads nothing"
                          : "ptxas was not found: no occupancy, no model";
    return rows;
  }
  for (const GPUChip &chip : gpuChips()) {
    std::optional<GPUKernelResources> found;
    for (const KernelSpec &emulated : specs) {
      KernelSpec device = emulated;
      device.target = Target::nvptx;
      device.traceMemory = false;
      device.chip = chip.sm;
      auto reports = gpuKernelResources(device, chip.sm);
      if (!reports) {
        unavailable = llvm::toString(reports.takeError());
        return {};
      }
      if (const GPUKernelResources *r =
              resourcesOf(*reports, emulated, device, k.kernel)) {
        found = *r;
        break;
      }
    }
    if (!found) {
      unavailable = "no ptxas report for " + k.kernel;
      return {};
    }
    ModelRow row{&chip, {}, {}, found->occupancy, -1};
    row.layout.name = k.kernel;
    row.layout.bytesPerRequest = gather->bytesPerRequest();
    LoadParallelism parallel =
        loadsInFlight(found->ptx, found->entry, gather->bytes);
    row.inOrder = parallel.inOrder;
    row.layout.loadsInFlight =
        static_cast<double>(std::max<int64_t>(1, parallel.independent));
    row.layout.residentWarps = residentWarps(
        found->occupancy, chip,
        static_cast<double>(k.warps) / std::max<int64_t>(1, k.launches));
    row.layout.efficiency = k.total().dramEfficiency();
    row.estimate = estimateBandwidth(row.layout, chip);
    rows.push_back(row);
  }
  return rows;
}

/// PyTorch's and FBGEMM's layouts at the run's shape (bag forwards).
std::vector<ModelRow> peerRows(const Setup &s) {
  std::vector<ModelRow> rows;
  if (!s.bag || s.backward || !s.tables.empty() ||
      s.quant != Quantization::none)
    return rows;
  int64_t bytes = dtypeSize(s.dtype);
  for (const GPUChip &chip : gpuChips())
    for (GatherLayout layout : {pytorchBagLayout(bytes, s.D, chip),
                                fbgemmBagLayout(bytes, s.D, s.B, chip)})
      rows.push_back(
          {&chip, layout, estimateBandwidth(layout, chip), 1.0});
  return rows;
}

void printJson(const KernelMemoryStats &k, const std::vector<ModelRow> &model,
               const std::string &unavailable) {
  llvm::raw_ostream &os = llvm::outs();
  const MemorySiteStats *gather = k.heaviestLoad();
  os << "{\"kernel\":\"" << k.kernel << "\",\"launches\":" << k.launches
     << ",\"warps\":" << k.warps << ",\"threads\":" << k.threads
     << ",\"efficiency\":" << k.total().efficiency()
     << ",\"dram_efficiency\":" << k.total().dramEfficiency()
     << ",\"warp_sectors\":" << k.total().warpSectors
     << ",\"warp_used_bytes\":" << k.total().warpUsedBytes
     << ",\"load_efficiency\":" << k.total("load").efficiency()
     << ",\"store_efficiency\":" << k.total("store").efficiency()
     << ",\"gather_efficiency\":" << (gather ? gather->efficiency() : 1.0)
     << ",\"gather_sectors_per_request\":"
     << (gather ? gather->sectorsPerRequest() : 0.0) << ",\"sites\":[";
  for (auto [i, site] : llvm::enumerate(k.sites))
    os << (i ? "," : "") << "{\"kind\":\"" << site.kind
       << "\",\"bytes\":" << site.bytes << ",\"what\":\"" << site.what
       << "\",\"requests\":" << site.requests
       << ",\"lane_accesses\":" << site.laneAccesses
       << ",\"used_bytes\":" << site.usedBytes
       << ",\"sectors\":" << site.sectors << ",\"lines\":" << site.lines
       << ",\"efficiency\":" << site.efficiency()
       << ",\"warp_sectors\":" << site.warpSectors
       << ",\"warp_used_bytes\":" << site.warpUsedBytes
       << ",\"dram_efficiency\":" << site.dramEfficiency() << "}";
  os << "],\"model\":[";
  for (auto [i, m] : llvm::enumerate(model))
    os << (i ? "," : "") << "{\"chip\":\"" << m.chip->name
       << "\",\"layout\":\"" << m.layout.name
       << "\",\"occupancy\":" << m.occupancy
       << ",\"resident_warps\":" << m.layout.residentWarps
       << ",\"loads_in_flight\":" << m.layout.loadsInFlight
       << ",\"loads_in_flight_in_order\":" << m.inOrder
       << ",\"bytes_per_request\":" << m.layout.bytesPerRequest
       << ",\"bytes_in_flight\":" << m.estimate.bytesInFlight
       << ",\"bytes_needed\":" << m.estimate.bytesNeeded
       << ",\"fraction\":" << m.estimate.fraction
       << ",\"useful_fraction\":" << m.estimate.usefulFraction << "}";
  os << "]";
  if (!unavailable.empty())
    os << ",\"model_unavailable\":\"" << unavailable << "\"";
  os << "}\n";
}

void printModelRows(const std::vector<ModelRow> &rows) {
  llvm::raw_ostream &os = llvm::outs();
  for (const ModelRow &m : rows)
    os << "| " << m.layout.name << " | " << m.chip->name << " | "
       << llvm::format("%.0f%%", m.occupancy * 100) << " | "
       << llvm::format("%.0f", m.layout.residentWarps) << " | "
       << llvm::format("%.0f", m.layout.loadsInFlight)
       << (m.inOrder >= 0 ? " (" + std::to_string(m.inOrder) + " in order)"
                          : std::string())
       << " | "
       << llvm::format("%.0f", m.layout.bytesPerRequest) << " | "
       << llvm::format("%.2f", m.estimate.bytesInFlight / 1e6) << " | "
       << llvm::format("%.2f", m.estimate.bytesNeeded / 1e6) << " | "
       << llvm::format("%.0f%%", m.estimate.fraction * 100) << " | "
       << llvm::format("%.0f%%", m.estimate.usefulFraction * 100) << " |\n";
}

void printText(const KernelMemoryStats &k, const std::vector<ModelRow> &model,
               const std::string &unavailable) {
  llvm::raw_ostream &os = llvm::outs();
  os << "kernel " << k.kernel << ": " << k.launches << " launch(es), "
     << k.warps << " warps; coalescing efficiency "
     << llvm::format("%.3f", k.total().efficiency()) << " (loads "
     << llvm::format("%.3f", k.total("load").efficiency()) << ", stores "
     << llvm::format("%.3f", k.total("store").efficiency())
     << "), DRAM efficiency "
     << llvm::format("%.3f", k.total().dramEfficiency()) << "\n"
     << "| site | kind | bytes / lane | requests | used B / request | "
        "sectors / request | lines / request | efficiency | DRAM "
        "efficiency |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const MemorySiteStats &site : k.sites) {
    double req = std::max<int64_t>(1, site.requests);
    os << "| " << site.what << " | " << site.kind << " | " << site.bytes
       << " | " << site.requests << " | "
       << llvm::format("%.1f", site.usedBytes / req) << " | "
       << llvm::format("%.2f", site.sectorsPerRequest()) << " | "
       << llvm::format("%.2f", site.lines / req) << " | "
       << llvm::format("%.3f", site.efficiency()) << " | "
       << llvm::format("%.3f", site.dramEfficiency()) << " |\n";
  }
  if (!unavailable.empty()) {
    os << "model: " << unavailable << "\n";
    return;
  }
  os << "model (" << llvm::format("%.0f", kLoadedLatencyNs)
     << " ns loaded DRAM latency; docs/gpu.md):\n"
     << "| layout | chip | occupancy | resident warps / SM | row loads in "
        "flight / thread | B / request | in flight MB | needed MB | of peak "
        "| useful |\n|---|---|---|---|---|---|---|---|---|---|\n";
  printModelRows(model);
}

} // namespace

int emb::run::printTransactions(const Setup &s,
                                const std::vector<KernelSpec> &specs) {
  std::vector<KernelMemoryStats> kernels = takeMemoryTrace();
  if (kernels.empty()) {
    llvm::outs() << (s.flags.json ? "{\"kernels\":0}\n"
                                  : "no GPU kernel ran (nothing to compute)\n");
    return 0;
  }
  for (const KernelMemoryStats &k : kernels) {
    std::string unavailable;
    std::vector<ModelRow> model = modelOf(k, specs, unavailable);
    if (s.flags.json)
      printJson(k, model, unavailable);
    else
      printText(k, model, unavailable);
  }
  std::vector<ModelRow> peers = peerRows(s);
  if (peers.empty())
    return 0;
  if (s.flags.json) {
    for (const ModelRow &m : peers)
      llvm::outs() << "{\"peer\":\"" << m.layout.name << "\",\"chip\":\""
                   << m.chip->name << "\",\"resident_warps\":"
                   << m.layout.residentWarps << ",\"loads_in_flight\":"
                   << m.layout.loadsInFlight << ",\"bytes_per_request\":"
                   << m.layout.bytesPerRequest << ",\"fraction\":"
                   << m.estimate.fraction << ",\"useful_fraction\":"
                   << m.estimate.usefulFraction << "}\n";
    return 0;
  }
  llvm::outs() << "the same model for the peers' layouts at this shape "
                  "(their sources; full occupancy assumed):\n"
               << "| layout | chip | occupancy | resident warps / SM | row "
                  "loads in flight / thread | B / request | in flight MB | "
                  "needed MB | of peak | useful |\n"
                  "|---|---|---|---|---|---|---|---|---|---|\n";
  printModelRows(peers);
  return 0;
}
