//===- GPUResources.h - ptxas resource reports as data ----------*- C++ -*-===//
//
// What a generated GPU kernel asks of an SM, without a GPU: ptxas -v's
// registers, stack, spills and shared memory for each kernel of a spec on
// a chip, the block size the PTX declares (.maxntid), and the theoretical
// occupancy those allow on the chip (resident warps over the SM's
// maximum, from the chip's published limits: register file, warps,
// blocks and shared memory per SM). `emb-run --target nvptx --resources`
// prints them; docs/gpu.md has the model.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_JIT_GPURESOURCES_H
#define EMB_JIT_GPURESOURCES_H

#include "emb/JIT/KernelSpec.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace emb {

/// One kernel on one chip.
struct GPUKernelResources {
  std::string kernel, chip;
  int64_t registers = 0;       ///< per thread
  int64_t stackBytes = 0;      ///< stack frame per thread
  int64_t spillStoreBytes = 0; ///< register spills, per thread
  int64_t spillLoadBytes = 0;
  int64_t sharedBytes = 0;     ///< static shared memory per block
  int64_t threadsPerBlock = 0; ///< .maxntid of the PTX (0: not declared)
  /// Blocks resident per SM, their warps over the SM's maximum, and what
  /// bounds them: "registers", "warps", "blocks" or "shared memory".
  int64_t blocksPerSM = 0;
  double occupancy = 0;
  std::string limiter;
  /// The PTX of the kernel's module (for rowLoadsInFlight).
  std::string ptx;
  /// The entry's name in the PTX.
  std::string entry;
};

/// The SM limits of `chip` (sm_70 ... sm_90a) that the occupancy needs.
struct SMLimits {
  int64_t registers = 65536, maxWarps = 64, maxBlocks = 32,
          sharedBytes = 164 * 1024;
};
llvm::Expected<SMLimits> smLimits(llvm::StringRef chip);

/// The theoretical occupancy of a kernel using `r`'s registers, shared
/// memory and block size on a chip with `limits` (fills blocksPerSM,
/// occupancy and limiter).
void computeOccupancy(GPUKernelResources &r, const SMLimits &limits);

/// The memory parallelism of PTX entry `entry` in its `bytes`-wide global
/// loads per thread (its row loads), over one iteration of the innermost
/// loop that holds such loads (the whole body without a loop):
struct LoadParallelism {
  /// the most outstanding at once in program order (issued, none of their
  /// registers read yet): what the PTX's order alone guarantees;
  int64_t inOrder = 0;
  /// the most whose addresses do not derive from one another (at one depth
  /// of row-load chains): what a scheduler (ptxas hoists independent
  /// loads) can put in flight together.
  int64_t independent = 0;
};
/// Both are 0 when the entry has no load of that width.
LoadParallelism loadsInFlight(llvm::StringRef ptx, llvm::StringRef entry,
                              int64_t bytes);

/// Compiles every GPU kernel of `spec` for `chip` to PTX and runs
/// `ptxas -v` on it (ptxas of mlir::emb::cudaToolkitPath(), or on PATH): an
/// error without ptxas.
llvm::Expected<std::vector<GPUKernelResources>>
gpuKernelResources(const KernelSpec &spec, llvm::StringRef chip);

} // namespace emb

#endif // EMB_JIT_GPURESOURCES_H
