//===- ABITest.cpp - the contracts between generated code and runtime -----===//
//
// KernelABI: for every op kind and option that changes the arguments, the
// kernel that KernelBuilder makes takes exactly the ABI's arguments (count,
// order, rank, element type), and the order is the one the runtime has
// always passed. GPURuntimeABI: convert-gpu-to-emb-runtime emits the table
// symbol and slot indices of include/emb/Runtime/GPURuntimeABI.h.
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/JIT/JIT.h"
#include "emb/JIT/KernelABI.h"
#include "emb/Runtime/GPURuntimeABI.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using emb::ArgSlot;
using emb::BagMode;
using emb::DType;
using emb::KernelABI;
using emb::KernelSpec;
using emb::OpKind;

/// The slots of a spec's ABI as one string: "grad,indices,window,...".
std::string slotList(const KernelSpec &spec) {
  std::string s;
  KernelABI abi(spec);
  for (const emb::KernelArg &arg : abi.args())
    s += std::string(s.empty() ? "" : ",") + emb::argSlotName(arg.slot);
  return s;
}

KernelSpec make(OpKind op, bool twoD = false, bool psw = false,
                bool maxIndices = false) {
  KernelSpec spec;
  spec.op = op;
  spec.dim = 8;
  spec.numEmbeddings = 100;
  spec.weight = DType::f16;
  spec.indices = DType::i32;
  spec.offsets = DType::i64;
  spec.twoD = twoD;
  spec.perSampleWeights = psw;
  spec.maxIndices = maxIndices;
  spec.mode = maxIndices ? BagMode::max : BagMode::sum;
  return spec;
}

/// Every combination of the options that change the arguments.
std::vector<KernelSpec> allSpecs() {
  std::vector<KernelSpec> specs;
  for (OpKind op :
       {OpKind::embedding, OpKind::renorm, OpKind::embedding_backward,
        OpKind::embedding_sparse_backward})
    specs.push_back(make(op));
  for (bool twoD : {false, true}) {
    for (bool psw : {false, true}) {
      specs.push_back(make(OpKind::embedding_bag, twoD, psw));
      specs.push_back(make(OpKind::embedding_bag_backward, twoD, psw));
      specs.push_back(make(OpKind::embedding_bag_sparse_backward, twoD, psw));
    }
    specs.push_back(make(OpKind::embedding_bag, twoD, false, true));
    specs.push_back(make(OpKind::embedding_bag_backward, twoD, false, true));
    specs.push_back(make(OpKind::embedding_bag_psw_backward, twoD));
  }
  return specs;
}

// The order the Engine passed arguments in before KernelABI owned it.
TEST(KernelABI, OrderOfEveryOpKind) {
  EXPECT_EQ(slotList(make(OpKind::embedding)), "weight,indices,out");
  EXPECT_EQ(slotList(make(OpKind::renorm)), "weight,indices");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag)),
            "weight,indices,offsets,out");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag, true, true)),
            "weight,indices,per_sample_weights,out");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag, false, false, true)),
            "weight,indices,offsets,out,max_indices");
  EXPECT_EQ(slotList(make(OpKind::embedding_backward)),
            "grad,indices,window,grad_weight");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag_backward, false, true)),
            "grad,indices,offsets,per_sample_weights,window,grad_weight");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag_backward, true, false, true)),
            "grad,indices,max_indices,window,grad_weight");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag_psw_backward)),
            "grad,weight,indices,offsets,grad_per_sample_weights");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag_psw_backward, true)),
            "grad,weight,indices,grad_per_sample_weights");
  EXPECT_EQ(slotList(make(OpKind::embedding_sparse_backward)),
            "grad,indices,rows,values,count");
  EXPECT_EQ(slotList(make(OpKind::embedding_bag_sparse_backward, false, true)),
            "grad,indices,offsets,per_sample_weights,rows,values,count");
}

mlir::Type elementOf(mlir::MLIRContext &ctx, const KernelSpec &spec,
                     emb::ArgElement element) {
  mlir::Builder b(&ctx);
  DType d = element == emb::ArgElement::weight    ? spec.weight
            : element == emb::ArgElement::indices ? spec.indices
            : element == emb::ArgElement::offsets ? spec.offsets
                                                  : DType::i64;
  switch (d) {
  case DType::f16:
    return b.getF16Type();
  case DType::i32:
    return b.getI32Type();
  case DType::i64:
    return b.getI64Type();
  default:
    return {};
  }
}

TEST(KernelABI, KernelBuilderSignatureIsTheABI) {
  mlir::MLIRContext ctx;
  for (const KernelSpec &spec : allSpecs()) {
    SCOPED_TRACE(spec.str());
    auto module = emb::buildKernelModule(ctx, spec);
    auto fn = module->lookupSymbol<mlir::func::FuncOp>(spec.symbolName());
    ASSERT_TRUE(fn);
    KernelABI abi(spec);
    auto inputs = fn.getFunctionType().getInputs();
    ASSERT_EQ(inputs.size(), abi.args().size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const emb::KernelArg &arg = abi.args()[i];
      SCOPED_TRACE(emb::argSlotName(arg.slot));
      auto type = mlir::dyn_cast<mlir::MemRefType>(inputs[i]);
      ASSERT_TRUE(type);
      EXPECT_EQ(type.getRank(), arg.rank);
      EXPECT_EQ(type.getElementType(), elementOf(ctx, spec, arg.element));
      EXPECT_EQ(abi.position(arg.slot), static_cast<int>(i));
      if (arg.shape == emb::ArgShape::rows)
        EXPECT_EQ(type.getShape().back(), spec.dim);
    }
  }
}

// The host code of a launch, an allocation and a free, as in
// test/Conversion/GPUToEmbRuntime.
const char *kHostModule = R"mlir(
module attributes {gpu.container_module} {
  gpu.binary @k [#gpu.object<#nvvm.target<chip = "sm_90">, assembly = "PTX">]
  func.func @host(%buf: memref<?x4xf32>, %n: index) {
    %c1 = arith.constant 1 : index
    %s = gpu.alloc (%n) : memref<?xi64>
    gpu.launch_func @k::@gather blocks in (%n, %c1, %c1) threads in (%c1, %c1, %c1) args(%buf : memref<?x4xf32>, %n : index, %s : memref<?xi64>)
    gpu.dealloc %s : memref<?xi64>
    return
  }
}
)mlir";

TEST(GPURuntimeABI, ConvertGPUToEmbRuntimeUsesTheSlots) {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  auto module = mlir::parseSourceString<mlir::ModuleOp>(kHostModule, &ctx);
  ASSERT_TRUE(module);
  mlir::PassManager pm(&ctx);
  pm.addPass(mlir::emb::createConvertGPUToEmbRuntime());
  ASSERT_TRUE(mlir::succeeded(pm.run(*module)));

  auto table =
      module->lookupSymbol<mlir::LLVM::GlobalOp>(emb::kGPURuntimeTableSymbol);
  ASSERT_TRUE(table);
  auto array = mlir::dyn_cast<mlir::LLVM::LLVMArrayType>(table.getType());
  ASSERT_TRUE(array);
  EXPECT_EQ(array.getNumElements(),
            static_cast<unsigned>(emb::kGPURuntimeNumSlots));

  // Each indirect call loads its callee from table[slot]: the slot must be
  // the one of the function with that signature.
  std::vector<int32_t> slots;
  module->walk([&](mlir::LLVM::CallOp call) {
    if (call.getCallee())
      return;
    auto load = call.getOperand(0).getDefiningOp<mlir::LLVM::LoadOp>();
    ASSERT_TRUE(load);
    auto gep = load.getAddr().getDefiningOp<mlir::LLVM::GEPOp>();
    ASSERT_TRUE(gep);
    auto base = gep.getBase().getDefiningOp<mlir::LLVM::AddressOfOp>();
    ASSERT_TRUE(base);
    EXPECT_EQ(base.getGlobalName(), emb::kGPURuntimeTableSymbol);
    auto indices = gep.getIndices();
    ASSERT_EQ(indices.size(), 2u);
    auto slot = mlir::dyn_cast<mlir::IntegerAttr>(indices[1]);
    ASSERT_TRUE(slot);
    int32_t s = static_cast<int32_t>(slot.getInt());
    slots.push_back(s);
    // launch: 12 parameters; alloc: (i64) -> ptr; free: (ptr) -> void.
    size_t params = call.getArgOperands().size();
    if (s == emb::kGPURuntimeLaunch)
      EXPECT_EQ(params, 12u);
    else if (s == emb::kGPURuntimeAlloc)
      EXPECT_EQ(call.getNumResults(), 1u);
    else if (s == emb::kGPURuntimeFree)
      EXPECT_EQ(call.getNumResults(), 0u);
  });
  EXPECT_EQ(slots,
            (std::vector<int32_t>{emb::kGPURuntimeAlloc, emb::kGPURuntimeLaunch,
                                  emb::kGPURuntimeFree}));
}

} // namespace
