//===- MultiBagToBags.cpp - emb.multi_bag as one emb.bag per table --------===//

#include "Conversion/EmbCommon/MultiBagToBags.h"
#include "Conversion/EmbCommon/LoweringUtils.h"
#include "Conversion/EmbCommon/OpStructure.h"
#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::lowering;

namespace {

/// L_t of table `t` when it is a sequence table (mode `none`), else nullopt.
std::optional<int64_t> sequenceLength(ArrayAttr modes,
                                      std::optional<ArrayRef<int64_t>> lengths,
                                      int64_t t) {
  if (cast<BagModeAttr>(modes[t]).getValue() != BagMode::none)
    return std::nullopt;
  return (*lengths)[t];
}

/// `x[lo : lo + n]` of a 1-D tensor as `[n, 1]`: every entry its own bag
/// (2-D indices), which is how a sequence table's entries are looked up.
Value entriesAsBags(ImplicitLocOpBuilder &b, Value x, Value lo, Value n) {
  auto type = cast<RankedTensorType>(x.getType());
  Value part = tensor::ExtractSliceOp::create(
      b, RankedTensorType::get({ShapedType::kDynamic}, type.getElementType()),
      x, ArrayRef<OpFoldResult>{lo}, ArrayRef<OpFoldResult>{n},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  return tensor::ExpandShapeOp::create(
      b, RankedTensorType::get({ShapedType::kDynamic, 1}, type.getElementType()),
      part, ArrayRef<ReassociationIndices>{{0, 1}},
      ArrayRef<OpFoldResult>{n, b.getIndexAttr(1)});
}

/// `[rows * L, D]` <-> `[rows, L * D]` of a sequence table's rows.
Value entryRowsToColumns(ImplicitLocOpBuilder &b, Value rows, Value numRows,
                         int64_t length, int64_t dim) {
  Type element = cast<RankedTensorType>(rows.getType()).getElementType();
  Value split = tensor::ExpandShapeOp::create(
      b, RankedTensorType::get({ShapedType::kDynamic, length, dim}, element),
      rows, ArrayRef<ReassociationIndices>{{0, 1}, {2}},
      ArrayRef<OpFoldResult>{numRows, b.getIndexAttr(length),
                             b.getIndexAttr(dim)});
  return tensor::CollapseShapeOp::create(
      b, split, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
}
Value columnsToEntryRows(ImplicitLocOpBuilder &b, Value columns, Value numRows,
                         int64_t length, int64_t dim) {
  Type element = cast<RankedTensorType>(columns.getType()).getElementType();
  Value split = tensor::ExpandShapeOp::create(
      b, RankedTensorType::get({ShapedType::kDynamic, length, dim}, element),
      columns, ArrayRef<ReassociationIndices>{{0}, {1, 2}},
      ArrayRef<OpFoldResult>{numRows, b.getIndexAttr(length),
                             b.getIndexAttr(dim)});
  return tensor::CollapseShapeOp::create(
      b, split, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
}

// %out = emb.multi_bag %t0, ..., %tT-1 [%x] offsets(%o) bags(%first, %n)
//   ==>
// B = (dim(%o) - 1) / T; without bags(): %first = 0, %n = B
// for each table t (D_t columns from c_t = sum_{s<t} C_s, C_s its columns):
//   %o_t = tensor.extract_slice %o[t * B + %first] [%n + 1] [1]
//   %r_t = emb.bag mode_t %t_t[%x] offsets(%o_t) per_sample_weights(%p)
//            {include_last_offset, padding_idx = P_t}
//   %out = tensor.insert_slice %r_t into %out[0, c_t] [%n, D_t] [1, 1]
// A sequence table (mode none, length L_t) looks up its n * L_t entries from
// lo = %o[t * B + %first] as one-entry bags (2-D indices [n * L_t, 1]: a
// padding entry gives a zero row, psw scale the rows), reshaped to
// [n, L_t * D_t] columns.
struct MultiBagToBags final : OpRewritePattern<MultiBagOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MultiBagOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Value offsets = op.getOffsets();
    TableBags bags = tableBags(b, op, offsets);
    Value numBags = bags.perTable, first = bags.first, count = bags.count;
    Value countPlusOne = arith::AddIOp::create(b, count, cIndex(b, 1));

    auto outType = op.getOutput().getType();
    Type element = outType.getElementType();
    int64_t rows = outType.getDimSize(0);
    Value out = tensor::EmptyOp::create(
        b, outType.getShape(), element,
        outType.isDynamicDim(0) ? ValueRange{count} : ValueRange{});
    auto offsetsType = RankedTensorType::get(
        {ShapedType::kDynamic},
        cast<RankedTensorType>(offsets.getType()).getElementType());
    int64_t column = 0;
    for (auto [t, table] : llvm::enumerate(op.getTables())) {
      int64_t dim = cast<RankedTensorType>(table.getType()).getDimSize(1);
      Value start = arith::AddIOp::create(
          b,
          arith::MulIOp::create(b, cIndex(b, static_cast<int64_t>(t)),
                                numBags),
          first);
      Value slice = tensor::ExtractSliceOp::create(
          b, offsetsType, offsets, ValueRange{start}, ValueRange{countPlusOne},
          ValueRange{}, b.getDenseI64ArrayAttr({ShapedType::kDynamic}),
          b.getDenseI64ArrayAttr({ShapedType::kDynamic}),
          b.getDenseI64ArrayAttr({1}));
      int64_t pad = op.getPaddingIdx()[t];
      IntegerAttr padAttr = pad >= 0 ? b.getI64IntegerAttr(pad) : IntegerAttr();
      std::optional<int64_t> length =
          sequenceLength(op.getModes(), op.getSequenceLengths(), t);
      Value part;
      int64_t width = dim;
      if (length) {
        width = *length * dim;
        if (width == 0)
          continue;
        Value lo = arith::IndexCastOp::create(
            b, b.getIndexType(), tensor::ExtractOp::create(b, offsets, start));
        Value n = arith::MulIOp::create(b, count, cIndex(b, *length));
        Value psw = op.getPerSampleWeights()
                        ? entriesAsBags(b, op.getPerSampleWeights(), lo, n)
                        : Value();
        auto bag = BagOp::create(
            b, RankedTensorType::get({ShapedType::kDynamic, dim}, element),
            Type(), BagModeAttr::get(b.getContext(), BagMode::sum), table,
            entriesAsBags(b, op.getIndices(), lo, n), Value(), psw, UnitAttr(),
            padAttr, QuantizationAttr());
        part = entryRowsToColumns(b, bag.getOutput(), count, *length, dim);
        if (!outType.isDynamicDim(0))
          part = tensor::CastOp::create(
              b, RankedTensorType::get({rows, width}, element), part);
      } else {
        part = BagOp::create(b, RankedTensorType::get({rows, dim}, element),
                             Type(), cast<BagModeAttr>(op.getModes()[t]),
                             table, op.getIndices(), slice,
                             op.getPerSampleWeights(), b.getUnitAttr(), padAttr,
                             QuantizationAttr())
                   .getOutput();
      }
      SmallVector<OpFoldResult> at{b.getIndexAttr(0), b.getIndexAttr(column)};
      SmallVector<OpFoldResult> sizes{
          outType.isDynamicDim(0) ? OpFoldResult(count)
                                  : OpFoldResult(b.getIndexAttr(rows)),
          b.getIndexAttr(width)};
      SmallVector<OpFoldResult> strides{b.getIndexAttr(1), b.getIndexAttr(1)};
      out = tensor::InsertSliceOp::create(b, part, out, at, sizes, strides);
      column += width;
    }
    rewriter.replaceOp(op, out);
    return success();
  }
};

// %w', %s' = emb.multi_bag_update <opt> %g, %w[%x] offsets(%o)
//     per_sample_weights(%p) rows(%f, %n) states(%s...)
//     {table_shapes = [V_0, D_0, ...]}
//   ==>
// B = (dim(%o) - 1) / T; for each table t (elements from a_t, rows from
// r_t, columns from c_t):
//   lo = %o[t * B], hi = %o[(t + 1) * B]
//   %x_t = %x[lo : hi], %p_t = %p[lo : hi], %g_t = %g[:, c_t : c_t + D_t]
//   %o_t = %o[t * B : (t + 1) * B + 1] - lo
//   %w_t = expand(%w[a_t : a_t + V_t * D_t]), %s_t likewise (row-wise: [r_t :
//   r_t + V_t]) with rows(%f, %n): f_t, n_t = [%f, %f + %n) - r_t clipped to
//   [0, V_t)
//     (with row_parts = P: [floor(%f V_t / P), floor((%f + %n) V_t / P)))
//   %w_t', %s_t' = emb.bag_update <opt> mode_t %g_t[%x_t] offsets(%o_t)
//       per_sample_weights(%p_t) rows(f_t, n_t)
//       weight(%w_t[f_t : f_t + n_t]) states(%s_t[f_t : f_t + n_t])
//       {include_last_offset, padding_idx = P_t}, put back into %w_t, %s_t
//     (without rows(): the whole tables, no rows())
//   %w = insert collapse(%w_t') into %w[a_t : ...], %s likewise
// A sequence table (mode none, length L_t) updates from one-entry bags: 2-D
// indices %x_t as [n, 1], the gradient's L_t * D_t columns as [B * L_t, D_t].
// Each table is taken from, and put back into, the flat tensors before the
// next one is taken: bufferisation updates the flat buffers in place.
struct MultiBagUpdateToBagUpdates final : OpRewritePattern<MultiBagUpdateOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MultiBagUpdateOp op,
                                PatternRewriter &rewriter) const override {
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    ArrayRef<int64_t> shapes = op.getTableShapes();
    int64_t numTables = shapes.size() / 2;
    bool rowwise = op.getOptimizer() == Optimizer::rowwise_adagrad;
    Value offsets = op.getOffsets();
    Type offsetElement =
        cast<RankedTensorType>(offsets.getType()).getElementType();
    Value numBags = bagsPerTable(b, offsets, numTables);
    auto offsetAt = [&](Value i) -> Value {
      return arith::IndexCastOp::create(
          b, b.getIndexType(), tensor::ExtractOp::create(b, offsets, i));
    };
    auto elementOf = [](Value t) {
      return cast<RankedTensorType>(t.getType()).getElementType();
    };
    // [lo, lo + n) of a 1-D tensor (dynamic or static bounds).
    auto slice1d = [&](Value t, OpFoldResult lo, OpFoldResult n,
                       int64_t staticN) -> Value {
      return tensor::ExtractSliceOp::create(
          b, RankedTensorType::get({staticN}, elementOf(t)), t,
          ArrayRef<OpFoldResult>{lo}, ArrayRef<OpFoldResult>{n},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    };
    Value grad = op.getGrad();
    Value numRows = tensor::DimOp::create(b, grad, 0);
    Value weights = op.getWeights();
    SmallVector<Value> states(op.getStates());
    int64_t at = 0, rowAt = 0, column = 0;
    for (int64_t t = 0; t < numTables; ++t) {
      int64_t rows = shapes[2 * t], dim = shapes[2 * t + 1];
      Value ct = cIndex(b, t);
      Value firstBag = arith::MulIOp::create(b, ct, numBags);
      Value lo = offsetAt(firstBag);
      Value hi = offsetAt(arith::AddIOp::create(b, firstBag, numBags));
      Value n = arith::SubIOp::create(b, hi, lo);
      Value x = slice1d(op.getIndices(), lo, n, ShapedType::kDynamic);
      Value psw = op.getPerSampleWeights()
                      ? slice1d(op.getPerSampleWeights(), lo, n,
                                ShapedType::kDynamic)
                      : Value();
      // The table's B + 1 offsets, relative to its first entry.
      Value loElement = tensor::ExtractOp::create(b, offsets, firstBag);
      Value tableOffsets = tensor::GenerateOp::create(
          b, RankedTensorType::get({ShapedType::kDynamic}, offsetElement),
          ValueRange{arith::AddIOp::create(b, numBags, cIndex(b, 1))},
          [&](OpBuilder &nb, Location loc, ValueRange ivs) {
            ImplicitLocOpBuilder ib(loc, nb);
            Value v = tensor::ExtractOp::create(
                ib, offsets,
                ValueRange{arith::AddIOp::create(ib, firstBag, ivs[0])});
            tensor::YieldOp::create(ib, arith::SubIOp::create(ib, v, loElement));
          });
      std::optional<int64_t> length =
          sequenceLength(op.getModes(), op.getSequenceLengths(), t);
      int64_t width = length ? *length * dim : dim;
      if (width == 0 && length) {
        at += rows * dim;
        rowAt += rows;
        continue; // nothing looked up, nothing to update
      }
      Value g = tensor::ExtractSliceOp::create(
          b,
          RankedTensorType::get({ShapedType::kDynamic, width}, elementOf(grad)),
          grad,
          ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(column)},
          ArrayRef<OpFoldResult>{numRows, b.getIndexAttr(width)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
      Value bagOffsets = tableOffsets;
      BagMode mode = cast<BagModeAttr>(op.getModes()[t]).getValue();
      if (length) {
        g = columnsToEntryRows(b, g, numRows, *length, dim);
        x = entriesAsBags(b, op.getIndices(), lo, n);
        if (psw)
          psw = entriesAsBags(b, op.getPerSampleWeights(), lo, n);
        bagOffsets = Value();
        mode = BagMode::sum;
      }
      // The table and its states, out of the flat tensors.
      auto asRows = [&](Value flatPart, Type element) -> Value {
        return tensor::ExpandShapeOp::create(
            b, RankedTensorType::get({rows, dim}, element), flatPart,
            ArrayRef<ReassociationIndices>{{0, 1}});
      };
      Value table = asRows(slice1d(weights, b.getIndexAttr(at),
                                   b.getIndexAttr(rows * dim), rows * dim),
                           elementOf(weights));
      SmallVector<Value> tableStates;
      for (Value s : states)
        tableStates.push_back(
            rowwise ? slice1d(s, b.getIndexAttr(rowAt), b.getIndexAttr(rows),
                              rows)
                    : asRows(slice1d(s, b.getIndexAttr(at),
                                     b.getIndexAttr(rows * dim), rows * dim),
                             elementOf(s)));
      int64_t pad = op.getPaddingIdx()[t];
      // The thread's window of the concatenated rows, clipped to this
      // table: rows [f_t, f_t + n_t) of it, as a view of the table (and of
      // its states) that goes back into it after the update (no scf.if:
      // bufferisation would copy the table).
      Value window = table;
      SmallVector<Value> windowStates = tableStates;
      Value rowFirst, rowCount;
      if (op.getRowOffset()) {
        Value base = cIndex(b, rowAt), size = cIndex(b, rows);
        auto clip = [&](Value v) -> Value { // clamp(v - base, 0, V_t)
          Value shifted = arith::SubIOp::create(b, v, base);
          Value below = arith::CmpIOp::create(b, arith::CmpIPredicate::slt, v,
                                              base);
          return arith::SelectOp::create(
              b, below, cIndex(b, 0),
              arith::MinUIOp::create(b, shifted, size));
        };
        // With row_parts = P: part p starts at row floor(min(p, P) V_t / P).
        auto partStart = [&](Value p) -> Value {
          Value parts = cIndex(b, *op.getRowParts());
          return arith::DivUIOp::create(
              b,
              arith::MulIOp::create(b, arith::MinUIOp::create(b, p, parts),
                                    size),
              parts);
        };
        Value end =
            arith::AddIOp::create(b, op.getRowOffset(), op.getRowCount());
        rowFirst = op.getRowParts() ? partStart(op.getRowOffset())
                                    : clip(op.getRowOffset());
        rowCount = arith::SubIOp::create(
            b, op.getRowParts() ? partStart(end) : clip(end), rowFirst);
        auto rowsOf = [&](Value t) -> Value {
          auto type = cast<RankedTensorType>(t.getType());
          SmallVector<int64_t> shape(type.getShape());
          shape[0] = ShapedType::kDynamic;
          SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0)),
              sizes, strides(type.getRank(), b.getIndexAttr(1));
          offsets[0] = rowFirst;
          sizes.push_back(rowCount);
          if (type.getRank() == 2)
            sizes.push_back(b.getIndexAttr(type.getDimSize(1)));
          return tensor::ExtractSliceOp::create(
              b, RankedTensorType::get(shape, type.getElementType()), t,
              offsets, sizes, strides);
        };
        window = rowsOf(table);
        for (Value &w : windowStates)
          w = rowsOf(w);
      }
      SmallVector<Type> windowTypes{window.getType()};
      for (Value w : windowStates)
        windowTypes.push_back(w.getType());
      auto u = BagUpdateOp::create(
          b, windowTypes, op.getOptimizerAttr(),
          BagModeAttr::get(b.getContext(), mode), g, x, bagOffsets, psw,
          Value(), rowFirst, rowCount, window, windowStates, op.getLr(),
          op.getStep(), b.getI64IntegerAttr(rows),
          length ? UnitAttr() : b.getUnitAttr(),
          pad >= 0 ? b.getI64IntegerAttr(pad) : IntegerAttr(), UnitAttr(),
          b.getF64FloatAttr(1.0), op.getWeightDecayAttr(), op.getEpsAttr(),
          op.getBeta1Attr(), op.getBeta2Attr());
      SmallVector<Value> results(u.getResults());
      if (op.getRowOffset()) {
        // The window's rows back into the table and its states.
        SmallVector<Value> whole{table};
        llvm::append_range(whole, tableStates);
        for (auto [k, part] : llvm::enumerate(results)) {
          auto type = cast<RankedTensorType>(whole[k].getType());
          SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0)),
              sizes, strides(type.getRank(), b.getIndexAttr(1));
          offsets[0] = rowFirst;
          sizes.push_back(rowCount);
          if (type.getRank() == 2)
            sizes.push_back(b.getIndexAttr(type.getDimSize(1)));
          part = tensor::InsertSliceOp::create(b, part, whole[k], offsets,
                                               sizes, strides);
        }
      }
      // ... and back into them, before the next table is taken.
      auto putBack = [&](Value part, Value flat, int64_t offset) -> Value {
        auto type = cast<RankedTensorType>(part.getType());
        if (type.getRank() == 2)
          part = tensor::CollapseShapeOp::create(
              b, part, ArrayRef<ReassociationIndices>{{0, 1}});
        int64_t size = cast<RankedTensorType>(part.getType()).getDimSize(0);
        return tensor::InsertSliceOp::create(
            b, part, flat, ArrayRef<OpFoldResult>{b.getIndexAttr(offset)},
            ArrayRef<OpFoldResult>{b.getIndexAttr(size)},
            ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
      };
      weights = putBack(results[0], weights, at);
      for (auto [k, s] : llvm::enumerate(states))
        s = putBack(results[k + 1], s, rowwise ? rowAt : at);
      at += rows * dim;
      rowAt += rows;
      column += width;
    }
    SmallVector<Value> all{weights};
    llvm::append_range(all, states);
    rewriter.replaceOp(op, all);
    return success();
  }
};

} // namespace

void mlir::emb::lowering::populateMultiBagDecompositionPatterns(
    RewritePatternSet &patterns) {
  patterns.add<MultiBagToBags, MultiBagUpdateToBagUpdates>(
      patterns.getContext());
}
