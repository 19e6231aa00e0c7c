//===- Types.h - the vocabulary of emb-mlir's runtime -----------*- C++ -*-===//
//
// The words every layer shares: element types, bag modes, op kinds and
// targets, with their names and sizes. Plain C++ (no MLIR or LLVM), so that
// the reference, the runtime, the CUDA shim and the JIT all include it
// without depending on each other. The dialect has its own enums
// (mlir::emb::BagMode, ...); lib/JIT/KernelBuilder.cpp maps between them.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_CORE_TYPES_H
#define EMB_CORE_TYPES_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace emb {

/// Element types of weights, gradients, indices and offsets; u8 is the
/// bytes of a row-wise quantised table.
enum class DType : uint8_t { f32, f64, f16, bf16, i32, i64, u8 };

inline bool isFloat(DType d) { return d <= DType::bf16; }
inline bool isIndex(DType d) { return d == DType::i32 || d == DType::i64; }

/// sqrtn and the weighted mean (mean with per_sample_weights) are
/// docs/semantics.md §6.1; `none` (no pooling: a sequence table's L rows side
/// by side) exists only for the tables of a many-table call (§6.3).
enum class BagMode : uint8_t { sum, mean, max, sqrtn, none };

/// The format of a table's rows: floats, or row-wise quantised bytes
/// (docs/semantics.md §6.2: FBGEMM's fused 8-bit and 4-bit rows).
enum class Quantization : uint8_t { none, int8, int4 };

enum class OpKind : uint8_t {
  embedding,
  embedding_bag,
  renorm,
  embedding_backward,
  embedding_bag_backward,
  embedding_bag_psw_backward,
  embedding_sparse_backward,
  embedding_bag_sparse_backward,
  /// Many tables in one call (docs/semantics.md §6.3).
  embedding_bag_tables,
  /// The weight gradient of a bag fused with an optimizer step that
  /// updates the table in place (docs/semantics.md §6.4; a lookup is a
  /// bag of 2-D indices [N, 1]).
  embedding_bag_update,
  /// Many tables' bag gradient fused with the optimizer step, every table
  /// in one call (§6.3 and §6.4).
  embedding_bag_tables_update
};

/// The optimizer of a fused backward step (docs/semantics.md §6.4).
enum class Optimizer : uint8_t { sgd, adagrad, rowwise_adagrad, adam };

/// Where a kernel runs. `gpu_emulated` is the GPU kernel of
/// emb-nvptx-pipeline run on the host by emb-emulate-gpu-on-host: the GPU
/// lowering tested without a GPU. `nvptx` is the same kernel compiled for an
/// NVIDIA chip (`chip`, `ptx`), with a host function that launches it through
/// the CUDA runtime shim (runtime/CudaRuntime.cpp) on device pointers.
enum class Target : uint8_t { host, gpu_emulated, nvptx };

//===----------------------------------------------------------------------===//
// Names and sizes
//===----------------------------------------------------------------------===//

inline const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::f32:
    return "f32";
  case DType::f64:
    return "f64";
  case DType::f16:
    return "f16";
  case DType::bf16:
    return "bf16";
  case DType::i32:
    return "i32";
  case DType::i64:
    return "i64";
  case DType::u8:
    return "u8";
  }
  return "?";
}

inline std::optional<DType> parseDType(std::string_view name) {
  for (DType d : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32,
                  DType::i64, DType::u8})
    if (name == dtypeName(d))
      return d;
  return std::nullopt;
}

inline size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::f64:
  case DType::i64:
    return 8;
  case DType::f32:
  case DType::i32:
    return 4;
  case DType::f16:
  case DType::bf16:
    return 2;
  case DType::u8:
    return 1;
  }
  return 0;
}

inline const char *bagModeName(BagMode mode) {
  switch (mode) {
  case BagMode::sum:
    return "sum";
  case BagMode::mean:
    return "mean";
  case BagMode::max:
    return "max";
  case BagMode::sqrtn:
    return "sqrtn";
  case BagMode::none:
    return "none";
  }
  return "?";
}

inline const char *quantizationName(Quantization q) {
  switch (q) {
  case Quantization::none:
    return "none";
  case Quantization::int8:
    return "int8";
  case Quantization::int4:
    return "int4";
  }
  return "?";
}

/// The bytes of one quantised row of `dim` elements: `dim + 8` for int8 (the
/// bytes, then scale and bias as f32), `ceil(dim / 2) + 4` for int4 (two
/// elements a byte, then scale and bias as f16); `dim` floats' worth of
/// nothing for none (0).
inline int64_t quantizedRowBytes(Quantization q, int64_t dim) {
  switch (q) {
  case Quantization::int8:
    return dim + 8;
  case Quantization::int4:
    return (dim + 1) / 2 + 4;
  case Quantization::none:
    break;
  }
  return 0;
}

/// The mode named `name` ("sum", "mean", "max", "sqrtn", "none"), if any.
inline std::optional<BagMode> parseBagMode(std::string_view name) {
  for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::max,
                       BagMode::sqrtn, BagMode::none})
    if (name == bagModeName(mode))
      return mode;
  return std::nullopt;
}

inline const char *opKindName(OpKind op) {
  switch (op) {
  case OpKind::embedding:
    return "embedding";
  case OpKind::embedding_bag:
    return "embedding_bag";
  case OpKind::renorm:
    return "renorm";
  case OpKind::embedding_backward:
    return "embedding_backward";
  case OpKind::embedding_bag_backward:
    return "embedding_bag_backward";
  case OpKind::embedding_bag_psw_backward:
    return "embedding_bag_psw_backward";
  case OpKind::embedding_sparse_backward:
    return "embedding_sparse_backward";
  case OpKind::embedding_bag_sparse_backward:
    return "embedding_bag_sparse_backward";
  case OpKind::embedding_bag_tables:
    return "embedding_bag_tables";
  case OpKind::embedding_bag_update:
    return "embedding_bag_update";
  case OpKind::embedding_bag_tables_update:
    return "embedding_bag_tables_update";
  }
  return "?";
}

inline const char *optimizerName(Optimizer optimizer) {
  switch (optimizer) {
  case Optimizer::sgd:
    return "sgd";
  case Optimizer::adagrad:
    return "adagrad";
  case Optimizer::rowwise_adagrad:
    return "rowwise_adagrad";
  case Optimizer::adam:
    return "adam";
  }
  return "?";
}

/// The optimizer named `name` ("sgd", "adagrad", "rowwise_adagrad",
/// "adam"), if any.
inline std::optional<Optimizer> parseOptimizer(std::string_view name) {
  for (Optimizer o : {Optimizer::sgd, Optimizer::adagrad,
                      Optimizer::rowwise_adagrad, Optimizer::adam})
    if (name == optimizerName(o))
      return o;
  return std::nullopt;
}

/// The optimizer of a fused backward step and its hyper-parameters
/// (docs/semantics.md §6.4). lr and step change from call to call without
/// a new kernel; the others are baked into it.
struct OptimizerOptions {
  Optimizer optimizer = Optimizer::sgd;
  double lr = 0.01;
  /// adagrad, rowwise_adagrad, adam.
  double eps = 1e-8;
  /// L2: added to the gradient as weightDecay * W[r].
  double weightDecay = 0.0;
  /// adam.
  double beta1 = 0.9, beta2 = 0.999;
  /// adam: the step t >= 1 of the bias corrections 1 - beta^t.
  int64_t step = 1;
};

/// How many state tensors `optimizer` keeps per table: adagrad its sum of
/// squares [V, D], rowwise_adagrad its [V] one, adam its two moments.
inline int numOptimizerStates(Optimizer optimizer) {
  switch (optimizer) {
  case Optimizer::sgd:
    return 0;
  case Optimizer::adagrad:
  case Optimizer::rowwise_adagrad:
    return 1;
  case Optimizer::adam:
    return 2;
  }
  return 0;
}

inline const char *targetName(Target target) {
  switch (target) {
  case Target::host:
    return "host";
  case Target::gpu_emulated:
    return "gpu-emulated";
  case Target::nvptx:
    return "nvptx";
  }
  return "?";
}

} // namespace emb

#endif // EMB_CORE_TYPES_H
