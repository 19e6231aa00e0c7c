//===- Utils.h - builders shared by the GPU patterns
//------------------------===//
//
// Buffer loads and stores with the alignment NVPTX needs, the buffers of
// an op's results (KernelResults), launches of thread groups per row, the
// padding row, the bag structure, scratch memory and the dense gradient's
// target: what every GPU lowering of an emb op builds from (private to
// lib/Conversion/EmbToGPU).
//
//===----------------------------------------------------------------------===//

#ifndef EMB_LIB_CONVERSION_EMBTOGPU_UTILS_H
#define EMB_LIB_CONVERSION_EMBTOGPU_UTILS_H

#include "Conversion/EmbCommon/GPUConfig.h"
#include "Conversion/EmbCommon/LoweringUtils.h"
#include "Conversion/EmbCommon/OpStructure.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::emb::gpu_lowering {
using namespace mlir::emb::lowering;
using namespace mlir::emb::gpu_config;
using lowering::loadIndex; // the 1-D form, next to the 2-D one below

/// Element [i, j] of a 2-D i64 buffer (max_indices), as an index.
Value loadIndex(ImplicitLocOpBuilder &b, Value buffer, Value i, Value j);

/// A row piece of `type` at `indices`, aligned to its size (16 bytes for a
/// full vector): `ld.global.v4.f32` needs the alignment stated. Row starts
/// are multiples of the vector when D is, so this holds for buffers whose
/// base is 16-byte aligned (the runtime checks it).
Value loadRow(ImplicitLocOpBuilder &b, VectorType type, Value base,
              ValueRange indices);

void storeRow(ImplicitLocOpBuilder &b, Value v, Value base, ValueRange indices);

Value splat(ImplicitLocOpBuilder &b, VectorType type, Attribute value);

Value extend(ImplicitLocOpBuilder &b, Value v, VectorType to);

Value truncate(ImplicitLocOpBuilder &b, Value v, VectorType to);

Value toBuffer(ImplicitLocOpBuilder &b, Value tensor);

/// A `tensor.empty` shaped like `result`, with `dynSizes` for its dynamic
/// dimensions: the init of a new result of KernelResults.
Value emptyLike(ImplicitLocOpBuilder &b, Value result, ValueRange dynSizes);

/// The results of an op, as the buffers its kernels write: an
/// `emb.on_buffers` op over `inits` (new results: emptyLike; tensors the
/// kernels update: those tensors, with `updates`). The builder moves into
/// its body, whose arguments are `buffers`, one per init, row-major.
/// Upstream bufferisation decides what they are (EmbOps.td): the buffer a
/// result is materialised in, the updated tensor's own buffer, or new ones.
struct KernelResults {
  OnBuffersOp op;
  SmallVector<Value> buffers;

  KernelResults(ImplicitLocOpBuilder &b, ValueRange inits,
                bool updates = false);

  /// Gives the op its inputs (the tensors its body reads through
  /// `to_buffer`, before the op or in it), then replaces the results of
  /// `replaced` (in the inits' order) and erases it.
  void replace(RewriterBase &rewriter, Operation *replaced);
};

/// A row-major buffer `[N..., D]` as `[N, D]` rows (a view, no copy); 0-D
/// indices' `[D]` as `[1, D]`.
Value rows2d(ImplicitLocOpBuilder &b, Value buffer);

/// The dynamic sizes of `indices.shape + [D]` (the lookup's result).
SmallVector<Value> lookupSizes(ImplicitLocOpBuilder &b, Value indices);

/// The vector width and threads per row of rows of `dim` elements of
/// `element` (GPUConfig.h).
std::pair<int64_t, int64_t> rowLayout(int64_t dim, Type element,
                                      const GPULaunchConfig &config);

/// Launches `body(row, lane)` over `numRows` rows of `threadsPerRow`
/// threads each (see GPUConfig.h), only if there is a row at all.
void launchRows(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
                Value numRows, int64_t threadsPerRow,
                function_ref<void(ImplicitLocOpBuilder &, Value, Value)> body);

/// For each vector-wide column chunk `c` of `lane`:
///   for (c = lane * vec; c < D; c += threadsPerRow * vec)
void forEachChunk(ImplicitLocOpBuilder &b, Value lane, int64_t dim, int64_t vec,
                  int64_t threadsPerRow,
                  function_ref<void(ImplicitLocOpBuilder &, Value)> body);

/// The bag structure (OpStructure.h) of a bag op's operands, as buffers.
BagStructure bagOnBuffers(ImplicitLocOpBuilder &b, Value indices, Value offsets,
                          bool includeLastOffset);

/// Device memory for the kernels of one op, freed after them (the host
/// emulation turns it into host memory).
Value allocScratch(ImplicitLocOpBuilder &b, MemRefType type,
                   ValueRange dynSizes);

void freeScratch(ImplicitLocOpBuilder &b, Value buffer);

/// The gradient's rows `[first, first + count)`: the `rows` window of the
/// op, or all V rows.
std::pair<Value, Value> gradientRows(ImplicitLocOpBuilder &b, Value offset,
                                     Value count, int64_t numEmbeddings);

/// A launch that stores zeros in the `count` rows of `rows` ([count, D]).
void zeroRows(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
              Value rows, Value count, int64_t dim, int64_t vec, int64_t tpr,
              Type element);

/// Where a dense gradient accumulates: the output itself (f32, f64), or an
/// f32 scratch table converted into it at the end (f16 / bf16: the
/// semantics accumulate in f32 and round once). With scale_grad_by_freq,
/// also the number of occurrences of each row of the window. Each step is
/// its own launch; launches without async tokens run one after another,
/// so zeros, counts, the scatter and the rounding never overlap.
struct GradTarget {
  GPULaunchConfig config;
  Value gw, acc, counts;
  Type element, accElement;
  int64_t dim, vec, tpr;
  Value first, count;

  GradTarget(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
             Value gwBuffer, Type element, int64_t dim, Value first,
             Value count, bool byFreq)
      : config(config), gw(gwBuffer), element(element), dim(dim), first(first),
        count(count) {
    accElement = accumulatorType(element);
    // The accumulator's row layout (f32 for f16 / bf16: 16 bytes of it per
    // lane) when the scatter can interleave it, so that a lane group's
    // atomics cover whole sectors; else the element's.
    std::tie(vec, tpr) = rowLayout(dim, accElement, config);
    if (!interleaved())
      std::tie(vec, tpr) = rowLayout(dim, element, config);
    acc = gw;
    if (accElement != element)
      acc = allocScratch(
          b, MemRefType::get({ShapedType::kDynamic, dim}, accElement), count);
    zeroRows(b, config, acc, count, dim, vec, tpr, accElement);
    if (byFreq) {
      // i64, as PyTorch counts: a row may occur 2^31 times or more.
      counts = allocScratch(
          b, MemRefType::get({ShapedType::kDynamic}, b.getI64Type()), count);
      launchRows(
          b, config, count, 1, [&](ImplicitLocOpBuilder &ib, Value row, Value) {
            memref::StoreOp::create(
                ib, arith::ConstantOp::create(ib, ib.getI64IntegerAttr(0)),
                counts, ValueRange{row});
          });
    }
  }

  /// The count launch: one occurrence per live position of `indices` whose
  /// row lies in the window.
  void countRows(ImplicitLocOpBuilder &b, Value indices, Value pad) {
    if (!counts)
      return;
    Value n = memref::DimOp::create(b, indices, 0);
    launchRows(b, config, n, 1, [&](ImplicitLocOpBuilder &ib, Value i, Value) {
      Value r = loadIndex(ib, indices, i);
      Value local = arith::SubIOp::create(ib, r, first);
      Value ok =
          arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, local, count);
      if (pad)
        ok = arith::AndIOp::create(
            ib, ok,
            arith::CmpIOp::create(ib, arith::CmpIPredicate::ne, r, pad));
      scf::IfOp::create(ib, ok, [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder ab(loc, nb);
        memref::AtomicRMWOp::create(
            ab, arith::AtomicRMWKind::addi,
            arith::ConstantOp::create(ab, ab.getI64IntegerAttr(1)), counts,
            ValueRange{local});
        scf::YieldOp::create(ab);
      });
    });
  }

  /// The scatter's column layout. A lane's chunk at `c` (forEachChunk) is
  /// columns c .. c + vec - 1: a warp's atomic of element e then touches
  /// every 16 bytes' e-th element, four times the sectors its bytes need.
  /// When D is a multiple of tpr * vec, the chunk's elements are spread
  /// across the group instead (element e of lane l: column base + e * tpr
  /// + l, base = c - l * vec), so that each atomic of a group covers tpr
  /// consecutive elements (docs/gpu.md, "Memory transactions").
  bool interleaved() const { return vec > 1 && dim % (tpr * vec) == 0; }
  Value column(ImplicitLocOpBuilder &b, Value c, Value lane, int64_t e) const {
    if (!interleaved())
      return arith::AddIOp::create(b, c, cIndex(b, e));
    Value base = arith::SubIOp::create(
        b, c, arith::MulIOp::create(b, lane, cIndex(b, vec)));
    return arith::AddIOp::create(
        b, base,
        arith::AddIOp::create(b, lane, cIndex(b, e * tpr)));
  }

  /// The gradient's elements of the lane's chunk at `c` in the scatter's
  /// layout: one 16-byte vector, or (interleaved) vec scalars, each load
  /// of the group covering tpr consecutive elements.
  Value loadChunk(ImplicitLocOpBuilder &b, VectorType type, Value grad,
                  Value row, Value c, Value lane) const {
    if (!interleaved())
      return loadRow(b, type, grad, ValueRange{row, c});
    SmallVector<Value> elements;
    for (int64_t e = 0; e < vec; ++e)
      elements.push_back(memref::LoadOp::create(
          b, grad, ValueRange{row, column(b, c, lane, e)}));
    return vector::FromElementsOp::create(b, type, elements);
  }

  /// acc[r - first, column(c, lane, e)] += v[e] / count(r) (without the
  /// count: v[e]), atomically, for every element e, when row `r` lies in
  /// the window.
  void add(ImplicitLocOpBuilder &b, Value v, Value r, Value c, Value lane) {
    Value local = arith::SubIOp::create(b, r, first);
    Value inWindow =
        arith::CmpIOp::create(b, arith::CmpIPredicate::ult, local, count);
    scf::IfOp::create(b, inWindow, [&](OpBuilder &nb, Location loc) {
      ImplicitLocOpBuilder ib(loc, nb);
      Value x = v;
      if (counts) {
        Value k = memref::LoadOp::create(ib, counts, ValueRange{local});
        Value inv = arith::DivFOp::create(
            ib, arith::ConstantOp::create(ib, ib.getFloatAttr(accElement, 1.0)),
            arith::SIToFPOp::create(ib, accElement, k));
        x = arith::MulFOp::create(
            ib, x, vector::BroadcastOp::create(ib, x.getType(), inv));
      }
      for (int64_t e = 0; e < vec; ++e)
        memref::AtomicRMWOp::create(
            ib, arith::AtomicRMWKind::addf,
            vector::ExtractOp::create(ib, x, ArrayRef<int64_t>{e}), acc,
            ValueRange{local, column(ib, c, lane, e)});
      scf::YieldOp::create(ib);
    });
  }

  /// The last launch for f16 / bf16: gw = round(acc); then frees scratch.
  void finish(ImplicitLocOpBuilder &b) {
    if (acc != gw) {
      auto accType = VectorType::get({vec}, accElement);
      auto vecType = VectorType::get({vec}, element);
      launchRows(b, config, count, tpr,
                 [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
                   forEachChunk(ib, lane, dim, vec, tpr,
                                [&](ImplicitLocOpBuilder &cb, Value c) {
                                  Value v = loadRow(cb, accType, acc,
                                                    ValueRange{row, c});
                                  storeRow(cb, truncate(cb, v, vecType), gw,
                                           ValueRange{row, c});
                                });
                 });
      freeScratch(b, acc);
    }
    if (counts)
      freeScratch(b, counts);
  }
};

/// What both GPU lowerings of emb.lookup_grad (atomic, deterministic) read
/// off the op: the gradient rows and flat indices as buffers, the number of
/// positions, the row window [first, first + count), the result's init and
/// the padding row.
struct LookupGradInputs {
  Value grad, indices, n, first, count;
  Value resultInit; // the result's tensor.empty (KernelResults)
  Value pad;
};
LookupGradInputs lookupGradInputs(ImplicitLocOpBuilder &b, LookupGradOp op);

/// `grad` ([..., D]) as a [N, D] buffer.
Value gradRows(ImplicitLocOpBuilder &b, Value grad);

/// `v` (a gradient row piece) in the accumulator type, times the constant
/// `scale` and the runtime `factor` (either may be absent).
Value scaleRow(ImplicitLocOpBuilder &b, Value v, Type accElement, double scale,
               Value factor);

/// The base of every GPU pattern: the op, and the launch configuration it
/// lowers with.
template <typename Op> struct GPUPattern : OpRewritePattern<Op> {
  GPUPattern(MLIRContext *context, const GPULaunchConfig &config,
             PatternBenefit benefit = 1)
      : OpRewritePattern<Op>(context, benefit), config(config) {}
  GPULaunchConfig config;
};

} // namespace mlir::emb::gpu_lowering

#endif // EMB_LIB_CONVERSION_EMBTOGPU_UTILS_H
