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
/// layout and its mode; a sequence table (`length`) has a thread group per
/// entry, a pooled table one per bag.
struct TablePart {
  int64_t table, column, dim, vec, tpr;
  BagMode mode;
  std::optional<int64_t> length;
  Value pad; // the padding row, or null
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
// each table t (C_t > 0 columns from c_t) gets blocks [s_t, e_t):
//   rows_t = %n (pooled) or %n * L_t (sequence: a group per entry)
//   e_t = s_t + ceildiv(rows_t, 256 / tpr_t)
// scf.if e_last > 0 {
//   gpu.launch blocks(e_last) threads(256) {
//     t = sum_s (bid >= e_s)
//     scf.index_switch t
//     case t: row = (bid - s_t) * (256 / tpr_t) + tid / tpr_t
//             lane = tid % tpr_t;  if row < rows_t:
//       pooled: bag = t * B + %first + row, entries [%o[bag], %o[bag + 1])
//               pooled by emb.bag's GPU lowering's loop (BagChunk.h), rows
//               read at w_t[at_t + r * D_t + c]; out[row, c_t + c] = result
//       sequence: j = %o[t * B + %first] + row; r = %x[j]
//               out[row / L_t, c_t + (row % L_t) * D_t + c]
//                 = r == P_t ? 0 : w_t[r, c] * psw[j]
//   }
// }
// Vectors divide D_t, c_t and the output's row (sum C_t): every store is
// aligned.
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
    int64_t totalColumns = outType.getDimSize(1);
    int64_t elementBytes = element.getIntOrFloatBitWidth() / 8;
    int64_t numTables = op.getTables().size();

    // Each table's columns and thread layout.
    SmallVector<TablePart> parts;
    int64_t column = 0;
    for (auto [t, table] : llvm::enumerate(op.getTables())) {
      auto type = cast<RankedTensorType>(table.getType());
      if (type.isDynamicDim(1))
        return rewriter.notifyMatchFailure(op, "a table's D is dynamic");
      TablePart part;
      part.table = t;
      part.column = column;
      part.dim = type.getDimSize(1);
      part.mode = cast<BagModeAttr>(op.getModes()[t]).getValue();
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
      part.vec = commonPowerOfTwo({part.dim, part.column, totalColumns}, cap);
      part.tpr = gpu_config::threadsPerRow(part.dim, part.vec,
                                           config.maxThreadsPerRow);
      parts.push_back(part);
    }

    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    SmallVector<TableRows> tables = tableRows(b, op);
    for (TablePart &part : parts)
      if (int64_t p = op.getPaddingIdx()[part.table]; p >= 0)
        part.pad = cIndex(b, p);
    Value indices = toBuffer(b, op.getIndices());
    Value offsets = toBuffer(b, op.getOffsets());
    Value psw = op.getPerSampleWeights() ? toBuffer(b, op.getPerSampleWeights())
                                         : Value();
    Value numOffsets = memref::DimOp::create(b, offsets, 0);
    Value numBags = arith::DivUIOp::create(
        b, arith::SubIOp::create(b, numOffsets, cIndex(b, 1)),
        cIndex(b, numTables));
    Value first = op.getBagOffset() ? op.getBagOffset() : cIndex(b, 0);
    Value count = op.getBagCount() ? op.getBagCount() : numBags;
    Destination dest(b, op.getOutput(),
                     outType.isDynamicDim(0) ? ValueRange{count}
                                             : ValueRange{});
    Value out = dest.buffer;

    // The block ranges: rows (thread groups) and the end of each part's.
    SmallVector<Value> partRows, blockEnds;
    Value blocks = cIndex(b, 0);
    for (const TablePart &part : parts) {
      Value rows =
          part.length ? arith::MulIOp::create(b, count, cIndex(b, *part.length))
                      : count;
      partRows.push_back(rows);
      blocks = arith::AddIOp::create(
          b, blocks,
          arith::CeilDivUIOp::create(
              b, rows, cIndex(b, config.threadsPerBlock / part.tpr)));
      blockEnds.push_back(blocks);
    }
    if (parts.empty()) {
      dest.replace(rewriter, op.getOutput());
      rewriter.eraseOp(op);
      return success();
    }

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
        buildBody(ib, launch, parts, tables, blockEnds, partRows, indices,
                  offsets, psw, out, numBags, first, element);
        gpu::TerminatorOp::create(ib);
      }
      scf::YieldOp::create(ib);
    });
    dest.replace(rewriter, op.getOutput());
    rewriter.eraseOp(op);
    return success();
  }

  /// The launch's body: the block's part, then that part's thread group.
  void buildBody(ImplicitLocOpBuilder &b, gpu::LaunchOp launch,
                 ArrayRef<TablePart> parts, ArrayRef<TableRows> tables,
                 ArrayRef<Value> blockEnds, ArrayRef<Value> partRows,
                 Value indices, Value offsets, Value psw, Value out,
                 Value numBags, Value first, Type element) const {
    Value tid = launch.getThreadIds().x, bid = launch.getBlockIds().x;
    Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
    // The block's part: how many parts' ranges end at or before it.
    Value which = c0;
    for (Value end : blockEnds.drop_back())
      which = arith::AddIOp::create(
          b, which,
          arith::SelectOp::create(
              b, arith::CmpIOp::create(b, arith::CmpIPredicate::uge, bid, end),
              c1, c0));
    SmallVector<int64_t> cases(parts.size());
    std::iota(cases.begin(), cases.end(), 0);
    auto sw =
        scf::IndexSwitchOp::create(b, TypeRange{}, which, cases, cases.size());
    for (size_t k = 0; k < parts.size(); ++k) {
      const TablePart &part = parts[k];
      auto cb = ImplicitLocOpBuilder::atBlockEnd(
          b.getLoc(), &sw.getCaseRegions()[k].emplaceBlock());
      Value blockStart = k == 0 ? c0 : blockEnds[k - 1];
      int64_t rowsPerBlock = config.threadsPerBlock / part.tpr;
      Value row = arith::AddIOp::create(
          cb,
          arith::MulIOp::create(cb, arith::SubIOp::create(cb, bid, blockStart),
                                cIndex(cb, rowsPerBlock)),
          arith::DivUIOp::create(cb, tid, cIndex(cb, part.tpr)));
      Value lane = arith::RemUIOp::create(cb, tid, cIndex(cb, part.tpr));
      Value inRange = arith::CmpIOp::create(cb, arith::CmpIPredicate::ult, row,
                                            partRows[k]);
      scf::IfOp::create(cb, inRange, [&](OpBuilder &tb, Location tl) {
        ImplicitLocOpBuilder rb(tl, tb);
        // The table's first bag of the window, in the table-major offsets.
        Value firstBag = arith::AddIOp::create(
            rb, arith::MulIOp::create(rb, cIndex(rb, part.table), numBags),
            first);
        if (part.length)
          lookUpSequence(rb, part, tables[part.table], indices, offsets, psw,
                         out, firstBag, row, lane, element);
        else
          poolBag(rb, part, tables[part.table], indices, offsets, psw, out,
                  arith::AddIOp::create(rb, firstBag, row), row, lane, element);
        scf::YieldOp::create(rb);
      });
      scf::YieldOp::create(cb);
    }
    auto db = ImplicitLocOpBuilder::atBlockEnd(
        b.getLoc(), &sw.getDefaultRegion().emplaceBlock());
    scf::YieldOp::create(db);
  }

  /// Row `r`'s chunk at column `c` of a table, in `type`.
  static Value readRow(ImplicitLocOpBuilder &b, const TablePart &part,
                       const TableRows &rows, VectorType type, Value r,
                       Value c) {
    Value at = arith::AddIOp::create(
        b, arith::MulIOp::create(b, r, cIndex(b, part.dim)),
        arith::AddIOp::create(b, c, cIndex(b, rows.at)));
    return loadRow(b, type, rows.buffer, ValueRange{at});
  }

  /// Bag `bag` of the table-major offsets pooled into out[row, c_t ...].
  void poolBag(ImplicitLocOpBuilder &b, const TablePart &part,
               const TableRows &rows, Value indices, Value offsets, Value psw,
               Value out, Value bag, Value row, Value lane,
               Type element) const {
    Value start = loadIndex(b, offsets, bag);
    Value end =
        loadIndex(b, offsets, arith::AddIOp::create(b, bag, cIndex(b, 1)));
    auto vecType = VectorType::get({part.vec}, element);
    auto accType = VectorType::get({part.vec}, accumulatorType(element));
    auto argType = VectorType::get({part.vec}, b.getI64Type());
    BagChunkAccumulator accumulator{part.mode, psw, accType, argType};
    forEachChunk(
        b, lane, part.dim, part.vec, part.tpr,
        [&](ImplicitLocOpBuilder &cb, Value c) {
          auto read = [&](ImplicitLocOpBuilder &rb, Value r) {
            return extend(rb, readRow(rb, part, rows, vecType, r, c), accType);
          };
          SmallVector<Value> state = accumulator.accumulate(
              cb, indices, part.pad, config.entriesInFlight, start, end, read);
          Value acc = accumulator.finish(cb, state);
          storeRow(cb, truncate(cb, acc, vecType), out,
                   ValueRange{row, arith::AddIOp::create(
                                       cb, c, cIndex(cb, part.column))});
        });
  }

  /// Entry `row` of a sequence table's window, from its first bag
  /// `firstBag`: its row (zeros for padding, times psw) in its columns.
  static void lookUpSequence(ImplicitLocOpBuilder &b, const TablePart &part,
                             const TableRows &rows, Value indices,
                             Value offsets, Value psw, Value out,
                             Value firstBag, Value row, Value lane,
                             Type element) {
    Value j = arith::AddIOp::create(b, loadIndex(b, offsets, firstBag), row);
    Value r = loadIndex(b, indices, j);
    Value length = cIndex(b, *part.length);
    Value bag = arith::DivUIOp::create(b, row, length);
    Value columnOfEntry = arith::AddIOp::create(
        b, cIndex(b, part.column),
        arith::MulIOp::create(b, arith::RemUIOp::create(b, row, length),
                              cIndex(b, part.dim)));
    auto vecType = VectorType::get({part.vec}, element);
    auto accType = VectorType::get({part.vec}, accumulatorType(element));
    Value w = psw ? loadFloat(b, psw, j, accType.getElementType()) : Value();
    Value isPad = part.pad ? arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                                   r, part.pad)
                           : Value();
    forEachChunk(
        b, lane, part.dim, part.vec, part.tpr,
        [&](ImplicitLocOpBuilder &cb, Value c) {
          Value v = extend(cb, readRow(cb, part, rows, vecType, r, c), accType);
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
