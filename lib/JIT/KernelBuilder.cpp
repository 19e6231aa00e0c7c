//===- KernelBuilder.cpp - the specialised emb module of a spec -----------===//
//
// The kernel of a spec is a function on memrefs (the caller's buffers) whose
// body converts them to tensors, applies one emb op and materialises the
// result in the output buffer:
//
//   func.func @emb_<hash>(%w: memref<?xDxT>, %x: memref<?xI>, ...,
//                         %out: memref<?xDxT>) attributes
//                         {llvm.emit_c_interface} {
//     %tw = bufferization.to_tensor %w restrict
//     ...
//     %r = emb.bag sum %tw[%tx] offsets(...) : ...
//     bufferization.materialize_in_destination %r in restrict writable %out
//   }
//
// Sizes that change per call stay dynamic; D, dtypes and options are baked in.
//
//===----------------------------------------------------------------------===//

#include "emb/Dialect/EmbDialect.h"
#include "emb/JIT/JIT.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

using namespace mlir;

namespace {

Type elementType(MLIRContext &ctx, ::emb::DType d) {
  Builder b(&ctx);
  switch (d) {
  case ::emb::DType::f32:
    return b.getF32Type();
  case ::emb::DType::f64:
    return b.getF64Type();
  case ::emb::DType::f16:
    return b.getF16Type();
  case ::emb::DType::bf16:
    return b.getBF16Type();
  case ::emb::DType::i32:
    return b.getI32Type();
  case ::emb::DType::i64:
    return b.getI64Type();
  }
  return Type();
}

mlir::emb::BagMode toMlir(::emb::BagMode m) {
  switch (m) {
  case ::emb::BagMode::sum:
    return mlir::emb::BagMode::sum;
  case ::emb::BagMode::mean:
    return mlir::emb::BagMode::mean;
  case ::emb::BagMode::max:
    return mlir::emb::BagMode::max;
  }
  return mlir::emb::BagMode::sum;
}

} // namespace

auto ::emb::buildKernelModule(MLIRContext &ctx, const ::emb::KernelSpec &spec)
    -> OwningOpRef<ModuleOp> {
  ctx.loadDialect<mlir::emb::EmbDialect, func::FuncDialect,
                  bufferization::BufferizationDialect, memref::MemRefDialect>();
  OpBuilder b(&ctx);
  Location loc = NameLoc::get(b.getStringAttr(spec.str()));
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());

  const int64_t dyn = ShapedType::kDynamic;
  Type wElt = elementType(ctx, spec.weight);
  Type iElt = elementType(ctx, spec.indices);
  auto rows = MemRefType::get({dyn, spec.dim}, wElt);
  bool sparse = spec.op == ::emb::OpKind::embedding_sparse_backward ||
                spec.op == ::emb::OpKind::embedding_bag_sparse_backward;
  bool backward = spec.op == ::emb::OpKind::embedding_backward ||
                  spec.op == ::emb::OpKind::embedding_bag_backward || sparse;
  bool pswGrad = spec.op == ::emb::OpKind::embedding_bag_psw_backward;
  bool bag = spec.op == ::emb::OpKind::embedding_bag ||
             spec.op == ::emb::OpKind::embedding_bag_backward || pswGrad ||
             spec.op == ::emb::OpKind::embedding_bag_sparse_backward;
  auto idxType =
      MemRefType::get(bag && spec.twoD ? SmallVector<int64_t>{dyn, dyn}
                                       : SmallVector<int64_t>{dyn},
                      iElt);

  // Argument list, in the order the runtime passes descriptors.
  SmallVector<Type> args{rows, idxType};
  if (pswGrad) // (grad rows, weight rows, indices, [offsets], gpsw)
    args.insert(args.begin() + 1, rows);
  if (bag && !spec.twoD)
    args.push_back(MemRefType::get({dyn}, elementType(ctx, spec.offsets)));
  if ((bag && spec.perSampleWeights) || pswGrad)
    args.push_back(MemRefType::get(idxType.getShape(), wElt));
  if (sparse) { // rows, values (capacity), count
    args.push_back(MemRefType::get({dyn}, b.getI64Type()));
    args.push_back(rows);
    args.push_back(MemRefType::get({1}, b.getI64Type()));
  } else if (backward) {
    // The row window [first, first + count) of gW this call computes, and
    // those rows of gW (the runtime splits rows over threads).
    args.push_back(MemRefType::get({2}, b.getI64Type()));
    args.push_back(rows);
  } else if (spec.op != ::emb::OpKind::renorm && !pswGrad)
    args.push_back(rows);
  if (bag && spec.maxIndices && !backward)
    args.push_back(MemRefType::get({dyn, spec.dim}, b.getI64Type()));
  if (bag && spec.maxIndices && backward) // before the window and gW
    args.insert(args.end() - 2,
                MemRefType::get({dyn, spec.dim}, b.getI64Type()));

  auto fn = func::FuncOp::create(b, loc, spec.symbolName(),
                                 b.getFunctionType(args, {}));
  fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *body = fn.addEntryBlock();
  b.setInsertionPointToStart(body);

  auto toTensor = [&](Value m, bool writable = false) -> Value {
    auto mt = cast<MemRefType>(m.getType());
    auto tt = RankedTensorType::get(mt.getShape(), mt.getElementType());
    return bufferization::ToTensorOp::create(b, loc, tt, m, /*restrict=*/true,
                                             writable);
  };
  auto materialize = [&](Value t, Value m) {
    auto op = bufferization::MaterializeInDestinationOp::create(b, loc, t, m);
    op.setRestrict(true);
    op.setWritable(true);
  };
  auto tensorOf = [&](MemRefType mt) {
    return RankedTensorType::get(mt.getShape(), mt.getElementType());
  };

  unsigned a = 0;
  if (pswGrad) {
    Value grad = toTensor(body->getArgument(a++));
    Value weight = toTensor(body->getArgument(a++));
    Value indices = toTensor(body->getArgument(a++));
    Value offsets = spec.twoD ? Value() : toTensor(body->getArgument(a++));
    Value out = body->getArgument(a++);
    IntegerAttr pad = spec.paddingIdx >= 0
                          ? b.getI64IntegerAttr(spec.paddingIdx)
                          : IntegerAttr();
    Value r = mlir::emb::BagPswGradOp::create(
        b, loc, tensorOf(cast<MemRefType>(out.getType())), grad, weight,
        indices, offsets,
        spec.includeLastOffset && !spec.twoD ? b.getUnitAttr() : UnitAttr(),
        pad);
    materialize(r, out);
    func::ReturnOp::create(b, loc);
    return module;
  }
  if (sparse) {
    // (grad rows, indices, [offsets], [per_sample_weights], rows, values,
    //  count): the COO result is written at the front of the caller's
    // buffers and its length into `count`.
    Value grad = toTensor(body->getArgument(a++));
    Value indices = toTensor(body->getArgument(a++));
    IntegerAttr pad = spec.paddingIdx >= 0
                          ? b.getI64IntegerAttr(spec.paddingIdx)
                          : IntegerAttr();
    UnitAttr coalesced = spec.coalesced ? b.getUnitAttr() : UnitAttr();
    auto rowsT = RankedTensorType::get({dyn}, b.getI64Type());
    auto valuesT = RankedTensorType::get({dyn, spec.dim}, wElt);
    Value rowsR, valuesR;
    if (spec.op == ::emb::OpKind::embedding_sparse_backward) {
      auto op = mlir::emb::LookupSparseGradOp::create(
          b, loc, rowsT, valuesT, grad, indices,
          b.getI64IntegerAttr(spec.numEmbeddings), pad,
          b.getF64FloatAttr(spec.gradScale), coalesced);
      rowsR = op.getRows();
      valuesR = op.getValues();
    } else {
      Value offsets = spec.twoD ? Value() : toTensor(body->getArgument(a++));
      Value psw =
          spec.perSampleWeights ? toTensor(body->getArgument(a++)) : Value();
      auto op = mlir::emb::BagSparseGradOp::create(
          b, loc, rowsT, valuesT,
          mlir::emb::BagModeAttr::get(&ctx, toMlir(spec.mode)), grad, indices,
          offsets, psw, b.getI64IntegerAttr(spec.numEmbeddings),
          spec.includeLastOffset && !spec.twoD ? b.getUnitAttr() : UnitAttr(),
          pad, b.getF64FloatAttr(spec.gradScale), coalesced);
      rowsR = op.getRows();
      valuesR = op.getValues();
    }
    Value rowsOut = body->getArgument(a++);
    Value valuesOut = body->getArgument(a++);
    Value countOut = body->getArgument(a++);
    Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
    Value m = tensor::DimOp::create(b, loc, rowsR, c0);
    if (spec.target != ::emb::Target::host) {
      // GPU: the results (whose size the kernels read back from the
      // device) are copied into the front of the caller's buffers (device
      // memory, of any capacity), and their number stored into `count`
      // (host memory).
      auto front = [&](Value buffer) -> Value {
        auto type = cast<MemRefType>(buffer.getType());
        SmallVector<OpFoldResult> sizes{m}, strides;
        if (type.getRank() == 2) {
          sizes.push_back(b.getIndexAttr(spec.dim));
          strides.push_back(b.getIndexAttr(spec.dim));
        }
        strides.push_back(b.getIndexAttr(1));
        return memref::ReinterpretCastOp::create(
            b, loc, type, buffer, b.getIndexAttr(0), sizes, strides);
      };
      materialize(rowsR, front(rowsOut));
      materialize(valuesR, front(valuesOut));
      memref::StoreOp::create(
          b, loc, arith::IndexCastOp::create(b, loc, b.getI64Type(), m),
          countOut, ValueRange{c0});
      func::ReturnOp::create(b, loc);
      return module;
    }
    Value m64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), m);
    Value count = tensor::FromElementsOp::create(
        b, loc, RankedTensorType::get({1}, b.getI64Type()), ValueRange{m64});
    if (!spec.coalesced) {
      // The caller passes buffers of exactly the uncoalesced size (the
      // non-padding entries): the results bufferise straight into them.
      materialize(rowsR, rowsOut);
      materialize(valuesR, valuesOut);
      materialize(count, countOut);
      func::ReturnOp::create(b, loc);
      return module;
    }
    OpFoldResult zero = b.getIndexAttr(0), one = b.getIndexAttr(1);
    Value rowsAll = tensor::InsertSliceOp::create(
        b, loc, rowsR, toTensor(rowsOut, true), ArrayRef<OpFoldResult>{zero},
        ArrayRef<OpFoldResult>{m}, ArrayRef<OpFoldResult>{one});
    Value valuesAll = tensor::InsertSliceOp::create(
        b, loc, valuesR, toTensor(valuesOut, true),
        ArrayRef<OpFoldResult>{zero, zero},
        ArrayRef<OpFoldResult>{m, b.getIndexAttr(spec.dim)},
        ArrayRef<OpFoldResult>{one, one});
    materialize(rowsAll, rowsOut);
    materialize(valuesAll, valuesOut);
    materialize(count, countOut);
    func::ReturnOp::create(b, loc);
    return module;
  }
  if (backward) {
    // (grad rows, indices, [offsets], [per_sample_weights], gW)
    Value grad = toTensor(body->getArgument(a++));
    Value indices = toTensor(body->getArgument(a++));
    IntegerAttr pad = spec.paddingIdx >= 0
                          ? b.getI64IntegerAttr(spec.paddingIdx)
                          : IntegerAttr();
    UnitAttr byFreq = spec.scaleGradByFreq ? b.getUnitAttr() : UnitAttr();
    Value gw = body->getArgument(body->getNumArguments() - 1);
    Value window = toTensor(body->getArgument(body->getNumArguments() - 2));
    auto windowValue = [&](int64_t i) -> Value {
      Value v = tensor::ExtractOp::create(
          b, loc, window,
          ValueRange{arith::ConstantIndexOp::create(b, loc, i)});
      return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
    };
    Value first = windowValue(0), count = windowValue(1);
    UnitAttr deterministic = spec.deterministic ? b.getUnitAttr() : UnitAttr();
    auto gwType = tensorOf(cast<MemRefType>(gw.getType()));
    Value r;
    if (spec.op == ::emb::OpKind::embedding_backward) {
      r = mlir::emb::LookupGradOp::create(
          b, loc, gwType, grad, indices, first, count,
          b.getI64IntegerAttr(spec.numEmbeddings), pad, byFreq,
          b.getF64FloatAttr(spec.gradScale), deterministic);
    } else {
      Value offsets = spec.twoD ? Value() : toTensor(body->getArgument(a++));
      Value psw =
          spec.perSampleWeights ? toTensor(body->getArgument(a++)) : Value();
      Value maxIdx =
          spec.maxIndices ? toTensor(body->getArgument(a++)) : Value();
      r = mlir::emb::BagGradOp::create(
          b, loc, gwType, mlir::emb::BagModeAttr::get(&ctx, toMlir(spec.mode)),
          grad, indices, offsets, psw, maxIdx, first, count,
          b.getI64IntegerAttr(spec.numEmbeddings),
          spec.includeLastOffset && !spec.twoD ? b.getUnitAttr() : UnitAttr(),
          pad, byFreq, b.getF64FloatAttr(spec.gradScale), deterministic);
    }
    materialize(r, gw);
    func::ReturnOp::create(b, loc);
    return module;
  }
  Value weight = body->getArgument(a++);
  Value indices = body->getArgument(a++);
  IntegerAttr pad = spec.paddingIdx >= 0 ? b.getI64IntegerAttr(spec.paddingIdx)
                                         : IntegerAttr();
  switch (spec.op) {
  case ::emb::OpKind::embedding: {
    Value out = body->getArgument(a++);
    auto mode = mlir::emb::PaddingModeAttr::get(
        &ctx, spec.zeroPadding ? mlir::emb::PaddingMode::zero
                               : mlir::emb::PaddingMode::keep);
    Value r = mlir::emb::LookupOp::create(
        b, loc, tensorOf(rows), toTensor(weight), toTensor(indices), pad, mode);
    materialize(r, out);
    break;
  }
  case ::emb::OpKind::embedding_bag: {
    Value offsets = spec.twoD ? Value() : toTensor(body->getArgument(a++));
    Value psw =
        spec.perSampleWeights ? toTensor(body->getArgument(a++)) : Value();
    Value out = body->getArgument(a++);
    Value argmax = spec.maxIndices ? body->getArgument(a++) : Value();
    Type argType =
        argmax ? Type(tensorOf(cast<MemRefType>(argmax.getType()))) : Type();
    auto op = mlir::emb::BagOp::create(
        b, loc, tensorOf(rows), argType,
        mlir::emb::BagModeAttr::get(&ctx, toMlir(spec.mode)), toTensor(weight),
        toTensor(indices), offsets, psw,
        spec.includeLastOffset && !spec.twoD ? b.getUnitAttr() : UnitAttr(),
        pad);
    materialize(op.getOutput(), out);
    if (argmax)
      materialize(op.getMaxIndices(), argmax);
    break;
  }
  case ::emb::OpKind::renorm: {
    Value tw = toTensor(weight, /*writable=*/true);
    Value r = mlir::emb::RenormOp::create(
        b, loc, tw.getType(), tw, toTensor(indices),
        b.getF64FloatAttr(spec.maxNorm), b.getF64FloatAttr(spec.normType));
    materialize(r, weight);
    break;
  }
  case ::emb::OpKind::embedding_backward:
  case ::emb::OpKind::embedding_bag_backward:
  case ::emb::OpKind::embedding_bag_psw_backward:
  case ::emb::OpKind::embedding_sparse_backward:
  case ::emb::OpKind::embedding_bag_sparse_backward:
    break; // built above
  }
  func::ReturnOp::create(b, loc);
  return module;
}
