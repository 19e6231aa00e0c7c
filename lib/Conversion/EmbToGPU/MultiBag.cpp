//===- MultiBag.cpp - emb.multi_bag as one gpu.launch ---------------------===//
//
// Every table of a many-table bag in one launch: each table owns a range
// of the grid's blocks, laid out as its own single-table kernel would be
// (its D, mode and padding baked in), and a block finds its table by
// comparing its id with the ranges' ends. One launch instead of T lets the
// small tables' blocks fill the SMs next to the large ones', and writes
// each table's columns of the output directly (the decomposition into
// emb.bag per table, MultiBagToBags, writes a buffer per table and copies
// it into the output's columns: a host buffer that no device can use).
//
//===----------------------------------------------------------------------===//
#include "BagChunk.h"
#include "PopulatePatterns.h"

#include "llvm/ADT/STLExtras.h"

#include <numeric>

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::emb::gpu_lowering;

namespace {

/// Where the rows of one table are read: element `at + r * D + c` of a
/// 1-D buffer (the flat buffer of every table, or the table's own).
struct TableRows {
  Value buffer;
  int64_t at;
};

/// The tables as 1-D buffers. Tables taken out of one flat buffer (the
/// JIT's kernels: `expand_shape(extract_slice(%flat[at_t], V_t * D_t))`)
/// are read there, so that no table is copied into a buffer of its own;
/// other tables are read through their own buffers.
SmallVector<TableRows> tableRows(ImplicitLocOpBuilder &b, MultiBagOp op) {
  Value flat;
  SmallVector<int64_t> starts;
  for (Value table : op.getTables()) {
    auto expand = table.getDefiningOp<tensor::ExpandShapeOp>();
    auto slice = expand
                     ? expand.getSrc().getDefiningOp<tensor::ExtractSliceOp>()
                     : tensor::ExtractSliceOp();
    if (!slice || slice.getSourceType().getRank() != 1 ||
        !slice.hasUnitStride() || slice.getStaticOffsets()[0] < 0 ||
        ShapedType::isDynamic(slice.getStaticOffsets()[0]) ||
        (flat && slice.getSource() != flat)) {
      flat = Value();
      break;
    }
    flat = slice.getSource();
    starts.push_back(slice.getStaticOffsets()[0]);
  }
  SmallVector<TableRows> rows;
  if (flat) {
    Value buffer = toBuffer(b, flat);
    for (int64_t at : starts)
      rows.push_back({buffer, at});
    return rows;
  }
  for (Value table : op.getTables())
    rows.push_back(
        {memref::CollapseShapeOp::create(
             b, toBuffer(b, table), ArrayRef<ReassociationIndices>{{0, 1}}),
         0});
  return rows;
}

/// One table's part of the launch: its columns of the output, its thread
/// layout, its mode and padding row (-1: none) and where its rows are; a
/// sequence table (`length`) has a thread group per entry, a pooled table
/// one per bag.
struct TablePart {
  int64_t table, column, dim, vec, tpr;
  BagMode mode;
  std::optional<int64_t> length;
  int64_t pad;
  TableRows rows;

  /// Parts with the same key run the same code, their own values (table,
  /// first element, first column, padding row) chosen in the kernel.
  auto key() const {
    return std::make_tuple(dim, vec, tpr, mode, length.has_value(),
                           length.value_or(0), pad >= 0,
                           rows.buffer.getAsOpaquePointer());
  }
};

/// What a part's thread group reads and writes, as values in the kernel.
struct PartValues {
  Value table, at, column, pad; // pad: null without a padding row
  Value firstRow;               // the part's first row (bag or entry) ...
  Value rows;                   // ... and how many it has
};

/// The largest power of two up to `cap` that divides every value.
int64_t commonPowerOfTwo(ArrayRef<int64_t> values, int64_t cap) {
  int64_t a = cap;
  for (int64_t v : values)
    while (a > 1 && v % a != 0)
      a /= 2;
  return a;
}

// %out = emb.multi_bag %t0, ..., %tT-1 [%x] offsets(%o) bags(%first, %n)
//   ==>
// B = (dim(%o) - 1) / T; without bags(): %first = 0, %n = B
// each table t (C_t > 0 columns from c_t) gets blocks [s_t, e_t), tables
// of the same layout (D_t, mode, L_t, padding or not) next to each other:
//   rows_t = %n (pooled) or %n * L_t (sequence: a group per entry)
//   e_t = s_t + ceildiv(rows_t, 256 / tpr_t)
// scf.if e_last > 0 {
//   gpu.launch blocks(e_last) threads(256) {
//     past_t = bid >= e_t;  layout = how many layouts' ranges end before bid
//     scf.index_switch layout
//     case layout: t, at_t, c_t, P_t, s_t = the values of the table whose
//             range holds bid (selects on past_t: no memory)
//             row = (bid - s_t) * (256 / tpr) + tid / tpr
//             lane = tid % tpr;  if row < rows_t:
//       pooled: bag = t * B + %first + row, entries [%o[bag], %o[bag + 1])
//               pooled by emb.bag's GPU lowering's loop (BagChunk.h), rows
//               read at w[at_t + r * D + c]; out[row, c_t + c] = result
//       sequence: j = %o[t * B + %first] + row; r = %x[j]
//               out[row / L, c_t + (row % L) * D + c]
//                 = r == P_t ? 0 : w[at_t + r * D + c] * psw[j]
//   }
// }
// Vectors divide D_t, the table's first element at_t, c_t and the
// output's row (sum C_t): every load and store is aligned when the buffers'
// bases are (the runtime checks them). One case per layout, not per table:
// DLRM's 26 tables of D = 64 are one case (26 cases took the JIT 7x as
// long: 2.25 s against 0.32 s for sm_80 and sm_90).
struct MultiBagToGPU final : GPUPattern<MultiBagOp> {
  using GPUPattern::GPUPattern;

  // Ahead of the decomposition into one emb.bag per table (benefit 1).
  MultiBagToGPU(MLIRContext *context, const GPULaunchConfig &config)
      : GPUPattern(context, config, /*benefit=*/2) {}

  LogicalResult matchAndRewrite(MultiBagOp op,
                                PatternRewriter &rewriter) const override {
    auto outType = cast<RankedTensorType>(op.getOutput().getType());
    Type element = outType.getElementType();
    if (outType.isDynamicDim(1))
      return rewriter.notifyMatchFailure(op,
                                         "the output's columns are dynamic");
    for (Value table : op.getTables())
      if (cast<RankedTensorType>(table.getType()).isDynamicDim(1))
        return rewriter.notifyMatchFailure(op, "a table's D is dynamic");
    int64_t totalColumns = outType.getDimSize(1);
    int64_t elementBytes = element.getIntOrFloatBitWidth() / 8;

    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    SmallVector<TableRows> tables = tableRows(b, op);
    // Each table's columns and thread layout, grouped by layout (in the
    // order each layout first appears).
    SmallVector<SmallVector<TablePart>> layouts;
    int64_t column = 0;
    for (auto [t, table] : llvm::enumerate(op.getTables())) {
      TablePart part;
      part.table = t;
      part.column = column;
      part.dim = cast<RankedTensorType>(table.getType()).getDimSize(1);
      part.mode = cast<BagModeAttr>(op.getModes()[t]).getValue();
      part.pad = op.getPaddingIdx()[t];
      part.rows = tables[t];
      int64_t width = part.dim;
      if (part.mode == BagMode::none) {
        part.length = (*op.getSequenceLengths())[t];
        width = *part.length * part.dim;
      }
      column += width;
      if (width == 0)
        continue; // no columns: nothing to launch
      int64_t cap = gpu_config::kVectorBytes / elementBytes;
      if (part.mode == BagMode::max)
        cap = std::min(cap, gpu_config::kMaxBagLanesPerThread);
      // Vectors that divide D_t, the table's first element (its rows'
      // loads) and its first column and the row (its stores).
      part.vec = commonPowerOfTwo(
          {part.dim, part.rows.at, part.column, totalColumns}, cap);
      part.tpr = gpu_config::threadsPerRow(part.dim, part.vec,
                                           config.maxThreadsPerRow);
      auto same = llvm::find_if(layouts, [&](ArrayRef<TablePart> l) {
        return l.front().key() == part.key();
      });
      if (same == layouts.end())
        layouts.push_back({part});
      else
        same->push_back(part);
    }

    Value indices = toBuffer(b, op.getIndices());
    Value offsets = toBuffer(b, op.getOffsets());
    Value psw = op.getPerSampleWeights() ? toBuffer(b, op.getPerSampleWeights())
                                         : Value();
    TableBags bags = tableBags(b, op, offsets);
    Value numBags = bags.perTable, first = bags.first, count = bags.count;
    KernelResults results(
        b,
        emptyLike(b, op.getOutput(),
                  outType.isDynamicDim(0) ? ValueRange{count} : ValueRange{}));

    // The block ranges, one after another in layout order.
    SmallVector<Value> blockEnds;
    Value blocks = cIndex(b, 0);
    for (ArrayRef<TablePart> layout : layouts)
      for (const TablePart &part : layout) {
        Value rows = rowsOf(b, part, count);
        blocks = arith::AddIOp::create(
            b, blocks,
            arith::CeilDivUIOp::create(
                b, rows, cIndex(b, config.threadsPerBlock / part.tpr)));
        blockEnds.push_back(blocks);
      }
    if (!layouts.empty()) {
      Value c1 = cIndex(b, 1);
      Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, blocks,
                                        cIndex(b, 0));
      scf::IfOp::create(b, any, [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder ib(loc, nb);
        auto launch = gpu::LaunchOp::create(
            ib, blocks, c1, c1, cIndex(ib, config.threadsPerBlock), c1, c1);
        {
          OpBuilder::InsertionGuard guard(ib);
          ib.setInsertionPointToStart(&launch.getBody().front());
          buildBody(ib, launch, layouts, blockEnds, count, indices, offsets,
                    psw, results.buffers[0], numBags, first, element);
          gpu::TerminatorOp::create(ib);
        }
        scf::YieldOp::create(ib);
      });
    }
    results.replace(rewriter, op);
    return success();
  }

  /// A part's thread groups: its bags, or a sequence table's entries.
  static Value rowsOf(ImplicitLocOpBuilder &b, const TablePart &part,
                      Value count) {
    return part.length
               ? arith::MulIOp::create(b, count, cIndex(b, *part.length))
                     .getResult()
               : count;
  }

  /// The launch's body: the block's layout, its table's values, then that
  /// table's thread group.
  void buildBody(ImplicitLocOpBuilder &b, gpu::LaunchOp launch,
                 ArrayRef<SmallVector<TablePart>> layouts,
                 ArrayRef<Value> blockEnds, Value count, Value indices,
                 Value offsets, Value psw, Value out, Value numBags,
                 Value first, Type element) const {
    Value tid = launch.getThreadIds().x, bid = launch.getBlockIds().x;
    Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
    // past[k]: the block is after part k's range.
    SmallVector<Value> past;
    for (Value end : blockEnds.drop_back())
      past.push_back(
          arith::CmpIOp::create(b, arith::CmpIPredicate::uge, bid, end));
    Value which = c0;
    int64_t partsBefore = 0;
    for (ArrayRef<TablePart> layout : layouts.drop_back()) {
      partsBefore += layout.size();
      which = arith::AddIOp::create(
          b, which, arith::SelectOp::create(b, past[partsBefore - 1], c1, c0));
    }
    SmallVector<int64_t> cases(layouts.size());
    std::iota(cases.begin(), cases.end(), 0);
    auto sw =
        scf::IndexSwitchOp::create(b, TypeRange{}, which, cases, cases.size());
    int64_t firstPart = 0;
    for (size_t k = 0; k < layouts.size(); ++k) {
      ArrayRef<TablePart> layout = layouts[k];
      const TablePart &shape = layout.front();
      auto cb = ImplicitLocOpBuilder::atBlockEnd(
          b.getLoc(), &sw.getCaseRegions()[k].emplaceBlock());
      // A value of the table whose range holds the block: the first
      // table's, replaced by each next one's once the block is past.
      auto pick = [&](function_ref<Value(int64_t)> valueOf) {
        Value v = valueOf(0);
        for (size_t i = 0; i + 1 < layout.size(); ++i)
          v = arith::SelectOp::create(cb, past[firstPart + i], valueOf(i + 1),
                                      v);
        return v;
      };
      PartValues values;
      values.table =
          pick([&](int64_t i) { return cIndex(cb, layout[i].table); });
      values.at =
          pick([&](int64_t i) { return cIndex(cb, layout[i].rows.at); });
      values.column =
          pick([&](int64_t i) { return cIndex(cb, layout[i].column); });
      if (shape.pad >= 0)
        values.pad = pick([&](int64_t i) { return cIndex(cb, layout[i].pad); });
      Value blockStart = pick([&](int64_t i) {
        return firstPart + i == 0 ? c0 : blockEnds[firstPart + i - 1];
      });
      values.rows = rowsOf(cb, shape, count);
      int64_t rowsPerBlock = config.threadsPerBlock / shape.tpr;
      Value row = arith::AddIOp::create(
          cb,
          arith::MulIOp::create(cb, arith::SubIOp::create(cb, bid, blockStart),
                                cIndex(cb, rowsPerBlock)),
          arith::DivUIOp::create(cb, tid, cIndex(cb, shape.tpr)));
      Value lane = arith::RemUIOp::create(cb, tid, cIndex(cb, shape.tpr));
      Value inRange = arith::CmpIOp::create(cb, arith::CmpIPredicate::ult, row,
                                            values.rows);
      scf::IfOp::create(cb, inRange, [&](OpBuilder &tb, Location tl) {
        ImplicitLocOpBuilder rb(tl, tb);
        // The table's first bag of the window, in the table-major offsets.
        Value firstBag = arith::AddIOp::create(
            rb, arith::MulIOp::create(rb, values.table, numBags), first);
        if (shape.length)
          lookUpSequence(rb, shape, values, indices, offsets, psw, out,
                         firstBag, row, lane, element);
        else
          poolBag(rb, shape, values, indices, offsets, psw, out,
                  arith::AddIOp::create(rb, firstBag, row), row, lane, element);
        scf::YieldOp::create(rb);
      });
      scf::YieldOp::create(cb);
      firstPart += layout.size();
    }
    auto db = ImplicitLocOpBuilder::atBlockEnd(
        b.getLoc(), &sw.getDefaultRegion().emplaceBlock());
    scf::YieldOp::create(db);
  }

  /// Row `r`'s chunk at column `c` of a table, in `type`.
  static Value readRow(ImplicitLocOpBuilder &b, const TablePart &shape,
                       const PartValues &values, VectorType type, Value r,
                       Value c) {
    Value at = arith::AddIOp::create(
        b, arith::MulIOp::create(b, r, cIndex(b, shape.dim)),
        arith::AddIOp::create(b, c, values.at));
    return loadRow(b, type, shape.rows.buffer, ValueRange{at});
  }

  /// Bag `bag` of the table-major offsets pooled into out[row, c_t ...].
  void poolBag(ImplicitLocOpBuilder &b, const TablePart &shape,
               const PartValues &values, Value indices, Value offsets,
               Value psw, Value out, Value bag, Value row, Value lane,
               Type element) const {
    Value start = loadIndex(b, offsets, bag);
    Value end =
        loadIndex(b, offsets, arith::AddIOp::create(b, bag, cIndex(b, 1)));
    auto vecType = VectorType::get({shape.vec}, element);
    auto accType = VectorType::get({shape.vec}, accumulatorType(element));
    auto argType = VectorType::get({shape.vec}, b.getI64Type());
    BagChunkAccumulator accumulator{shape.mode, psw, accType, argType};
    forEachChunk(
        b, lane, shape.dim, shape.vec, shape.tpr,
        [&](ImplicitLocOpBuilder &cb, Value c) {
          auto read = [&](ImplicitLocOpBuilder &rb, Value r) {
            return extend(rb, readRow(rb, shape, values, vecType, r, c),
                          accType);
          };
          SmallVector<Value> state =
              accumulator.accumulate(cb, indices, values.pad,
                                     config.entriesInFlight, start, end, read);
          Value acc = accumulator.finish(cb, state);
          storeRow(
              cb, truncate(cb, acc, vecType), out,
              ValueRange{row, arith::AddIOp::create(cb, c, values.column)});
        });
  }

  /// Entry `row` of a sequence table's window, from its first bag
  /// `firstBag`: its row (zeros for padding, times psw) in its columns.
  static void lookUpSequence(ImplicitLocOpBuilder &b, const TablePart &shape,
                             const PartValues &values, Value indices,
                             Value offsets, Value psw, Value out,
                             Value firstBag, Value row, Value lane,
                             Type element) {
    Value j = arith::AddIOp::create(b, loadIndex(b, offsets, firstBag), row);
    Value r = loadIndex(b, indices, j);
    Value length = cIndex(b, *shape.length);
    Value bag = arith::DivUIOp::create(b, row, length);
    Value columnOfEntry = arith::AddIOp::create(
        b, values.column,
        arith::MulIOp::create(b, arith::RemUIOp::create(b, row, length),
                              cIndex(b, shape.dim)));
    auto vecType = VectorType::get({shape.vec}, element);
    auto accType = VectorType::get({shape.vec}, accumulatorType(element));
    Value w = psw ? loadFloat(b, psw, j, accType.getElementType()) : Value();
    Value isPad =
        values.pad
            ? arith::CmpIOp::create(b, arith::CmpIPredicate::eq, r, values.pad)
            : Value();
    forEachChunk(
        b, lane, shape.dim, shape.vec, shape.tpr,
        [&](ImplicitLocOpBuilder &cb, Value c) {
          Value v =
              extend(cb, readRow(cb, shape, values, vecType, r, c), accType);
          if (w)
            v = arith::MulFOp::create(
                cb, v, vector::BroadcastOp::create(cb, accType, w));
          if (isPad)
            v = arith::SelectOp::create(
                cb, isPad,
                splat(cb, accType,
                      cb.getFloatAttr(accType.getElementType(), 0.0)),
                v);
          storeRow(
              cb, truncate(cb, v, vecType), out,
              ValueRange{bag, arith::AddIOp::create(cb, columnOfEntry, c)});
        });
  }
};

} // namespace

void mlir::emb::gpu_lowering::populateMultiBagPatterns(
    RewritePatternSet &patterns, const gpu_config::GPULaunchConfig &config) {
  patterns.add<MultiBagToGPU>(patterns.getContext(), config);
}
