//===- Compiler.cpp - spec -> relocatable object for the host CPU ---------===//

#include "ChildProcess.h"
#include "KernelBuilder.h"
#include "Sanitizers.h"

#include "emb/Dialect/EmbDialect.h"
#include "emb/JIT/JIT.h"
#include "emb/Pipelines/Pipelines.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Transforms/Instrumentation/AddressSanitizer.h"

#include <cstdlib>
#include <mutex>

using namespace mlir;
// The runtime's vocabulary and the JIT's API live in ::emb, next to the
// dialect's mlir::emb (which `emb::` names here): the names used below.
using ::emb::GPUKernelBinary;
using ::emb::KernelSpec;
using ::emb::Target;

namespace {

/// One MLIR context for every compilation of the process (compilations are
/// serialised by `compileMutex`): registering and loading the dialects once
/// keeps a cold compile short.
MLIRContext &jitContext() {
  static MLIRContext *context = [] {
    DialectRegistry registry;
    registerAllDialects(registry);
    registerAllExtensions(registry);
    registerAllToLLVMIRTranslations(registry);
    registerAllGPUToLLVMIRTranslations(registry); // gpu-module-to-binary
    registry.insert<mlir::emb::EmbDialect>();
    auto *ctx = new MLIRContext(registry, MLIRContext::Threading::DISABLED);
    ctx->loadAllAvailableDialects();
    return ctx;
  }();
  return *context;
}

std::mutex compileMutex;

/// In a process built with ASan, the kernel is instrumented as clang would
/// instrument it, after optimisation (Sanitizers.h).
void instrumentForASan(llvm::Module &module, llvm::TargetMachine &tm) {
  if (!EMB_JIT_KERNELS_USE_ASAN)
    return;
  for (llvm::Function &f : module)
    if (!f.isDeclaration())
      f.addFnAttr(llvm::Attribute::SanitizeAddress);
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder builder(&tm);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager passes;
  passes.addPass(llvm::AddressSanitizerPass(llvm::AddressSanitizerOptions()));
  passes.run(module, mam);
}

llvm::Expected<std::unique_ptr<llvm::TargetMachine>> hostTargetMachine() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return builder.takeError();
  builder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  builder->setRelocationModel(llvm::Reloc::PIC_);
  return builder->createTargetMachine();
}

llvm::Error error(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

} // namespace

bool ::emb::havePtxas() {
  // Where gpu-module-to-binary looks: the pipeline's toolkit, then PATH.
  std::string root = mlir::emb::cudaToolkitPath();
  return (!root.empty() && llvm::sys::fs::can_execute(root + "/bin/ptxas")) ||
         static_cast<bool>(llvm::sys::findProgramByName("ptxas"));
}

namespace {

/// compileToObject's work, `compileMutex` held.
llvm::Expected<std::string> compileLocked(const KernelSpec &spec,
                                          llvm::raw_ostream *printIR) {
  MLIRContext &ctx = jitContext();
  if (spec.dim <= 0)
    return error("cannot compile a kernel with embedding_dim " +
                 llvm::Twine(spec.dim) + " (the runtime handles D = 0)");

  // Collect diagnostics instead of printing them.
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return success();
  });

  OwningOpRef<ModuleOp> module = buildKernelModule(ctx, spec);
  if (printIR)
    *printIR << "// ----- " << spec.str() << ": emb (specialised kernel)\n"
             << *module << "\n";

  PassManager pm(&ctx);
  const char *pipeline = "CPU";
  if (spec.target == Target::gpu_emulated) {
    mlir::emb::buildEmbGPUEmulationPipeline(pm, spec.traceMemory);
    pipeline = "GPU emulation";
  } else if (spec.target == Target::nvptx) {
    // Kernels as cubins when ptxas is there, else as PTX (the driver
    // compiles it at load); the host side calls the runtime shim.
    mlir::emb::NVPTXPipelineOptions options;
    options.chip = spec.chip;
    options.ptx = spec.ptx;
    options.format = ::emb::havePtxas() ? "bin" : "isa";
    mlir::emb::buildEmbNVPTXRuntimePipeline(pm, options);
    pipeline = "NVPTX";
  } else {
    mlir::emb::buildEmbCPUPipeline(pm);
  }
  if (printIR) {
    auto stage = [](Pass *pass, Operation *) {
      StringRef arg = pass->getArgument();
      return arg == "convert-emb-to-scf" || arg == "convert-emb-to-gpu" ||
             arg == "gpu-kernel-outlining" ||
             arg == "emb-emulate-gpu-on-host" ||
             arg == "convert-gpu-to-emb-runtime" || arg == "convert-to-llvm";
    };
    pm.enableIRPrinting([](Pass *, Operation *) { return false; }, stage,
                        /*printModuleScope=*/true,
                        /*printAfterOnlyOnChange=*/false,
                        /*printAfterOnlyOnFailure=*/false, *printIR);
  }
  if (failed(pm.run(*module)))
    return error(llvm::Twine("the ") + pipeline + " pipeline failed for " +
                 spec.str() + ":\n" + diagnostics);
  // The one entry point the runtime calls: void **args, in KernelABI order.
  if (failed(::emb::jit::addPackedEntryPoint(*module, spec)))
    return error("cannot add the packed entry point of " + spec.str() + ":\n" +
                 diagnostics);

  auto tm = hostTargetMachine();
  if (!tm)
    return tm.takeError();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, spec.symbolName());
  if (!llvmModule)
    return error("translation to LLVM IR failed for " + spec.str() + ":\n" +
                 diagnostics);
  llvmModule->setDataLayout((*tm)->createDataLayout());
  llvmModule->setTargetTriple((*tm)->getTargetTriple());
  if (llvm::Error err =
          makeOptimizingTransformer(3, 0, tm->get())(llvmModule.get()))
    return std::move(err);
  instrumentForASan(*llvmModule, **tm);
  if (printIR)
    *printIR << "// ----- " << spec.str() << ": LLVM IR (O3, "
             << (*tm)->getTargetCPU() << ")\n"
             << *llvmModule << "\n";

  std::string object;
  {
    llvm::raw_string_ostream os(object);
    llvm::buffer_ostream bos(os);
    llvm::legacy::PassManager codegen;
    if ((*tm)->addPassesToEmitFile(codegen, bos, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
      return error("the host target cannot emit object files");
    codegen.run(*llvmModule);
  }
  return object;
}

} // namespace

auto ::emb::compileToObject(const KernelSpec &spec, llvm::raw_ostream *printIR)
    -> llvm::Expected<std::string> {
  std::lock_guard<std::mutex> lock(compileMutex);
  return compileLocked(spec, printIR);
}

auto ::emb::compileToObjectInChild(
    const KernelSpec &spec, double timeoutSeconds,
    const std::function<void(const KernelSpec &)> &beforeCompile)
    -> llvm::Expected<std::string> {
  // Held across the fork: no other thread is inside the compiler then, so
  // the child's copy of the context is whole.
  std::lock_guard<std::mutex> lock(compileMutex);
  // Made here, once: a child's own would be lost with it.
  jitContext();
  if (auto tm = hostTargetMachine(); !tm)
    return tm.takeError();
  return ::emb::jit::runInChildProcess(
      [&]() -> llvm::Expected<std::string> {
        if (beforeCompile)
          beforeCompile(spec);
        return compileLocked(spec, nullptr);
      },
      timeoutSeconds, "compiling the kernel of " + spec.str());
}

auto ::emb::compileForNVPTX(const KernelSpec &spec, llvm::StringRef chip,
                            unsigned ptx, llvm::StringRef format,
                            llvm::raw_ostream *printIR)
    -> llvm::Expected<std::vector<GPUKernelBinary>> {
  std::lock_guard<std::mutex> lock(compileMutex);
  MLIRContext &ctx = jitContext();
  if (spec.dim <= 0)
    return error("cannot compile a kernel with embedding_dim " +
                 llvm::Twine(spec.dim));
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module = buildKernelModule(ctx, spec);
  PassManager pm(&ctx);
  mlir::emb::NVPTXPipelineOptions options;
  options.chip = chip.str();
  options.ptx = ptx;
  options.format = format.str();
  mlir::emb::buildEmbNVPTXPipeline(pm, options);
  if (printIR) {
    *printIR << "// ----- " << spec.str() << " for " << chip
             << ": emb (specialised kernel)\n"
             << *module << "\n";
    auto stage = [](Pass *pass, Operation *) {
      StringRef arg = pass->getArgument();
      return arg == "convert-emb-to-gpu" || arg == "gpu-kernel-outlining" ||
             arg == "convert-gpu-to-nvvm";
    };
    pm.enableIRPrinting([](Pass *, Operation *) { return false; }, stage,
                        /*printModuleScope=*/true,
                        /*printAfterOnlyOnChange=*/false,
                        /*printAfterOnlyOnFailure=*/false, *printIR);
  }
  if (failed(pm.run(*module)))
    return error("the NVPTX pipeline failed for " + spec.str() + " (" + chip +
                 "):\n" + diagnostics);
  std::vector<GPUKernelBinary> binaries;
  module->walk([&](gpu::BinaryOp binary) {
    for (Attribute attr : binary.getObjects())
      if (auto object = dyn_cast<gpu::ObjectAttr>(attr))
        binaries.push_back(
            {binary.getName().str(), object.getObject().getValue().str()});
  });
  if (binaries.empty())
    return error("the NVPTX pipeline produced no kernel for " + spec.str());
  return binaries;
}
