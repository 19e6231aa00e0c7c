//===- emb-run.cpp - build, run, check and time one generated kernel ------===//
//
// emb-run makes a random instance of one op, runs the kernel generated for
// it, and optionally compares it with the reference (--check) and times it
// (--bench: GB/s of compulsory traffic and the ratio to a memcpy probe run
// in the same process with the same thread count). With --target nvptx it
// runs on the GPU (device copies of every buffer; the probe is a
// device-to-device copy), or on the host through the GPU emulation
// (--emulate).
//
//===----------------------------------------------------------------------===//

#include "emb/JIT/JIT.h"
#include "emb/Reference/Reference.h"
#include "emb/Runtime/Cuda.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"
#include "emb/Runtime/Numeric.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

using namespace emb;

// Flags (hand-parsed: libLLVM registers global options, `--threads` among
// them, that llvm::cl would clash with).
namespace {
struct Flags {
  std::string opName = "embedding_bag", modeName = "sum", profileFlag = "torch";
  std::string dtypeName_ = "f32", indexDtype = "i64", offsetDtype, cacheDir;
  std::string targetFlag = "host", chip; // chip: empty = the device's
  int64_t ptx = 0;
  bool emulate = false;
  int64_t numEmbeddings = 100000, dim = 128, batch = 4096, bagSize = 32;
  int64_t paddingIdx = INT64_MIN;
  double maxNorm = NAN, normType = 2.0;
  bool perSampleWeights = false, includeLastOffset = false, twoD = false;
  bool scaleGradByFreq = false, check = false, bench = false, json = false;
  bool printIR = false, noDiskCache = false, sparse = false, coalesced = false;
  bool trustIndices = false, deterministic = false;
  int threads = 0, iters = 20;
  uint64_t seed = 1;
};

const char *kUsage = R"(usage: emb-run [flags]
  --op embedding|embedding_bag|renorm   the op (default embedding_bag)
  --op embedding_backward|embedding_bag_backward
                                        the dense weight gradient (max: from the forward's max_indices)
  --sparse [--coalesced]                the sparse (COO) gradient; coalesced: distinct rows, summed
  --op jit                              time the JIT: cold compile, disk and memory hits
  --mode sum|mean|max                   bag reduction (default sum)
  --num-embeddings V --dim D            the table [V, D] (default 100000 x 128)
  --batch B --bag-size L                B bags of L indices (embedding: [B, L] indices)
  --padding-idx P                       padding row (may be negative); 5% of indices hit it
  --per-sample-weights                  sum mode with weights
  --include-last-offset                 offsets of length B + 1
  --two-d                               embedding_bag with 2-D indices [B, L]
  --max-norm X --norm-type p            renormalise referenced rows first (renorm: required)
  --scale-grad-by-freq                  accepted and checked (used by the backward)
  --profile torch|zero-padding|unit-scaling
  --dtype f32|f64|f16|bf16              weight dtype (default f32)
  --index-dtype i32|i64                 (default i64); --offset-dtype i32|i64 (default: same)
  --threads N                           threads (default: all)
  --seed S                              random instance (default 1)
  --check                               compare with the f64 reference; exit 1 on mismatch
  --bench [--iters K]                   GB/s of compulsory traffic and the ratio to memcpy
  --json                                one machine-readable line
  --print-ir                            the specialised IR at every stage
  --cache-dir DIR, --no-disk-cache      the kernel disk cache
  --target host|nvptx                   where the kernel runs (default host)
                                        nvptx: on the GPU (device copies of the buffers; --bench
                                        times with CUDA events against a device-to-device copy)
  --chip sm_XX --ptx N                  nvptx: the chip (default: the device's; sm_90 without one),
                                        PTX ISA x10 (0: the chip's default)
  --emulate                             nvptx: run the GPU kernel on the host (emb-emulate-gpu-on-host)
                                        nvptx --print-ir: the gpu / NVVM IR and the PTX
  --deterministic                       nvptx: dense gradients summed in input order per row
                                        (a stable sort by row) instead of atomics
  --trust-indices                       nvptx: skip the index validation (its copy to the host and
                                        stream synchronisation), as a caller with trusted indices would
)";

[[noreturn]] void usageError(const std::string &message) {
  llvm::errs() << "emb-run: error: " << message << "\n" << kUsage;
  std::exit(2);
}

Flags parseFlags(int argc, char **argv) {
  Flags f;
  std::map<std::string, bool *> bools = {
      {"per-sample-weights", &f.perSampleWeights},
      {"include-last-offset", &f.includeLastOffset},
      {"two-d", &f.twoD},
      {"scale-grad-by-freq", &f.scaleGradByFreq},
      {"check", &f.check},
      {"bench", &f.bench},
      {"json", &f.json},
      {"print-ir", &f.printIR},
      {"no-disk-cache", &f.noDiskCache},
      {"sparse", &f.sparse},
      {"coalesced", &f.coalesced},
      {"emulate", &f.emulate},
      {"trust-indices", &f.trustIndices},
      {"deterministic", &f.deterministic}};
  std::map<std::string, std::string *> strings = {
      {"op", &f.opName},
      {"mode", &f.modeName},
      {"profile", &f.profileFlag},
      {"dtype", &f.dtypeName_},
      {"index-dtype", &f.indexDtype},
      {"offset-dtype", &f.offsetDtype},
      {"cache-dir", &f.cacheDir},
      {"target", &f.targetFlag},
      {"chip", &f.chip}};
  std::map<std::string, int64_t *> ints = {{"num-embeddings", &f.numEmbeddings},
                                           {"dim", &f.dim},
                                           {"batch", &f.batch},
                                           {"bag-size", &f.bagSize},
                                           {"padding-idx", &f.paddingIdx},
                                           {"ptx", &f.ptx}};
  std::map<std::string, double *> reals = {{"max-norm", &f.maxNorm},
                                           {"norm-type", &f.normType}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      llvm::outs() << kUsage;
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0)
      usageError("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2), value;
    bool hasValue = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      hasValue = true;
    }
    if (auto it = bools.find(name); it != bools.end()) {
      *it->second = !hasValue || value == "1" || value == "true";
      continue;
    }
    if (!hasValue) {
      if (i + 1 >= argc)
        usageError("--" + name + " needs a value");
      value = argv[++i];
    }
    char *end = nullptr;
    if (auto it = strings.find(name); it != strings.end()) {
      *it->second = value;
    } else if (auto it = ints.find(name); it != ints.end()) {
      *it->second = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end)
        usageError("--" + name + " needs an integer, got '" + value + "'");
    } else if (auto it = reals.find(name); it != reals.end()) {
      *it->second = std::strtod(value.c_str(), &end);
      if (value.empty() || *end)
        usageError("--" + name + " needs a number, got '" + value + "'");
    } else if (name == "threads" || name == "iters") {
      long v = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end || v < 0)
        usageError("--" + name + " needs a non-negative integer");
      (name == "threads" ? f.threads : f.iters) = static_cast<int>(v);
    } else if (name == "seed") {
      f.seed = std::strtoull(value.c_str(), &end, 10);
    } else {
      usageError("unknown flag --" + name);
    }
  }
  return f;
}
} // namespace

namespace {

[[noreturn]] void die(const std::string &message) {
  llvm::errs() << "emb-run: error: " << message << "\n";
  std::exit(2);
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  int64_t below(int64_t n) { return n ? static_cast<int64_t>(next() % n) : 0; }
};

using Buffer = HostTensor;

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

/// Compares kernel output with reference values; returns the worst error.
bool compare(const char *what, const void *got, DType dtype,
             const std::vector<double> &want, double &worst) {
  double tol = dtype == DType::f64   ? 1e-12
               : dtype == DType::f32 ? 2e-5
               : dtype == DType::f16 ? 4e-3
                                     : 3e-2;
  for (size_t i = 0; i < want.size(); ++i) {
    double g = loadDouble(got, dtype, i);
    double err = std::fabs(g - want[i]) / std::max(1.0, std::fabs(want[i]));
    worst = std::max(worst, err);
    if (!(err <= tol)) {
      llvm::errs() << "emb-run: mismatch in " << what << " at element " << i
                   << ": got " << g << ", want " << want[i] << "\n";
      return false;
    }
  }
  return true;
}

/// --op jit: the JIT's own costs for one embedding_bag spec (the flags'
/// dtype, D and mode): cold compile (memory-only cache, so every call
/// compiles), disk-cache hit (a fresh cache over a populated directory),
/// in-memory hit, and a whole tiny call through Engine.
int benchJit(const Flags &f) {
  KernelSpec spec;
  spec.op = OpKind::embedding_bag;
  spec.weight = parseDType(f.dtypeName_).value_or(DType::f32);
  spec.indices = parseDType(f.indexDtype).value_or(DType::i64);
  spec.offsets = spec.indices;
  spec.dim = f.dim;
  spec.mode = f.modeName == "max"    ? BagMode::max
              : f.modeName == "mean" ? BagMode::mean
                                     : BagMode::sum;
  int reps = std::max(3, f.iters / 4);
  std::vector<double> cold, disk;
  for (int i = 0; i < reps; ++i) {
    KernelCache cache({"", false});
    auto t0 = Clock::now();
    auto fn = cache.get(spec);
    if (!fn)
      die(llvm::toString(fn.takeError()));
    cold.push_back(seconds(t0, Clock::now()) * 1e3);
  }
  llvm::SmallString<128> dir;
  llvm::sys::fs::createUniqueDirectory("emb-run-jit", dir);
  {
    KernelCache populate({std::string(dir), true});
    if (auto fn = populate.get(spec); !fn)
      die(llvm::toString(fn.takeError()));
  }
  std::string entry = KernelCache({std::string(dir), true}).entryPath(spec);
  for (int i = 0; i < reps; ++i) {
    // A copy of the entry in a new directory: the loader has not seen this
    // file, as in a new process.
    llvm::SmallString<128> copyDir;
    llvm::sys::fs::createUniqueDirectory("emb-run-jit-hit", copyDir);
    KernelCache cache({std::string(copyDir), true});
    llvm::sys::fs::copy_file(entry, cache.entryPath(spec));
    auto t0 = Clock::now();
    auto fn = cache.get(spec);
    if (!fn)
      die(llvm::toString(fn.takeError()));
    disk.push_back(seconds(t0, Clock::now()) * 1e3);
    if (cache.stats().diskHits != 1)
      die("the disk-cache measurement did not hit the disk cache");
    llvm::sys::fs::remove_directories(copyDir);
  }
  llvm::sys::fs::remove_directories(dir);
  KernelCache memory({"", false});
  (void)memory.get(spec);
  const int hits = 200000;
  auto t0 = Clock::now();
  for (int i = 0; i < hits; ++i)
    if (auto fn = memory.get(spec); !fn)
      die(llvm::toString(fn.takeError()));
  double hitUs = seconds(t0, Clock::now()) * 1e6 / hits;
  // A whole call of a tiny instance (1 bag of 1 index): validation, cache
  // lookup, kernel.
  EngineOptions eo;
  eo.threads = 1;
  eo.cache.useDiskCache = false;
  Engine engine(eo);
  Buffer w(spec.weight, {4, f.dim}), x(spec.indices, {1}), o(spec.indices, {1}),
      out(spec.weight, {1, f.dim});
  EmbeddingBagOptions bo;
  bo.mode = spec.mode;
  (void)engine.embeddingBag(x.view, w.view, &o.view, out.view, bo);
  t0 = Clock::now();
  const int calls = 100000;
  for (int i = 0; i < calls; ++i)
    if (llvm::Error err =
            engine.embeddingBag(x.view, w.view, &o.view, out.view, bo))
      die(llvm::toString(std::move(err)));
  double callUs = seconds(t0, Clock::now()) * 1e6 / calls;
  if (f.json) {
    llvm::outs() << "{\"op\":\"jit\",\"spec\":\"" << spec.str()
                 << "\",\"cold_compile_ms\":" << median(cold)
                 << ",\"disk_hit_ms\":" << median(disk)
                 << ",\"memory_hit_us\":" << hitUs
                 << ",\"tiny_call_us\":" << callUs << "}\n";
  } else {
    llvm::outs() << "kernel            " << spec.str() << "\n"
                 << "cold compile      " << llvm::format("%.1f", median(cold))
                 << " ms (median of " << reps << ")\n"
                 << "disk-cache hit    " << llvm::format("%.2f", median(disk))
                 << " ms (median of " << reps << ")\n"
                 << "memory-cache hit  " << llvm::format("%.3f", hitUs)
                 << " us\n"
                 << "tiny call         " << llvm::format("%.3f", callUs)
                 << " us (validation + lookup + kernel, 1 bag of 1 index)\n";
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  const Flags flags = parseFlags(argc, argv);
  const std::string &opName = flags.opName;
  const std::string &modeName = flags.modeName;
  const std::string &profileFlag = flags.profileFlag;
  const std::string &dtypeName_ = flags.dtypeName_;
  const std::string &indexDtype = flags.indexDtype;
  const std::string &offsetDtype = flags.offsetDtype;
  const std::string &cacheDir = flags.cacheDir;
  const int64_t &numEmbeddings = flags.numEmbeddings;
  const int64_t &dim = flags.dim;
  const int64_t &batch = flags.batch;
  const int64_t &bagSize = flags.bagSize;
  const int64_t &paddingIdx = flags.paddingIdx;
  const double &maxNorm = flags.maxNorm;
  const double &normType = flags.normType;
  const bool &perSampleWeights = flags.perSampleWeights;
  const bool &includeLastOffset = flags.includeLastOffset;
  const bool &twoD = flags.twoD;
  const bool &scaleGradByFreq = flags.scaleGradByFreq;
  const bool &check = flags.check;
  const bool &bench = flags.bench;
  const bool &json = flags.json;
  const bool &printIR = flags.printIR;
  const bool &noDiskCache = flags.noDiskCache;
  const bool &sparse = flags.sparse;
  const bool &coalesced = flags.coalesced;
  const int &threads = flags.threads;
  const int &iters = flags.iters;
  const uint64_t &seed = flags.seed;
  auto dtype = parseDType(dtypeName_);
  auto idxType = parseDType(indexDtype);
  auto offType = parseDType(offsetDtype.empty() ? indexDtype : offsetDtype);
  if (!dtype || !isFloat(*dtype))
    die("--dtype must be f32, f64, f16 or bf16");
  if (!idxType || !isIndex(*idxType) || !offType || !isIndex(*offType))
    die("--index-dtype and --offset-dtype must be i32 or i64");
  auto profile = parseProfile(profileFlag);
  if (!profile)
    die("--profile must be torch, zero-padding or unit-scaling");
  BagMode mode =
      modeName == "sum"    ? BagMode::sum
      : modeName == "mean" ? BagMode::mean
      : modeName == "max"
          ? BagMode::max
          : (usageError("--mode must be sum, mean or max"), BagMode::sum);
  if (numEmbeddings < 0 || dim < 0 || batch < 0 || bagSize < 0)
    die("sizes must be non-negative");

  if (opName == "jit")
    return benchJit(flags);

  bool nvptx = flags.targetFlag == "nvptx";
  if (!nvptx && flags.targetFlag != "host")
    usageError("--target must be host or nvptx");
  if (flags.emulate && !nvptx)
    usageError("--emulate needs --target nvptx");
  bool onDevice = nvptx && !flags.emulate && !printIR;
  EngineOptions engineOptions;
  engineOptions.target = !nvptx          ? Target::host
                         : flags.emulate ? Target::gpu_emulated
                                         : Target::nvptx;
  engineOptions.chip = flags.chip;
  engineOptions.ptx = static_cast<unsigned>(flags.ptx);
  engineOptions.validateIndices = !flags.trustIndices;
  engineOptions.threads = threads;
  engineOptions.cache.directory = cacheDir;
  engineOptions.cache.useDiskCache = !noDiskCache;
  Engine engine(engineOptions);
  int nthreads = engine.threads();

  const int64_t V = numEmbeddings, D = dim, B = batch, L = bagSize;
  const int64_t N = B * L;
  std::optional<int64_t> pad;
  if (paddingIdx != INT64_MIN)
    pad = paddingIdx;
  std::optional<double> norm;
  if (!std::isnan(maxNorm))
    norm = maxNorm;

  // The instance: a random table, uniform random indices (5% padding).
  Rng rng{seed * 0x9E3779B97F4A7C15ull + 1};
  Buffer weight(*dtype, {V, D});
  for (int64_t i = 0; i < V * D; ++i)
    storeDouble(weight.view.data, *dtype, i, rng.uniform() * 2 - 1);
  bool backward =
      opName == "embedding_backward" || opName == "embedding_bag_backward";
  bool bag = opName == "embedding_bag" || opName == "embedding_bag_backward";
  bool lookup = opName == "embedding" || opName == "embedding_backward";
  Buffer indices(*idxType, (bag && twoD) || lookup ? std::vector<int64_t>{B, L}
                                                   : std::vector<int64_t>{N});
  int64_t padRow = pad ? (*pad < 0 ? *pad + V : *pad) : -1;
  for (int64_t i = 0; i < N; ++i) {
    int64_t r = rng.below(V);
    if (padRow >= 0 && padRow < V && rng.below(20) == 0)
      r = padRow;
    storeDouble(indices.view.data, *idxType, i, static_cast<double>(r));
  }
  int64_t numOffsets = includeLastOffset ? B + 1 : B;
  Buffer offsets(*offType, {numOffsets});
  for (int64_t b = 0; b < numOffsets; ++b)
    storeDouble(offsets.view.data, *offType, b, static_cast<double>(b * L));
  Buffer psw(*dtype, indices.view.shape);
  for (int64_t i = 0; i < N; ++i)
    storeDouble(psw.view.data, *dtype, i, rng.uniform() * 2 - 1);
  std::vector<int64_t> outShape =
      bag ? std::vector<int64_t>{B, D}
          : (lookup ? std::vector<int64_t>{B, L, D} : std::vector<int64_t>{0});
  Buffer out(*dtype, outShape);
  Buffer argmax(DType::i64, {B, D});
  Buffer pooled(*dtype, {B, D}); // the forward of a max gradient
  // Backward: `out` is the incoming gradient, `gradWeight` the result
  // (dense), or `sparseRows` / `sparseValues` with `sparseCount` rows.
  Buffer gradWeight(*dtype, backward && !sparse ? std::vector<int64_t>{V, D}
                                                : std::vector<int64_t>{0});
  Buffer sparseRows(DType::i64, {backward && sparse ? N : 0});
  Buffer sparseValues(*dtype, {backward && sparse ? N : 0, D});
  // What the calls use: the buffers, or their device copies on a GPU.
  Tensor vWeight = weight.view, vIndices = indices.view,
         vOffsets = offsets.view, vPsw = psw.view, vOut = out.view,
         vArgmax = argmax.view, vGradWeight = gradWeight.view,
         vPooled = pooled.view, vSparseRows = sparseRows.view,
         vSparseValues = sparseValues.view;
  std::unique_ptr<cuda::Device> device;
  std::vector<std::pair<Buffer *, Tensor *>> mirrors = {
      {&weight, &vWeight},
      {&indices, &vIndices},
      {&offsets, &vOffsets},
      {&psw, &vPsw},
      {&out, &vOut},
      {&argmax, &vArgmax},
      {&pooled, &vPooled},
      {&gradWeight, &vGradWeight},
      {&sparseRows, &vSparseRows},
      {&sparseValues, &vSparseValues}};
  int64_t sparseCount = 0;
  if (backward)
    for (int64_t i = 0; i < out.view.numel(); ++i)
      storeDouble(out.view.data, *dtype, i, rng.uniform() * 2 - 1);
  if (onDevice) {
    auto opened = cuda::Device::open();
    if (!opened)
      die(llvm::toString(opened.takeError()));
    device = std::move(*opened);
    for (auto [host, view] : mirrors) {
      auto p = device->alloc(std::max<size_t>(host->size(), 16));
      if (!p)
        die(llvm::toString(p.takeError()));
      if (host->size() > 0)
        if (llvm::Error err =
                device->copyToDevice(*p, host->view.data, host->size()))
          die(llvm::toString(std::move(err)));
      view->data = *p;
    }
  }
  // Results back to the host buffers (after the GPU is done).
  auto fetch = [&] {
    if (!device)
      return;
    if (llvm::Error err = device->synchronize())
      die(llvm::toString(std::move(err)));
    for (auto [host, view] : mirrors)
      if (host->size() > 0)
        if (llvm::Error err =
                device->copyToHost(host->view.data, view->data, host->size()))
          die(llvm::toString(std::move(err)));
  };
  if (backward) {
    if (bag && mode == BagMode::max) {
      // The forward call gives the max_indices the gradient follows.
      EmbeddingBagOptions o;
      o.mode = mode;
      o.paddingIdx = pad;
      o.includeLastOffset = includeLastOffset;
      if (llvm::Error err =
              engine.embeddingBag(vIndices, vWeight, twoD ? nullptr : &vOffsets,
                                  vPooled, o, nullptr, &vArgmax))
        die(llvm::toString(std::move(err)));
    }
  }

  // The call, as a user writes it.
  Buffer weightBefore = weight;
  auto run = [&]() -> llvm::Error {
    if (opName == "embedding_backward") {
      EmbeddingOptions o;
      o.paddingIdx = pad;
      o.scaleGradByFreq = scaleGradByFreq;
      o.deterministic = flags.deterministic;
      o.profile = *profile;
      if (sparse) {
        auto m = engine.embeddingSparseBackward(vOut, vIndices, V, vSparseRows,
                                                vSparseValues, o, coalesced);
        if (!m)
          return m.takeError();
        sparseCount = *m;
        return llvm::Error::success();
      }
      return engine.embeddingBackward(vOut, vIndices, vGradWeight, o);
    }
    if (opName == "embedding_bag_backward") {
      EmbeddingBagOptions o;
      o.mode = mode;
      o.paddingIdx = pad;
      o.scaleGradByFreq = scaleGradByFreq;
      o.includeLastOffset = includeLastOffset;
      o.deterministic = flags.deterministic;
      o.profile = *profile;
      if (sparse) {
        auto m = engine.embeddingBagSparseBackward(
            vOut, vIndices, twoD ? nullptr : &vOffsets, V, vSparseRows,
            vSparseValues, o, perSampleWeights ? &vPsw : nullptr, coalesced);
        if (!m)
          return m.takeError();
        sparseCount = *m;
        return llvm::Error::success();
      }
      return engine.embeddingBagBackward(
          vOut, vIndices, twoD ? nullptr : &vOffsets, vGradWeight, o,
          perSampleWeights ? &vPsw : nullptr,
          mode == BagMode::max ? &vArgmax : nullptr);
    }
    if (opName == "embedding") {
      EmbeddingOptions o;
      o.paddingIdx = pad;
      o.maxNorm = norm;
      o.normType = normType;
      o.scaleGradByFreq = scaleGradByFreq;
      o.profile = *profile;
      return engine.embedding(vIndices, vWeight, vOut, o);
    }
    if (bag) {
      EmbeddingBagOptions o;
      o.mode = mode;
      o.paddingIdx = pad;
      o.maxNorm = norm;
      o.normType = normType;
      o.scaleGradByFreq = scaleGradByFreq;
      o.includeLastOffset = includeLastOffset;
      o.profile = *profile;
      return engine.embeddingBag(vIndices, vWeight, twoD ? nullptr : &vOffsets,
                                 vOut, o, perSampleWeights ? &vPsw : nullptr,
                                 mode == BagMode::max ? &vArgmax : nullptr);
    }
    if (opName == "renorm") {
      if (!norm)
        die("--op renorm needs --max-norm");
      return engine.renorm(vWeight, vIndices, *norm, normType);
    }
    die("--op must be embedding, embedding_bag, renorm, embedding_backward "
        "or embedding_bag_backward");
  };

  // The spec the call compiles, for --print-ir and the report.
  KernelSpec spec;
  spec.op = opName == "embedding_backward" ? OpKind::embedding_backward
            : opName == "embedding_bag_backward"
                ? OpKind::embedding_bag_backward
            : bag                ? OpKind::embedding_bag
            : opName == "renorm" ? OpKind::renorm
                                 : OpKind::embedding;
  spec.numEmbeddings = V;
  spec.scaleGradByFreq = backward && scaleGradByFreq;
  spec.coalesced = coalesced;
  spec.deterministic = flags.deterministic && nvptx;
  if (backward && sparse)
    spec.op = bag ? OpKind::embedding_bag_sparse_backward
                  : OpKind::embedding_sparse_backward;
  spec.gradScale = backward && *profile == Profile::unit_scaling && N > 0
                       ? std::sqrt(double(V) / double(N))
                       : 1.0;
  spec.weight = *dtype;
  spec.indices = *idxType;
  spec.offsets = *offType;
  spec.dim = D;
  spec.mode = mode;
  spec.twoD = twoD;
  spec.perSampleWeights = perSampleWeights;
  spec.includeLastOffset = includeLastOffset && !twoD;
  spec.maxIndices = bag && mode == BagMode::max;
  spec.paddingIdx =
      ((bag || backward) && !(backward && mode == BagMode::max && bag)) ||
              *profile == Profile::zero_padding
          ? padRow
          : -1;
  spec.zeroPadding = !bag && *profile == Profile::zero_padding && padRow >= 0;
  spec.maxNorm = norm.value_or(0);
  spec.normType = normType;
  if (nvptx) {
    // The GPU kernel: its IR and PTX with --print-ir (then, with --emulate,
    // the emulation's); it runs on the device, or on the host with
    // --emulate.
    spec.target = Target::gpu_emulated;
    if (printIR) {
      std::string chip = flags.chip.empty() ? "sm_90" : flags.chip;
      auto binaries = compileForNVPTX(
          spec, chip, static_cast<unsigned>(flags.ptx), "isa", &llvm::outs());
      if (!binaries)
        die(llvm::toString(binaries.takeError()));
      for (const GPUKernelBinary &b : *binaries)
        llvm::outs() << "// ----- PTX of " << b.kernel << " (" << chip << ")\n"
                     << b.data << "\n";
      if (!flags.emulate)
        return 0;
    }
    if (onDevice) {
      spec.target = Target::nvptx;
      spec.chip = flags.chip.empty() ? device->chip() : flags.chip;
      spec.ptx = static_cast<unsigned>(flags.ptx);
    }
  }
  if (printIR) {
    auto obj = compileToObject(spec, &llvm::outs());
    if (!obj)
      die(llvm::toString(obj.takeError()));
  }

  auto t0 = Clock::now();
  if (llvm::Error err = run()) {
    llvm::errs() << "emb-run: error: " << llvm::toString(std::move(err))
                 << "\n";
    return 1;
  }
  if (device) // the call's work, not the copies back
    if (llvm::Error err = device->synchronize())
      die(llvm::toString(std::move(err)));
  double firstCallMs = seconds(t0, Clock::now()) * 1e3;
  fetch();

  // --check: the reference on a compact copy of the referenced rows.
  bool ok = true;
  double worst = 0;
  if (check) {
    std::map<int64_t, int64_t> compact;
    std::vector<int64_t> x(N);
    for (int64_t i = 0; i < N; ++i) {
      int64_t r = loadInt(indices.view.data, *idxType, i);
      x[i] = compact.emplace(r, compact.size()).first->second;
    }
    std::vector<double> w(compact.size() * D);
    for (auto [row, c] : compact)
      for (int64_t d = 0; d < D; ++d)
        w[c * D + d] = loadDouble(weightBefore.view.data, *dtype, row * D + d);
    std::optional<int64_t> cpad;
    if (padRow >= 0 && compact.count(padRow))
      cpad = compact[padRow];
    if (backward && sparse) {
      // The sparse reference needs no table: compare rows and values.
      ref::Bags bags;
      if (twoD) {
        bags.numBags = B;
        bags.bagLength = L;
      } else {
        bags.offsets = offsets.toInt();
        bags.includeLastOffset = includeLastOffset;
      }
      std::optional<int64_t> p;
      if (padRow >= 0)
        p = padRow;
      auto want = ref::sparseBackward(
          out.toDouble(), D, indices.toInt(), bag ? &bags : nullptr, mode,
          perSampleWeights ? psw.toDouble() : std::vector<double>{}, p, 1.0);
      if (coalesced)
        want = ref::coalesce(want, D);
      if (sparseCount != static_cast<int64_t>(want.rows.size())) {
        llvm::errs() << "emb-run: " << sparseCount << " sparse rows, want "
                     << want.rows.size() << "\n";
        ok = false;
      }
      for (int64_t k = 0; ok && k < sparseCount; ++k)
        if (sparseRows.intAt(k) != want.rows[k]) {
          llvm::errs() << "emb-run: sparse row " << k << " is "
                       << sparseRows.intAt(k) << ", want " << want.rows[k]
                       << "\n";
          ok = false;
        }
      if (ok) {
        Buffer got(*dtype, {sparseCount, D});
        for (int64_t i = 0; i < sparseCount * D; ++i)
          got.set(i, sparseValues.at(i));
        ok &=
            compare("sparse values", got.view.data, *dtype, want.values, worst);
      }
    } else if (backward) {
      // The reference on the referenced rows; every other row must be zero.
      int64_t vc = static_cast<int64_t>(compact.size());
      double scale = spec.gradScale;
      std::vector<double> want;
      if (!bag) {
        want = ref::embeddingBackward(out.toDouble(), D, x, vc, cpad,
                                      scaleGradByFreq, scale);
      } else {
        ref::Bags bags;
        if (twoD) {
          bags.numBags = B;
          bags.bagLength = L;
        } else {
          bags.offsets = offsets.toInt();
          bags.includeLastOffset = includeLastOffset;
        }
        std::vector<int64_t> mi;
        if (mode == BagMode::max)
          for (int64_t r : argmax.toInt())
            mi.push_back(r < 0 ? -1 : compact[r]);
        want = ref::embeddingBagBackward(
            out.toDouble(), D, x, bags, mode,
            perSampleWeights ? psw.toDouble() : std::vector<double>{}, mi, vc,
            mode == BagMode::max ? std::nullopt : cpad, scaleGradByFreq, scale);
      }
      Buffer got(*dtype, {vc, D});
      for (auto [row, c] : compact)
        for (int64_t d = 0; d < D; ++d)
          got.set(c * D + d, gradWeight.at(row * D + d));
      ok &= compare("weight gradient", got.view.data, *dtype, want, worst);
      for (int64_t r = 0; ok && r < V; ++r)
        if (!compact.count(r))
          for (int64_t d = 0; d < D; ++d)
            if (gradWeight.at(r * D + d) != 0.0) {
              llvm::errs() << "emb-run: row " << r
                           << " of the weight gradient is not referenced but "
                              "not zero\n";
              ok = false;
              break;
            }
    } else if (norm) {
      ref::renorm(w, D, x, *norm, normType);
      std::vector<double> got(compact.size() * D), want(compact.size() * D);
      for (auto [row, c] : compact)
        for (int64_t d = 0; d < D; ++d)
          got[c * D + d] = loadDouble(weight.view.data, *dtype, row * D + d);
      // Compare the renormalised table rows first.
      Buffer g(*dtype, {static_cast<int64_t>(got.size())});
      for (size_t i = 0; i < got.size(); ++i)
        storeDouble(g.view.data, *dtype, i, got[i]);
      ok &= compare("renormalised weight", g.view.data, *dtype, w, worst);
      // The lookup reads the stored (rounded) rows.
      for (size_t i = 0; i < w.size(); ++i)
        w[i] = got[i];
    }
    if (backward) {
      // checked above
    } else if (opName == "embedding") {
      auto want =
          ref::embedding(w, D, x, cpad, *profile == Profile::zero_padding);
      ok &= compare("output", out.view.data, *dtype, want, worst);
    } else if (bag) {
      std::vector<int64_t> offs;
      if (!twoD)
        for (int64_t b = 0; b < numOffsets; ++b)
          offs.push_back(loadInt(offsets.view.data, *offType, b));
      std::vector<double> p;
      if (perSampleWeights)
        for (int64_t i = 0; i < N; ++i)
          p.push_back(loadDouble(psw.view.data, *dtype, i));
      auto want = ref::embeddingBag(w, D, x, offs, B, L, mode, p,
                                    includeLastOffset && !twoD, cpad);
      ok &= compare("output", out.view.data, *dtype, want.output, worst);
      if (mode == BagMode::max) {
        std::vector<int64_t> rowOf(compact.size());
        for (auto [row, c] : compact)
          rowOf[c] = row;
        for (size_t i = 0; ok && i < want.maxIndices.size(); ++i) {
          int64_t wantRow =
              want.maxIndices[i] < 0 ? -1 : rowOf[want.maxIndices[i]];
          int64_t got = static_cast<int64_t *>(argmax.view.data)[i];
          if (got != wantRow) {
            llvm::errs() << "emb-run: mismatch in max_indices at element " << i
                         << ": got " << got << ", want " << wantRow << "\n";
            ok = false;
          }
        }
      }
    }
  }

  // --bench: median time of repeated calls, and the memcpy probe.
  double gbps = 0, probe = 0, ms = 0;
  double bytes = 0;
  if (bench) {
    if (device) {
      // CUDA events around `iters` calls (after a warm-up call).
      auto t = device->time(run, iters);
      if (!t)
        die(llvm::toString(t.takeError()));
      ms = *t;
    } else {
      std::vector<double> times;
      for (int it = 0; it < iters + 2; ++it) {
        auto a = Clock::now();
        if (llvm::Error err = run())
          die(llvm::toString(std::move(err)));
        if (it >= 2)
          times.push_back(seconds(a, Clock::now()));
      }
      ms = median(times) * 1e3;
    }
    double es = dtypeSize(*dtype), is = dtypeSize(*idxType);
    if (opName == "renorm")
      bytes = N * is + 2.0 * N * D * es; // rows read (and, worst case, written)
    else if (backward) {
      // Gradient rows read, indices (and bag structure) read, gW written
      // (sparse: the rows and values written).
      bytes = out.size() + N * is +
              (sparse ? sparseCount * (8.0 + D * es) : gradWeight.size());
      if (bag && !twoD)
        bytes += numOffsets * dtypeSize(*offType);
      if (bag && perSampleWeights)
        bytes += N * es;
      if (bag && mode == BagMode::max)
        bytes += argmax.size();
    } else {
      bytes = N * (D * es + is) + out.size();
      if (bag && !twoD)
        bytes += numOffsets * dtypeSize(*offType);
      if (bag && perSampleWeights)
        bytes += N * es;
      if (bag && mode == BagMode::max)
        bytes += argmax.size();
    }
    gbps = bytes / (ms * 1e-3) / 1e9;
    probe = device ? deviceCopyProbe(*device, static_cast<size_t>(bytes))
                   : memcpyProbe(nthreads, static_cast<size_t>(bytes));
  }

  if (json) {
    llvm::outs() << "{\"op\":\"" << opName << "\",\"spec\":\"" << spec.str()
                 << "\",\"V\":" << V << ",\"D\":" << D << ",\"B\":" << B
                 << ",\"L\":" << L << ",\"threads\":" << nthreads
                 << ",\"first_call_ms\":" << firstCallMs;
    if (check)
      llvm::outs() << ",\"check\":\"" << (ok ? "pass" : "fail")
                   << "\",\"max_rel_err\":" << worst;
    if (bench)
      llvm::outs() << ",\"time_ms\":" << ms << ",\"bytes\":" << bytes
                   << ",\"gbps\":" << gbps << ",\"memcpy_gbps\":" << probe
                   << ",\"ratio_to_memcpy\":" << gbps / probe;
    llvm::outs() << "}\n";
  } else {
    llvm::outs() << "kernel      " << spec.str() << "\n"
                 << "instance    V=" << V << " D=" << D << " B=" << B
                 << " L=" << L << ", " << nthreads << " thread(s)\n"
                 << "first call  " << llvm::format("%.1f", firstCallMs)
                 << " ms (includes compiling or loading the kernel)\n";
    if (check)
      llvm::outs() << "check       " << (ok ? "PASS" : "FAIL")
                   << " (max relative error " << llvm::format("%.2e", worst)
                   << " vs the f64 reference)\n";
    if (bench)
      llvm::outs() << "bench       " << llvm::format("%.3f", ms) << " ms, "
                   << llvm::format("%.1f", gbps)
                   << " GB/s of compulsory traffic; "
                   << "memcpy probe " << llvm::format("%.1f", probe)
                   << " GB/s; ratio " << llvm::format("%.2f", gbps / probe)
                   << "\n";
  }
  return ok ? 0 : 1;
}
