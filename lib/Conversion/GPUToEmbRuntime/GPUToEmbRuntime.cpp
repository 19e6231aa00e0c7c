//===- GPUToEmbRuntime.cpp - host GPU ops -> calls of emb's CUDA shim -----===//
//
// The host side of emb's NVPTX kernels is ours, not MLIR's gpu-to-llvm
// (whose module loads run from global constructors, before the caller has
// a CUDA context). After emb-nvptx-pipeline the host function still holds
// gpu.launch_func, gpu.alloc and gpu.dealloc, and each kernel is a
// gpu.binary. This pass embeds every binary and kernel name as a constant
// global and turns the three ops into calls through a table of function
// pointers, `@__emb_gpu_runtime`, which the runtime fills when it loads the
// kernel (runtime/CudaRuntime.cpp): the generated code needs no symbol from
// the process and does nothing at load time. The table (its symbol, the
// slots launch / alloc / free / copy and their signatures) is defined once,
// in include/emb/Runtime/GPURuntimeABI.h.
//
// `copy` serves gpu.memcpy and memref.copy (the sparse gradients read their
// result size back into host memory and copy their results into the
// caller's buffers): the driver infers the direction from the pointers
// (unified addressing), and the copy is complete on return.
//
// Kernel parameters follow the NVVM lowering's convention: a memref is
// passed as its descriptor's fields (allocated, aligned, offset, sizes...,
// strides...), every field in its own parameter slot. `cache` is a
// pointer-sized global per kernel, null at load, where the runtime keeps
// the loaded module and function: it lives and dies with the kernel's
// shared object, so a cache entry can never outlive its binary.
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/Runtime/GPURuntimeABI.h"

#include "mlir/Conversion/LLVMCommon/ConversionTarget.h"
#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Conversion/LLVMCommon/Pattern.h"
#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/DialectConversion.h"

#include "llvm/ADT/StringSet.h"

#include <type_traits>

namespace mlir::emb {
#define GEN_PASS_DEF_CONVERTGPUTOEMBRUNTIME
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

constexpr const char *kTable = ::emb::kGPURuntimeTableSymbol;
using TableSlot = ::emb::GPURuntimeSlot;
constexpr TableSlot kLaunch = ::emb::kGPURuntimeLaunch;
constexpr TableSlot kAlloc = ::emb::kGPURuntimeAlloc;
constexpr TableSlot kFree = ::emb::kGPURuntimeFree;
constexpr TableSlot kCopy = ::emb::kGPURuntimeCopy;
constexpr int32_t kNumSlots = ::emb::kGPURuntimeNumSlots;

std::string binaryGlobal(StringRef module) {
  return ("__emb_gpu_binary_" + module).str();
}
std::string kernelNameGlobal(StringRef module, StringRef kernel) {
  return ("__emb_gpu_kernel_" + module + "_" + kernel).str();
}
std::string cacheGlobal(StringRef module, StringRef kernel) {
  return ("__emb_gpu_cache_" + module + "_" + kernel).str();
}

/// Calls table[slot] with `args`; returns its result (or null for void).
Value callRuntime(OpBuilder &b, Location loc, TableSlot slot, Type result,
                  ValueRange args) {
  MLIRContext *ctx = b.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto tableType = LLVM::LLVMArrayType::get(ptr, kNumSlots);
  Value table = LLVM::AddressOfOp::create(b, loc, ptr, kTable);
  Value entry = LLVM::GEPOp::create(b, loc, ptr, tableType, table,
                                    ArrayRef<LLVM::GEPArg>{0, slot});
  Value fn = LLVM::LoadOp::create(b, loc, ptr, entry);
  auto fnType = LLVM::LLVMFunctionType::get(
      result ? result : LLVM::LLVMVoidType::get(ctx),
      llvm::to_vector(args.getTypes()));
  SmallVector<Value> operands{fn};
  operands.append(args.begin(), args.end());
  auto call = LLVM::CallOp::create(b, loc, fnType, operands);
  return result ? call.getResult() : Value();
}

Value i64(OpBuilder &b, Location loc, int64_t v) {
  return LLVM::ConstantOp::create(b, loc, b.getI64Type(), v);
}

struct LaunchFuncLowering : ConvertOpToLLVMPattern<gpu::LaunchFuncOp> {
  using ConvertOpToLLVMPattern::ConvertOpToLLVMPattern;

  LogicalResult
  matchAndRewrite(gpu::LaunchFuncOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rewriter.getContext();
    auto ptr = LLVM::LLVMPointerType::get(ctx);
    StringRef module = op.getKernelModuleName().getValue();
    StringRef kernel = op.getKernelName().getValue();
    auto parent = op->getParentOfType<ModuleOp>();
    auto blob = parent.lookupSymbol<LLVM::GlobalOp>(binaryGlobal(module));
    if (!blob)
      return failure(); // reported by checkSupported
    int64_t blobSize =
        cast<LLVM::LLVMArrayType>(blob.getGlobalType()).getNumElements();

    // The parameters, each in a field of a stack struct, and the array of
    // their addresses that cuLaunchKernel takes.
    SmallVector<Value> params = getTypeConverter()->promoteOperands(
        loc, op.getKernelOperands(), adaptor.getKernelOperands(), rewriter,
        /*useBarePtrCallConv=*/false);
    SmallVector<Type> fieldTypes;
    for (Value p : params)
      fieldTypes.push_back(p.getType());
    auto structType = LLVM::LLVMStructType::getLiteral(ctx, fieldTypes);
    Value one = i64(rewriter, loc, 1);
    Value fields = LLVM::AllocaOp::create(rewriter, loc, ptr, structType, one);
    Value array = LLVM::AllocaOp::create(
        rewriter, loc, ptr, ptr,
        i64(rewriter, loc, std::max<int64_t>(1, params.size())));
    for (auto [i, p] : llvm::enumerate(params)) {
      Value field = LLVM::GEPOp::create(
          rewriter, loc, ptr, structType, fields,
          ArrayRef<LLVM::GEPArg>{0, static_cast<int32_t>(i)});
      LLVM::StoreOp::create(rewriter, loc, p, field);
      Value slot =
          LLVM::GEPOp::create(rewriter, loc, ptr, ptr, array,
                              ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)});
      LLVM::StoreOp::create(rewriter, loc, field, slot);
    }

    Value blobPtr =
        LLVM::AddressOfOp::create(rewriter, loc, ptr, blob.getSymName());
    Value name = LLVM::AddressOfOp::create(rewriter, loc, ptr,
                                           kernelNameGlobal(module, kernel));
    Value cache = LLVM::AddressOfOp::create(rewriter, loc, ptr,
                                            cacheGlobal(module, kernel));
    Value count = LLVM::ConstantOp::create(rewriter, loc, rewriter.getI32Type(),
                                           static_cast<int32_t>(params.size()));
    callRuntime(rewriter, loc, kLaunch, Type(),
                {cache, blobPtr, i64(rewriter, loc, blobSize), name,
                 adaptor.getGridSizeX(), adaptor.getGridSizeY(),
                 adaptor.getGridSizeZ(), adaptor.getBlockSizeX(),
                 adaptor.getBlockSizeY(), adaptor.getBlockSizeZ(), array,
                 count});
    rewriter.eraseOp(op);
    return success();
  }
};

struct AllocLowering : ConvertOpToLLVMPattern<gpu::AllocOp> {
  using ConvertOpToLLVMPattern::ConvertOpToLLVMPattern;

  LogicalResult
  matchAndRewrite(gpu::AllocOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    MemRefType type = op.getType();
    Location loc = op.getLoc();
    SmallVector<Value> shape, strides;
    Value bytes;
    getMemRefDescriptorSizes(loc, type, adaptor.getDynamicSizes(), rewriter,
                             shape, strides, bytes);
    Value p =
        callRuntime(rewriter, loc, kAlloc,
                    LLVM::LLVMPointerType::get(rewriter.getContext()), {bytes});
    Value descriptor =
        createMemRefDescriptor(loc, type, p, p, shape, strides, rewriter);
    rewriter.replaceOp(op, descriptor);
    return success();
  }
};

struct DeallocLowering : ConvertOpToLLVMPattern<gpu::DeallocOp> {
  using ConvertOpToLLVMPattern::ConvertOpToLLVMPattern;

  LogicalResult
  matchAndRewrite(gpu::DeallocOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value p = MemRefDescriptor(adaptor.getMemref()).allocatedPtr(rewriter, loc);
    callRuntime(rewriter, loc, kFree, Type(), {p});
    rewriter.eraseOp(op);
    return success();
  }
};

/// Whether the elements of `type` are contiguous in row-major order.
bool isContiguous(MemRefType type) {
  if (type.getLayout().isIdentity())
    return true;
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(type.getStridesAndOffset(strides, offset)))
    return false;
  int64_t expected = 1;
  for (int64_t i = type.getRank() - 1; i >= 0; --i) {
    if (strides[i] != expected)
      return false;
    if (i > 0) {
      if (type.isDynamicDim(i))
        return false;
      expected *= type.getDimSize(i);
    }
  }
  return true;
}

/// What the runtime cannot do is an error before anything is rewritten.
LogicalResult checkSupported(ModuleOp module) {
  WalkResult result = module.walk([&](Operation *op) -> WalkResult {
    if (auto launch = dyn_cast<gpu::LaunchFuncOp>(op)) {
      if (launch.getAsyncToken() || !launch.getAsyncDependencies().empty())
        return launch.emitOpError(
            "async launches are not supported by the emb runtime (launches "
            "run in order on the caller's stream)");
      if (launch.hasClusterSize() || launch.getDynamicSharedMemorySize())
        return launch.emitOpError("clusters and dynamic shared memory are "
                                  "not supported by the emb runtime");
      if (!module.lookupSymbol<gpu::BinaryOp>(
              launch.getKernelModuleName().getValue()))
        return launch.emitOpError("no gpu.binary @")
               << launch.getKernelModuleName().getValue()
               << " to launch (run gpu-module-to-binary first)";
      for (Value operand : launch.getKernelOperands())
        if (isa_and_nonnull<memref::AllocOp, memref::AllocaOp>(
                operand.getDefiningOp()))
          return launch.emitOpError("a kernel operand is host memory (")
                 << operand.getDefiningOp()->getName()
                 << "): GPU kernels can only use device buffers";
    }
    if (auto alloc = dyn_cast<gpu::AllocOp>(op))
      if (alloc.getAsyncToken() || !alloc.getAsyncDependencies().empty() ||
          alloc.getHostShared() || !alloc.getSymbolOperands().empty() ||
          !alloc.getType().getLayout().isIdentity())
        return alloc.emitOpError("only synchronous device allocations of "
                                 "identity-layout memrefs are supported by "
                                 "the emb runtime");
    if (auto dealloc = dyn_cast<gpu::DeallocOp>(op))
      if (dealloc.getAsyncToken() || !dealloc.getAsyncDependencies().empty())
        return dealloc.emitOpError(
            "async deallocations are not supported by the emb runtime");
    if (auto copy = dyn_cast<gpu::MemcpyOp>(op))
      if (copy.getAsyncToken() || !copy.getAsyncDependencies().empty())
        return copy.emitOpError(
            "async copies are not supported by the emb runtime");
    if (isa<gpu::MemcpyOp, memref::CopyOp>(op))
      for (Value v : op->getOperands())
        if (auto type = dyn_cast<MemRefType>(v.getType());
            type && !isContiguous(type))
          return op->emitOpError("copies of non-contiguous memrefs are not "
                                 "supported by the emb runtime");
    if (auto binary = dyn_cast<gpu::BinaryOp>(op)) {
      if (binary.getObjects().size() != 1)
        return binary.emitOpError("needs exactly one object (one chip) for "
                                  "the emb runtime, got ")
               << binary.getObjects().size();
      if (cast<gpu::ObjectAttr>(binary.getObjects()[0]).getFormat() ==
          gpu::CompilationTarget::Offload)
        return binary.emitOpError(
            "offload objects cannot be loaded by the emb runtime: use "
            "format isa (PTX), bin (cubin) or fatbin");
    }
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

/// gpu.memcpy and memref.copy: table[3](dst, src, bytes).
template <typename CopyOp>
struct CopyLowering : ConvertOpToLLVMPattern<CopyOp> {
  using ConvertOpToLLVMPattern<CopyOp>::ConvertOpToLLVMPattern;
  using Adaptor = typename ConvertOpToLLVMPattern<CopyOp>::OpAdaptor;

  /// The address of the first element of a contiguous memref.
  Value start(ConversionPatternRewriter &rewriter, Location loc,
              MemRefType type, Value descriptor) const {
    MemRefDescriptor d(descriptor);
    Type element = this->getTypeConverter()->convertType(type.getElementType());
    auto ptr = LLVM::LLVMPointerType::get(rewriter.getContext());
    return LLVM::GEPOp::create(rewriter, loc, ptr, element,
                               d.alignedPtr(rewriter, loc),
                               ValueRange{d.offset(rewriter, loc)});
  }

  LogicalResult
  matchAndRewrite(CopyOp op, Adaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value src, dst, srcDesc, dstDesc;
    if constexpr (std::is_same_v<CopyOp, gpu::MemcpyOp>) {
      src = op.getSrc();
      dst = op.getDst();
      srcDesc = adaptor.getSrc();
      dstDesc = adaptor.getDst();
    } else {
      src = op.getSource();
      dst = op.getTarget();
      srcDesc = adaptor.getSource();
      dstDesc = adaptor.getTarget();
    }
    auto srcType = cast<MemRefType>(src.getType());
    auto dstType = cast<MemRefType>(dst.getType());
    // Elements: the product of the sizes (both sides have the same shape).
    MemRefDescriptor d(srcDesc);
    Value count = i64(rewriter, loc, 1);
    for (int64_t i = 0; i < srcType.getRank(); ++i)
      count =
          LLVM::MulOp::create(rewriter, loc, count, d.size(rewriter, loc, i));
    Value bytes = LLVM::MulOp::create(
        rewriter, loc, count,
        this->getSizeInBytes(loc, srcType.getElementType(), rewriter));
    callRuntime(rewriter, loc, kCopy, Type(),
                {start(rewriter, loc, dstType, dstDesc),
                 start(rewriter, loc, srcType, srcDesc), bytes});
    rewriter.eraseOp(op);
    return success();
  }
};

struct ConvertGPUToEmbRuntime
    : mlir::emb::impl::ConvertGPUToEmbRuntimeBase<ConvertGPUToEmbRuntime> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<gpu::LaunchFuncOp> launches;
    module.walk([&](gpu::LaunchFuncOp op) { launches.push_back(op); });
    if (launches.empty() && module.getOps<gpu::BinaryOp>().empty())
      return;
    if (failed(checkSupported(module)))
      return signalPassFailure();

    // The globals: the table, each binary, each kernel's name.
    OpBuilder b(ctx);
    b.setInsertionPointToStart(module.getBody());
    Location loc = module.getLoc();
    auto ptr = LLVM::LLVMPointerType::get(ctx);
    auto tableType = LLVM::LLVMArrayType::get(ptr, kNumSlots);
    auto table =
        LLVM::GlobalOp::create(b, loc, tableType, /*isConstant=*/false,
                               LLVM::Linkage::External, kTable, Attribute());
    {
      OpBuilder::InsertionGuard guard(b);
      b.createBlock(&table.getInitializerRegion());
      LLVM::ReturnOp::create(b, loc, LLVM::ZeroOp::create(b, loc, tableType));
    }
    auto bytesGlobal = [&](StringRef name, StringRef bytes) {
      auto type = LLVM::LLVMArrayType::get(b.getI8Type(), bytes.size());
      LLVM::GlobalOp::create(b, loc, type, /*isConstant=*/true,
                             LLVM::Linkage::Internal, name,
                             b.getStringAttr(bytes), /*alignment=*/16);
    };
    for (auto binary : module.getOps<gpu::BinaryOp>()) {
      auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
      std::string bytes = object.getObject().getValue().str();
      if (object.getFormat() == gpu::CompilationTarget::Assembly)
        bytes.push_back('\0'); // PTX is loaded as a C string
      bytesGlobal(binaryGlobal(binary.getName()), bytes);
    }
    llvm::StringSet<> names;
    for (gpu::LaunchFuncOp op : launches) {
      std::string name = kernelNameGlobal(op.getKernelModuleName().getValue(),
                                          op.getKernelName().getValue());
      if (!names.insert(name).second)
        continue;
      std::string cName = op.getKernelName().getValue().str();
      cName.push_back('\0');
      bytesGlobal(name, cName);
      auto cache = LLVM::GlobalOp::create(
          b, loc, ptr, /*isConstant=*/false, LLVM::Linkage::Internal,
          cacheGlobal(op.getKernelModuleName().getValue(),
                      op.getKernelName().getValue()),
          Attribute());
      OpBuilder::InsertionGuard guard(b);
      b.createBlock(&cache.getInitializerRegion());
      LLVM::ReturnOp::create(b, loc, LLVM::ZeroOp::create(b, loc, ptr));
    }

    // Erased last: the builder inserts before the module's first op.
    for (auto binary :
         llvm::make_early_inc_range(module.getOps<gpu::BinaryOp>()))
      binary.erase();

    LLVMTypeConverter converter(ctx);
    RewritePatternSet patterns(ctx);
    patterns.add<LaunchFuncLowering, AllocLowering, DeallocLowering,
                 CopyLowering<gpu::MemcpyOp>, CopyLowering<memref::CopyOp>>(
        converter);
    ConversionTarget target(*ctx);
    target.addLegalDialect<LLVM::LLVMDialect>();
    target.addIllegalOp<gpu::LaunchFuncOp, gpu::AllocOp, gpu::DeallocOp,
                        gpu::MemcpyOp, memref::CopyOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
