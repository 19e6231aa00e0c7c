//===- JIT.h - from a KernelSpec to callable machine code -------*- C++ -*-===//
//
// spec -> specialised emb module -> emb-cpu-pipeline -> LLVM IR (O3, host
// CPU features) -> object -> shared object (ld.lld) -> dlopen. One
// mechanism gives both caches: the in-memory cache holds the function
// pointer, the disk cache the shared object (a hit is a dlopen).
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
#include <map>
#include <memory>
#include <mutex>
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
};

/// Thread-safe cache of compiled kernels. Concurrent callers of one spec
/// wait for a single compilation.
class KernelCache {
public:
  explicit KernelCache(KernelCacheOptions options = {});
  ~KernelCache();

  /// The kernel of `spec`: from memory, else from disk, else compiled.
  llvm::Expected<KernelFn> get(const KernelSpec &spec);

  static std::string defaultDirectory();
  /// The disk-cache file of `spec`: `<dir>/<symbol>-<version hash>.so`.
  std::string entryPath(const KernelSpec &spec) const;
  const std::string &directory() const { return options.directory; }

  struct Stats {
    std::atomic<uint64_t> memoryHits{0}, diskHits{0}, compiles{0},
        rejectedDiskEntries{0},
        /// Disk-cache directory or entry that could not be written: the
        /// kernel was kept in memory only.
        diskErrors{0};
  };
  const Stats &stats() const { return counters; }

private:
  struct Entry;
  llvm::Expected<KernelFn> load(const KernelSpec &spec);

  KernelCacheOptions options;
  std::mutex mutex;
  std::condition_variable ready;
  std::map<std::string, std::shared_ptr<Entry>> entries;
  Stats counters;
};

} // namespace emb

#endif // EMB_JIT_JIT_H
