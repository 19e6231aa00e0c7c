//===- NVPTXTarget.cpp - NVIDIA chip and PTX version checks ---------------===//
//
// LLVM's NVPTX backend aborts the process when the PTX ISA version is too
// old for the chip; these checks turn that into an error message. The
// table is the PTX ISA each chip first appeared in (NVIDIA's PTX ISA
// notes), and the newest version LLVM 22's backend emits.
//
//===----------------------------------------------------------------------===//

#include "emb/Transforms/Passes.h"

#include "llvm/ADT/StringExtras.h"

namespace mlir::emb {
#define GEN_PASS_DEF_EMBCHECKNVPTXTARGET
#include "emb/Transforms/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

struct Chip {
  const char *name;
  unsigned minPTX;
};

// The chips we accept (sm_70 and newer), with their first PTX ISA.
constexpr Chip kChips[] = {{"sm_70", 60},  {"sm_72", 61},   {"sm_75", 63},
                           {"sm_80", 70},  {"sm_86", 71},   {"sm_87", 74},
                           {"sm_89", 78},  {"sm_90", 78},   {"sm_90a", 80},
                           {"sm_100", 86}, {"sm_100a", 86}, {"sm_120", 87},
                           {"sm_120a", 87}};

/// The default when none is asked: PTX 8.0 (what ptxas of CUDA 12.0+
/// accepts), or the chip's first version when that is newer.
constexpr unsigned kDefaultPTX = 80;

/// The PTX ISA versions LLVM 22's NVPTX backend emits (`llc -march=nvptx64
/// -mattr=help`); any other number is a typo, not a version.
constexpr unsigned kPTXVersions[] = {60, 61, 62, 63, 64, 65, 70, 71, 72,
                                     73, 74, 75, 76, 77, 78, 80, 81, 82,
                                     83, 84, 85, 86, 87, 88, 90};
constexpr unsigned kMaxPTX = 90;

} // namespace

FailureOr<unsigned> mlir::emb::resolvePTXVersion(StringRef chip, unsigned ptx,
                                                 std::string &error) {
  const Chip *found = nullptr;
  for (const Chip &c : kChips)
    if (chip == c.name)
      found = &c;
  if (!found) {
    SmallVector<StringRef> names;
    for (const Chip &c : kChips)
      names.push_back(c.name);
    error = ("unknown NVIDIA chip '" + chip + "' (expected one of " +
             llvm::join(names, ", ") + ")")
                .str();
    return failure();
  }
  if (ptx == 0)
    return std::max(kDefaultPTX, found->minPTX);
  auto version = [](unsigned v) {
    return std::to_string(v / 10) + "." + std::to_string(v % 10);
  };
  if (ptx < found->minPTX) {
    error = "PTX ISA " + version(ptx) + " does not support " + chip.str() +
            " (it needs PTX " + version(found->minPTX) + " or newer)";
    return failure();
  }
  if (ptx > kMaxPTX) {
    error = "PTX ISA " + version(ptx) + " is newer than LLVM's NVPTX backend " +
            "supports (PTX " + version(kMaxPTX) + ")";
    return failure();
  }
  if (!llvm::is_contained(kPTXVersions, ptx)) {
    error = "there is no PTX ISA " + version(ptx) +
            " (the versions from 6.0 on are 6.0-6.5, 7.0-7.8, 8.0-8.8, 9.0)";
    return failure();
  }
  return ptx;
}

namespace {

struct EmbCheckNVPTXTargetPass
    : emb::impl::EmbCheckNVPTXTargetBase<EmbCheckNVPTXTargetPass> {
  using Base::Base;
  void runOnOperation() override {
    std::string error;
    if (failed(emb::resolvePTXVersion(chip, ptx, error))) {
      // At the module's location, without the whole module as a note.
      mlir::emitError(getOperation().getLoc(), error);
      signalPassFailure();
    }
  }
};

} // namespace
