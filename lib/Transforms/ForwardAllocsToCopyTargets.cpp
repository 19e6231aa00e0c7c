//===- ForwardAllocsToCopyTargets.cpp - build results in place ------------===//
//
//   %a = memref.alloc(%n)                    %v = memref.reinterpret_cast
//   ... writes into %a ...          =>            %arg to sizes [%n]
//   %v = memref.reinterpret_cast             ... writes into %v ...
//          %arg to sizes [%n]
//   memref.copy %a, %v
//
// (Passes.td says when it applies.)
//
//===----------------------------------------------------------------------===//

#include "emb/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Dominance.h"

namespace mlir::emb {
#define GEN_PASS_DEF_EMBFORWARDALLOCSTOCOPYTARGETS
#include "emb/Transforms/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

/// The view the copy writes into, if the allocation can be replaced by it.
memref::ReinterpretCastOp forwardableTarget(memref::CopyOp copy,
                                            DominanceInfo &dominance) {
  auto alloc = copy.getSource().getDefiningOp<memref::AllocOp>();
  auto view = copy.getTarget().getDefiningOp<memref::ReinterpretCastOp>();
  if (!alloc || !view || alloc->getBlock() != copy->getBlock() ||
      !alloc->isBeforeInBlock(copy) ||
      alloc.getType() != view.getResult().getType() ||
      !alloc.getType().getLayout().isIdentity())
    return {};
  // Nothing else touches the caller's buffer, and the view is used by the
  // copy only.
  auto arg = dyn_cast<BlockArgument>(view.getSource());
  if (!arg || !isa<func::FuncOp>(arg.getOwner()->getParentOp()) ||
      !arg.hasOneUse() || !view->hasOneUse())
    return {};
  // The view can be built where the allocation is.
  for (Value operand : view->getOperands())
    if (!dominance.properlyDominates(operand, alloc))
      return {};
  return view;
}

struct ForwardAllocsToCopyTargetsPass
    : emb::impl::EmbForwardAllocsToCopyTargetsBase<
          ForwardAllocsToCopyTargetsPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    DominanceInfo dominance(func);
    SmallVector<memref::CopyOp> copies;
    for (auto copy : func.getBody().front().getOps<memref::CopyOp>())
      copies.push_back(copy);
    for (memref::CopyOp copy : copies) {
      memref::ReinterpretCastOp view = forwardableTarget(copy, dominance);
      if (!view)
        continue;
      auto alloc = copy.getSource().getDefiningOp<memref::AllocOp>();
      view->moveBefore(alloc);
      copy->erase();
      alloc.getResult().replaceAllUsesWith(view.getResult());
      alloc->erase();
    }
  }
};

} // namespace
