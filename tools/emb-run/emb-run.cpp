//===- emb-run.cpp - build, run, check and time one generated kernel ------===//
//
// emb-run makes a random instance of one op, runs the kernel generated for
// it, and optionally compares it with the reference (--check) and times it
// (--bench: GB/s of compulsory traffic and the ratio to a memcpy probe run
// in the same process with the same thread count). With --target nvptx it
// runs on the GPU (device copies of every buffer; the probe is a
// device-to-device copy), or on the host through the GPU emulation
// (--emulate), with its memory transactions counted (--transactions).
// The pieces: EmbRun.h.
//
//===----------------------------------------------------------------------===//

#include "EmbRun.h"

#include "emb/JIT/GPUResources.h"

#include "emb/JIT/JIT.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace emb;
using namespace emb::run;

namespace {

/// The gradient of mode max follows the forward's max_indices: run the
/// forward call first.
void runForwardOfMaxGradient(Engine &engine, const Setup &s, Instance &inst) {
  if (!s.backward || !s.bag || s.mode != BagMode::max)
    return;
  EmbeddingBagOptions o;
  o.mode = s.mode;
  o.paddingIdx = s.pad;
  o.includeLastOffset = s.flags.includeLastOffset;
  if (llvm::Error err = engine.embeddingBag(
          inst.vIndices, inst.vWeight, s.flags.twoD ? nullptr : &inst.vOffsets,
          inst.vPooled, o, nullptr, &inst.vArgmax))
    die(llvm::toString(std::move(err)));
}

/// --print-ir: the IR of every kernel the call runs, at every stage; on
/// nvptx the GPU IR and PTX for the chip. Returns true when nothing else is
/// to be done (nvptx without --emulate: nothing runs).
bool printIR(const Setup &s, const std::vector<KernelSpec> &specs) {
  const Flags &f = s.flags;
  if (s.nvptx) {
    std::string chip = f.chip.empty() ? "sm_90" : f.chip;
    for (const KernelSpec &spec : specs) {
      auto binaries = compileForNVPTX(spec, chip, static_cast<unsigned>(f.ptx),
                                      "isa", &llvm::outs());
      if (!binaries)
        die(llvm::toString(binaries.takeError()));
      for (const GPUKernelBinary &b : *binaries)
        llvm::outs() << "// ----- PTX of " << b.kernel << " (" << chip << ")\n"
                     << b.data << "\n";
    }
    if (!f.emulate)
      return true;
  }
  for (const KernelSpec &spec : specs)
    if (auto obj = compileToObject(spec, &llvm::outs()); !obj)
      die(llvm::toString(obj.takeError()));
  return false;
}

/// --resources: what each GPU kernel of the call asks of an SM (ptxas -v)
/// and the occupancy that allows, on --chip or on sm_80 and sm_90.
void printResources(const Setup &s, const std::vector<KernelSpec> &specs) {
  std::vector<std::string> chips;
  if (s.flags.chip.empty())
    chips = {"sm_80", "sm_90"};
  else
    chips = {s.flags.chip};
  for (const std::string &chip : chips)
    if (auto limits = smLimits(chip); !limits)
      die(llvm::toString(limits.takeError()));
  llvm::raw_ostream &os = llvm::outs();
  if (!s.flags.json)
    os << "| kernel | chip | threads / block | registers | stack B | spill "
          "stores B | spill loads B | shared B | blocks / SM | occupancy | "
          "bound by |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (KernelSpec spec : specs)
    for (const std::string &chip : chips) {
      // The same GPU kernels as the device's (planned without one, the
      // spec says emulated).
      spec.target = Target::nvptx;
      spec.chip = chip;
      auto reports = gpuKernelResources(spec, chip);
      if (!reports)
        die(llvm::toString(reports.takeError()));
      for (const GPUKernelResources &r : *reports) {
        if (s.flags.json) {
          os << "{\"spec\":\"" << spec.str() << "\",\"kernel\":\""
             << r.kernel << "\",\"chip\":\"" << r.chip
             << "\",\"threads_per_block\":" << r.threadsPerBlock
             << ",\"registers\":" << r.registers
             << ",\"stack_bytes\":" << r.stackBytes
             << ",\"spill_store_bytes\":" << r.spillStoreBytes
             << ",\"spill_load_bytes\":" << r.spillLoadBytes
             << ",\"shared_bytes\":" << r.sharedBytes
             << ",\"blocks_per_sm\":" << r.blocksPerSM
             << ",\"occupancy\":" << r.occupancy << ",\"limiter\":\""
             << r.limiter << "\"}\n";
          continue;
        }
        os << "| " << r.kernel << " | " << r.chip << " | "
           << r.threadsPerBlock << " | " << r.registers << " | "
           << r.stackBytes << " | " << r.spillStoreBytes << " | "
           << r.spillLoadBytes << " | " << r.sharedBytes << " | "
           << r.blocksPerSM << " | "
           << llvm::format("%.0f%%", r.occupancy * 100) << " | " << r.limiter
           << " |\n";
      }
    }
}

/// Whether the gather probe computes what the call does (a plain sum bag or
/// a lookup), so that --check --bench checks the probe's result too.
bool probeComputesTheCall(const Setup &s) {
  return !s.backward && !s.norm && s.padRow < 0 &&
         s.quant == Quantization::none &&
         (s.lookup || (s.bag && s.mode == BagMode::sum &&
                       !s.flags.perSampleWeights));
}

void report(const Setup &s, const std::string &kernel, int nthreads,
            double firstCallMs, const CheckResult *check,
            const BenchResult *bench, const CheckResult *probeCheck) {
  llvm::raw_ostream &os = llvm::outs();
  if (s.flags.json) {
    os << "{\"op\":\"" << s.flags.opName << "\",\"spec\":\"" << kernel
       << "\",\"V\":" << s.V << ",\"D\":" << s.D << ",\"B\":" << s.B
       << ",\"L\":" << s.L << ",\"threads\":" << nthreads
       << ",\"first_call_ms\":" << firstCallMs;
    if (check)
      os << ",\"check\":\"" << (check->ok ? "pass" : "fail")
         << "\",\"max_rel_err\":" << check->worst;
    if (bench)
      os << ",\"time_ms\":" << bench->ms << ",\"bytes\":" << bench->bytes
         << ",\"gbps\":" << bench->gbps << ",\"memcpy_gbps\":" << bench->probe
         << ",\"ratio_to_memcpy\":" << bench->gbps / bench->probe;
    if (probeCheck)
      os << ",\"probe_check\":\"" << (probeCheck->ok ? "pass" : "fail")
         << "\"";
    if (bench && bench->gatherMs)
      os << ",\"gather_ms\":" << *bench->gatherMs
         << ",\"gather_gbps\":" << bench->bytes / (*bench->gatherMs * 1e-3) / 1e9
         << ",\"ratio_to_gather\":" << *bench->gatherMs / bench->ms;
    os << "}\n";
    return;
  }
  os << "kernel      " << kernel << "\n"
     << "instance    V=" << s.V << " D=" << s.D << " B=" << s.B << " L=" << s.L
     << ", " << nthreads << " thread(s)\n"
     << "first call  " << llvm::format("%.1f", firstCallMs)
     << " ms (includes compiling or loading the kernel)\n";
  if (check)
    os << "check       " << (check->ok ? "PASS" : "FAIL")
       << " (max relative error " << llvm::format("%.2e", check->worst)
       << " vs the f64 reference)\n";
  if (bench)
    os << "bench       " << llvm::format("%.3f", bench->ms) << " ms, "
       << llvm::format("%.1f", bench->gbps) << " GB/s of compulsory traffic; "
       << "memcpy probe " << llvm::format("%.1f", bench->probe)
       << " GB/s; ratio " << llvm::format("%.2f", bench->gbps / bench->probe)
       << "\n";
  if (bench && bench->gatherMs)
    os << "gather      " << llvm::format("%.3f", *bench->gatherMs)
       << " ms for the same rows (the random-row gather probe); ratio "
       << llvm::format("%.2f", *bench->gatherMs / bench->ms) << "\n";
  if (probeCheck)
    os << "probe check " << (probeCheck->ok ? "PASS" : "FAIL")
       << " (the gather probe's result; max relative error "
       << llvm::format("%.2e", probeCheck->worst) << ")\n";
}

} // namespace

int main(int argc, char **argv) {
  const Setup s = resolve(parseFlags(argc, argv));
  if (s.flags.opName == "jit")
    return benchJit(s.flags);
  Engine engine(engineOptions(s));
  Instance inst(s);
  if (s.onDevice)
    mirrorToDevice(inst);
  if (s.flags.hugePages)
    moveWeightToHugePages(inst);
  runForwardOfMaxGradient(engine, s, inst);

  // The call, as a user writes it, and the kernels the Engine plans for it
  // (the op's is the last: max_norm renormalises first).
  Buffer weightBefore = inst.weight;
  std::vector<Buffer> statesBefore;
  if (s.optimizer)
    for (Buffer *b : {&inst.state0, &inst.state1})
      if (b->view.numel() > 0)
        statesBefore.push_back(*b);
  auto call = [&]() -> llvm::Error { return callOp(engine, s, inst); };
  auto specs = engine.planSpecs([&](Engine &) { return call(); });
  if (!specs) {
    llvm::errs() << "emb-run: error: " << llvm::toString(specs.takeError())
                 << "\n";
    return 1;
  }
  const KernelSpec *spec = specs->empty() ? nullptr : &specs->back();
  if (s.flags.resources) {
    printResources(s, *specs);
    return 0;
  }
  if (s.flags.printIR && printIR(s, *specs))
    return 0;

  auto t0 = std::chrono::steady_clock::now();
  if (llvm::Error err = call()) {
    llvm::errs() << "emb-run: error: " << llvm::toString(std::move(err))
                 << "\n";
    return 1;
  }
  if (inst.device) // the call's work, not the copies back
    if (llvm::Error err = inst.device->synchronize())
      die(llvm::toString(std::move(err)));
  double firstCallMs = std::chrono::duration<double, std::milli>(
                           std::chrono::steady_clock::now() - t0)
                           .count();
  fetchFromDevice(inst);
  if (s.flags.transactions)
    printTransactions(s, *specs);

  std::optional<CheckResult> check;
  if (s.flags.check)
    check = checkResults(s, inst, weightBefore, spec ? spec->gradScale : 1.0,
                         statesBefore);
  std::optional<BenchResult> bench;
  if (s.flags.bench)
    bench = benchCall(s, inst, engine.threads(), call);
  // The probe ran last: where it computes the call, its result is checked
  // too (a wrong probe would make every ratio to it wrong).
  std::optional<CheckResult> probeCheck;
  if (check && bench && bench->gatherMs && probeComputesTheCall(s))
    probeCheck =
        checkResults(s, inst, weightBefore, spec ? spec->gradScale : 1.0);
  if (!s.flags.transactions || (check && !s.flags.json))
    report(s, spec ? spec->str() : "(none: nothing to compute)",
           engine.threads(), firstCallMs, check ? &*check : nullptr,
           bench ? &*bench : nullptr, probeCheck ? &*probeCheck : nullptr);
  return (!check || check->ok) && (!probeCheck || probeCheck->ok) ? 0 : 1;
}
