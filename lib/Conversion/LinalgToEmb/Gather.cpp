//===- Gather.cpp - raise a linalg gather of rows to emb.lookup -----------===//
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
// The row may also be a pure integer function of the index (a clamp, ONNX
// Gather's wrap of negative indices): that function is hoisted into an
// elementwise generic over the indices, and the lookup reads its rows.
//
//===----------------------------------------------------------------------===//

#include "Matchers.h"

#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::raising;

bool raising::isEmbFloat(Type t) {
  return t.isF32() || t.isF64() || t.isF16() || t.isBF16();
}

namespace {

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
    case P::sgt:
      pred = P::slt;
      break;
    case P::ugt:
      pred = P::ult;
      break;
    case P::sle:
      pred = P::sge;
      break;
    case P::slt:
      pred = P::sgt;
      break;
    default:
      return false;
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
      rewriter, loc, TypeRange{rowsType}, ValueRange{indices}, ValueRange{init},
      ArrayRef<AffineMap>{id, id}, iterators,
      [&](OpBuilder &b, Location l, ValueRange args) {
        IRMapping map;
        map.map(in, args[0]);
        for (Operation *o : match.indexOps)
          b.clone(*o, map);
        Value row = map.lookupOrDefault(match.row);
        if (!row.getType().isInteger(64))
          row =
              row.getType().isIndex()
                  ? (Value)arith::IndexCastOp::create(b, l, b.getI64Type(), row)
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

} // namespace

/// Adds to `checks` the ops computing an assert's condition when it is a
/// conjunction (arith.andi) of bound checks of the gathered index.
LogicalResult
raising::collectBoundChecks(Value condition, BlockArgument in, Value weight,
                            llvm::SmallPtrSetImpl<Operation *> &checks) {
  Operation *op = condition.getDefiningOp();
  if (auto andi = dyn_cast_or_null<arith::AndIOp>(op)) {
    checks.insert(andi);
    return success(
        succeeded(collectBoundChecks(andi.getLhs(), in, weight, checks)) &&
        succeeded(collectBoundChecks(andi.getRhs(), in, weight, checks)));
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

/// Keeps a gather's bounds checks when it is raised: 0 <= x < V for every
/// index, as an scf.for of asserts with the same messages, before the op.
void raising::emitBoundChecks(PatternRewriter &rewriter, Location loc,
                              Value weight, Value indices,
                              ArrayRef<cf::AssertOp> asserts) {
  if (asserts.empty())
    return;
  SmallVector<std::string> messages;
  for (cf::AssertOp a : asserts)
    messages.push_back(a.getMsg().str());
  std::string tooLarge =
      messages.size() > 0 ? messages[0] : "index out of range";
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
    flat = idxType.getRank() == 0 ? (Value)tensor::ExpandShapeOp::create(
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
        Value lt =
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, xi, v);
        cf::AssertOp::create(b, l, lt, tooLarge);
        Value zero =
            arith::ConstantOp::create(b, l, b.getIntegerAttr(x.getType(), 0));
        Value ge =
            arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, x, zero);
        cf::AssertOp::create(b, l, ge, negative);
        scf::YieldOp::create(b, l);
      });
}

void raising::populateGatherPatterns(RewritePatternSet &patterns) {
  patterns.add<RaiseEmbeddingGather>(patterns.getContext());
}
