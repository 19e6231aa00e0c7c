//===- Utils.cpp - builders shared by the GPU patterns
//----------------------===//
//===----------------------------------------------------------------------===//

#include "Utils.h"

#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::emb::gpu_lowering {

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//
Value loadIndex(ImplicitLocOpBuilder &b, Value buffer, Value i, Value j) {
  Value v = memref::LoadOp::create(b, buffer, ValueRange{i, j},
                                   /*nontemporal=*/false, llvm::MaybeAlign(8));
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}

Value loadRow(ImplicitLocOpBuilder &b, VectorType type, Value base,
              ValueRange indices) {
  int64_t bytes = std::min<int64_t>(
      type.getNumElements() * type.getElementTypeBitWidth() / 8, 16);
  return vector::LoadOp::create(b, type, base, indices, /*nontemporal=*/false,
                                llvm::MaybeAlign(bytes));
}

void storeRow(ImplicitLocOpBuilder &b, Value v, Value base,
              ValueRange indices) {
  auto type = cast<VectorType>(v.getType());
  int64_t bytes = std::min<int64_t>(
      type.getNumElements() * type.getElementTypeBitWidth() / 8, 16);
  vector::StoreOp::create(b, v, base, indices, /*nontemporal=*/false,
                          llvm::MaybeAlign(bytes));
}

Value splat(ImplicitLocOpBuilder &b, VectorType type, Attribute value) {
  return arith::ConstantOp::create(b, DenseElementsAttr::get(type, value));
}

Value extend(ImplicitLocOpBuilder &b, Value v, VectorType to) {
  if (v.getType() == to)
    return v;
  return arith::ExtFOp::create(b, to, v);
}

Value truncate(ImplicitLocOpBuilder &b, Value v, VectorType to) {
  if (v.getType() == to)
    return v;
  return arith::TruncFOp::create(b, to, v);
}

Value toBuffer(ImplicitLocOpBuilder &b, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  return bufferization::ToBufferOp::create(b, memrefType, tensor,
                                           /*read_only=*/true);
}

Value emptyLike(ImplicitLocOpBuilder &b, Value result, ValueRange dynSizes) {
  auto type = cast<RankedTensorType>(result.getType());
  return tensor::EmptyOp::create(b, type.getShape(), type.getElementType(),
                                 dynSizes);
}

KernelResults::KernelResults(ImplicitLocOpBuilder &b, ValueRange inits,
                             bool updates) {
  op = OnBuffersOp::create(b, inits, updates);
  Block &body = op.getBody().front();
  buffers.assign(body.getArguments().begin(), body.getArguments().end());
  b.setInsertionPointToStart(&body);
}

void KernelResults::replace(RewriterBase &rewriter, Operation *replaced) {
  // The reads of the kernels are the op's: the bufferisation analysis then
  // sees them where they happen (an init aliasing an input is a conflict),
  // not at a to_buffer before the op.
  llvm::SetVector<Value> inputs;
  auto addInput = [&](Value buffer) {
    while (Operation *def = buffer.getDefiningOp()) {
      if (auto toBuffer = dyn_cast<bufferization::ToBufferOp>(def)) {
        inputs.insert(toBuffer.getTensor());
        return;
      }
      auto view = dyn_cast<ViewLikeOpInterface>(def);
      if (!view)
        return;
      buffer = view.getViewSource();
    }
  };
  llvm::SetVector<Value> captured;
  getUsedValuesDefinedAbove(op.getBody(), captured);
  for (Value value : captured)
    addInput(value);
  op.getBody().walk([&](bufferization::ToBufferOp toBuffer) {
    if (!op.getBody().isAncestor(toBuffer.getTensor().getParentRegion()))
      inputs.insert(toBuffer.getTensor());
  });
  rewriter.modifyOpInPlace(
      op, [&] { op.getInputsMutable().assign(inputs.getArrayRef()); });
  rewriter.replaceOp(replaced, op.getResults());
}

Value rows2d(ImplicitLocOpBuilder &b, Value buffer) {
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getRank() == 2)
    return buffer;
  if (type.getRank() == 1) // 0-D indices: [D] -> [1, D]
    return memref::ExpandShapeOp::create(
        b, MemRefType::get({1, type.getDimSize(0)}, type.getElementType()),
        buffer, ArrayRef<ReassociationIndices>{{0, 1}},
        ArrayRef<OpFoldResult>{b.getIndexAttr(1),
                               b.getIndexAttr(type.getDimSize(0))});
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < type.getRank(); ++i)
    lead.push_back(i);
  return memref::CollapseShapeOp::create(
      b, buffer, ArrayRef<ReassociationIndices>{lead, {type.getRank() - 1}});
}

SmallVector<Value> lookupSizes(ImplicitLocOpBuilder &b, Value indices) {
  auto type = cast<RankedTensorType>(indices.getType());
  SmallVector<Value> sizes;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      sizes.push_back(tensor::DimOp::create(b, indices, i));
  return sizes;
}

std::pair<int64_t, int64_t> rowLayout(int64_t dim, Type element,
                                      const GPULaunchConfig &config) {
  int64_t vec =
      gpu_config::vectorWidth(dim, element.getIntOrFloatBitWidth() / 8);
  return {vec, gpu_config::threadsPerRow(dim, vec, config.maxThreadsPerRow)};
}

void launchRows(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
                Value numRows, int64_t threadsPerRow,
                function_ref<void(ImplicitLocOpBuilder &, Value, Value)> body) {
  int64_t rowsPerBlock = config.threadsPerBlock / threadsPerRow;
  Value c0 = cIndex(b, 0), c1 = cIndex(b, 1);
  Value any = arith::CmpIOp::create(b, arith::CmpIPredicate::sgt, numRows, c0);
  scf::IfOp::create(b, any, [&](OpBuilder &nb, Location loc) {
    ImplicitLocOpBuilder ib(loc, nb);
    Value perBlock = cIndex(ib, rowsPerBlock);
    Value grid = arith::CeilDivUIOp::create(ib, numRows, perBlock);
    Value threads = cIndex(ib, config.threadsPerBlock);
    auto launch = gpu::LaunchOp::create(ib, grid, c1, c1, threads, c1, c1);
    {
      OpBuilder::InsertionGuard guard(ib);
      ib.setInsertionPointToStart(&launch.getBody().front());
      Value tid = launch.getThreadIds().x, bid = launch.getBlockIds().x;
      Value tpr = cIndex(ib, threadsPerRow);
      Value row = arith::AddIOp::create(
          ib, arith::MulIOp::create(ib, bid, cIndex(ib, rowsPerBlock)),
          arith::DivUIOp::create(ib, tid, tpr));
      Value lane = arith::RemUIOp::create(ib, tid, tpr);
      Value inRange =
          arith::CmpIOp::create(ib, arith::CmpIPredicate::ult, row, numRows);
      scf::IfOp::create(ib, inRange, [&](OpBuilder &tb, Location tl) {
        ImplicitLocOpBuilder tib(tl, tb);
        body(tib, row, lane);
        scf::YieldOp::create(tib);
      });
      gpu::TerminatorOp::create(ib);
    }
    scf::YieldOp::create(ib);
  });
}

void forEachChunk(ImplicitLocOpBuilder &b, Value lane, int64_t dim, int64_t vec,
                  int64_t threadsPerRow,
                  function_ref<void(ImplicitLocOpBuilder &, Value)> body) {
  Value start = arith::MulIOp::create(b, lane, cIndex(b, vec));
  scf::ForOp::create(b, start, cIndex(b, dim), cIndex(b, threadsPerRow * vec),
                     ValueRange{},
                     [&](OpBuilder &nb, Location loc, Value c, ValueRange) {
                       ImplicitLocOpBuilder ib(loc, nb);
                       body(ib, c);
                       scf::YieldOp::create(ib);
                     });
}

BagStructure bagOnBuffers(ImplicitLocOpBuilder &b, Value indices, Value offsets,
                          bool includeLastOffset) {
  Value flat = toBuffer(b, flatten(b, indices));
  Value offsetsBuffer = offsets ? toBuffer(b, offsets) : Value();
  Value twoD = indices2D(indices) ? toBuffer(b, indices) : Value();
  return BagStructure(b, flat, twoD, offsetsBuffer, includeLastOffset);
}

Value allocScratch(ImplicitLocOpBuilder &b, MemRefType type,
                   ValueRange dynSizes) {
  return gpu::AllocOp::create(b, type, /*asyncToken=*/Type(), ValueRange{},
                              dynSizes, ValueRange{}, /*hostShared=*/false)
      .getMemref();
}

void freeScratch(ImplicitLocOpBuilder &b, Value buffer) {
  gpu::DeallocOp::create(b, /*asyncToken=*/Type(), ValueRange{}, buffer);
}

//===----------------------------------------------------------------------===//
// Dense gradients: atomics
//===----------------------------------------------------------------------===//
std::pair<Value, Value> gradientRows(ImplicitLocOpBuilder &b, Value offset,
                                     Value count, int64_t numEmbeddings) {
  if (offset)
    return {offset, count};
  return {cIndex(b, 0), cIndex(b, numEmbeddings)};
}

void zeroRows(ImplicitLocOpBuilder &b, const GPULaunchConfig &config,
              Value rows, Value count, int64_t dim, int64_t vec, int64_t tpr,
              Type element) {
  auto vecType = VectorType::get({vec}, element);
  launchRows(
      b, config, count, tpr,
      [&](ImplicitLocOpBuilder &ib, Value row, Value lane) {
        forEachChunk(
            ib, lane, dim, vec, tpr, [&](ImplicitLocOpBuilder &cb, Value c) {
              storeRow(cb, splat(cb, vecType, cb.getFloatAttr(element, 0.0)),
                       rows, ValueRange{row, c});
            });
      });
}

LookupGradInputs lookupGradInputs(ImplicitLocOpBuilder &b, LookupGradOp op) {
  Value grad = gradRows(b, op.getGrad());
  Value indices = toBuffer(b, flatten(b, op.getIndices()));
  Value n = memref::DimOp::create(b, indices, 0);
  auto [first, count] = gradientRows(b, op.getRowOffset(), op.getRowCount(),
                                     op.getNumEmbeddings());
  Value init = emptyLike(b, op.getResult(),
                         op.getType().isDynamicDim(0) ? ValueRange{count}
                                                      : ValueRange{});
  Value pad = staticPaddingRow(b, op.getPaddingIdx(), op.getNumEmbeddings());
  return {grad, indices, n, first, count, init, pad};
}

Value gradRows(ImplicitLocOpBuilder &b, Value grad) {
  return toBuffer(b, gradientAsRows(b, grad));
}

Value scaleRow(ImplicitLocOpBuilder &b, Value v, Type accElement, double scale,
               Value factor) {
  auto accType =
      VectorType::get(cast<VectorType>(v.getType()).getShape(), accElement);
  v = extend(b, v, accType);
  if (factor) {
    if (factor.getType() != accElement)
      factor = arith::ExtFOp::create(b, accElement, factor);
    v = arith::MulFOp::create(b, v,
                              vector::BroadcastOp::create(b, accType, factor));
  }
  if (scale != 1.0)
    v = arith::MulFOp::create(
        b, v, splat(b, accType, b.getFloatAttr(accElement, scale)));
  return v;
}

} // namespace mlir::emb::gpu_lowering
