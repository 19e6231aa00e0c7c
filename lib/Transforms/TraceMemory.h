//===- TraceMemory.h - memory tracing of an emulated launch ----*- C++ -*-===//
//
// Private to emb-emulate-gpu-on-host: with `trace-memory`, every global
// load, store and atomic of an emulated kernel reports its address to the
// collector of include/emb/Runtime/MemoryTraceABI.h.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_TRANSFORMS_TRACEMEMORY_H
#define EMB_TRANSFORMS_TRACEMEMORY_H

#include "mlir/IR/BuiltinOps.h"

namespace mlir::emb {

/// One launch after its emulation: the loop nest over grid and block
/// (`loops`, outermost first), the kernel body's ops cloned inside it, and
/// the grid and block sizes (x, y, z).
struct EmulatedLaunch {
  std::string kernel;
  SmallVector<Operation *> loops;
  SmallVector<Operation *> body;
  SmallVector<Value> gridXYZ, blockXYZ;
  /// The block (x, y, z) and thread (x, y, z) ids: the loop variables.
  SmallVector<Value> blockId, threadId;
};

/// Inserts the calls of the trace table: launch before the loop nest, end
/// after it, access before each memory operation of the body. Fails (with
/// a diagnostic) on a memory operation it cannot describe.
LogicalResult traceMemoryAccesses(const EmulatedLaunch &launch);

} // namespace mlir::emb

#endif // EMB_TRANSFORMS_TRACEMEMORY_H
