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

/// Bytes of loop-carried state (accumulators, argmax) one D-block keeps in
/// vector registers: 2 KiB is the whole AVX-512 register file (512 f32
/// lanes). LLVM spills a little at the limit, but measured on the EPYC
/// machines here (V = 1M, B = 16384, L = 32, 2 threads) it beats 1 KiB
/// blocks: max at D = 128 (with its i64 argmax) 24.5 vs 18.3 GB/s, sum at
/// D = 256 36.5 vs 35.1 GB/s, since every extra block reruns the index loop.
/// A wider D is processed in blocks of this size.
constexpr int64_t kAccumulatorBlockBytes = 2048;

/// Lanes of a D-block whose loop-carried state is `bytesPerLane` bytes per
/// lane (4 for f32 sums; 4 + 8 for max with its i64 argmax): the largest
/// power of two that fits in `blockBytes`, at least 16 (one AVX-512
/// register of f32). Powers of two split into whole registers; 80 lanes of
/// i64, say, do not.
constexpr int64_t blockLanes(int64_t bytesPerLane,
                             int64_t blockBytes = kAccumulatorBlockBytes) {
  int64_t lanes = 16;
  while (lanes * 2 * bytesPerLane <= blockBytes)
    lanes *= 2;
  return lanes;
}

/// D-blocks of a row emitted one after another (unrolled, static offsets);
/// a row of more blocks is processed by an scf.for over its full blocks
/// plus the partial tail block, so that the IR, and the compile time, stop
/// growing with D (issue 16: D = 65536 took 11 s to compile, 2^27 f16 did
/// not finish in 10 minutes). Four keeps every D up to 2048 f32 sums (512
/// for max with its argmax) exactly as before; past it, unrolling buys
/// nothing measurable: a block is 2 KiB of state (the whole register file),
/// the block loop adds one compare-and-branch per block, and a bag reruns
/// its index loop per block anyway. Unrolled blocks cost LLVM time, more
/// than linearly (bag sum, D = 1024 / 8192 / 65536: 44 / 129 / 7400 ms; max
/// with argmax 200 / 3030 / over 300000 ms).
constexpr int64_t kMaxUnrolledDBlocks = 4;

/// D-blocks per iteration of such a block loop when each block ends in an
/// ordered reduction (renorm's norms, the per_sample_weights gradient's dot
/// products), so that several chains of adds overlap as they do unrolled.
/// Renorm, p = 2, 16384 indices on one thread: at D = 4096 eight per
/// iteration are as fast as the unrolled blocks (one per iteration: 10-20%
/// slower); at D = 16384 (64 blocks) still 1.9x slower (p = 1: 1.3x) than
/// unrolled blocks, which took 2.2 s to compile. p = inf and the other ops
/// are as fast as unrolled, or faster.
constexpr int64_t kReductionBlocksPerIteration = 8;

/// The choices of convert-emb-to-scf a caller (or a lit test) may pin
/// through the pass's options; each defaults to the heuristic above.
struct CPULoweringConfig {
  int64_t accumulatorBlockBytes = kAccumulatorBlockBytes;
  /// Entries of a max bag per segment whose argmax lanes hold i32
  /// positions in the segment (half the registers and selects of i64 row
  /// numbers; D = 128 spilled its mask registers); the rows are gathered
  /// from the indices once per segment. Every real bag is one segment.
  int64_t argmaxSegment = INT32_MAX;
};

/// Indices ahead of the current one whose rows are prefetched
/// (emb-prefetch-rows): at least this many...
constexpr int64_t kPrefetchDistance = 16;

/// ...and enough to keep this many bytes of rows in flight per thread, so
/// that short rows (f16, small D) get a longer distance: DRAM latency is
/// paid per row, whatever its size. Measured against the gather probe
/// (emb-run --bench, V = 1M, 2 threads, issue 13): 8192 bytes (64 rows of
/// 128 B ahead) ran D = 32 f32 at 0.77-0.87 of the probe and bf16 D = 32 at
/// 0.43-0.87; too many rows ahead and the prefetches stall on full miss
/// buffers and TLB walks. 2048: 0.96-1.1; 1024: 0.91-1.0.
constexpr int64_t kPrefetchBytesAhead = 2048;

/// Cache line size of the host, for one prefetch per line of a row.
constexpr int64_t kCacheLineBytes = 64;

} // namespace mlir::emb::cpu

#endif // EMB_CONVERSION_CPUCONFIG_H
