//===- LoweringUtils.h - helpers shared by the emb lowerings ----*- C++ -*-===//
//
// Small builders that convert-emb-to-scf and convert-emb-to-gpu both use:
// index constants, the accumulator type of a storage type, flattening of
// index tensors and the static embedding_dim a specialised kernel needs.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_CONVERSION_LOWERINGUTILS_H
#define EMB_CONVERSION_LOWERINGUTILS_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::emb::lowering {

inline Value cIndex(ImplicitLocOpBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}

/// The accumulator type of a storage type: f64 for f64, f32 otherwise
/// (f16 / bf16 accumulate in f32 and round once).
inline Type accumulatorType(Type element) {
  return element.isF64() ? element : Float32Type::get(element.getContext());
}

/// A tensor flattened to 1-D (0-D becomes [1]).
inline Value flatten(ImplicitLocOpBuilder &b, Value t) {
  auto type = cast<RankedTensorType>(t.getType());
  if (type.getRank() == 1)
    return t;
  int64_t n =
      type.hasStaticShape() ? type.getNumElements() : ShapedType::kDynamic;
  auto flat = RankedTensorType::get({n}, type.getElementType());
  if (type.getRank() == 0)
    return tensor::ExpandShapeOp::create(b, flat, t,
                                         ArrayRef<ReassociationIndices>{});
  ReassociationIndices all;
  for (int64_t i = 0; i < type.getRank(); ++i)
    all.push_back(i);
  return tensor::CollapseShapeOp::create(b, flat, t,
                                         ArrayRef<ReassociationIndices>{all});
}

/// The static embedding_dim of a table, or an error on `op`: a specialised
/// kernel has D baked in. `target` names the lowering ("CPU", "GPU").
inline FailureOr<int64_t> staticDim(Operation *op, Value table,
                                    StringRef target) {
  int64_t dim = cast<RankedTensorType>(table.getType()).getShape().back();
  if (ShapedType::isDynamic(dim))
    return op->emitOpError()
           << target << " lowering needs a static embedding_dim";
  return dim;
}

} // namespace mlir::emb::lowering

#endif // EMB_CONVERSION_LOWERINGUTILS_H
