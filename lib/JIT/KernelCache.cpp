//===- KernelCache.cpp - in-memory and disk caches of kernels -------------===//
//
// A kernel is a shared object linked by ld.lld from the compiled object.
// Disk entries are `<dir>/<symbol>-<version hash>.so`, a shared object
// followed by a footer (ELF loaders
// ignore trailing bytes):
//
//   [shared object][spec text][compiler version]
//   [u64 object size][u64 text size][u64 version size][u64 FNV-1a of all
//   before]["EMBMLIR\0"]
//
// An entry is loaded only when the footer, the checksum, the spec text and
// the compiler version all match; anything else is ignored and rebuilt.
// Entries are written to a temporary file and renamed into place (atomic).
//
// In memory, at most maxLoadedKernels host kernels stay loaded: an LRU list
// of their keys; an evicted kernel is dlclosed when the last handle to it
// (Kernel, which callers hold while it runs) goes.
//
//===----------------------------------------------------------------------===//

#include "emb/JIT/JIT.h"
#include "emb/JIT/MemoryTrace.h"

#include "BuildId.h"
#include "Sanitizers.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace emb;

namespace {

uint64_t fnv1a(llvm::StringRef bytes);

/// The version written into and checked in every disk entry: the release,
/// a hash of the code generator's sources (BuildId.h), and the host CPU
/// with its features (kernels are compiled for it: an entry made on an
/// AVX-512 machine must not be loaded on another).
const std::string &compilerVersion() {
  static const std::string version = [] {
    std::vector<std::string> enabled;
    for (const auto &feature : llvm::sys::getHostCPUFeatures())
      if (feature.second)
        enabled.push_back(feature.first().str());
    std::sort(enabled.begin(), enabled.end());
    std::string features;
    for (const std::string &f : enabled)
      features += f + ",";
    char hex[20];
    std::snprintf(hex, sizeof(hex), "%016llx",
                  static_cast<unsigned long long>(fnv1a(features)));
    // Kernels that call the ASan runtime are kept apart (Sanitizers.h).
    return std::string(kCompilerVersion) + "+" + EMB_CODEGEN_BUILD_ID + "+" +
           llvm::sys::getHostCPUName().str() + "+" + hex +
           (EMB_JIT_KERNELS_USE_ASAN ? "+asan" : "");
  }();
  return version;
}

constexpr char kMagic[8] = {'E', 'M', 'B', 'M', 'L', 'I', 'R', '\0'};

llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

uint64_t fnv1a(llvm::StringRef bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void appendU64(std::string &s, uint64_t v) {
  s.append(reinterpret_cast<const char *>(&v), sizeof(v));
}

uint64_t readU64(llvm::StringRef s, size_t at) {
  uint64_t v;
  std::memcpy(&v, s.data() + at, sizeof(v));
  return v;
}

/// The footer-checked content of a disk entry, or an empty optional.
bool entryIsValid(llvm::StringRef file, const std::string &specText) {
  const size_t tail = 4 * 8 + sizeof(kMagic);
  if (file.size() < tail ||
      std::memcmp(file.data() + file.size() - sizeof(kMagic), kMagic,
                  sizeof(kMagic)) != 0)
    return false;
  size_t at = file.size() - tail;
  uint64_t objSize = readU64(file, at), textSize = readU64(file, at + 8),
           versionSize = readU64(file, at + 16), sum = readU64(file, at + 24);
  if (objSize + textSize + versionSize != at)
    return false;
  if (fnv1a(file.take_front(at + 24)) != sum)
    return false;
  return file.substr(objSize, textSize) == specText &&
         file.substr(objSize + textSize, versionSize) == compilerVersion();
}

std::string findLinker() {
  if (const char *env = std::getenv("EMB_LLD"))
    return env;
  if (llvm::sys::fs::can_execute("/usr/lib/llvm-22/bin/ld.lld"))
    return "/usr/lib/llvm-22/bin/ld.lld";
  for (const char *name : {"ld.lld-22", "ld.lld"})
    if (auto path = llvm::sys::findProgramByName(name))
      return *path;
  return "";
}

/// Links `object` into a shared object; returns its bytes.
llvm::Expected<std::string> linkSharedObject(const std::string &object,
                                             const std::string &workDir) {
  std::string linker = findLinker();
  if (linker.empty())
    return error("ld.lld not found (install lld-22 or set EMB_LLD)");
  llvm::SmallString<128> objPath, soPath;
  int fd;
  if (auto ec = llvm::sys::fs::createUniqueFile(workDir + "/emb-%%%%%%%%.o", fd,
                                                objPath))
    return error("cannot create a temporary file in " + workDir + ": " +
                 ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << object;
  }
  soPath = objPath;
  llvm::sys::path::replace_extension(soPath, "so");
  std::string message;
  // MLIR's runtime helpers (memrefCopy for strided copies, as the sparse
  // gradients' writes into the caller's buffers need) come from
  // libmlir_c_runner_utils of the same LLVM installation.
  std::string libDir = std::string(EMB_LLVM_LIBRARY_DIR);
  std::string libFlag = "-L" + libDir, rpath = "-rpath=" + libDir;
  llvm::StringRef args[] = {
      linker,  "-shared", "--hash-style=gnu",      "-o", soPath,
      objPath, libFlag,   "-lmlir_c_runner_utils", rpath};
  int rc =
      llvm::sys::ExecuteAndWait(linker, args, std::nullopt, {}, 0, 0, &message);
  llvm::sys::fs::remove(objPath);
  if (rc != 0) {
    llvm::sys::fs::remove(soPath);
    return error("ld.lld failed (" + llvm::Twine(rc) + "): " + message);
  }
  auto buffer = llvm::MemoryBuffer::getFile(soPath);
  llvm::sys::fs::remove(soPath);
  if (!buffer)
    return error("cannot read the linked kernel: " +
                 buffer.getError().message());
  return (*buffer)->getBuffer().str();
}

/// A dlopened kernel: the handle, its packed entry point, and whether it
/// launches GPU kernels.
struct OpenedKernel {
  void *handle;
  KernelFn fn;
  bool gpu;
};

/// dlopens `path` and finds the kernel's packed entry point (KernelABI.h).
/// An nvptx kernel gets the runtime's functions in its table; a traced
/// emulated one the memory-trace collector's.
llvm::Expected<OpenedKernel> openKernel(const std::string &path,
                                        const KernelSpec &spec,
                                        const GPURuntimeTable *gpuRuntime) {
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    return error(llvm::Twine("dlopen failed: ") + dlerror());
  std::string symbol = KernelABI::packedEntryName(spec);
  void *fn = dlsym(handle, symbol.c_str());
  if (!fn) {
    dlclose(handle);
    return error("kernel symbol " + symbol + " not found in " + path);
  }
  void *table = dlsym(handle, kGPURuntimeTableSymbol);
  if (table) {
    if (!gpuRuntime) {
      dlclose(handle);
      return error("the kernel of " + spec.str() +
                   " launches GPU kernels, but this kernel cache has no GPU "
                   "runtime (KernelCacheOptions::gpuRuntime)");
    }
    // GPURuntimeTable is laid out as the table: one pointer per slot.
    std::memcpy(table, gpuRuntime, sizeof(GPURuntimeTable));
  }
  // A kernel emulated with its memory traced reports to the collector.
  if (void *trace = dlsym(handle, kMemoryTraceTableSymbol))
    std::memcpy(trace, &memoryTraceTable(), sizeof(MemoryTraceTable));
  return OpenedKernel{handle, reinterpret_cast<KernelFn>(fn), table != nullptr};
}

bool envFlag(const char *name) {
  const char *value = std::getenv(name);
  return value && *value && std::strcmp(value, "0") != 0;
}

double envSeconds(const char *name, double otherwise) {
  const char *value = std::getenv(name);
  if (!value || !*value)
    return otherwise;
  char *end = nullptr;
  double seconds = std::strtod(value, &end);
  return end && *end == '\0' && seconds >= 0 ? seconds : otherwise;
}

/// The largest disk entry read: kernels are kilobytes to a few megabytes;
/// anything bigger is not ours.
constexpr uint64_t kMaxEntryBytes = 256ull << 20;

/// Whether `st` describes something only this user can change: owned by
/// the effective user, not writable by group or others.
bool ownedAndPrivate(const struct stat &st) {
  return st.st_uid == geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/// An entry file opened for reading: a regular file (no symlink, FIFO or
/// device, which could block or read without end), owned by this user and
/// writable only by it, of at most kMaxEntryBytes.
struct OpenedEntry {
  int fd = -1;
  std::unique_ptr<llvm::MemoryBuffer> bytes;
  ~OpenedEntry() {
    if (fd >= 0)
      ::close(fd);
  }
};

enum class EntryState { missing, refused, opened };

/// Opens `path` as an entry (`entry.bytes` when opened).
EntryState openEntry(const std::string &path, OpenedEntry &entry) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? EntryState::missing : EntryState::refused;
  entry.fd = fd;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !ownedAndPrivate(st) ||
      static_cast<uint64_t>(st.st_size) > kMaxEntryBytes)
    return EntryState::refused;
  auto bytes =
      llvm::MemoryBuffer::getOpenFile(fd, path, st.st_size,
                                      /*RequiresNullTerminator=*/false);
  if (!bytes)
    return EntryState::refused;
  entry.bytes = std::move(*bytes);
  return EntryState::opened;
}

/// Writes `bytes` to `path` atomically (temporary file + rename).
llvm::Error writeAtomically(const std::string &path, const std::string &bytes) {
  llvm::SmallString<128> tmp;
  int fd;
  // Owner-only whatever the umask: entries others may write are refused.
  if (auto ec = llvm::sys::fs::createUniqueFile(
          path + ".tmp-%%%%%%%%", fd, tmp, llvm::sys::fs::OF_None,
          llvm::sys::fs::owner_read | llvm::sys::fs::owner_write))
    return error("cannot write the disk cache: " + ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << bytes;
    os.flush();
    if (os.has_error()) {
      llvm::sys::fs::remove(tmp);
      return error("cannot write " + tmp + ": " + os.error().message());
    }
  }
  if (auto ec = llvm::sys::fs::rename(tmp, path)) {
    llvm::sys::fs::remove(tmp);
    return error("cannot rename into the disk cache: " + ec.message());
  }
  return llvm::Error::success();
}

} // namespace

struct KernelCache::Entry {
  bool done = false;
  Kernel kernel;
  std::string error;
  /// Whether `position` is this entry's place in `recency`.
  bool inRecency = false;
  std::list<std::string>::iterator position;
};

KernelCache::KernelCache(KernelCacheOptions opts) : options(std::move(opts)) {
  if (options.directory.empty())
    options.directory = defaultDirectory();
}

// The entries' handles go with the cache: each kernel is unloaded once the
// callers' handles to it are gone too.
KernelCache::~KernelCache() = default;

std::string KernelCache::defaultDirectory() {
  if (const char *dir = std::getenv("EMB_MLIR_CACHE_DIR"))
    return dir;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"))
    return std::string(xdg) + "/emb-mlir";
  if (const char *home = std::getenv("HOME"))
    return std::string(home) + "/.cache/emb-mlir";
  // No shared default: another user could plant entries in it.
  return "/tmp/emb-mlir-cache-" + std::to_string(geteuid());
}

llvm::Expected<Kernel> KernelCache::get(const KernelSpec &spec) {
  std::string key = spec.str();
  std::shared_ptr<Entry> entry;
  {
    std::unique_lock<std::mutex> lock(mutex);
    auto it = entries.find(key);
    if (it != entries.end()) {
      entry = it->second;
      ready.wait(lock, [&] { return entry->done; });
      if (!entry->error.empty())
        return error(entry->error);
      ++counters.memoryHits;
      if (entry->inRecency)
        recency.splice(recency.begin(), recency, entry->position);
      return entry->kernel;
    }
    entry = std::make_shared<Entry>();
    entries.emplace(key, entry);
  }
  // Only this caller builds the entry; others wait on `ready`.
  llvm::Expected<Loaded> loaded = load(spec);
  std::lock_guard<std::mutex> lock(mutex);
  entry->done = true;
  if (loaded) {
    entry->kernel = loaded->kernel;
    if (!loaded->pinned) {
      recency.push_front(key);
      entry->position = recency.begin();
      entry->inRecency = true;
      evictLocked();
    }
  } else {
    entry->error = llvm::toString(loaded.takeError());
    // Failed builds are not cached: a later call tries again.
    entries.erase(key);
  }
  ready.notify_all();
  if (!entry->error.empty())
    return error(entry->error);
  return entry->kernel;
}

void KernelCache::evictLocked() {
  size_t bound = options.maxLoadedKernels;
  while (bound > 0 && recency.size() > bound) {
    auto it = entries.find(recency.back());
    it->second->inRecency = false;
    // Unloaded when the last caller's handle goes.
    entries.erase(it);
    recency.pop_back();
    ++counters.evictions;
  }
}

size_t KernelCache::loadedKernels() {
  std::lock_guard<std::mutex> lock(mutex);
  size_t n = 0;
  for (const auto &entry : entries)
    n += entry.second->done;
  return n;
}

std::string KernelCache::entryPath(const KernelSpec &spec) const {
  // The file name carries the compiler version too: two builds (or two
  // CPUs) sharing a directory never replace each other's entries, so the
  // file validated is the file loaded.
  char hex[20];
  std::snprintf(
      hex, sizeof(hex), "%08llx",
      static_cast<unsigned long long>(fnv1a(compilerVersion()) >> 32));
  return options.directory + "/" + spec.symbolName() + "-" + hex + ".so";
}

llvm::Expected<KernelCache::Loaded> KernelCache::load(const KernelSpec &spec) {
  // A host kernel is dlclosed with its last handle; an nvptx one never:
  // its modules, loaded in CUDA contexts, are found through its globals.
  auto loaded = [](const OpenedKernel &k) {
    std::shared_ptr<void> object(k.handle, [gpu = k.gpu](void *handle) {
      if (!gpu)
        dlclose(handle);
    });
    return Loaded{Kernel(std::move(object), k.fn), k.gpu};
  };
  std::string text = spec.str();
  static const bool verbose = std::getenv("EMB_JIT_VERBOSE") != nullptr;
  bool useDisk = options.useDiskCache;
  if (useDisk) {
    // The disk cache is an optimisation: without a directory that only
    // this user can write (created 0700 when missing), compile in memory.
    std::string why;
    struct stat st;
    if (auto ec = llvm::sys::fs::create_directories(options.directory,
                                                    /*IgnoreExisting=*/true,
                                                    llvm::sys::fs::owner_all))
      why = "cannot create it: " + ec.message();
    else if (::stat(options.directory.c_str(), &st) != 0 ||
             !S_ISDIR(st.st_mode))
      why = "it is not a directory";
    else if (!ownedAndPrivate(st))
      why = "it is not owned by this user, or others may write to it";
    if (!why.empty()) {
      ++counters.diskErrors;
      useDisk = false;
      if (verbose)
        llvm::errs() << "emb-jit: not using the kernel cache directory "
                     << options.directory << " (" << why
                     << "); compiling in memory only\n";
    }
  }
  std::string path = useDisk ? entryPath(spec) : std::string();
  if (useDisk) {
    OpenedEntry entry;
    EntryState state = openEntry(path, entry);
    if (state == EntryState::opened) {
      if (entryIsValid(entry.bytes->getBuffer(), text)) {
        // Loaded by path: the directory is this user's alone (checked
        // above), so what was validated is what is loaded.
        if (auto opened = openKernel(path, spec, options.gpuRuntime)) {
          ++counters.diskHits;
          return loaded(*opened);
        } else {
          llvm::consumeError(opened.takeError());
        }
      }
      ++counters.rejectedDiskEntries;
    } else if (state == EntryState::refused) {
      ++counters.rejectedDiskEntries; // there, but not a file of ours
    }
  }

  if (verbose)
    llvm::errs() << "emb-jit: compiling " << spec.str() << "\n";
  auto object = compile(spec);
  if (!object)
    return object.takeError();
  // Linked in the system's temporary directory: the cache directory may be
  // read-only, or gone (the kernel is then kept in memory).
  llvm::SmallString<128> workDir;
  llvm::sys::path::system_temp_directory(/*ErasedOnReboot=*/true, workDir);
  auto shared = linkSharedObject(*object, std::string(workDir));
  if (!shared)
    return shared.takeError();
  ++counters.compiles;

  std::string bytes = *shared;
  size_t objSize = bytes.size();
  bytes += text;
  bytes += compilerVersion();
  appendU64(bytes, objSize);
  appendU64(bytes, text.size());
  appendU64(bytes, compilerVersion().size());
  appendU64(bytes, fnv1a(bytes));
  bytes.append(kMagic, sizeof(kMagic));

  if (useDisk) {
    if (llvm::Error err = writeAtomically(path, bytes)) {
      ++counters.diskErrors;
      if (verbose)
        llvm::errs() << "emb-jit: " << llvm::toString(std::move(err))
                     << "; keeping the kernel in memory only\n";
    } else if (auto opened = openKernel(path, spec, options.gpuRuntime)) {
      return loaded(*opened);
    } else {
      // Removed or replaced since it was written: keep it in memory.
      ++counters.diskErrors;
      llvm::consumeError(opened.takeError());
    }
  }
  // Memory only: a private file, unlinked as soon as it is mapped.
  llvm::SmallString<128> tmp;
  int fd;
  if (auto ec = llvm::sys::fs::createUniqueFile("/tmp/emb-kernel-%%%%%%%%.so",
                                                fd, tmp))
    return error("cannot create a temporary kernel file: " + ec.message());
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << bytes;
    os.flush();
    if (os.has_error()) {
      os.clear_error();
      llvm::sys::fs::remove(tmp);
      return error("cannot write the temporary kernel file " + tmp);
    }
  }
  auto opened = openKernel(tmp.str().str(), spec, options.gpuRuntime);
  llvm::sys::fs::remove(tmp);
  if (!opened)
    return opened.takeError();
  return loaded(*opened);
}

llvm::Expected<std::string> KernelCache::compile(const KernelSpec &spec) {
  bool inChild =
      options.compileInChild.value_or(envFlag("EMB_MLIR_COMPILE_IN_CHILD"));
  if (!inChild) {
    if (options.beforeCompile)
      options.beforeCompile(spec);
    return compileToObject(spec);
  }
  double timeout = options.compileTimeoutSeconds.value_or(
      envSeconds("EMB_MLIR_COMPILE_TIMEOUT", 300));
  return compileToObjectInChild(spec, timeout, options.beforeCompile);
}
