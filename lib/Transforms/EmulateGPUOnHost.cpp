//===- EmulateGPUOnHost.cpp - outlined GPU kernels as host loops ----------===//
//
//   gpu.launch_func @kernels::@k blocks in (%gx, %gy, %gz)
//                                threads in (%tx, %ty, %tz) args(%a, %b)
//   ==>
//   scf.for %bz, %by, %bx over the grid {
//     scf.for %z, %y, %x over the block {
//       <body of @k with %a, %b for its arguments, block_id = (%bx, %by,
//        %bz), thread_id = (%x, %y, %z), block_dim / grid_dim = the sizes>
//   } }
//
// Threads run one after another: kernels that synchronise or exchange
// values between threads are reported, never emulated wrongly. With
// `trace-memory`, every global access also reports its address
// (TraceMemory.h).
//
//===----------------------------------------------------------------------===//

#include "emb/Transforms/Passes.h"

#include "TraceMemory.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/TypeSwitch.h"

namespace mlir::emb {
#define GEN_PASS_DEF_EMBEMULATEGPUONHOST
#include "emb/Transforms/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

Value pick(gpu::Dimension d, ArrayRef<Value> xyz) {
  return xyz[static_cast<unsigned>(d)];
}

/// The ops of a kernel body the emulation maps to loop variables; any other
/// gpu op (barriers, shuffles, subgroup ops, lane ids...), any op of a
/// target dialect (nvvm, rocdl) and any workgroup (shared) memory cannot be
/// run thread after thread.
bool isEmulatable(Operation *op) {
  Dialect *dialect = op->getDialect();
  if (dialect &&
      (dialect->getNamespace() == "nvvm" || dialect->getNamespace() == "rocdl"))
    return false;
  for (Type t : op->getResultTypes())
    if (auto m = dyn_cast<MemRefType>(t))
      if (auto space =
              dyn_cast_or_null<gpu::AddressSpaceAttr>(m.getMemorySpace()))
        if (space.getValue() == gpu::AddressSpace::Workgroup)
          return false;
  if (!isa_and_nonnull<gpu::GPUDialect>(dialect))
    return true;
  return isa<gpu::ThreadIdOp, gpu::BlockIdOp, gpu::BlockDimOp, gpu::GridDimOp,
             gpu::ReturnOp>(op);
}

/// The loop value that replaces a grid / block query, or null.
Value idValue(Operation *op, ArrayRef<Value> threadId, ArrayRef<Value> blockId,
              ArrayRef<Value> blockDim, ArrayRef<Value> gridDim) {
  return llvm::TypeSwitch<Operation *, Value>(op)
      .Case([&](gpu::ThreadIdOp o) { return pick(o.getDimension(), threadId); })
      .Case([&](gpu::BlockIdOp o) { return pick(o.getDimension(), blockId); })
      .Case([&](gpu::BlockDimOp o) { return pick(o.getDimension(), blockDim); })
      .Case([&](gpu::GridDimOp o) { return pick(o.getDimension(), gridDim); })
      .Default([](Operation *) { return Value(); });
}

LogicalResult emulate(gpu::LaunchFuncOp launch, bool traceMemory) {
  auto fn = SymbolTable::lookupNearestSymbolFrom<gpu::GPUFuncOp>(
      launch, launch.getKernel());
  if (!fn)
    return launch.emitOpError("kernel ") << launch.getKernel() << " not found";
  if (launch.getAsyncToken() || !launch.getAsyncDependencies().empty())
    return launch.emitOpError("asynchronous launches cannot be emulated");
  if (launch.getDynamicSharedMemorySize())
    return launch.emitOpError("uses dynamic shared memory, which the host "
                              "emulation does not model");
  if (!fn.getBody().hasOneBlock())
    return fn.emitOpError("has several blocks: emulate it before its scf "
                          "loops are lowered to cf");
  if (!fn.getWorkgroupAttributions().empty() ||
      !fn.getPrivateAttributions().empty())
    return fn.emitOpError("uses workgroup or private memory, which the host "
                          "emulation does not model");
  WalkResult bad = fn.walk([&](Operation *op) {
    if (op == fn.getOperation() || isEmulatable(op))
      return WalkResult::advance();
    op->emitOpError("cannot be emulated on the host: threads run one after "
                    "another");
    return WalkResult::interrupt();
  });
  if (bad.wasInterrupted())
    return failure();

  OpBuilder b(launch);
  Location loc = launch.getLoc();
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
  gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
  SmallVector<Value> gridXYZ{grid.x, grid.y, grid.z};
  SmallVector<Value> blockXYZ{block.x, block.y, block.z};
  // Loops: grid z, y, x, then block z, y, x (innermost).
  SmallVector<Value> bounds{grid.z, grid.y, grid.x, block.z, block.y, block.x};
  SmallVector<Value> ivs;
  SmallVector<Operation *> loops;
  for (Value bound : bounds) {
    auto loop = scf::ForOp::create(b, loc, c0, bound, c1);
    ivs.push_back(loop.getInductionVar());
    loops.push_back(loop);
    b.setInsertionPoint(loop.getBody()->getTerminator());
  }
  SmallVector<Value> blockId{ivs[2], ivs[1], ivs[0]};
  SmallVector<Value> threadId{ivs[5], ivs[4], ivs[3]};

  IRMapping map;
  for (auto [arg, operand] :
       llvm::zip_equal(fn.getArguments(), launch.getKernelOperands()))
    map.map(arg, operand);
  SmallVector<Operation *> cloned;
  for (Operation &op : fn.getBody().front()) {
    if (isa<gpu::ReturnOp>(op))
      continue;
    if (Value v = idValue(&op, threadId, blockId, blockXYZ, gridXYZ)) {
      map.map(op.getResult(0), v);
      continue;
    }
    cloned.push_back(b.clone(op, map));
  }
  // Queries nested in regions (an scf.if, a loop) were cloned as they are.
  SmallVector<std::pair<Operation *, Value>> nested;
  for (Operation *top : cloned)
    top->walk([&](Operation *op) {
      if (Value v = idValue(op, threadId, blockId, blockXYZ, gridXYZ))
        nested.push_back({op, v});
    });
  for (auto [op, v] : nested) {
    op->getResult(0).replaceAllUsesWith(v);
    op->erase();
  }
  if (traceMemory) {
    emb::EmulatedLaunch traced{
        (launch.getKernelModuleName().getValue() + "::" +
         launch.getKernelName().getValue())
            .str(),
        loops, cloned, gridXYZ, blockXYZ, blockId, threadId};
    if (failed(emb::traceMemoryAccesses(traced)))
      return failure();
  }
  launch.erase();
  return success();
}

struct EmbEmulateGPUOnHostPass
    : emb::impl::EmbEmulateGPUOnHostBase<EmbEmulateGPUOnHostPass> {
  using EmbEmulateGPUOnHostBase::EmbEmulateGPUOnHostBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<gpu::LaunchFuncOp> launches;
    module.walk([&](gpu::LaunchFuncOp op) { launches.push_back(op); });
    for (gpu::LaunchFuncOp launch : launches)
      if (failed(emulate(launch, traceMemory)))
        return signalPassFailure();
    // Device memory is host memory here: gpu.alloc becomes memref.alloc,
    // freed by the buffer deallocation that runs after this pass, and
    // gpu.memcpy a memref.copy.
    SmallVector<Operation *> memoryOps;
    module.walk([&](Operation *op) {
      if (isa<gpu::AllocOp, gpu::DeallocOp, gpu::MemcpyOp>(op))
        memoryOps.push_back(op);
    });
    for (Operation *op : memoryOps) {
      if (auto dealloc = dyn_cast<gpu::DeallocOp>(op);
          dealloc && dealloc.getAsyncToken()) {
        dealloc.emitOpError("asynchronous deallocations cannot be emulated");
        return signalPassFailure();
      }
      if (auto copy = dyn_cast<gpu::MemcpyOp>(op)) {
        if (copy.getAsyncToken()) {
          copy.emitOpError("asynchronous copies cannot be emulated");
          return signalPassFailure();
        }
        OpBuilder b(copy);
        memref::CopyOp::create(b, copy.getLoc(), copy.getSrc(), copy.getDst());
      }
      if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
        if (alloc.getAsyncToken() || alloc.getHostShared()) {
          alloc.emitOpError("asynchronous or host-shared allocations cannot "
                            "be emulated");
          return signalPassFailure();
        }
        OpBuilder b(alloc);
        Value host = memref::AllocOp::create(b, alloc.getLoc(),
                                             alloc.getMemref().getType(),
                                             alloc.getDynamicSizes());
        alloc.getMemref().replaceAllUsesWith(host);
      }
      op->erase();
    }
    for (auto gpuModule :
         llvm::make_early_inc_range(module.getOps<gpu::GPUModuleOp>()))
      gpuModule.erase();
    module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  }
};

} // namespace
