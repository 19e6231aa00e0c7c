//===- Flags.cpp - emb-run's command line and what it means ---------------===//

#include "EmbRun.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <cmath>
#include <unistd.h>

#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <map>

namespace emb::run {

namespace {

const char *kUsage = R"(usage: emb-run [flags]
  --op embedding|embedding_bag|renorm   the op (default embedding_bag)
  --op embedding_backward|embedding_bag_backward
                                        the dense weight gradient (max: from the forward's max_indices)
  --sparse [--coalesced]                the sparse (COO) gradient; coalesced: distinct rows, summed
  --optimizer sgd|adagrad|rowwise_adagrad|adam
                                        the backward fused with an optimizer step that updates the
                                        table in place (no gradient); --lr X, --weight-decay X, --eps X
  --op jit                              time the JIT: cold compile, disk and memory hits
  --mode sum|mean|max|sqrtn             bag reduction (default sum; sqrtn: sum / sqrt(n); none: only in
                                        --tables, a sequence table)
  --num-embeddings V --dim D            the table [V, D] (default 100000 x 128)
  --batch B --bag-size L                B bags of L indices (embedding: [B, L] indices)
  --padding-idx P                       padding row (may be negative); 5% of indices hit it
  --per-sample-weights                  weights (sum; mean: weighted mean; sqrtn)
  --tables "V1xD1:mode,V2xD2:mode,..."  embedding_bag of many tables in one call (B bags of L per
                                        table; --padding-idx applies to each; mode none: a
                                        sequence table, its L rows side by side)
  --quantized int8|int4                 embedding_bag of a row-wise quantised table (packed as
                                        torch's prepack ops do); --dtype f32|f16 is the output's
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
  --bench [--iters K]                   GB/s of compulsory traffic and the ratios to a memcpy
                                        probe and (host forward) a gather probe of the same rows
  --huge-pages                          the table on 2 MiB transparent huge pages (emb::allocateTable)
  --resources                           nvptx: each kernel's registers, stack, spills, shared memory
                                        and theoretical occupancy (ptxas -v) on --chip, or sm_80 and sm_90
  --transactions                        nvptx: run the GPU kernels emulated with every global access
                                        traced: per kernel and memory operation the warp requests,
                                        32-byte sectors, 128-byte lines and coalescing efficiency; with
                                        ptxas also the bandwidth model on A100 / H100 / H200 (docs/gpu.md)
  --json                                one machine-readable line
  --print-ir                            the specialised IR, at every stage, of the kernels the call runs
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

} // namespace

[[noreturn]] void usageError(const std::string &message) {
  llvm::errs() << "emb-run: error: " << message << "\n" << kUsage;
  std::exit(2);
}

[[noreturn]] void die(const std::string &message) {
  llvm::errs() << "emb-run: error: " << message << "\n";
  std::exit(2);
}

namespace {

/// The flags that take a value of each kind, by name.
struct FlagTable {
  Flags *f;
  std::map<std::string, bool *> bools{
      {"per-sample-weights", &f->perSampleWeights},
      {"include-last-offset", &f->includeLastOffset},
      {"two-d", &f->twoD},
      {"scale-grad-by-freq", &f->scaleGradByFreq},
      {"check", &f->check},
      {"bench", &f->bench},
      {"json", &f->json},
      {"print-ir", &f->printIR},
      {"no-disk-cache", &f->noDiskCache},
      {"sparse", &f->sparse},
      {"coalesced", &f->coalesced},
      {"emulate", &f->emulate},
      {"trust-indices", &f->trustIndices},
      {"deterministic", &f->deterministic},
      {"huge-pages", &f->hugePages},
      {"resources", &f->resources},
      {"transactions", &f->transactions}};
  std::map<std::string, std::string *> strings{
      {"op", &f->opName},
      {"mode", &f->modeName},
      {"profile", &f->profileFlag},
      {"dtype", &f->dtypeName_},
      {"index-dtype", &f->indexDtype},
      {"offset-dtype", &f->offsetDtype},
      {"cache-dir", &f->cacheDir},
      {"target", &f->targetFlag},
      {"chip", &f->chip},
      {"quantized", &f->quantized},
      {"tables", &f->tables},
      {"optimizer", &f->optimizer}};
  std::map<std::string, int64_t *> ints{{"num-embeddings", &f->numEmbeddings},
                                        {"dim", &f->dim},
                                        {"batch", &f->batch},
                                        {"bag-size", &f->bagSize},
                                        {"padding-idx", &f->paddingIdx},
                                        {"ptx", &f->ptx}};
  std::map<std::string, double *> reals{{"max-norm", &f->maxNorm},
                                        {"norm-type", &f->normType},
                                        {"lr", &f->lr},
                                        {"weight-decay", &f->weightDecay},
                                        {"eps", &f->eps}};
};

/// Sets the flag `name` (not a boolean) from `value`.
void setValue(Flags &f, FlagTable &table, const std::string &name,
              const std::string &value) {
  char *end = nullptr;
  if (auto it = table.strings.find(name); it != table.strings.end()) {
    *it->second = value;
  } else if (auto it = table.ints.find(name); it != table.ints.end()) {
    *it->second = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end)
      usageError("--" + name + " needs an integer, got '" + value + "'");
  } else if (auto it = table.reals.find(name); it != table.reals.end()) {
    *it->second = std::strtod(value.c_str(), &end);
    // NaN is not a number here either (an unset --max-norm is NaN).
    if (value.empty() || *end || std::isnan(*it->second))
      usageError("--" + name + " needs a number, got '" + value + "'");
  } else if (name == "threads" || name == "iters") {
    long v = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end || v < 0)
      usageError("--" + name + " needs a non-negative integer");
    if (name == "threads" && v > kMaxThreads)
      usageError("--threads must be at most " + std::to_string(kMaxThreads));
    if (v > INT32_MAX)
      usageError("--" + name + " is too large");
    (name == "threads" ? f.threads : f.iters) = static_cast<int>(v);
  } else if (name == "seed") {
    f.seed = std::strtoull(value.c_str(), &end, 10);
  } else {
    usageError("unknown flag --" + name);
  }
}

/// The sizes' products fit in int64, and the buffers emb-run allocates (the
/// table, the indices, the output or gradient, each at most once more for
/// the reference) fit in this machine's memory: a clear error instead of an
/// overflowed size or an uncaught std::bad_alloc.
int64_t mul(int64_t a, int64_t b, const std::string &what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    die(what + " overflows a 64-bit size");
  return r;
}

int64_t add(int64_t a, int64_t b, const std::string &what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    die(what + " overflows a 64-bit size");
  return r;
}

/// `s.V` elements of tables, `indices` indices and `outputRows` rows of
/// `s.D` columns (many tables: the flat tables, B rows of every table's
/// columns) fit in 64 bits and in this machine's memory (twice: the
/// engine's buffers and the reference's).
void checkSizes(const Setup &s, int64_t indices, int64_t outputRows) {
  int64_t esize = static_cast<int64_t>(dtypeSize(s.dtype));
  int64_t table = mul(mul(s.V, s.tables.empty() ? s.D : 1,
                          "--num-embeddings x --dim"),
                      esize, "the table's bytes");
  int64_t rows = mul(mul(outputRows, s.D, "the output's elements"), esize,
                     "the output's bytes");
  int64_t indexBytes = mul(indices, 8, "the indices' bytes");
  double needed = 2.0 * (double(table) + double(rows) + double(indexBytes));
  double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (memory > 0 && needed > memory)
    die("these sizes need about " + std::to_string(int64_t(needed / (1 << 30))) +
        " GiB of buffers; this machine has " +
        std::to_string(int64_t(memory / (1 << 30))) + " GiB");
}

} // namespace

Flags parseFlags(int argc, char **argv) {
  Flags f;
  FlagTable table{&f};
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
    if (auto it = table.bools.find(name); it != table.bools.end()) {
      *it->second = !hasValue || value == "1" || value == "true";
      continue;
    }
    if (!hasValue) {
      if (i + 1 >= argc)
        usageError("--" + name + " needs a value");
      value = argv[++i];
    }
    setValue(f, table, name, value);
  }
  return f;
}

Setup resolve(const Flags &flags) {
  Setup s;
  s.flags = flags;
  auto dtype = parseDType(flags.dtypeName_);
  auto idxType = parseDType(flags.indexDtype);
  auto offType = parseDType(flags.offsetDtype.empty() ? flags.indexDtype
                                                      : flags.offsetDtype);
  if (!dtype || !isFloat(*dtype))
    die("--dtype must be f32, f64, f16 or bf16");
  if (!idxType || !isIndex(*idxType) || !offType || !isIndex(*offType))
    die("--index-dtype and --offset-dtype must be i32 or i64");
  auto profile = parseProfile(flags.profileFlag);
  if (!profile)
    die("--profile must be torch, zero-padding or unit-scaling");
  std::optional<BagMode> mode = parseBagMode(flags.modeName);
  if (!mode)
    usageError("--mode must be sum, mean, max, sqrtn or none (--tables only)");
  s.mode = *mode;
  if (flags.quantized == "int8" || flags.quantized == "int4") {
    s.quant = flags.quantized == "int8" ? Quantization::int8
                                        : Quantization::int4;
    if (flags.opName != "embedding_bag")
      usageError("--quantized is for --op embedding_bag");
    if (*dtype != DType::f32 && *dtype != DType::f16)
      usageError("--quantized needs --dtype f32 or f16 (the output's)");
    if (!std::isnan(flags.maxNorm))
      usageError("--quantized tables take no --max-norm");
  } else if (flags.quantized != "none") {
    usageError("--quantized must be int8 or int4");
  }
  if (flags.numEmbeddings < 0 || flags.dim < 0 || flags.batch < 0 ||
      flags.bagSize < 0)
    die("sizes must be non-negative");
  s.dtype = *dtype;
  s.idxType = *idxType;
  s.offType = *offType;
  s.profile = *profile;
  if (flags.opName == "jit")
    return s;

  s.nvptx = flags.targetFlag == "nvptx";
  if (!s.nvptx && flags.targetFlag != "host")
    usageError("--target must be host or nvptx");
  if (flags.emulate && !s.nvptx)
    usageError("--emulate needs --target nvptx");
  if (flags.hugePages && s.nvptx)
    usageError("--huge-pages is for host tables");
  if (flags.resources && !s.nvptx)
    usageError("--resources needs --target nvptx");
  if (flags.transactions && !s.nvptx)
    usageError("--transactions needs --target nvptx");
  if (flags.transactions && (flags.bench || flags.printIR || flags.resources))
    usageError("--transactions runs the call once, emulated: not with "
               "--bench, --print-ir or --resources");
  s.onDevice = s.nvptx && !flags.emulate && !flags.printIR &&
               !flags.resources && !flags.transactions;
  const std::string &op = flags.opName;
  s.backward = op == "embedding_backward" || op == "embedding_bag_backward";
  s.bag = op == "embedding_bag" || op == "embedding_bag_backward";
  s.lookup = op == "embedding" || op == "embedding_backward";
  s.V = flags.numEmbeddings;
  s.D = flags.dim;
  s.B = flags.batch;
  s.L = flags.bagSize;
  if (!flags.tables.empty()) {
    if (op != "embedding_bag" || s.quant != Quantization::none ||
        flags.twoD || flags.includeLastOffset || !std::isnan(flags.maxNorm))
      usageError("--tables is for --op embedding_bag, without --quantized, "
                 "--two-d, --include-last-offset or --max-norm");
    s.V = s.D = 0;
    llvm::SmallVector<llvm::StringRef> items;
    llvm::StringRef(flags.tables).split(items, ',');
    for (llvm::StringRef item : items) {
      auto [shape, modeName] = item.split(':');
      auto [rows, cols] = shape.split('x');
      TableOptions t;
      std::optional<BagMode> mode =
          parseBagMode(modeName.empty() ? flags.modeName : modeName.str());
      if (rows.getAsInteger(10, t.numEmbeddings) ||
          cols.getAsInteger(10, t.embeddingDim) || !mode ||
          t.numEmbeddings <= 0 || t.embeddingDim < 0)
        usageError("--tables wants V x D : mode items, got '" + item.str() +
                   "'");
      t.mode = *mode;
      if (flags.paddingIdx != INT64_MIN)
        t.paddingIdx = flags.paddingIdx;
      std::string what = "--tables item '" + item.str() + "'";
      s.V = add(s.V, mul(t.numEmbeddings, t.embeddingDim, what), what);
      // A sequence table (mode none): its L = --bag-size rows side by side.
      s.D = add(s.D,
                t.mode == BagMode::none ? mul(s.L, t.embeddingDim, what)
                                        : t.embeddingDim,
                what);
      s.tables.push_back(t);
    }
    int64_t T = static_cast<int64_t>(s.tables.size());
    s.N = mul(mul(T, s.B, "--batch x tables"), s.L, "the tables' indices");
    checkSizes(s, s.N, s.B);
    s.numOffsets = T * s.B + 1;
    return s;
  }
  if (!flags.optimizer.empty()) {
    std::optional<Optimizer> opt = parseOptimizer(flags.optimizer);
    if (!opt)
      usageError("--optimizer must be sgd, adagrad, rowwise_adagrad or adam");
    if (!s.backward || flags.sparse)
      usageError("--optimizer is for --op embedding_backward or "
                 "embedding_bag_backward, without --sparse");
    OptimizerOptions o;
    o.optimizer = *opt;
    o.lr = flags.lr;
    o.weightDecay = flags.weightDecay;
    o.eps = flags.eps;
    s.optimizer = o;
  }
  int64_t n = mul(s.B, s.L, "--batch x --bag-size");
  checkSizes(s, n, std::max(n, s.B));
  s.N = s.B * s.L;
  s.numOffsets = flags.includeLastOffset ? s.B + 1 : s.B;
  if (flags.paddingIdx != INT64_MIN)
    s.pad = flags.paddingIdx;
  s.padRow = s.pad ? (*s.pad < 0 ? *s.pad + s.V : *s.pad) : -1;
  if (!std::isnan(flags.maxNorm))
    s.norm = flags.maxNorm;
  return s;
}

EngineOptions engineOptions(const Setup &s) {
  const Flags &f = s.flags;
  EngineOptions o;
  // --print-ir without --emulate compiles for the chip and runs nothing:
  // the Engine plans on host buffers (the GPU kernels' specs, emulated).
  o.target = !s.nvptx                   ? Target::host
             : f.emulate || !s.onDevice ? Target::gpu_emulated
                                        : Target::nvptx;
  o.traceMemory = f.transactions;
  o.chip = f.chip;
  o.ptx = static_cast<unsigned>(f.ptx);
  o.validateIndices = !f.trustIndices;
  o.threads = f.threads;
  o.cache.directory = f.cacheDir;
  o.cache.useDiskCache = !f.noDiskCache;
  return o;
}

} // namespace emb::run
