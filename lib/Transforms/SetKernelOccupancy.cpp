//===- SetKernelOccupancy.cpp - nvvm.minctasm on outlined kernels ---------===//
//
// ptxas sizes a kernel's registers from its PTX directives: `.maxntid 256`
// alone (gpu.known_block_size) makes it aim at 8 blocks per SM, 32
// registers a thread, and spill what does not fit (a bag's rows in
// flight). `.minnctapersm N` (nvvm.minctasm) states the occupancy we need
// instead, and ptxas may use the registers that leaves.
//
//===----------------------------------------------------------------------===//

#include "emb/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::emb {
#define GEN_PASS_DEF_EMBSETKERNELOCCUPANCY
#include "emb/Transforms/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {
struct EmbSetKernelOccupancyPass
    : emb::impl::EmbSetKernelOccupancyBase<EmbSetKernelOccupancyPass> {
  using Base::Base;

  void runOnOperation() override {
    if (minResidentThreads < 1 || minResidentThreads > 2048) {
      getOperation()->emitError("emb-set-kernel-occupancy: "
                                "min-resident-threads must be in [1, 2048]");
      return signalPassFailure();
    }
    StringRef name = NVVM::NVVMDialect::getMinctasmAttrName();
    getOperation()->walk([&](gpu::GPUFuncOp kernel) {
      std::optional<ArrayRef<int32_t>> block = kernel.getKnownBlockSize();
      if (!kernel.isKernel() || !block || kernel->hasAttr(name))
        return;
      int64_t threads = 1;
      for (int32_t d : *block)
        threads *= d;
      if (threads <= 0)
        return;
      // At most the 16 blocks an SM of every accepted chip holds (sm_75,
      // sm_86, sm_89 and sm_120 stop at 16): more would ask ptxas for an
      // occupancy the chip cannot have.
      int64_t blocks =
          std::min<int64_t>(llvm::divideCeil(minResidentThreads, threads), 16);
      kernel->setAttr(
          name, IntegerAttr::get(IntegerType::get(&getContext(), 32), blocks));
    });
  }
};
} // namespace
