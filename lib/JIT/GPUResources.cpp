//===- GPUResources.cpp - ptxas resource reports as data ------------------===//

#include "emb/JIT/GPUResources.h"
#include "emb/JIT/JIT.h"
#include "emb/Pipelines/Pipelines.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <limits>

using namespace emb;

namespace {

llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// ptxas: the toolkit's, else the one on PATH.
llvm::Expected<std::string> ptxasPath() {
  std::string root = mlir::emb::cudaToolkitPath();
  if (!root.empty() && llvm::sys::fs::can_execute(root + "/bin/ptxas"))
    return root + "/bin/ptxas";
  if (auto onPath = llvm::sys::findProgramByName("ptxas"))
    return *onPath;
  return error("ptxas was not found (install the CUDA toolkit, or put "
               "ptxas on PATH): resource reports need it");
}

/// A temporary file of `suffix` holding `text` (removed by the caller).
llvm::Expected<std::string> temporary(llvm::StringRef suffix,
                                      llvm::StringRef text) {
  llvm::SmallString<128> path;
  int fd;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("emb-resources", suffix, fd, path))
    return error("cannot create a temporary file: " + ec.message());
  llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
  os << text;
  return std::string(path);
}

int64_t number(llvm::StringRef s) {
  int64_t v = 0;
  s.trim().getAsInteger(10, v);
  return v;
}

/// Fills the figures of `r` from ptxas -v's report of entry `entry`.
void parseReport(llvm::StringRef report, llvm::StringRef entry,
                 GPUKernelResources &r) {
  llvm::Regex frame("([0-9]+) bytes stack frame, ([0-9]+) bytes spill "
                    "stores, ([0-9]+) bytes spill loads");
  llvm::Regex used("Used ([0-9]+) registers");
  llvm::Regex shared("([0-9]+) bytes smem");
  llvm::SmallVector<llvm::StringRef> m;
  bool inKernel = false;
  llvm::SmallVector<llvm::StringRef> lines;
  report.split(lines, '\n');
  for (llvm::StringRef line : lines) {
    if (line.contains("Compiling entry function") ||
        line.contains("Function properties for"))
      inKernel = line.contains(("'" + entry + "'").str()) ||
                 line.ends_with((" " + entry).str());
    if (!inKernel)
      continue;
    if (frame.match(line, &m)) {
      r.stackBytes = number(m[1]);
      r.spillStoreBytes = number(m[2]);
      r.spillLoadBytes = number(m[3]);
    }
    if (used.match(line, &m))
      r.registers = number(m[1]);
    if (shared.match(line, &m))
      r.sharedBytes = number(m[1]);
  }
}

/// The block size the PTX declares for `kernel` (.maxntid x, y, z).
int64_t declaredThreads(llvm::StringRef ptx, llvm::StringRef kernel) {
  size_t at = ptx.find(".entry " + kernel.str() + "(");
  if (at == llvm::StringRef::npos)
    return 0;
  llvm::StringRef rest = ptx.drop_front(at);
  size_t body = rest.find('{');
  llvm::Regex maxntid("\\.maxntid ([0-9]+), ([0-9]+), ([0-9]+)");
  llvm::SmallVector<llvm::StringRef> m;
  if (!maxntid.match(rest.take_front(body), &m))
    return 0;
  return number(m[1]) * number(m[2]) * number(m[3]);
}

} // namespace

llvm::Expected<SMLimits> emb::smLimits(llvm::StringRef chip) {
  // Per SM, from NVIDIA's CUDA C Programming Guide (compute capabilities
  // table): 64K 32-bit registers everywhere; resident warps, blocks and
  // shared memory vary.
  llvm::StringRef cc = chip;
  cc.consume_front("sm_");
  cc.consume_back("a");
  int64_t v = 0;
  if (cc.getAsInteger(10, v))
    return error("unknown chip '" + chip + "'");
  SMLimits l;
  switch (v) {
  case 70: case 72: l = {65536, 64, 32, 96 * 1024}; break;
  case 75: l = {65536, 32, 16, 64 * 1024}; break;
  case 80: l = {65536, 64, 32, 164 * 1024}; break;
  case 86: l = {65536, 48, 16, 100 * 1024}; break;
  case 87: l = {65536, 48, 16, 164 * 1024}; break;
  case 89: l = {65536, 48, 24, 100 * 1024}; break;
  case 90: l = {65536, 64, 32, 228 * 1024}; break;
  default:
    return error("no SM limits known for '" + chip +
                 "' (sm_70, 72, 75, 80, 86, 87, 89, 90)");
  }
  return l;
}

void emb::computeOccupancy(GPUKernelResources &r, const SMLimits &limits) {
  const int64_t none = std::numeric_limits<int64_t>::max();
  int64_t threads = r.threadsPerBlock > 0 ? r.threadsPerBlock : 256;
  int64_t warps = (threads + 31) / 32;
  // Registers are allocated per warp in units of 256.
  int64_t perWarp = (r.registers * 32 + 255) / 256 * 256;
  int64_t byRegisters = perWarp ? limits.registers / perWarp / warps : none;
  int64_t byWarps = limits.maxWarps / warps;
  int64_t byShared = r.sharedBytes ? limits.sharedBytes / r.sharedBytes : none;
  r.blocksPerSM = std::min({byRegisters, byWarps, byShared, limits.maxBlocks});
  // Ties go to the SM's fixed limits first: a kernel at them has nothing
  // to gain from fewer registers.
  r.limiter = r.blocksPerSM == byWarps       ? "warps"
              : r.blocksPerSM == limits.maxBlocks ? "blocks"
              : r.blocksPerSM == byRegisters ? "registers"
                                             : "shared memory";
  r.occupancy = static_cast<double>(r.blocksPerSM * warps) / limits.maxWarps;
}

llvm::Expected<std::vector<GPUKernelResources>>
emb::gpuKernelResources(const KernelSpec &spec, llvm::StringRef chip) {
  auto ptxas = ptxasPath();
  if (!ptxas)
    return ptxas.takeError();
  auto limits = smLimits(chip);
  if (!limits)
    return limits.takeError();
  auto binaries = compileForNVPTX(spec, chip, 0, "isa");
  if (!binaries)
    return binaries.takeError();
  std::vector<GPUKernelResources> out;
  for (const GPUKernelBinary &binary : *binaries) {
    auto ptx = temporary("ptx", binary.data);
    if (!ptx)
      return ptx.takeError();
    auto report = temporary("txt", "");
    if (!report)
      return report.takeError();
    std::string cubin = *ptx + ".cubin";
    llvm::SmallVector<llvm::StringRef> args{*ptxas,     "-v", "--gpu-name",
                                            chip,       "-o", cubin,
                                            *ptx};
    std::string message;
    std::optional<llvm::StringRef> redirects[] = {std::nullopt, *report,
                                                  *report};
    int rc = llvm::sys::ExecuteAndWait(*ptxas, args, std::nullopt, redirects,
                                       0, 0, &message);
    auto text = llvm::MemoryBuffer::getFile(*report);
    std::string reportText = text ? (*text)->getBuffer().str() : "";
    llvm::sys::fs::remove(*ptx);
    llvm::sys::fs::remove(*report);
    llvm::sys::fs::remove(cubin);
    if (rc != 0)
      return error("ptxas failed on " + binary.kernel + " for " + chip + ": " +
                   (message.empty() ? reportText : message));
    // A binary may hold several entry functions; one report each, named
    // by the binary (the entries of a spec's binaries share a name).
    llvm::Regex entry("\\.entry ([A-Za-z0-9_$.]+)\\(");
    llvm::StringRef rest = binary.data;
    llvm::SmallVector<llvm::StringRef> m;
    while (entry.match(rest, &m)) {
      GPUKernelResources r;
      std::string name = m[1].str();
      r.kernel = name == binary.kernel || binary.kernel.rfind(name, 0) == 0
                     ? binary.kernel
                     : binary.kernel + "." + name;
      r.chip = chip.str();
      parseReport(reportText, name, r);
      r.threadsPerBlock = declaredThreads(binary.data, name);
      computeOccupancy(r, *limits);
      out.push_back(std::move(r));
      rest = rest.drop_front(rest.find(m[0]) + m[0].size());
    }
  }
  return out;
}
