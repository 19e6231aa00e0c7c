//===- Bench.cpp - emb-run --bench and --op jit ---------------------------===//
//
// Throughput as GB/s of compulsory traffic (rows read, indices and bag
// structure read, results written) and its ratio to a copy probe run in the
// same process: a multi-threaded memcpy on the host, a device-to-device
// copy timed with CUDA events on a GPU; and, for host forward calls, to a
// random-row gather probe of the same rows (GatherProbe.cpp).
//
//===----------------------------------------------------------------------===//

#include "EmbRun.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

namespace emb::run {

namespace {

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// GB/s of a multi-threaded memcpy of `bytes` (read + write counted).
double memcpyProbe(int nthreads, size_t bytes) {
  bytes = std::max<size_t>(bytes / 2, 64 << 20);
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  std::vector<double> times;
  for (int it = 0; it < 7; ++it) {
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < nthreads; ++t)
      ts.emplace_back([&, t] {
        size_t b = bytes * t / nthreads, e = bytes * (t + 1) / nthreads;
        std::memcpy(dst.data() + b, src.data() + b, e - b);
      });
    for (auto &t : ts)
      t.join();
    times.push_back(seconds(t0, Clock::now()));
  }
  return 2.0 * bytes / median(times) / 1e9;
}

/// GB/s of a device-to-device copy of `bytes` (read + write counted), timed
/// with CUDA events: the GPU's counterpart of memcpyProbe.
double deviceCopyProbe(cuda::Device &device, size_t bytes) {
  bytes = std::max<size_t>(bytes / 2, 64 << 20);
  auto src = device.alloc(bytes), dst = device.alloc(bytes);
  if (!src || !dst)
    die("the copy probe cannot allocate device memory");
  auto t =
      device.time([&] { return device.copyOnDevice(*dst, *src, bytes); }, 20);
  if (!t)
    die(llvm::toString(t.takeError()));
  device.free(*src);
  device.free(*dst);
  return 2.0 * bytes / (*t * 1e-3) / 1e9;
}

/// Bytes of compulsory traffic of one call.
double trafficBytes(const Setup &s, const Instance &inst) {
  double es = dtypeSize(s.dtype), is = dtypeSize(s.idxType);
  const Flags &f = s.flags;
  double N = static_cast<double>(s.N), D = static_cast<double>(s.D);
  // A row read: D elements, or a quantised table's packed row.
  double rowBytes = s.quant == Quantization::none
                        ? D * es
                        : static_cast<double>(quantizedRowBytes(s.quant, s.D));
  if (f.opName == "renorm")
    return N * is + 2.0 * N * D * es; // rows read (and, worst case, written)
  // Backward: gradient rows read, indices (and bag structure) read, gW
  // written (sparse: the rows and values written). Forward: rows and
  // indices read, the output written.
  double bytes = s.backward ? inst.out.size() + N * is +
                                  (f.sparse ? inst.sparseCount * (8.0 + D * es)
                                            : inst.gradWeight.size())
                            : N * (rowBytes + is) + inst.out.size();
  if (s.optimizer) {
    // The touched rows of the table and of the states, read and written
    // once (at most N of them).
    double touched = std::min<double>(N, static_cast<double>(s.V));
    double stateBytes = inst.state0.size() + inst.state1.size();
    bytes = inst.out.size() + N * is +
            2.0 * touched * (D * es + stateBytes / std::max<double>(s.V, 1));
  }
  if (!s.tables.empty()) { // B * L rows of every table, indices, offsets, out
    double dims = 0;
    for (const TableOptions &t : s.tables)
      dims += t.embeddingDim;
    bytes = N * is + N / static_cast<double>(s.tables.size()) * dims * es +
            inst.out.size() + s.numOffsets * dtypeSize(s.offType);
  }
  else if (s.bag && !f.twoD)
    bytes += s.numOffsets * dtypeSize(s.offType);
  if (s.bag && f.perSampleWeights)
    bytes += N * es;
  if (s.bag && s.mode == BagMode::max && s.tables.empty())
    bytes += inst.argmax.size();
  return bytes;
}

} // namespace

BenchResult benchCall(const Setup &s, Instance &inst, int nthreads,
                      const std::function<llvm::Error()> &call) {
  BenchResult r;
  int iters = s.flags.iters;
  if (inst.device) {
    // CUDA events around `iters` calls (after a warm-up call).
    auto t = inst.device->time(call, iters);
    if (!t)
      die(llvm::toString(t.takeError()));
    r.ms = *t;
  } else {
    // The call and the gather probe in turn, so that both see the same
    // machine (these machines are shared: bandwidth drifts within seconds).
    std::function<void()> probe = gatherProbe(s, inst, nthreads);
    std::vector<double> times, probeTimes;
    for (int it = 0; it < iters + 2; ++it) {
      auto a = Clock::now();
      if (llvm::Error err = call())
        die(llvm::toString(std::move(err)));
      auto b = Clock::now();
      if (probe)
        probe();
      if (it >= 2) {
        times.push_back(seconds(a, b));
        if (probe)
          probeTimes.push_back(seconds(b, Clock::now()));
      }
    }
    r.ms = median(times) * 1e3;
    if (probe)
      r.gatherMs = median(probeTimes) * 1e3;
  }
  r.bytes = trafficBytes(s, inst);
  r.gbps = r.bytes / (r.ms * 1e-3) / 1e9;
  r.probe = inst.device
                ? deviceCopyProbe(*inst.device, static_cast<size_t>(r.bytes))
                : memcpyProbe(nthreads, static_cast<size_t>(r.bytes));
  return r;
}

namespace {

/// Milliseconds of `reps` cold compiles (a memory-only cache each time).
std::vector<double> coldCompiles(const KernelSpec &spec, int reps) {
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    KernelCache cache({"", false});
    auto t0 = Clock::now();
    if (auto fn = cache.get(spec); !fn)
      die(llvm::toString(fn.takeError()));
    ms.push_back(seconds(t0, Clock::now()) * 1e3);
  }
  return ms;
}

/// Milliseconds of `reps` disk-cache hits: each a fresh cache over a copy
/// of the entry in a new directory (the loader has not seen this file, as
/// in a new process).
std::vector<double> diskHits(const KernelSpec &spec, int reps) {
  llvm::SmallString<128> dir;
  llvm::sys::fs::createUniqueDirectory("emb-run-jit", dir);
  {
    KernelCache populate({std::string(dir), true});
    if (auto fn = populate.get(spec); !fn)
      die(llvm::toString(fn.takeError()));
  }
  std::string entry = KernelCache({std::string(dir), true}).entryPath(spec);
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    llvm::SmallString<128> copyDir;
    llvm::sys::fs::createUniqueDirectory("emb-run-jit-hit", copyDir);
    KernelCache cache({std::string(copyDir), true});
    llvm::sys::fs::copy_file(entry, cache.entryPath(spec));
    auto t0 = Clock::now();
    if (auto fn = cache.get(spec); !fn)
      die(llvm::toString(fn.takeError()));
    ms.push_back(seconds(t0, Clock::now()) * 1e3);
    if (cache.stats().diskHits != 1)
      die("the disk-cache measurement did not hit the disk cache");
    llvm::sys::fs::remove_directories(copyDir);
  }
  llvm::sys::fs::remove_directories(dir);
  return ms;
}

/// Microseconds per in-memory hit.
double memoryHitUs(const KernelSpec &spec) {
  KernelCache memory({"", false});
  (void)memory.get(spec);
  const int hits = 200000;
  auto t0 = Clock::now();
  for (int i = 0; i < hits; ++i)
    if (auto fn = memory.get(spec); !fn)
      die(llvm::toString(fn.takeError()));
  return seconds(t0, Clock::now()) * 1e6 / hits;
}

/// Microseconds per call of `call` (after one warm-up call).
double callUs(const std::function<llvm::Error()> &call) {
  llvm::consumeError(call());
  const int calls = 100000;
  auto t0 = Clock::now();
  for (int i = 0; i < calls; ++i)
    if (llvm::Error err = call())
      die(llvm::toString(std::move(err)));
  return seconds(t0, Clock::now()) * 1e6 / calls;
}

} // namespace

/// --op jit: the JIT's own costs for the kernel of a tiny embedding_bag call
/// (1 bag of 1 index; the flags' dtypes, D and mode): cold compile
/// (memory-only cache, so every call compiles), disk-cache hit (a fresh
/// cache over a populated directory), in-memory hit, and the whole call
/// through the Engine (validation, cache lookup, kernel).
int benchJit(const Flags &f) {
  DType wt = parseDType(f.dtypeName_).value_or(DType::f32);
  DType it = parseDType(f.indexDtype).value_or(DType::i64);
  EngineOptions eo;
  eo.threads = 1;
  eo.cache.useDiskCache = false;
  Engine engine(eo);
  Buffer w(wt, {4, f.dim}), x(it, {1}), o(it, {1}), out(wt, {1, f.dim});
  EmbeddingBagOptions bo;
  bo.mode = parseBagMode(f.modeName).value_or(BagMode::sum);
  auto call = [&] {
    return engine.embeddingBag(x.view, w.view, &o.view, out.view, bo);
  };
  auto specs = engine.planSpecs([&](Engine &) { return call(); });
  if (!specs || specs->empty())
    die(specs ? "the call runs no kernel" : llvm::toString(specs.takeError()));
  const KernelSpec spec = specs->back();
  int reps = std::max(3, f.iters / 4);
  double cold = median(coldCompiles(spec, reps));
  double disk = median(diskHits(spec, reps));
  double hitUs = memoryHitUs(spec), tinyUs = callUs(call);
  llvm::raw_ostream &os = llvm::outs();
  if (f.json) {
    os << "{\"op\":\"jit\",\"spec\":\"" << spec.str()
       << "\",\"cold_compile_ms\":" << cold << ",\"disk_hit_ms\":" << disk
       << ",\"memory_hit_us\":" << hitUs << ",\"tiny_call_us\":" << tinyUs
       << "}\n";
    return 0;
  }
  os << "kernel            " << spec.str() << "\n"
     << "cold compile      " << llvm::format("%.1f", cold) << " ms (median of "
     << reps << ")\n"
     << "disk-cache hit    " << llvm::format("%.2f", disk) << " ms (median of "
     << reps << ")\n"
     << "memory-cache hit  " << llvm::format("%.3f", hitUs) << " us\n"
     << "tiny call         " << llvm::format("%.3f", tinyUs)
     << " us (validation + lookup + kernel, 1 bag of 1 index)\n";
  return 0;
}

} // namespace emb::run
