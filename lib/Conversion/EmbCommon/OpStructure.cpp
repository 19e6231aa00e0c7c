//===- OpStructure.cpp - what every lowering reads off an emb op ----------===//

#include "Conversion/EmbCommon/OpStructure.h"
#include "Conversion/EmbCommon/LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;
using namespace mlir::emb::lowering;

Value mlir::emb::lowering::dimOf(ImplicitLocOpBuilder &b, Value shaped,
                                 int64_t i) {
  if (isa<MemRefType>(shaped.getType()))
    return memref::DimOp::create(b, shaped, i);
  return tensor::DimOp::create(b, shaped, i);
}

Value mlir::emb::lowering::bagsPerTable(ImplicitLocOpBuilder &b,
                                        Value offsets, int64_t numTables) {
  return arith::DivUIOp::create(
      b, arith::SubIOp::create(b, dimOf(b, offsets, 0), cIndex(b, 1)),
      cIndex(b, numTables));
}

TableBags mlir::emb::lowering::tableBags(ImplicitLocOpBuilder &b,
                                         MultiBagOp op, Value offsets) {
  Value perTable = bagsPerTable(b, offsets, op.getTables().size());
  return {perTable, op.getBagOffset() ? op.getBagOffset() : cIndex(b, 0),
          op.getBagCount() ? op.getBagCount() : perTable};
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

static Value constantLike(ImplicitLocOpBuilder &b, Value x, double v);

Value mlir::emb::lowering::weightSumTerm(ImplicitLocOpBuilder &b,
                                         BagMode mode, Value w) {
  return mode == BagMode::sqrtn ? (Value)arith::MulFOp::create(b, w, w) : w;
}

Value mlir::emb::lowering::bagDenominator(ImplicitLocOpBuilder &b,
                                          BagMode mode, Value count,
                                          Value weightSum, Type accElement) {
  Value den = weightSum;
  if (!den)
    den = arith::UIToFPOp::create(
        b, accElement, arith::IndexCastOp::create(b, b.getI64Type(), count));
  if (mode == BagMode::sqrtn)
    den = math::SqrtOp::create(b, den);
  return den;
}

Value mlir::emb::lowering::divideByDenominator(ImplicitLocOpBuilder &b,
                                               Value acc, Value denominator) {
  Type element = denominator.getType();
  Value zero = arith::ConstantOp::create(b, b.getFloatAttr(element, 0.0));
  Value one = arith::ConstantOp::create(b, b.getFloatAttr(element, 1.0));
  Value isZero = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ,
                                       denominator, zero);
  Value divisor = arith::SelectOp::create(b, isZero, one, denominator);
  Value zeros = constantLike(b, acc, 0.0);
  if (auto vt = dyn_cast<VectorType>(acc.getType()))
    divisor = vector::BroadcastOp::create(b, vt, divisor);
  return arith::SelectOp::create(b, isZero, zeros,
                                 arith::DivFOp::create(b, acc, divisor));
}

Value mlir::emb::lowering::bagGradientFactor(ImplicitLocOpBuilder &b,
                                             BagMode mode, Value indices,
                                             Value psw, Value start, Value end,
                                             Value pad, Type accElement) {
  bool weighted = needsWeightSum(mode, static_cast<bool>(psw));
  Value count, weightSum;
  if (!pad && !weighted) {
    count = arith::SubIOp::create(b, end, start);
  } else {
    SmallVector<Value> init{cIndex(b, 0)};
    if (weighted)
      init.push_back(
          arith::ConstantOp::create(b, b.getFloatAttr(accElement, 0.0)));
    auto loop = scf::ForOp::create(
        b, start, end, cIndex(b, 1), init,
        [&](OpBuilder &nb, Location loc, Value j, ValueRange it) {
          ImplicitLocOpBuilder lb(loc, nb);
          Value live = pad ? (Value)arith::CmpIOp::create(
                                 lb, arith::CmpIPredicate::ne,
                                 loadIndex(lb, indices, j), pad)
                           : Value();
          Value n = arith::AddIOp::create(lb, it[0], cIndex(lb, 1));
          if (live)
            n = arith::SelectOp::create(lb, live, n, it[0]);
          SmallVector<Value> next{n};
          if (weighted) {
            Value s = arith::AddFOp::create(
                lb, it[1],
                weightSumTerm(lb, mode, loadFloat(lb, psw, j, accElement)));
            next.push_back(live ? (Value)arith::SelectOp::create(lb, live, s,
                                                                 it[1])
                                : s);
          }
          scf::YieldOp::create(lb, next);
        });
    count = loop.getResult(0);
    if (weighted)
      weightSum = loop.getResult(1);
  }
  Value one = arith::ConstantOp::create(b, b.getFloatAttr(accElement, 1.0));
  return divideByDenominator(
      b, one, bagDenominator(b, mode, count, weightSum, accElement));
}

Value mlir::emb::lowering::quantizedByteOffset(ImplicitLocOpBuilder &b,
                                               Quantization q, Value d0) {
  if (q == Quantization::int8)
    return d0;
  if (std::optional<int64_t> c = getConstantIntValue(d0))
    return cIndex(b, *c / 2);
  return arith::DivUIOp::create(b, d0, cIndex(b, 2));
}

std::pair<Value, Value>
mlir::emb::lowering::quantizedScaleBias(ImplicitLocOpBuilder &b,
                                        Quantization q, Value tail) {
  Type f32 = b.getF32Type();
  Type stored = q == Quantization::int8 ? f32 : (Type)b.getF16Type();
  Value pair =
      vector::BitCastOp::create(b, VectorType::get({2}, stored), tail);
  auto element = [&](int64_t i) -> Value {
    Value v = vector::ExtractOp::create(b, pair, ArrayRef<int64_t>{i});
    return stored == f32 ? v : (Value)arith::ExtFOp::create(b, f32, v);
  };
  return {element(0), element(1)};
}

Value mlir::emb::lowering::dequantize(ImplicitLocOpBuilder &b, Quantization q,
                                      Value bytes, int64_t lanes, Value scale,
                                      Value bias) {
  auto byteType = cast<VectorType>(bytes.getType());
  Value values = bytes;
  if (q == Quantization::int4) {
    // Byte k holds element 2k in its low nibble and 2k + 1 in its high one.
    int64_t n = byteType.getNumElements();
    Type i8 = b.getI8Type();
    auto nibbles = [&](int64_t v) {
      return arith::ConstantOp::create(
          b, DenseElementsAttr::get(byteType, b.getIntegerAttr(i8, v)));
    };
    Value low = arith::AndIOp::create(b, bytes, nibbles(15));
    Value high = arith::ShRUIOp::create(b, bytes, nibbles(4));
    SmallVector<int64_t> mask;
    for (int64_t k = 0; k < n && (int64_t)mask.size() < lanes; ++k) {
      mask.push_back(k);
      if ((int64_t)mask.size() < lanes)
        mask.push_back(n + k);
    }
    values = vector::ShuffleOp::create(b, low, high, mask);
  }
  auto f32Type = VectorType::get({lanes}, b.getF32Type());
  Value qf = arith::UIToFPOp::create(b, f32Type, values);
  return vector::FMAOp::create(b, qf,
                               vector::BroadcastOp::create(b, f32Type, scale),
                               vector::BroadcastOp::create(b, f32Type, bias));
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

/// A constant `v` of `x`'s type (a splat for a vector).
static Value constantLike(ImplicitLocOpBuilder &b, Value x, double v) {
  Type type = x.getType();
  if (auto vt = dyn_cast<VectorType>(type))
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(vt, b.getFloatAttr(vt.getElementType(), v)));
  return arith::ConstantOp::create(b, b.getFloatAttr(type, v));
}

Value mlir::emb::lowering::normTerm(ImplicitLocOpBuilder &b, Value x,
                                    double p) {
  if (p == 0) {
    Value nz = arith::CmpFOp::create(b, arith::CmpFPredicate::UNE, x,
                                     constantLike(b, x, 0.0));
    return arith::SelectOp::create(b, nz, constantLike(b, x, 1.0),
                                   constantLike(b, x, 0.0));
  }
  if (p == 2)
    return arith::MulFOp::create(b, x, x);
  Value ax = math::AbsFOp::create(b, x);
  if (std::isinf(p) || p == 1)
    return ax;
  return math::PowFOp::create(b, ax, constantLike(b, x, p));
}

Value mlir::emb::lowering::normCombine(ImplicitLocOpBuilder &b, Value acc,
                                       Value term, double p) {
  if (std::isinf(p))
    return p > 0 ? (Value)arith::MaximumFOp::create(b, acc, term)
                 : (Value)arith::MinimumFOp::create(b, acc, term);
  return arith::AddFOp::create(b, acc, term);
}

Value mlir::emb::lowering::normIdentity(ImplicitLocOpBuilder &b, double p) {
  return arith::ConstantOp::create(
      b, b.getF64FloatAttr(std::isinf(p) && p < 0 ? INFINITY : 0.0));
}

Value mlir::emb::lowering::normRoot(ImplicitLocOpBuilder &b, Value combined,
                                    double p) {
  if (p == 2)
    return math::SqrtOp::create(b, combined);
  if (std::isinf(p) || p == 0 || p == 1)
    return combined;
  return math::PowFOp::create(
      b, combined, arith::ConstantOp::create(b, b.getF64FloatAttr(1.0 / p)));
}
