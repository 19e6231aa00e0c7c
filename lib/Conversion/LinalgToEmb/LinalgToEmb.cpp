//===- LinalgToEmb.cpp - raise torch-mlir's linalg gather to emb.lookup ---===//
//
// torch-mlir (TorchToLinalg) lowers aten.embedding to
//
//   %r = linalg.generic {indexing_maps = [(d0..dk) -> (d0..dk-1), identity],
//                        iterator_types = [parallel x (k+1)]}
//       ins(%indices : tensor<...xi64>) outs(%init : tensor<...xDxf32>) {
//   ^bb0(%in: i64, %out: f32):
//     %i = arith.index_cast %in : i64 to index
//     %j = linalg.index k : index
//     %lt = arith.cmpi slt, %i, %V : index                         (optional)
//     cf.assert %lt, "index must be smaller than dim size"          (optional)
//     %ge = arith.cmpi sge, %in, %c0 : i64                          (optional)
//     cf.assert %ge, "index must be larger or equal to 0"           (optional)
//     %e = tensor.extract %weight[%i, %j] : tensor<VxDxf32>
//     linalg.yield %e : f32
//   }
//   ==>
//   scf.for over the indices asserting 0 <= x < V          (if there were
//   asserts) %r = emb.lookup %weight[%indices] : ... -> tensor<...xDxf32>
//
//===----------------------------------------------------------------------===//

#include "emb/Conversion/Passes.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::emb {
#define GEN_PASS_DEF_RAISELINALGTOEMB
#include "emb/Conversion/Passes.h.inc"
} // namespace mlir::emb

using namespace mlir;

namespace {

bool isEmbFloat(Type t) {
  return t.isF32() || t.isF64() || t.isF16() || t.isBF16();
}

/// The table of a torch-mlir embedding gather, and its bounds checks. When
/// the row is not the index itself but a pure function of it (a clamp, a
/// select that wraps negative indices, casts), `indexOps` computes it, in
/// body order, from `in` and values defined outside: the raise hoists them
/// into an elementwise generic over the indices.
struct GatherMatch {
  Value weight;
  SmallVector<cf::AssertOp> asserts;
  SmallVector<Operation *> indexOps;
  Value row;
};

/// The ops of the body computing `row` from `in` alone (and values defined
/// outside the generic), in body order; failure when `row` depends on
/// anything else (the output, a loop index, a memory read) or on an op
/// that is not pure integer / index arithmetic.
FailureOr<SmallVector<Operation *>> rowFunctionOf(Value row, BlockArgument in,
                                                  Region &body) {
  llvm::SetVector<Operation *> slice;
  SmallVector<Value> work{row};
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (v == in)
      continue;
    if (auto arg = dyn_cast<BlockArgument>(v))
      if (body.isAncestor(arg.getParentRegion()))
        return failure(); // the output or another input
    Operation *def = v.getDefiningOp();
    if (!def || !body.isAncestor(def->getParentRegion()))
      continue; // defined outside: a constant or a dim of the table
    if (def->getNumRegions() != 0 || !isPure(def) ||
        !isa<arith::ArithDialect>(def->getDialect()) ||
        llvm::any_of(def->getResultTypes(),
                     [](Type t) { return !t.isIntOrIndex(); }))
      return failure();
    if (slice.insert(def))
      llvm::append_range(work, def->getOperands());
  }
  SmallVector<Operation *> ordered;
  for (Operation &o : body.front())
    if (slice.contains(&o))
      ordered.push_back(&o);
  return ordered;
}

/// Whether `v` is the gathered index `in`, or a cast of it.
bool isGatheredIndex(Value v, BlockArgument in) {
  while (Operation *op = v.getDefiningOp()) {
    if (!isa<arith::IndexCastOp, arith::ExtSIOp>(op))
      break;
    v = op->getOperand(0);
  }
  return v == in;
}

/// Whether `v` is the table's row count: its static size, or tensor.dim of
/// it along 0.
bool isRowCount(Value v, Value weight) {
  while (Operation *op = v.getDefiningOp()) {
    if (!isa<arith::IndexCastOp, arith::ExtSIOp>(op))
      break;
    v = op->getOperand(0);
  }
  APInt c;
  auto wType = cast<RankedTensorType>(weight.getType());
  if (matchPattern(v, m_ConstantInt(&c)))
    return !wType.isDynamicDim(0) && c.getSExtValue() == wType.getDimSize(0);
  auto dim = v.getDefiningOp<tensor::DimOp>();
  std::optional<int64_t> d = dim ? dim.getConstantIndex() : std::nullopt;
  return dim && dim.getSource() == weight && d && *d == 0;
}

bool isConstant(Value v, int64_t value) {
  APInt c;
  return matchPattern(v, m_ConstantInt(&c)) && c.getSExtValue() == value;
}

/// Whether `cmp` is true exactly when the index is in its half of [0, V):
/// x < V, x >= 0, x > -1, or x <u V (both at once); either operand order.
bool isBoundCheck(arith::CmpIOp cmp, BlockArgument in, Value weight) {
  using P = arith::CmpIPredicate;
  Value lhs = cmp.getLhs(), rhs = cmp.getRhs();
  P pred = cmp.getPredicate();
  if (!isGatheredIndex(lhs, in)) { // c <op> x: as x <swapped op> c
    std::swap(lhs, rhs);
    switch (pred) {
    case P::sgt: pred = P::slt; break;
    case P::ugt: pred = P::ult; break;
    case P::sle: pred = P::sge; break;
    case P::slt: pred = P::sgt; break;
    default: return false;
    }
    if (!isGatheredIndex(lhs, in))
      return false;
  }
  switch (pred) {
  case P::slt:
  case P::ult:
    return isRowCount(rhs, weight);
  case P::sge:
    return isConstant(rhs, 0);
  case P::sgt:
    return isConstant(rhs, -1);
  default:
    return false;
  }
}

/// Adds to `checks` the ops computing an assert's condition when it is a
/// conjunction (arith.andi) of bound checks of the gathered index.
LogicalResult collectBoundChecks(Value condition, BlockArgument in,
                                 Value weight,
                                 llvm::SmallPtrSetImpl<Operation *> &checks) {
  Operation *op = condition.getDefiningOp();
  if (auto andi = dyn_cast_or_null<arith::AndIOp>(op)) {
    checks.insert(andi);
    return success(succeeded(collectBoundChecks(andi.getLhs(), in, weight,
                                                checks)) &&
                   succeeded(collectBoundChecks(andi.getRhs(), in, weight,
                                                checks)));
  }
  auto cmp = dyn_cast_or_null<arith::CmpIOp>(op);
  if (!cmp || !isBoundCheck(cmp, in, weight))
    return failure();
  checks.insert(cmp);
  for (Value operand : cmp->getOperands()) // the casts of x and of V
    for (Operation *def = operand.getDefiningOp();
         def && isa<arith::IndexCastOp, arith::ExtSIOp>(def);
         def = def->getOperand(0).getDefiningOp())
      checks.insert(def);
  return success();
}

FailureOr<GatherMatch> matchGather(linalg::GenericOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1)
    return failure();
  auto idxType = dyn_cast<RankedTensorType>(op.getDpsInputs()[0].getType());
  auto outType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  if (!idxType || !outType || outType.getRank() != idxType.getRank() + 1 ||
      !isEmbFloat(outType.getElementType()) ||
      !(idxType.getElementType().isSignlessInteger(32) ||
        idxType.getElementType().isSignlessInteger(64)))
    return failure();
  int64_t k = idxType.getRank();
  if (!llvm::all_of(op.getIteratorTypesArray(), [](utils::IteratorType t) {
        return t == utils::IteratorType::parallel;
      }))
    return failure();
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  MLIRContext *ctx = op.getContext();
  if (maps[1] != AffineMap::getMultiDimIdentityMap(k + 1, ctx) ||
      maps[0] !=
          AffineMap::getMultiDimIdentityMap(k + 1, ctx).getMajorSubMap(k))
    return failure();

  Block &body = op.getRegion().front();
  BlockArgument in = body.getArgument(0), out = body.getArgument(1);
  if (!out.use_empty())
    return failure();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto extract = yield.getValues()[0].getDefiningOp<tensor::ExtractOp>();
  if (!extract || extract.getIndices().size() != 2)
    return failure();
  Value weight = extract.getTensor();
  auto wType = dyn_cast<RankedTensorType>(weight.getType());
  if (!wType || wType.getElementType() != outType.getElementType() ||
      weight.getParentRegion()->isAncestor(&op.getRegion()) == false)
    return failure();
  if (wType.getRank() != 2 ||
      (!wType.isDynamicDim(1) && !outType.isDynamicDim(k) &&
       wType.getDimSize(1) != outType.getDimSize(k)))
    return failure();
  auto cast = extract.getIndices()[0].getDefiningOp<arith::IndexCastOp>();
  auto index = extract.getIndices()[1].getDefiningOp<linalg::IndexOp>();
  if (!index || index.getDim() != static_cast<uint64_t>(k))
    return failure();
  GatherMatch match{weight, {}, {}, extract.getIndices()[0]};
  if (!cast || cast.getIn() != in) {
    // The row as a pure function of the index (clamped, wrapped, ...).
    cast = nullptr;
    auto ops = rowFunctionOf(match.row, in, op.getRegion());
    if (failed(ops) || ops->empty())
      return failure();
    match.indexOps = std::move(*ops);
  }

  // Nothing else in the body but bounds checks of that index, each one of
  // 0 <= x, x < V (or both, as one unsigned compare), in any of their usual
  // forms: one assert per compare (torch-mlir), or compares joined by
  // arith.andi under one assert (IREE). A check of any other bound is not
  // an embedding's: the generic is left alone.
  llvm::SmallPtrSet<Operation *, 8> checks;
  for (Operation &o : body)
    if (auto a = dyn_cast<cf::AssertOp>(o)) {
      if (failed(collectBoundChecks(a.getArg(), in, weight, checks)))
        return failure();
      match.asserts.push_back(a);
    }
  for (Operation &o : body) {
    if (&o == extract.getOperation() || (cast && &o == cast.getOperation()) ||
        &o == index.getOperation() || &o == yield.getOperation() ||
        isa<arith::ConstantOp, cf::AssertOp>(o) || checks.contains(&o) ||
        llvm::is_contained(match.indexOps, &o))
      continue;
    return failure();
  }
  return match;
}

/// Keeps a gather's bounds checks when it is raised: 0 <= x < V for every
/// index, as an scf.for of asserts with the same messages, before the op.
void emitBoundChecks(PatternRewriter &rewriter, Location loc, Value weight,
                     Value indices, ArrayRef<cf::AssertOp> asserts) {
  if (asserts.empty())
    return;
  SmallVector<std::string> messages;
  for (cf::AssertOp a : asserts)
    messages.push_back(a.getMsg().str());
  std::string tooLarge = messages.size() > 0 ? messages[0] : "index out of range";
  std::string negative = messages.size() > 1 ? messages[1] : tooLarge;
  auto idxType = cast<RankedTensorType>(indices.getType());
  Value v = tensor::DimOp::create(rewriter, loc, weight, 0);
  Value flat = indices;
  if (idxType.getRank() != 1) {
    int64_t n = idxType.hasStaticShape() ? idxType.getNumElements()
                                         : ShapedType::kDynamic;
    auto flatType = RankedTensorType::get({n}, idxType.getElementType());
    ReassociationIndices all;
    for (int64_t i = 0; i < idxType.getRank(); ++i)
      all.push_back(i);
    flat = idxType.getRank() == 0
               ? (Value)tensor::ExpandShapeOp::create(
                     rewriter, loc, flatType, indices,
                     ArrayRef<ReassociationIndices>{})
               : (Value)tensor::CollapseShapeOp::create(
                     rewriter, loc, flatType, indices,
                     ArrayRef<ReassociationIndices>{all});
  }
  Value c0 = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(rewriter, loc, 1);
  Value n = tensor::DimOp::create(rewriter, loc, flat, 0);
  scf::ForOp::create(
      rewriter, loc, c0, n, c1, ValueRange{},
      [&](OpBuilder &b, Location l, Value p, ValueRange) {
        Value x = tensor::ExtractOp::create(b, l, flat, p);
        Value xi = arith::IndexCastOp::create(b, l, b.getIndexType(), x);
        Value lt = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, xi, v);
        cf::AssertOp::create(b, l, lt, tooLarge);
        Value zero =
            arith::ConstantOp::create(b, l, b.getIntegerAttr(x.getType(), 0));
        Value ge =
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, x, zero);
        cf::AssertOp::create(b, l, ge, negative);
        scf::YieldOp::create(b, l);
      });
}

/// The rows a gather reads when its row is a function of the index: an
/// elementwise generic over the indices computing that function (the
/// body's own ops, cloned), as i64 row numbers.
Value hoistRowFunction(PatternRewriter &rewriter, linalg::GenericOp op,
                       const GatherMatch &match) {
  Location loc = op.getLoc();
  Value indices = op.getDpsInputs()[0];
  auto idxType = cast<RankedTensorType>(indices.getType());
  auto rowsType = idxType.clone(rewriter.getI64Type());
  SmallVector<Value> sizes;
  for (int64_t k = 0; k < idxType.getRank(); ++k)
    if (idxType.isDynamicDim(k))
      sizes.push_back(tensor::DimOp::create(rewriter, loc, indices, k));
  Value init = tensor::EmptyOp::create(rewriter, loc, rowsType.getShape(),
                                       rowsType.getElementType(), sizes);
  AffineMap id =
      AffineMap::getMultiDimIdentityMap(idxType.getRank(), op.getContext());
  SmallVector<utils::IteratorType> iterators(idxType.getRank(),
                                             utils::IteratorType::parallel);
  Value in = op.getRegion().front().getArgument(0);
  auto rows = linalg::GenericOp::create(
      rewriter, loc, TypeRange{rowsType}, ValueRange{indices},
      ValueRange{init}, ArrayRef<AffineMap>{id, id}, iterators,
      [&](OpBuilder &b, Location l, ValueRange args) {
        IRMapping map;
        map.map(in, args[0]);
        for (Operation *o : match.indexOps)
          b.clone(*o, map);
        Value row = map.lookupOrDefault(match.row);
        if (!row.getType().isInteger(64))
          row = row.getType().isIndex()
                    ? (Value)arith::IndexCastOp::create(b, l, b.getI64Type(),
                                                        row)
                    : (Value)arith::ExtSIOp::create(b, l, b.getI64Type(), row);
        linalg::YieldOp::create(b, l, row);
      });
  return rows.getResult(0);
}

struct RaiseEmbeddingGather : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    FailureOr<GatherMatch> match = matchGather(op);
    if (failed(match))
      return rewriter.notifyMatchFailure(op, "not an embedding gather");
    Location loc = op.getLoc();
    Value indices = op.getDpsInputs()[0];
    emitBoundChecks(rewriter, loc, match->weight, indices, match->asserts);
    if (!match->indexOps.empty())
      indices = hoistRowFunction(rewriter, op, *match);
    rewriter.replaceOpWithNewOp<emb::LookupOp>(
        op, op->getResult(0).getType(), match->weight, indices, IntegerAttr(),
        emb::PaddingModeAttr::get(rewriter.getContext(),
                                  emb::PaddingMode::keep));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// torch-mlir's embedding_bag (sum mode)
//===----------------------------------------------------------------------===//
//
// TorchToLinalg lowers aten._embedding_bag (mode sum, no
// include_last_offset) to one generic over (bag, index, column):
//
//   %r = linalg.generic {indexing_maps = [(d0,d1,d2) -> (d1), (d0,d1,d2) ->
//   (d0),
//                                         (d0,d1,d2) -> (d0,d2)],
//                        iterator_types = [parallel, reduction, parallel]}
//       ins(%indices, %offsets) outs(%zeros) {
//   ^bb0(%in: i64, %off: i64, %out: f32):
//     ... %within = (%off <= index 1) and (index 1 < next offset or len)
//     %e = tensor.extract %weight[index_cast(%in), linalg.index 2]
//     %sum = arith.addf %e, %out
//     linalg.yield (arith.select %within, %sum, %out)
//   }
//   ==>
//   %r = emb.bag sum %weight[%indices] offsets(%offsets) : ... -> tensor<BxD>
//
// The output must start from zeros (linalg.fill 0), and the window
// condition must read the bag's offset, loop index 1 and the offsets
// tensor: a generic that accumulates into other values, or selects by
// anything else, is left unchanged.

/// Whether `v` depends on `target` through ops of the generic's body.
bool dependsOn(Value v, Value target, int depth = 0) {
  if (v == target)
    return true;
  Operation *def = v.getDefiningOp();
  if (!def || depth > 8)
    return false;
  return llvm::any_of(def->getOperands(),
                      [&](Value o) { return dependsOn(o, target, depth + 1); });
}

bool isLinalgIndex(Value v, int64_t dim) {
  auto index = v.getDefiningOp<linalg::IndexOp>();
  return index && index.getDim() == static_cast<uint64_t>(dim);
}

/// Whether `v` reads loop index `dim` (directly or through casts).
bool readsLoopIndex(Value v, int64_t dim, int depth = 0) {
  if (isLinalgIndex(v, dim))
    return true;
  Operation *def = v.getDefiningOp();
  if (!def || depth > 8)
    return false;
  return llvm::any_of(def->getOperands(), [&](Value o) {
    return readsLoopIndex(o, dim, depth + 1);
  });
}

bool isZeroFill(Value init) {
  auto fill = init.getDefiningOp<linalg::FillOp>();
  if (!fill)
    return false;
  Attribute value;
  if (!matchPattern(fill.getInputs()[0], m_Constant(&value)))
    return false;
  auto f = dyn_cast<FloatAttr>(value);
  return f && f.getValue().isZero();
}

/// The loops of a bag's reduction generic: its output is [bag, column],
/// its first input (the indices) [entry] (indicesRank 1) or [bag, entry]
/// (rank 2), and `entry` is the one reduction loop. Any loop order.
struct BagLoops {
  unsigned bag, entry, column;
};

FailureOr<BagLoops> matchBagLoops(linalg::GenericOp op, int64_t indicesRank,
                                  std::optional<AffineMap> indicesMap = {}) {
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  auto iters = op.getIteratorTypesArray();
  if (op.getNumLoops() != 3 || maps.empty())
    return failure();
  AffineMap outMap = maps.back(),
            idxMap = indicesMap ? *indicesMap : maps.front();
  auto dimOf = [](AffineExpr e) -> std::optional<unsigned> {
    if (auto d = dyn_cast<AffineDimExpr>(e))
      return d.getPosition();
    return std::nullopt;
  };
  if (outMap.getNumResults() != 2 || idxMap.getNumResults() != indicesRank)
    return failure();
  auto bag = dimOf(outMap.getResult(0)), column = dimOf(outMap.getResult(1));
  auto entry = dimOf(idxMap.getResult(indicesRank - 1));
  if (!bag || !column || !entry || *bag == *column || *entry == *bag ||
      *entry == *column)
    return failure();
  if (indicesRank == 2 && dimOf(idxMap.getResult(0)) != bag)
    return failure();
  for (unsigned d = 0; d < 3; ++d)
    if ((iters[d] == utils::IteratorType::reduction) != (d == *entry))
      return failure();
  return BagLoops{*bag, *entry, *column};
}

struct RaiseEmbeddingBagSum : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not an embedding_bag generic");
    Value indices = op.getDpsInputs()[0], offsets = op.getDpsInputs()[1];
    auto idxType = dyn_cast<RankedTensorType>(indices.getType());
    auto offType = dyn_cast<RankedTensorType>(offsets.getType());
    auto outType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
    auto isIndex = [](Type t) {
      return t.isSignlessInteger(32) || t.isSignlessInteger(64);
    };
    if (!idxType || !offType || !outType || idxType.getRank() != 1 ||
        offType.getRank() != 1 || outType.getRank() != 2 ||
        !isIndex(idxType.getElementType()) ||
        !isIndex(offType.getElementType()) ||
        !isEmbFloat(outType.getElementType()))
      return rewriter.notifyMatchFailure(op, "unsupported types");
    MLIRContext *ctx = op.getContext();
    // The loops in any order (IREE's dispatch-creation permutes them): the
    // output [bag, column], the offsets [bag], the indices [entry], the
    // entry loop the one reduction.
    FailureOr<BagLoops> loops = matchBagLoops(op, /*indicesRank=*/1);
    if (failed(loops))
      return rewriter.notifyMatchFailure(op, "not the embedding_bag loops");
    AffineMap offMap = op.getIndexingMapsArray()[1];
    if (offMap.getNumResults() != 1 ||
        offMap.getResult(0) != getAffineDimExpr(loops->bag, ctx))
      return rewriter.notifyMatchFailure(op, "offsets not indexed by bag");
    if (!isZeroFill(op.getDpsInits()[0]))
      return rewriter.notifyMatchFailure(op, "output does not start at zero");

    Block &body = op.getRegion().front();
    Value in = body.getArgument(0), off = body.getArgument(1),
          out = body.getArgument(2);
    auto yield = cast<linalg::YieldOp>(body.getTerminator());
    auto select = yield.getValues()[0].getDefiningOp<arith::SelectOp>();
    if (!select || select.getFalseValue() != out)
      return rewriter.notifyMatchFailure(op, "not a masked accumulation");
    auto add = select.getTrueValue().getDefiningOp<arith::AddFOp>();
    if (!add)
      return rewriter.notifyMatchFailure(op, "not a sum");
    Value other = add.getLhs() == out   ? add.getRhs()
                  : add.getRhs() == out ? add.getLhs()
                                        : Value();
    auto extract = other ? other.getDefiningOp<tensor::ExtractOp>() : nullptr;
    if (!extract || extract.getIndices().size() != 2)
      return rewriter.notifyMatchFailure(op, "not a row read");
    Value weight = extract.getTensor();
    auto wType = dyn_cast<RankedTensorType>(weight.getType());
    auto cast = extract.getIndices()[0].getDefiningOp<arith::IndexCastOp>();
    if (!wType || wType.getRank() != 2 ||
        wType.getElementType() != outType.getElementType() ||
        op.getRegion().isAncestor(weight.getParentRegion()) || !cast ||
        cast.getIn() != in ||
        !isLinalgIndex(extract.getIndices()[1], loops->column))
      return rewriter.notifyMatchFailure(op, "not a read of weight[in, d]");
    // The bag window: reads the bag's offset, loop index 1 and the offsets.
    Value cond = select.getCondition();
    bool readsOffsets = false;
    body.walk([&](tensor::ExtractOp e) {
      if (e.getTensor() == offsets && dependsOn(cond, e.getResult()))
        readsOffsets = true;
    });
    if (!cond.getDefiningOp<arith::AndIOp>() || !dependsOn(cond, off) ||
        !readsLoopIndex(cond, loops->entry) || !readsOffsets)
      return rewriter.notifyMatchFailure(op, "not the offsets window");

    rewriter.replaceOpWithNewOp<emb::BagOp>(
        op, outType, Type(), emb::BagModeAttr::get(ctx, emb::BagMode::sum),
        weight, indices, offsets, Value(), UnitAttr(), IntegerAttr(),
        emb::QuantizationAttr());
    return success();
  }
};

//===----------------------------------------------------------------------===//
// A gather reduced over the sequence: embedding followed by sum / mean
//===----------------------------------------------------------------------===//
//
// torch-mlir lowers `embedding(ids [B, L]).sum(1)` (or `.mean(1)`) to the
// gather generic, then a [B, L, D] -> [B, D] sum into zeros (then a divide
// by L); IREE fuses the two into one reduction generic that reads
// weight[ids[b, l], d] and adds it to its output. Either is a 2-D bag:
//
//   %r = emb.lookup %w[%ids] ; %s = generic sum over l of %r (into zeros)
//   %s = generic sum over l of %w[index_cast(%ids[b, l]), d] (into zeros)
//     ==> %s = emb.bag sum %w[%ids]
//   %m = generic %s / L (L the static bag length)   (after either)
//     ==> %m = emb.bag mean %w[%ids]
//
// A lookup with a padding row that it keeps is not a bag's (a bag skips
// it); one used elsewhere too stays, and so does any other body.

/// Whether `v` is `a + b` in either order.
bool isSumOf(Value v, Value a, Value b) {
  auto add = v.getDefiningOp<arith::AddFOp>();
  return add && ((add.getLhs() == a && add.getRhs() == b) ||
                 (add.getLhs() == b && add.getRhs() == a));
}

struct RaiseGatherSum : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1 ||
        !isZeroFill(op.getDpsInits()[0]))
      return rewriter.notifyMatchFailure(op, "not a sum into zeros");
    auto outType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
    Value input = op.getDpsInputs()[0];
    auto inType = dyn_cast<RankedTensorType>(input.getType());
    if (!outType || !inType || !isEmbFloat(outType.getElementType()))
      return rewriter.notifyMatchFailure(op, "unsupported types");
    Block &body = op.getRegion().front();
    Value in = body.getArgument(0), out = body.getArgument(1);
    Value yielded = cast<linalg::YieldOp>(body.getTerminator()).getValues()[0];
    Value weight, indices;
    if (auto lookup = input.getDefiningOp<emb::LookupOp>()) {
      // The raised gather [B, L, D], summed over L.
      AffineMap inMap = op.getIndexingMapsArray()[0];
      FailureOr<BagLoops> loops =
          inMap.getNumResults() == 3
              ? matchBagLoops(op, 2, inMap.getMajorSubMap(2))
              : FailureOr<BagLoops>(failure());
      if (failed(loops) ||
          inMap.getResult(2) != getAffineDimExpr(loops->column, getContext()))
        return rewriter.notifyMatchFailure(op, "not a sum over the sequence");
      if (!lookup->hasOneUse() ||
          cast<RankedTensorType>(lookup.getIndices().getType()).getRank() !=
              2 ||
          (lookup.getPaddingIdx() &&
           lookup.getPaddingMode() != emb::PaddingMode::zero))
        return rewriter.notifyMatchFailure(op, "not a bag's lookup");
      if (!isSumOf(yielded, in, out) || body.getOperations().size() != 2)
        return rewriter.notifyMatchFailure(op, "not a plain sum");
      weight = lookup.getWeight();
      indices = lookup.getIndices();
      auto bag = emb::BagOp::create(
          rewriter, op.getLoc(), outType, Type(),
          emb::BagModeAttr::get(getContext(), emb::BagMode::sum), weight,
          indices, Value(), Value(), UnitAttr(), lookup.getPaddingIdxAttr(),
          emb::QuantizationAttr());
      rewriter.replaceOp(op, bag.getOutput());
      rewriter.eraseOp(lookup);
      return success();
    }
    // IREE's fused form: ids [B, L] in, weight[ids[b, l], d] added.
    FailureOr<BagLoops> loops = matchBagLoops(op, 2);
    if (failed(loops) || inType.getRank() != 2 ||
        !(inType.getElementType().isSignlessInteger(32) ||
          inType.getElementType().isSignlessInteger(64)))
      return rewriter.notifyMatchFailure(op, "not a gather over 2-D ids");
    auto add = yielded.getDefiningOp<arith::AddFOp>();
    Value row = !add                  ? Value()
                : add.getRhs() == out ? add.getLhs()
                : add.getLhs() == out ? add.getRhs()
                                      : Value();
    auto extract = row ? row.getDefiningOp<tensor::ExtractOp>() : nullptr;
    if (!extract || extract.getIndices().size() != 2)
      return rewriter.notifyMatchFailure(op, "not a row read");
    weight = extract.getTensor();
    auto wType = dyn_cast<RankedTensorType>(weight.getType());
    auto castOp = extract.getIndices()[0].getDefiningOp<arith::IndexCastOp>();
    if (!wType || wType.getRank() != 2 ||
        wType.getElementType() != outType.getElementType() ||
        op.getRegion().isAncestor(weight.getParentRegion()) || !castOp ||
        castOp.getIn() != in ||
        !isLinalgIndex(extract.getIndices()[1], loops->column))
      return rewriter.notifyMatchFailure(op, "not a read of weight[in, d]");
    // Nothing else but bounds checks of the index (IREE keeps torch-mlir's
    // asserts in the fused body); they are kept before the bag.
    SmallVector<cf::AssertOp> asserts;
    llvm::SmallPtrSet<Operation *, 8> checks;
    for (Operation &o : body)
      if (auto a = dyn_cast<cf::AssertOp>(o)) {
        if (failed(collectBoundChecks(a.getArg(), cast<BlockArgument>(in),
                                      weight, checks)))
          return rewriter.notifyMatchFailure(op, "an assert of another check");
        asserts.push_back(a);
      }
    for (Operation &o : body)
      if (!isa<arith::ConstantOp, linalg::YieldOp, cf::AssertOp>(o) &&
          &o != add && &o != extract && &o != castOp &&
          &o != extract.getIndices()[1].getDefiningOp() && !checks.contains(&o))
        return rewriter.notifyMatchFailure(op, "more than a gather and a sum");
    emitBoundChecks(rewriter, op.getLoc(), weight, input, asserts);
    rewriter.replaceOpWithNewOp<emb::BagOp>(
        op, outType, Type(),
        emb::BagModeAttr::get(getContext(), emb::BagMode::sum), weight, input,
        Value(), Value(), UnitAttr(), IntegerAttr(), emb::QuantizationAttr());
    return success();
  }
};

/// `%bag / L` elementwise, `%bag` a sum of 2-D bags of static length L
/// without padding or weights (each bag divides by its L entries): a mean.
struct RaiseBagMean : OpRewritePattern<linalg::GenericOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(linalg::GenericOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1)
      return rewriter.notifyMatchFailure(op, "not an elementwise divide");
    auto bag = op.getDpsInputs()[0].getDefiningOp<emb::BagOp>();
    if (!bag || !bag->hasOneUse() || bag.getMode() != emb::BagMode::sum ||
        bag.getOffsets() || bag.getPerSampleWeights() || bag.getPaddingIdx() ||
        bag.getQuantized() || bag.getMaxIndices())
      return rewriter.notifyMatchFailure(op, "not a plain 2-D sum bag");
    auto idxType = cast<RankedTensorType>(bag.getIndices().getType());
    if (idxType.getRank() != 2 || idxType.isDynamicDim(1) ||
        op->getResult(0).getType() != bag.getOutput().getType())
      return rewriter.notifyMatchFailure(op, "no static bag length");
    AffineMap id = AffineMap::getMultiDimIdentityMap(2, getContext());
    if (op.getIndexingMapsArray() != SmallVector<AffineMap>{id, id} ||
        !llvm::all_of(op.getIteratorTypesArray(), [](utils::IteratorType t) {
          return t == utils::IteratorType::parallel;
        }))
      return rewriter.notifyMatchFailure(op, "not elementwise");
    Block &body = op.getRegion().front();
    Value yielded = cast<linalg::YieldOp>(body.getTerminator()).getValues()[0];
    auto div = yielded.getDefiningOp<arith::DivFOp>();
    FloatAttr length;
    if (!div || div.getLhs() != body.getArgument(0) ||
        !matchPattern(div.getRhs(), m_Constant(&length)) ||
        length.getValueAsDouble() != static_cast<double>(idxType.getDimSize(1)))
      return rewriter.notifyMatchFailure(op, "not a divide by the length");
    for (Operation &o : body)
      if (!isa<arith::ConstantOp, linalg::YieldOp>(o) && &o != div)
        return rewriter.notifyMatchFailure(op, "more than a divide");
    rewriter.replaceOpWithNewOp<emb::BagOp>(
        op, bag.getOutput().getType(), Type(),
        emb::BagModeAttr::get(getContext(), emb::BagMode::mean),
        bag.getWeight(), bag.getIndices(), Value(), Value(), UnitAttr(),
        IntegerAttr(), emb::QuantizationAttr());
    rewriter.eraseOp(bag);
    return success();
  }
};

struct RaiseLinalgToEmbPass
    : emb::impl::RaiseLinalgToEmbBase<RaiseLinalgToEmbPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RaiseEmbeddingGather, RaiseEmbeddingBagSum, RaiseGatherSum,
                 RaiseBagMean>(&getContext());
    // One walk, no folding: IR that does not match stays exactly as it was.
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};

} // namespace
