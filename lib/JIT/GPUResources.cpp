//===- GPUResources.cpp - ptxas resource reports as data ------------------===//

#include "emb/JIT/GPUResources.h"
#include "emb/JIT/JIT.h"
#include "emb/Pipelines/Pipelines.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <limits>
#include <map>

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

/// The bytes one thread moves with a PTX load opcode (`ld.global.nc.v4.f32`:
/// 16), or 0 when it is not a global load.
int64_t globalLoadBytes(llvm::StringRef opcode) {
  llvm::SmallVector<llvm::StringRef> parts;
  opcode.split(parts, '.');
  if (parts.size() < 3 || parts[0] != "ld" || parts[1] != "global")
    return 0;
  int64_t lanes = 1, bytes = 0;
  for (llvm::StringRef p : llvm::ArrayRef(parts).drop_front(2)) {
    if (p == "v2" || p == "v4" || p == "v8")
      lanes = p.back() - '0';
    else if (p.size() >= 2 && llvm::StringRef("bsuf").contains(p[0])) {
      llvm::StringRef bits = p.drop_while([](char c) { return !isdigit(c); });
      int64_t pairs = bits.consume_back("x2") ? 2 : 1;
      int64_t n = 0;
      if (!bits.getAsInteger(10, n))
        bytes = n / 8 * pairs;
    }
  }
  return lanes * bytes;
}

/// The register names (`%rd12`, `%f3`) in `text`.
llvm::SmallVector<llvm::StringRef> registers(llvm::StringRef text) {
  llvm::SmallVector<llvm::StringRef> regs;
  while (true) {
    size_t at = text.find('%');
    if (at == llvm::StringRef::npos)
      return regs;
    text = text.drop_front(at);
    size_t end = 1;
    while (end < text.size() && (isalnum(text[end]) || text[end] == '_'))
      ++end;
    regs.push_back(text.take_front(end));
    text = text.drop_front(end);
  }
}

} // namespace

LoadParallelism emb::loadsInFlight(llvm::StringRef ptx, llvm::StringRef entry,
                                   int64_t bytes) {
  size_t at = ptx.find(".entry " + entry.str() + "(");
  if (at == llvm::StringRef::npos)
    return {};
  llvm::StringRef rest = ptx.drop_front(at);
  rest = rest.drop_front(rest.find('{'));
  rest = rest.take_front(rest.find("\n}"));
  // The body's statements, without comments.
  llvm::SmallVector<llvm::StringRef> lines, body;
  rest.split(lines, '\n');
  for (llvm::StringRef line : lines) {
    line = line.take_front(line.find("//")).trim();
    if (!line.empty())
      body.push_back(line);
  }
  auto opcodeOf = [](llvm::StringRef line) {
    if (line.starts_with("@"))
      line = line.drop_until([](char c) { return c == ' ' || c == '\t'; })
                 .ltrim();
    return line.take_until([](char c) { return c == ' ' || c == '\t'; });
  };
  auto isRowLoad = [&](llvm::StringRef line) {
    return globalLoadBytes(opcodeOf(line)) == bytes;
  };
  // Loops: a branch back to a label above it. Of the innermost ones that
  // hold row loads, the one with the most is scanned (an unrolled loop
  // rather than its remainder).
  size_t first = 0, last = body.size();
  int64_t firstLoads = 0;
  auto rowLoadsIn = [&](size_t i, size_t j) {
    int64_t n = 0;
    for (size_t k = i; k <= j; ++k)
      n += isRowLoad(body[k]);
    return n;
  };
  std::vector<std::pair<size_t, size_t>> loops;
  for (size_t j = 0; j < body.size(); ++j) {
    llvm::StringRef op = opcodeOf(body[j]);
    if (!op.starts_with("bra"))
      continue;
    llvm::StringRef target = body[j]
                                 .drop_front(body[j].find(op) + op.size())
                                 .trim()
                                 .rtrim(';')
                                 .trim();
    for (size_t i = 0; i < j; ++i)
      if (body[i] == (target + ":").str() && rowLoadsIn(i, j) > 0)
        loops.push_back({i, j});
  }
  for (auto [i, j] : loops) {
    bool innermost = llvm::none_of(loops, [&](auto inner) {
      return inner != std::make_pair(i, j) && inner.first >= i &&
             inner.second <= j;
    });
    int64_t n = rowLoadsIn(i, j);
    if (innermost && n > firstLoads) {
      std::tie(first, last) = std::make_pair(i, j + 1);
      firstLoads = n;
    }
  }
  // In program order: a load is outstanding from its issue to the first
  // statement that reads one of its registers. Independently of the
  // order: each row load's chain depth (the row loads its address derives
  // from); the loads at one depth can all be in flight together.
  LoadParallelism result;
  std::vector<llvm::SmallVector<llvm::StringRef>> outstanding;
  llvm::StringMap<int64_t> depthOf;
  std::map<int64_t, int64_t> loadsAtDepth;
  for (size_t k = first; k < last; ++k) {
    llvm::StringRef line = body[k];
    llvm::StringRef op = opcodeOf(line);
    if (op.ends_with(":"))
      continue; // a label
    bool row = isRowLoad(line);
    llvm::StringRef operands =
        line.drop_front(line.find(op) + op.size()).trim();
    // The destination (`{%f1, %f2}` or `%f1`) is not a use; stores and
    // branches have none.
    llvm::StringRef dest, sources = operands;
    bool hasDest = !op.starts_with("st.") && !op.starts_with("bra") &&
                   !op.starts_with("ret") && !op.starts_with("red.");
    if (hasDest) {
      size_t end = operands.starts_with("{") ? operands.find('}') + 1
                                             : operands.find(',');
      if (end != llvm::StringRef::npos) {
        dest = operands.take_front(end);
        sources = operands.drop_front(end);
      }
    }
    llvm::SmallVector<llvm::StringRef> used = registers(sources);
    llvm::erase_if(outstanding, [&](const auto &regs) {
      return llvm::any_of(regs, [&](llvm::StringRef r) {
        return llvm::is_contained(used, r);
      });
    });
    int64_t depth = -1;
    for (llvm::StringRef r : used)
      depth = std::max(depth, depthOf.lookup(r) - 1);
    if (row) {
      outstanding.push_back(registers(dest));
      result.inOrder =
          std::max<int64_t>(result.inOrder, outstanding.size());
      ++depth;
      result.independent = std::max(result.independent, ++loadsAtDepth[depth]);
    }
    // depthOf holds depth + 1 (0: no row load behind the register).
    for (llvm::StringRef r : registers(dest))
      depthOf[r] = depth + 1;
  }
  return result;
}

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
      r.ptx = binary.data;
      r.entry = name;
      computeOccupancy(r, *limits);
      out.push_back(std::move(r));
      rest = rest.drop_front(rest.find(m[0]) + m[0].size());
    }
  }
  return out;
}
