//===- OpStructure.cpp - what every lowering reads off an emb op ----------===//

#include "Conversion/EmbCommon/OpStructure.h"
#include "Conversion/EmbCommon/LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::emb::lowering;

Value mlir::emb::lowering::dimOf(ImplicitLocOpBuilder &b, Value shaped,
                                 int64_t i) {
  if (isa<MemRefType>(shaped.getType()))
    return memref::DimOp::create(b, shaped, i);
  return tensor::DimOp::create(b, shaped, i);
}

/// Element `pos` of a 1-D tensor or buffer (buffer loads aligned to the
/// element size).
static Value loadElement(ImplicitLocOpBuilder &b, Value shaped, Value pos) {
  if (auto type = dyn_cast<MemRefType>(shaped.getType()))
    return memref::LoadOp::create(
        b, shaped, ValueRange{pos}, /*nontemporal=*/false,
        llvm::MaybeAlign(type.getElementTypeBitWidth() / 8));
  return tensor::ExtractOp::create(b, shaped, pos);
}

Value mlir::emb::lowering::loadIndex(ImplicitLocOpBuilder &b, Value shaped,
                                     Value pos) {
  return arith::IndexCastOp::create(b, b.getIndexType(),
                                    loadElement(b, shaped, pos));
}

Value mlir::emb::lowering::loadFloat(ImplicitLocOpBuilder &b, Value shaped,
                                     Value pos, Type to) {
  Value v = loadElement(b, shaped, pos);
  if (v.getType() != to)
    v = arith::ExtFOp::create(b, to, v);
  return v;
}

Value mlir::emb::lowering::paddingRow(ImplicitLocOpBuilder &b,
                                      std::optional<int64_t> paddingIdx,
                                      Value table) {
  if (!paddingIdx)
    return Value();
  if (*paddingIdx >= 0)
    return cIndex(b, *paddingIdx);
  int64_t numEmbeddings = cast<ShapedType>(table.getType()).getDimSize(0);
  if (!ShapedType::isDynamic(numEmbeddings))
    return cIndex(b, numEmbeddings + *paddingIdx);
  return arith::AddIOp::create(b, dimOf(b, table, 0), cIndex(b, *paddingIdx));
}

Value mlir::emb::lowering::staticPaddingRow(ImplicitLocOpBuilder &b,
                                            std::optional<int64_t> p,
                                            int64_t numEmbeddings) {
  if (!p)
    return Value();
  return cIndex(b, *p < 0 ? *p + numEmbeddings : *p);
}

BagStructure::BagStructure(ImplicitLocOpBuilder &b, Value flat, Value indices2D,
                           Value offsetsIn, bool includeLastOffset)
    : indices(flat), offsets(offsetsIn) {
  twoD = static_cast<bool>(indices2D);
  includeLast = includeLastOffset && !twoD;
  numIndices = dimOf(b, flat, 0);
  if (twoD) {
    numBags = dimOf(b, indices2D, 0);
    bagLen = dimOf(b, indices2D, 1);
  } else {
    numOffsets = dimOf(b, offsets, 0);
    numBags = includeLast ? arith::SubIOp::create(b, numOffsets, cIndex(b, 1))
                          : numOffsets;
  }
}

std::pair<Value, Value> BagStructure::bounds(ImplicitLocOpBuilder &b,
                                             Value bag) const {
  if (twoD) {
    Value start = arith::MulIOp::create(b, bag, bagLen);
    return {start, arith::AddIOp::create(b, start, bagLen)};
  }
  Value c1 = cIndex(b, 1);
  Value start = loadIndex(b, offsets, bag);
  Value next = arith::AddIOp::create(b, bag, c1);
  if (includeLast)
    return {start, loadIndex(b, offsets, next)};
  Value last = arith::SubIOp::create(b, numOffsets, c1);
  Value safe = arith::MinUIOp::create(b, next, last);
  Value nextOff = loadIndex(b, offsets, safe);
  Value hasNext =
      arith::CmpIOp::create(b, arith::CmpIPredicate::ult, next, numOffsets);
  return {start, arith::SelectOp::create(b, hasNext, nextOff, numIndices)};
}

Value mlir::emb::lowering::gradientAsRows(ImplicitLocOpBuilder &b, Value grad,
                                          int64_t rowsHint) {
  auto type = cast<RankedTensorType>(grad.getType());
  if (type.getRank() == 2)
    return grad;
  int64_t dim = type.getShape().back();
  int64_t n = rowsHint;
  if (type.hasStaticShape())
    n = type.getNumElements() / std::max<int64_t>(dim, 1);
  auto rows = RankedTensorType::get({n, dim}, type.getElementType());
  if (type.getRank() == 1)
    return tensor::ExpandShapeOp::create(
        b, rows, grad, ArrayRef<ReassociationIndices>{{0, 1}});
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < type.getRank(); ++i)
    lead.push_back(i);
  return tensor::CollapseShapeOp::create(
      b, rows, grad,
      ArrayRef<ReassociationIndices>{lead, {type.getRank() - 1}});
}
