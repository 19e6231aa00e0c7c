//===- TraceMemory.cpp - memory tracing of an emulated launch -------------===//
//
//   emulated launch of @k                 llvm.call table[launch](name, sites,
//                                                    grid x y z, block x y z)
//   scf.for grid, block {            ==>  scf.for grid, block {
//     %v = vector.load %w[%r, %c]           llvm.call table[access](site,
//                                              block, thread, &w[r, c], 16)
//                                           %v = vector.load %w[%r, %c]
//   }                                     }
//                                         llvm.call table[end]()
//
// The table is the global `__emb_memory_trace` the runtime fills
// (include/emb/Runtime/MemoryTraceABI.h); the address is the memref's
// aligned pointer and the byte offset of the access from the strided
// metadata, so any strided layout is exact. Private (alloca) memory is not traced:
// it lives in registers or the L1 on a GPU, not in DRAM.
//
//===----------------------------------------------------------------------===//

#include "TraceMemory.h"

#include "emb/Runtime/MemoryTraceABI.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace {

/// A memory operation of a kernel as the collector sees it.
struct Access {
  StringRef kind; // load, store or atomic
  Value memref;
  ValueRange indices;
  int64_t bytes = 0;
};

int64_t elementBytes(Type t) {
  if (isa<IndexType>(t))
    return 8;
  if (t.isIntOrFloat())
    return std::max<int64_t>(1, t.getIntOrFloatBitWidth() / 8);
  return 0;
}

/// The access `op` makes, or nullopt when it is not a memory operation the
/// trace describes.
std::optional<Access> describe(Operation *op) {
  auto scalar = [](StringRef kind, Value m, ValueRange idx) {
    return Access{kind, m, idx,
                  elementBytes(cast<MemRefType>(m.getType()).getElementType())};
  };
  auto vector = [](StringRef kind, Value m, ValueRange idx, VectorType t) {
    return Access{kind, m, idx,
                  t.getNumElements() * elementBytes(t.getElementType())};
  };
  return llvm::TypeSwitch<Operation *, std::optional<Access>>(op)
      .Case([&](memref::LoadOp o) {
        return scalar("load", o.getMemref(), o.getIndices());
      })
      .Case([&](memref::StoreOp o) {
        return scalar("store", o.getMemref(), o.getIndices());
      })
      .Case([&](memref::AtomicRMWOp o) {
        return scalar("atomic", o.getMemref(), o.getIndices());
      })
      .Case([&](memref::GenericAtomicRMWOp o) {
        return scalar("atomic", o.getMemref(), o.getIndices());
      })
      .Case([&](vector::LoadOp o) {
        return vector("load", o.getBase(), o.getIndices(), o.getVectorType());
      })
      .Case([&](vector::StoreOp o) {
        return vector("store", o.getBase(), o.getIndices(), o.getVectorType());
      })
      .Default([](Operation *) { return std::nullopt; });
}

/// Whether `memref` is a thread's private memory (an alloca, or a view of
/// one).
bool isPrivate(Value memref) {
  while (Operation *def = memref.getDefiningOp()) {
    if (isa<memref::AllocaOp>(def))
      return true;
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view)
      return false;
    memref = view.getViewSource();
  }
  return false;
}

/// Whether `op` touches memory other than through the operations above
/// (a copy, a transfer, a masked or gathered access) outside private
/// memory: the trace would miss it.
bool hasUndescribedEffects(Operation *op) {
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (!effects)
    return false;
  SmallVector<MemoryEffects::EffectInstance> list;
  effects.getEffects(list);
  for (const MemoryEffects::EffectInstance &e : list) {
    if (!isa<MemoryEffects::Read, MemoryEffects::Write>(e.getEffect()))
      continue;
    Value v = e.getValue();
    if (!v || !isa<MemRefType>(v.getType()) || !isPrivate(v))
      return true;
  }
  return false;
}

Value i64(OpBuilder &b, Location loc, Value index) {
  return arith::IndexCastOp::create(b, loc, b.getI64Type(), index);
}

/// The aligned base pointer of `memref` and the byte offset of its element
/// `indices` from it.
std::pair<Value, Value> address(OpBuilder &b, Location loc, Value memref,
                                ValueRange indices, int64_t bytesPerElement) {
  auto meta = memref::ExtractStridedMetadataOp::create(b, loc, memref);
  Value linear = meta.getOffset();
  for (auto [i, idx] : llvm::enumerate(indices))
    linear = arith::AddIOp::create(
        b, loc, linear,
        arith::MulIOp::create(b, loc, idx, meta.getStrides()[i]));
  Value ptr = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
  Value scale = arith::ConstantIndexOp::create(b, loc, bytesPerElement);
  return {i64(b, loc, ptr),
          i64(b, loc, arith::MulIOp::create(b, loc, linear, scale))};
}

/// The trace table, declared once per module (null at load; the runtime
/// fills it).
void declareTable(ModuleOp module) {
  if (module.lookupSymbol(::emb::kMemoryTraceTableSymbol))
    return;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  auto type = LLVM::LLVMArrayType::get(ptr, ::emb::kMemoryTraceNumSlots);
  auto table =
      LLVM::GlobalOp::create(b, loc, type, /*isConstant=*/false,
                             LLVM::Linkage::External,
                             ::emb::kMemoryTraceTableSymbol, Attribute());
  b.createBlock(&table.getInitializerRegion());
  LLVM::ReturnOp::create(b, loc, LLVM::ZeroOp::create(b, loc, type));
}

/// The address of a NUL-terminated constant string global `name`.
Value stringGlobal(OpBuilder &b, Location loc, ModuleOp module, StringRef name,
                   StringRef text) {
  auto ptr = LLVM::LLVMPointerType::get(b.getContext());
  std::string bytes = text.str();
  bytes.push_back('\0');
  std::string symbol = name.str();
  for (int i = 0; module.lookupSymbol(symbol); ++i)
    symbol = (name + "_" + Twine(i)).str();
  {
    OpBuilder gb = OpBuilder::atBlockEnd(module.getBody());
    auto type = LLVM::LLVMArrayType::get(gb.getI8Type(), bytes.size());
    LLVM::GlobalOp::create(gb, loc, type, /*isConstant=*/true,
                           LLVM::Linkage::Internal, symbol,
                           gb.getStringAttr(bytes));
  }
  return LLVM::AddressOfOp::create(b, loc, ptr, symbol);
}

/// Calls table[slot](args).
void callTable(OpBuilder &b, Location loc, ::emb::MemoryTraceSlot slot,
               ValueRange args) {
  MLIRContext *ctx = b.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto tableType = LLVM::LLVMArrayType::get(ptr, ::emb::kMemoryTraceNumSlots);
  Value table =
      LLVM::AddressOfOp::create(b, loc, ptr, ::emb::kMemoryTraceTableSymbol);
  Value entry = LLVM::GEPOp::create(b, loc, ptr, tableType, table,
                                    ArrayRef<LLVM::GEPArg>{0, slot});
  Value fn = LLVM::LoadOp::create(b, loc, ptr, entry);
  auto fnType = LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx),
                                            llvm::to_vector(args.getTypes()));
  SmallVector<Value> operands{fn};
  operands.append(args.begin(), args.end());
  LLVM::CallOp::create(b, loc, fnType, operands);
}

/// x + nx * (y + ny * z), as i64.
Value linearId(OpBuilder &b, Location loc, ArrayRef<Value> id,
               ArrayRef<Value> size) {
  Value yz = arith::AddIOp::create(
      b, loc, id[1], arith::MulIOp::create(b, loc, size[1], id[2]));
  return i64(b, loc,
             arith::AddIOp::create(b, loc, id[0],
                                   arith::MulIOp::create(b, loc, size[0], yz)));
}

} // namespace

LogicalResult mlir::emb::traceMemoryAccesses(const EmulatedLaunch &launch) {
  Operation *outer = launch.loops.front();
  auto module = outer->getParentOfType<ModuleOp>();
  Location loc = outer->getLoc();

  // The sites, in program order.
  SmallVector<std::pair<Operation *, Access>> sites;
  for (Operation *top : launch.body) {
    WalkResult walk = top->walk<WalkOrder::PreOrder>([&](Operation *op) {
      std::optional<Access> access = describe(op);
      if (!access) {
        if (!hasUndescribedEffects(op))
          return WalkResult::advance();
        op->emitOpError("accesses memory in a way the memory trace does not "
                        "describe (loads, stores and atomics of scalars and "
                        "vectors are traced)");
        return WalkResult::interrupt();
      }
      if (isPrivate(access->memref))
        return WalkResult::advance();
      if (access->bytes == 0) {
        op->emitOpError("has an element type the memory trace cannot size");
        return WalkResult::interrupt();
      }
      sites.push_back({op, *access});
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return failure();
  }

  declareTable(module);
  std::string text;
  llvm::raw_string_ostream os(text);
  for (auto [i, site] : llvm::enumerate(sites)) {
    if (i)
      os << "\n";
    os << site.second.kind << " " << site.second.bytes << " "
       << site.first->getName() << " " << site.second.memref.getType();
  }

  OpBuilder b(outer);
  SmallVector<Value> launchArgs{
      stringGlobal(b, loc, module, "__emb_trace_kernel", launch.kernel),
      stringGlobal(b, loc, module, "__emb_trace_sites", text)};
  for (Value v : launch.gridXYZ)
    launchArgs.push_back(i64(b, loc, v));
  for (Value v : launch.blockXYZ)
    launchArgs.push_back(i64(b, loc, v));
  callTable(b, loc, ::emb::kMemoryTraceLaunch, launchArgs);
  b.setInsertionPointAfter(outer);
  callTable(b, loc, ::emb::kMemoryTraceEnd, {});

  if (sites.empty())
    return success();
  // The thread's ids, once, before its body.
  b.setInsertionPoint(launch.body.front());
  Value block = linearId(b, loc, launch.blockId, launch.gridXYZ);
  Value thread = linearId(b, loc, launch.threadId, launch.blockXYZ);
  for (auto [i, site] : llvm::enumerate(sites)) {
    auto [op, access] = site;
    b.setInsertionPoint(op);
    Location at = op->getLoc();
    auto [base, offset] = address(
        b, at, access.memref, access.indices,
        elementBytes(cast<MemRefType>(access.memref.getType()).getElementType()));
    Value id = arith::ConstantOp::create(b, at, b.getI64IntegerAttr(i));
    Value bytes =
        arith::ConstantOp::create(b, at, b.getI64IntegerAttr(access.bytes));
    callTable(b, at, ::emb::kMemoryTraceAccess,
              {id, block, thread, base, offset, bytes});
  }
  return success();
}
