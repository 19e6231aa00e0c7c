//===- CPUConfig.h - CPU code generation heuristics -------------*- C++ -*-===//
//
// Every tuning constant of the CPU lowering in one place, apart from the
// rewrite patterns (IREE's KernelDispatch habit).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_CONVERSION_CPUCONFIG_H
#define EMB_CONVERSION_CPUCONFIG_H

#include <cstdint>

namespace mlir::emb::cpu {

/// Bytes of accumulators one D-block keeps in vector registers: 1 KiB is 16
/// AVX-512 registers (256 f32 or 128 f64 lanes), half the register file,
/// leaving room for the rows being loaded. A wider D is processed in blocks
/// of this size, rerunning the index loop once per block.
constexpr int64_t kAccumulatorBlockBytes = 1024;

/// Number of lanes of a D-block for an accumulator of `accBytes` bytes.
constexpr int64_t blockLanes(int64_t accBytes) {
  return kAccumulatorBlockBytes / accBytes;
}

} // namespace mlir::emb::cpu

#endif // EMB_CONVERSION_CPUCONFIG_H
