//===- MemoryTrace.cpp - warp-level memory transactions of emulated kernels ===//
//
// Threads of an emulated launch run one after another, x fastest, so the
// 32 lanes of a warp report their accesses one lane after the other: the
// collector keeps the current warp's accesses per lane (thread-local: the
// Engine may run launches on several threads) and accounts them when the
// next warp starts or the launch ends; the launch's figures join the
// process-wide report at its end.
//
//===----------------------------------------------------------------------===//

#include "emb/JIT/MemoryTrace.h"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <sstream>

using namespace emb;

namespace {

constexpr int64_t kWarp = 32;

struct Event {
  int64_t site, address, bytes;
};

/// Buffers are placed 2^40 bytes apart at 256-byte boundaries (as
/// cudaMalloc aligns them): the host's alignment of a buffer does not
/// change its sectors.
constexpr int64_t kBufferSpacing = int64_t(1) << 40;

/// One launch in progress, on one thread.
struct Launch {
  bool active = false;
  std::string kernel, sitesText;
  std::vector<MemorySiteStats> sites;
  std::map<std::string, std::pair<int64_t, int64_t>> warpDistinct;
  int64_t threads = 0, warps = 0;
  int64_t block = -1, warp = -1;
  std::array<std::vector<Event>, kWarp> lanes;
  bool warpHasAccesses = false;
  /// The launch's buffers, by aligned pointer, in the order first seen.
  std::map<int64_t, int64_t> buffers;
};

thread_local Launch current;

/// The process-wide report, keyed by kernel and sites.
struct Report {
  std::mutex mutex;
  std::map<std::pair<std::string, std::string>, size_t> index;
  std::vector<KernelMemoryStats> kernels;
};

Report &report() {
  static Report *r = new Report; // never destroyed: kernels may outlive main
  return *r;
}

std::vector<MemorySiteStats> parseSites(const char *text) {
  std::vector<MemorySiteStats> sites;
  std::istringstream lines(text ? text : "");
  std::string line;
  while (std::getline(lines, line)) {
    MemorySiteStats s;
    std::istringstream fields(line);
    fields >> s.kind >> s.bytes;
    std::getline(fields >> std::ws, s.what);
    sites.push_back(std::move(s));
  }
  return sites;
}

/// Sorts and merges [start, end) intervals; returns the bytes they cover.
int64_t coveredBytes(std::vector<std::pair<int64_t, int64_t>> &spans) {
  std::sort(spans.begin(), spans.end());
  int64_t bytes = 0, end = INT64_MIN;
  for (auto [s, e] : spans) {
    s = std::max(s, end);
    if (e > s)
      bytes += e - s;
    end = std::max(end, e);
  }
  return bytes;
}

/// The distinct `granule`-byte blocks the spans touch.
int64_t granules(const std::vector<std::pair<int64_t, int64_t>> &spans,
                 int64_t shift) {
  std::vector<int64_t> ids;
  for (auto [s, e] : spans)
    for (int64_t g = s >> shift; g <= (e - 1) >> shift; ++g)
      ids.push_back(g);
  std::sort(ids.begin(), ids.end());
  return std::unique(ids.begin(), ids.end()) - ids.begin();
}

/// Accounts the current warp: the k-th execution of each site by every
/// lane is one request.
void flushWarp(Launch &l) {
  if (!l.warpHasAccesses)
    return;
  size_t numSites = l.sites.size();
  // Each lane's executions of each site, in order.
  std::vector<std::vector<std::vector<const Event *>>> bySite(
      numSites, std::vector<std::vector<const Event *>>(kWarp));
  for (int64_t lane = 0; lane < kWarp; ++lane) {
    for (const Event &e : l.lanes[lane])
      if (e.site >= 0 && static_cast<size_t>(e.site) < numSites)
        bySite[e.site][lane].push_back(&e);
  }
  std::vector<std::pair<int64_t, int64_t>> spans, warpSpans;
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> kindSpans;
  for (size_t s = 0; s < numSites; ++s) {
    size_t rounds = 0;
    for (const auto &lane : bySite[s])
      rounds = std::max(rounds, lane.size());
    MemorySiteStats &site = l.sites[s];
    warpSpans.clear();
    for (size_t k = 0; k < rounds; ++k) {
      spans.clear();
      for (const auto &lane : bySite[s])
        if (k < lane.size() && lane[k]->bytes > 0)
          spans.push_back({lane[k]->address, lane[k]->address + lane[k]->bytes});
      ++site.requests;
      site.laneAccesses += spans.size();
      if (spans.empty())
        continue;
      site.sectors += granules(spans, 5);
      site.lines += granules(spans, 7);
      site.usedBytes += coveredBytes(spans);
      warpSpans.insert(warpSpans.end(), spans.begin(), spans.end());
    }
    if (warpSpans.empty())
      continue;
    site.warpSectors += granules(warpSpans, 5);
    site.warpUsedBytes += coveredBytes(warpSpans);
    auto &same = kindSpans[site.kind];
    same.insert(same.end(), warpSpans.begin(), warpSpans.end());
  }
  for (auto &[kind, kSpans] : kindSpans) {
    auto &[used, sectors] = l.warpDistinct[kind];
    sectors += granules(kSpans, 5);
    used += coveredBytes(kSpans);
  }
  for (auto &lane : l.lanes)
    lane.clear();
  l.warpHasAccesses = false;
}

void traceLaunch(const char *kernel, const char *sites, int64_t gx, int64_t gy,
                 int64_t gz, int64_t bx, int64_t by, int64_t bz) {
  Launch &l = current;
  l = Launch();
  l.active = true;
  l.kernel = kernel ? kernel : "";
  l.sitesText = sites ? sites : "";
  l.sites = parseSites(sites);
  int64_t threadsPerBlock = bx * by * bz;
  l.threads = gx * gy * gz * threadsPerBlock;
  l.warps = gx * gy * gz * ((threadsPerBlock + kWarp - 1) / kWarp);
}

void traceAccess(int64_t site, int64_t block, int64_t thread, int64_t base,
                 int64_t offset, int64_t bytes) {
  Launch &l = current;
  if (!l.active)
    return;
  auto [buffer, inserted] = l.buffers.try_emplace(base, l.buffers.size());
  int64_t address = (buffer->second + 1) * kBufferSpacing + offset;
  int64_t warp = thread / kWarp;
  if (block != l.block || warp != l.warp) {
    flushWarp(l);
    l.block = block;
    l.warp = warp;
  }
  l.lanes[thread % kWarp].push_back({site, address, bytes});
  l.warpHasAccesses = true;
}

void traceEnd() {
  Launch &l = current;
  if (!l.active)
    return;
  flushWarp(l);
  l.active = false;
  Report &r = report();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto [it, inserted] =
      r.index.try_emplace({l.kernel, l.sitesText}, r.kernels.size());
  if (inserted) {
    KernelMemoryStats k;
    k.kernel = l.kernel;
    k.sites = parseSites(l.sitesText.c_str());
    r.kernels.push_back(std::move(k));
  }
  KernelMemoryStats &k = r.kernels[it->second];
  ++k.launches;
  k.warps += l.warps;
  k.threads += l.threads;
  for (size_t s = 0; s < k.sites.size(); ++s)
    k.sites[s].add(l.sites[s]);
  for (const auto &[kind, d] : l.warpDistinct) {
    k.warpDistinct[kind].first += d.first;
    k.warpDistinct[kind].second += d.second;
  }
}

} // namespace

void MemorySiteStats::add(const MemorySiteStats &o) {
  requests += o.requests;
  laneAccesses += o.laneAccesses;
  usedBytes += o.usedBytes;
  sectors += o.sectors;
  lines += o.lines;
  warpUsedBytes += o.warpUsedBytes;
  warpSectors += o.warpSectors;
}

MemorySiteStats KernelMemoryStats::total(const std::string &kind) const {
  MemorySiteStats t;
  t.kind = kind.empty() ? "all" : kind;
  for (const MemorySiteStats &s : sites)
    if (kind.empty() || s.kind == kind)
      t.add(s);
  t.warpUsedBytes = t.warpSectors = 0;
  for (const auto &[k, d] : warpDistinct)
    if (kind.empty() || k == kind) {
      t.warpUsedBytes += d.first;
      t.warpSectors += d.second;
    }
  return t;
}

const MemorySiteStats *KernelMemoryStats::heaviestLoad() const {
  const MemorySiteStats *best = nullptr;
  for (const MemorySiteStats &s : sites)
    if (s.kind == "load" && s.requests > 0 && (!best || s.sectors > best->sectors))
      best = &s;
  return best;
}

const MemoryTraceTable &emb::memoryTraceTable() {
  static const MemoryTraceTable table{traceLaunch, traceAccess, traceEnd};
  return table;
}

std::vector<KernelMemoryStats> emb::takeMemoryTrace() {
  Report &r = report();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<KernelMemoryStats> out = std::move(r.kernels);
  r.kernels.clear();
  r.index.clear();
  return out;
}
