//===- KernelABI.h - the arguments of a generated kernel --------*- C++ -*-===//
//
// The one owner of the contract between the generated kernels and the
// runtime that calls them: for a KernelSpec, the ordered argument slots of
// its kernel function, each a memref of a known rank and element type.
// lib/JIT/KernelBuilder.cpp builds the kernel's signature from it and the
// Engine (runtime/) fills the arguments by slot from it.
//
// Every kernel is called through one packed entry point,
//
//   void _emb_packed_<symbol>(void **args)
//
// where args[i] points to the memref descriptor of argument i
// ({allocated, aligned, offset, sizes[rank], strides[rank]}, as MLIR's
// C interface passes it), so callers need no switch over the arity.
// Plain C++: no MLIR or LLVM dependency.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_JIT_KERNELABI_H
#define EMB_JIT_KERNELABI_H

#include "emb/JIT/KernelSpec.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace emb {

/// What an argument of a kernel is.
enum class ArgSlot : uint8_t {
  weight,           ///< the table [V, D] (renorm: written in place; a
                    ///< many-table bag: every table, flat, one after another)
  indices,          ///< 1-D, or [B, L] for 2-D bags
  offsets,          ///< bag starts (1-D bags)
  perSampleWeights, ///< the shape of indices
  grad,             ///< the incoming gradient's rows
  out,              ///< the forward result's rows
  maxIndices,       ///< [B, D] i64: the forward's argmax of mode max
  window,           ///< i64[2]: first row and row count of gradWeight
                    ///< (a many-table bag: first bag and bag count; a
                    ///< many-table step: first part and part count, of
                    ///< kTableRowParts parts of every table)
  gradWeight,       ///< the rows [first, first + count) of the dense gradient
  gradPerSampleWeights, ///< the per_sample_weights gradient (indices' shape)
  sparseRows,           ///< i64[capacity]: the COO rows
  sparseValues,         ///< [capacity, D]: the COO values
  sparseCount,          ///< i64[1], host memory: the number of COO rows
  optimizerState,       ///< an optimizer's first state (adagrad's sum of
                        ///< squares, adam's first moment), the window's rows
  optimizerState2,      ///< adam's second moment, the window's rows
  hyper                 ///< f64[2], host memory: lr, and adam's step
};
constexpr unsigned kNumArgSlots = 16;

/// The many-table fused step's window counts parts of every table, not
/// rows (emb.multi_bag_update's row_parts): part p of table t starts at
/// row floor(p * V_t / kTableRowParts), so that every thread's window
/// holds a share of every table's rows and entries.
constexpr int64_t kTableRowParts = 1024;
const char *argSlotName(ArgSlot slot);

/// The element type of an argument: one of the spec's dtypes, i64, the
/// bytes (i8) of a quantised table, an optimizer state's (f32, f64 for an
/// f64 table) or f64.
enum class ArgElement : uint8_t { weight, indices, offsets, i64, bytes, state, f64 };

/// The shape of an argument.
enum class ArgShape : uint8_t {
  rows,    ///< [?, D]
  packedRows, ///< [?, quantizedRowBytes(quant, D)]: a quantised table
  list,    ///< [?]
  indexed, ///< the shape of the kernel's indices: [?] or, 2-D bags, [?, ?]
  pair,    ///< [2]
  single   ///< [1]
};

struct KernelArg {
  ArgSlot slot;
  ArgElement element;
  ArgShape shape;
  /// 1 or 2.
  unsigned rank;
};

/// The most arguments a kernel has.
constexpr unsigned kMaxKernelArgs = 10;

/// The arguments of a kernel, in order (a view into its KernelABI).
class KernelArgList {
public:
  KernelArgList(const KernelArg *first, unsigned count)
      : first(first), count(count) {}
  const KernelArg *begin() const { return first; }
  const KernelArg *end() const { return first + count; }
  size_t size() const { return count; }
  const KernelArg &operator[](size_t i) const { return first[i]; }

private:
  const KernelArg *first;
  unsigned count;
};

/// The ordered arguments of the kernel of one spec. Computed per call by
/// the runtime: no allocation.
class KernelABI {
public:
  explicit KernelABI(const KernelSpec &spec);

  KernelArgList args() const { return {arguments, count}; }
  /// The position of `slot` among the arguments, or -1 when the kernel has
  /// no such argument.
  int position(ArgSlot slot) const { return positions[unsigned(slot)]; }
  bool has(ArgSlot slot) const { return position(slot) >= 0; }

  /// The packed entry point: `_emb_packed_<spec.symbolName()>`.
  static std::string packedEntryName(const KernelSpec &spec);

private:
  void add(ArgSlot slot, ArgElement element, ArgShape shape, bool twoD);

  KernelArg arguments[kMaxKernelArgs];
  unsigned count = 0;
  int positions[kNumArgSlots];
};

/// The packed entry point of a kernel (see above).
using KernelFn = void (*)(void **args);

} // namespace emb

#endif // EMB_JIT_KERNELABI_H
