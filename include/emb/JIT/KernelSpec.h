//===- KernelSpec.h - what identifies a specialised kernel ------*- C++ -*-===//
//
// A KernelSpec names one generated kernel: the op, the target, the dtypes,
// the embedding dim and every option that changes the code. Sizes that
// change from call to call (indices, bags, rows) are not part of it. The
// spec has a stable text form and hash that name the kernel in IR, in logs
// and in the disk cache. Its vocabulary (DType, BagMode, OpKind, Target)
// is emb/Core/Types.h.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_JIT_KERNELSPEC_H
#define EMB_JIT_KERNELSPEC_H

#include "emb/Core/Types.h"

#include <cstdint>
#include <string>
#include <vector>

namespace emb {

/// One table of a many-table bag (OpKind::embedding_bag_tables): its rows
/// and columns, its mode and its padding row (in [0, rows), or -1).
struct TableSpec {
  int64_t rows = 0, dim = 0;
  BagMode mode = BagMode::sum;
  int64_t paddingIdx = -1;
  /// Mode none (a sequence table): every bag's length L; its columns are
  /// L * dim. 0 for a pooled table.
  int64_t sequenceLength = 0;

  /// The output columns the table fills.
  int64_t columns() const {
    return mode == BagMode::none ? sequenceLength * dim : dim;
  }
};

struct KernelSpec {
  OpKind op = OpKind::embedding;
  Target target = Target::host;
  /// gpu_emulated only: every global access of the GPU kernels is reported
  /// to the memory-trace collector (JIT/MemoryTrace.h).
  bool traceMemory = false;
  /// nvptx only: the chip (`sm_90`) and PTX ISA version x10 (0: the
  /// chip's default, see emb-check-nvptx-target).
  std::string chip;
  unsigned ptx = 0;
  DType weight = DType::f32;
  DType indices = DType::i64;
  /// embedding_bag with 1-D indices only.
  DType offsets = DType::i64;
  int64_t dim = 0;

  // embedding_bag
  BagMode mode = BagMode::sum;
  /// 2-D indices [B, L] (no offsets) instead of 1-D indices + offsets.
  bool twoD = false;
  bool perSampleWeights = false;
  bool includeLastOffset = false;
  /// max mode: also write max_indices.
  bool maxIndices = false;
  /// A row-wise quantised table (docs/semantics.md §6.2): its rows are
  /// quantizedRowBytes(quant, dim) bytes, and `weight` is the float type of
  /// the output and the per_sample_weights (f32 or f16).
  Quantization quant = Quantization::none;
  /// embedding_bag_tables: the tables, in the order of their columns; they
  /// lie one after another in one buffer of `weight` elements, and `dim`
  /// is the sum of their dims (the output's columns).
  std::vector<TableSpec> tables;

  // embedding and embedding_bag: the padding row, normalised to [0, V), or
  // -1 for none. `zeroPadding` is the `zero-padding` profile's lookup.
  int64_t paddingIdx = -1;
  bool zeroPadding = false;

  // renorm
  double maxNorm = 0.0;
  double normType = 2.0;

  // gradients: the table's V, the scalings. The Engine's dense gradients
  // and fused steps (whose kernels see only a window of rows) name the
  // largest V with as many 8-bit digits instead (their code depends on no
  // more: the radix sort's passes), so tables of nearby sizes share them.
  int64_t numEmbeddings = 0;
  bool scaleGradByFreq = false;
  double gradScale = 1.0;
  /// Sparse gradients: distinct rows, summed (else one row per position).
  bool coalesced = false;
  /// embedding_bag_update: the optimizer and its hyper-parameters that are
  /// baked in (lr and the step are the kernel's `hyper` argument).
  Optimizer optimizer = Optimizer::sgd;
  double eps = 1e-8, weightDecay = 0.0, beta1 = 0.9, beta2 = 0.999;
  /// Dense gradients on a GPU: bit-reproducible (a stable sort by row and
  /// an ordered sum per row) instead of atomics.
  bool deterministic = false;

  /// Stable text form, e.g.
  /// `embedding_bag:host:w=f32:i=i64:o=i32:D=128:mode=sum:1d:psw:pad=0`.
  std::string str() const;
  /// FNV-1a hash of str().
  uint64_t hash() const;
  /// The kernel's function name: `emb_<16 hex digits of hash>`.
  std::string symbolName() const;
};

} // namespace emb

#endif // EMB_JIT_KERNELSPEC_H
