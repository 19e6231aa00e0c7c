//===- JIT.h - from a KernelSpec to callable machine code -------*- C++ -*-===//
//
// spec -> specialised emb module -> emb-cpu-pipeline -> LLVM IR (O3, host
// CPU features) -> object -> shared object (ld.lld) -> dlopen. One
// mechanism gives both caches: the in-memory cache holds the loaded shared
// objects (at most KernelCacheOptions::maxLoadedKernels, least recently
// used unloaded first), the disk cache their files (a hit is a dlopen).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_JIT_JIT_H
#define EMB_JIT_JIT_H

#include "emb/JIT/KernelABI.h"
#include "emb/JIT/KernelSpec.h"
#include "emb/Runtime/GPURuntimeABI.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace mlir {
class MLIRContext;
class ModuleOp;
template <typename OpTy> class OwningOpRef;
} // namespace mlir

namespace emb {

/// Release of the code generator; with a hash of its sources and the host
/// CPU, part of every disk-cache entry, so that a different compiler or CPU
/// never loads another's kernels.
constexpr const char *kCompilerVersion = "emb-mlir-0.2";

/// Builds the specialised module of `spec`: one function `spec.symbolName()`
/// on memrefs (with a C interface), its arguments those of the spec's
/// KernelABI, whose body is the emb op on tensors.
mlir::OwningOpRef<mlir::ModuleOp> buildKernelModule(mlir::MLIRContext &context,
                                                    const KernelSpec &spec);

/// Compiles `spec` to a relocatable object for the host CPU, which exports
/// the kernel's packed entry point (KernelABI::packedEntryName). When
/// `printIR` is set, the IR is printed there at every stage.
llvm::Expected<std::string>
compileToObject(const KernelSpec &spec, llvm::raw_ostream *printIR = nullptr);

/// compileToObject in a child process (fork), for crash isolation: a crash
/// or abort of the compiler there, or a compilation past `timeoutSeconds`
/// (> 0; the child is then killed), is an error here. `beforeCompile` (if
/// any) runs in the child first.
llvm::Expected<std::string> compileToObjectInChild(
    const KernelSpec &spec, double timeoutSeconds,
    const std::function<void(const KernelSpec &)> &beforeCompile = {});

/// The NVIDIA code of one kernel of a spec: a `gpu.binary` of
/// emb-nvptx-pipeline.
struct GPUKernelBinary {
  std::string kernel; ///< the kernel's (and the gpu.binary's) name
  std::string data;   ///< PTX text (format "isa") or a cubin ("bin")
};

/// Compiles the GPU kernels of `spec` for `chip` (sm_70 ... sm_120a) with
/// PTX ISA `ptx` (times ten; 0: the chip's default) in `format` ("isa":
/// PTX; "bin": a cubin, which needs ptxas). An unknown chip or a chip / PTX
/// mismatch is an error. When `printIR` is set, the IR is printed there
/// after the emb -> gpu, outlining and NVVM stages. A spec may be several
/// kernels (a dense gradient: zeros, counts, the atomic scatter, the f16 /
/// bf16 rounding; renorm: row flags, then the rescaling; the deterministic
/// and sparse gradients: their sort and compaction steps).
llvm::Expected<std::vector<GPUKernelBinary>>
compileForNVPTX(const KernelSpec &spec, llvm::StringRef chip, unsigned ptx,
                llvm::StringRef format, llvm::raw_ostream *printIR = nullptr);

/// Whether ptxas is installed (in mlir::emb::cudaToolkitPath(), or on
/// PATH): the nvptx kernels are then cubins, else PTX.
bool havePtxas();

/// A loaded kernel: call it with the packed arguments (KernelABI.h). Its
/// shared object stays mapped while any copy of this handle lives, even if
/// the cache unloads it meanwhile: hold the handle, not the function
/// pointer, for as long as the kernel may run.
class Kernel {
public:
  Kernel() = default;
  void operator()(void **args) const { fn(args); }
  KernelFn function() const { return fn; }
  explicit operator bool() const { return fn != nullptr; }

private:
  friend class KernelCache;
  Kernel(std::shared_ptr<void> object, KernelFn fn)
      : object(std::move(object)), fn(fn) {}
  std::shared_ptr<void> object; ///< the dlopen handle (dlclosed with it)
  KernelFn fn = nullptr;
};

/// The default of KernelCacheOptions::maxLoadedKernels: a host kernel maps
/// 4-5 regions, so about 5,000 of the 65,530 that Linux allows a process
/// by default (vm.max_map_count).
constexpr size_t kDefaultMaxLoadedKernels = 1024;

struct KernelCacheOptions {
  /// Directory of the disk cache; empty: the default (`$EMB_MLIR_CACHE_DIR`,
  /// else `$XDG_CACHE_HOME/emb-mlir`, else `~/.cache/emb-mlir`, else
  /// `/tmp/emb-mlir-cache-<uid>`). Loading an entry runs its code, so the
  /// cache trusts only what this user alone can write (docs/reliability.md):
  /// the directory is created 0700 and used only while owned by this user
  /// and not writable by group or others; entries are written 0600 and
  /// loaded only as regular files of this user, not writable by others, of
  /// a bounded size, with their footer, checksum, spec and compiler version
  /// matching. Any disk problem (a directory refused or unwritable, a path
  /// that is a file, an entry removed meanwhile) falls back to compiling in
  /// memory: the call never fails for the cache's sake.
  std::string directory;
  /// False: compile into memory only (nothing is written to disk).
  bool useDiskCache = true;
  /// The runtime functions copied into the `__emb_gpu_runtime` table of
  /// every nvptx kernel loaded (emb/Runtime/GPURuntimeABI.h; the CUDA
  /// shim's emb::cuda::runtimeTable()). Null: loading one is an error.
  const GPURuntimeTable *gpuRuntime = nullptr;
  /// The most kernels kept loaded; past it the least recently used host
  /// kernel is unloaded once no caller holds it (a later call loads it
  /// again from disk, or compiles it). nvptx kernels stay loaded: their
  /// modules live in the CUDA contexts. 0: no bound.
  size_t maxLoadedKernels = kDefaultMaxLoadedKernels;
  /// Compile in a child process, so that a crash (or an abort) of the
  /// compiler is an error of the call instead of the end of the process,
  /// and a compilation past `compileTimeoutSeconds` is stopped. Costs a
  /// fork per compile (a few ms; nothing on a hit). Unset: the environment
  /// variable `EMB_MLIR_COMPILE_IN_CHILD` (1: yes); otherwise no.
  std::optional<bool> compileInChild = std::nullopt;
  /// In a child process only: the limit of one compilation, in seconds
  /// (0: none). Unset: `EMB_MLIR_COMPILE_TIMEOUT`, else 300.
  std::optional<double> compileTimeoutSeconds = std::nullopt;
  /// Called with each spec about to be compiled, where it is compiled (in
  /// the child process when compileInChild): for tests and tracing.
  std::function<void(const KernelSpec &)> beforeCompile = nullptr;
};

/// Thread-safe cache of compiled kernels. Concurrent callers of one spec
/// wait for a single compilation. Destroying the cache unloads its kernels
/// once no handle (Kernel) holds them.
class KernelCache {
public:
  explicit KernelCache(KernelCacheOptions options = {});
  ~KernelCache();

  /// The kernel of `spec`: from memory, else from disk, else compiled.
  llvm::Expected<Kernel> get(const KernelSpec &spec);

  static std::string defaultDirectory();
  /// The disk-cache file of `spec`: `<dir>/<symbol>-<version hash>.so`.
  std::string entryPath(const KernelSpec &spec) const;
  const std::string &directory() const { return options.directory; }

  struct Stats {
    std::atomic<uint64_t> memoryHits{0}, diskHits{0}, compiles{0},
        rejectedDiskEntries{0},
        /// Disk-cache directory or entry that could not be written: the
        /// kernel was kept in memory only.
        diskErrors{0},
        /// Kernels dropped from memory to stay within maxLoadedKernels.
        evictions{0};
  };
  const Stats &stats() const { return counters; }
  /// Kernels held in memory now (at most maxLoadedKernels, besides nvptx
  /// ones and those being built).
  size_t loadedKernels();

private:
  struct Entry;
  struct Loaded {
    Kernel kernel;
    bool pinned = false; ///< never unloaded (nvptx)
  };
  llvm::Expected<Loaded> load(const KernelSpec &spec);
  llvm::Expected<std::string> compile(const KernelSpec &spec);
  void evictLocked();

  KernelCacheOptions options;
  std::mutex mutex;
  std::condition_variable ready;
  std::map<std::string, std::shared_ptr<Entry>> entries;
  /// Keys of the unpinned loaded entries, most recently used first.
  std::list<std::string> recency;
  Stats counters;
};

} // namespace emb

#endif // EMB_JIT_JIT_H
