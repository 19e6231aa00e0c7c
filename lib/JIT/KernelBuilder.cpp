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
// The arguments are the spec's KernelABI (include/emb/JIT/KernelABI.h), in
// its order. After the pipeline, addPackedEntryPoint wraps the function's C
// interface into the packed entry point the runtime calls.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "emb/Dialect/EmbDialect.h"
#include "emb/JIT/JIT.h"
#include "emb/JIT/KernelABI.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
// The runtime's vocabulary and the JIT's API live in ::emb, next to the
// dialect's mlir::emb (which `emb::` names here): the names used below.
using ::emb::ArgElement;
using ::emb::ArgShape;
using ::emb::ArgSlot;
using ::emb::DType;
using ::emb::KernelABI;
using ::emb::KernelArg;
using ::emb::KernelSpec;
using ::emb::OpKind;
using ::emb::Target;

namespace {

Type elementType(MLIRContext &ctx, DType d) {
  Builder b(&ctx);
  switch (d) {
  case DType::f32:
    return b.getF32Type();
  case DType::f64:
    return b.getF64Type();
  case DType::f16:
    return b.getF16Type();
  case DType::bf16:
    return b.getBF16Type();
  case DType::i32:
    return b.getI32Type();
  case DType::i64:
    return b.getI64Type();
  case DType::u8: // the bytes of a quantised table (signless: MLIR's byte)
    return b.getI8Type();
  }
  return Type();
}

mlir::emb::Optimizer toMlir(::emb::Optimizer o) {
  switch (o) {
  case ::emb::Optimizer::sgd:
    return mlir::emb::Optimizer::sgd;
  case ::emb::Optimizer::adagrad:
    return mlir::emb::Optimizer::adagrad;
  case ::emb::Optimizer::rowwise_adagrad:
    return mlir::emb::Optimizer::rowwise_adagrad;
  case ::emb::Optimizer::adam:
    return mlir::emb::Optimizer::adam;
  }
  return mlir::emb::Optimizer::sgd;
}

/// The tables' `sequence_lengths`, or none when no table is a sequence.
DenseI64ArrayAttr sequenceLengthsAttr(OpBuilder &b,
                                      ArrayRef<::emb::TableSpec> tables) {
  if (llvm::none_of(tables, [](const ::emb::TableSpec &t) {
        return t.mode == ::emb::BagMode::none;
      }))
    return {};
  SmallVector<int64_t> lengths;
  for (const ::emb::TableSpec &t : tables)
    lengths.push_back(t.sequenceLength);
  return b.getDenseI64ArrayAttr(lengths);
}

mlir::emb::BagMode toMlir(::emb::BagMode m) {
  switch (m) {
  case ::emb::BagMode::sum:
    return mlir::emb::BagMode::sum;
  case ::emb::BagMode::mean:
    return mlir::emb::BagMode::mean;
  case ::emb::BagMode::max:
    return mlir::emb::BagMode::max;
  case ::emb::BagMode::sqrtn:
    return mlir::emb::BagMode::sqrtn;
  case ::emb::BagMode::none:
    return mlir::emb::BagMode::none;
  }
  return mlir::emb::BagMode::sum;
}

/// The memref type of one kernel argument (KernelABI).
MemRefType memrefType(MLIRContext &ctx, const KernelSpec &spec,
                      const KernelArg &arg) {
  const int64_t dyn = ShapedType::kDynamic;
  Type elt;
  switch (arg.element) {
  case ArgElement::weight:
    elt = elementType(ctx, spec.weight);
    break;
  case ArgElement::indices:
    elt = elementType(ctx, spec.indices);
    break;
  case ArgElement::offsets:
    elt = elementType(ctx, spec.offsets);
    break;
  case ArgElement::i64:
    elt = elementType(ctx, DType::i64);
    break;
  case ArgElement::bytes:
    elt = elementType(ctx, DType::u8);
    break;
  case ArgElement::state:
    elt = elementType(ctx, spec.weight == DType::f64 ? DType::f64 : DType::f32);
    break;
  case ArgElement::f64:
    elt = elementType(ctx, DType::f64);
    break;
  }
  SmallVector<int64_t> shape;
  switch (arg.shape) {
  case ArgShape::rows:
    shape = {dyn, spec.dim};
    break;
  case ArgShape::packedRows:
    shape = {dyn, quantizedRowBytes(spec.quant, spec.dim)};
    break;
  case ArgShape::list:
    shape = {dyn};
    break;
  case ArgShape::indexed:
    shape.assign(arg.rank, dyn);
    break;
  case ArgShape::pair:
    shape = {2};
    break;
  case ArgShape::single:
    shape = {1};
    break;
  }
  return MemRefType::get(shape, elt);
}

} // namespace

auto ::emb::buildKernelModule(MLIRContext &ctx, const KernelSpec &spec)
    -> OwningOpRef<ModuleOp> {
  ctx.loadDialect<mlir::emb::EmbDialect, func::FuncDialect,
                  bufferization::BufferizationDialect, memref::MemRefDialect>();
  OpBuilder b(&ctx);
  Location loc = NameLoc::get(b.getStringAttr(spec.str()));
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module->getBody());

  const int64_t dyn = ShapedType::kDynamic;
  Type wElt = elementType(ctx, spec.weight);
  auto rows = MemRefType::get({dyn, spec.dim}, wElt);
  bool sparse = spec.op == OpKind::embedding_sparse_backward ||
                spec.op == OpKind::embedding_bag_sparse_backward;
  bool backward = spec.op == OpKind::embedding_backward ||
                  spec.op == OpKind::embedding_bag_backward || sparse;
  bool pswGrad = spec.op == OpKind::embedding_bag_psw_backward;

  // The signature: the arguments of the spec's KernelABI, in its order.
  const KernelABI abi(spec);
  SmallVector<Type> args;
  for (const KernelArg &arg : abi.args())
    args.push_back(memrefType(ctx, spec, arg));

  auto fn = func::FuncOp::create(b, loc, spec.symbolName(),
                                 b.getFunctionType(args, {}));
  fn->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  Block *body = fn.addEntryBlock();
  b.setInsertionPointToStart(body);
  // The argument of `slot`, or null when the kernel has none.
  auto arg = [&](ArgSlot slot) -> Value {
    int i = abi.position(slot);
    return i < 0 ? Value() : body->getArgument(i);
  };

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
  // The tensor of the argument of `slot`, or null when there is none.
  auto tensorArg = [&](ArgSlot slot) -> Value {
    Value m = arg(slot);
    return m ? toTensor(m) : Value();
  };

  using Slot = ArgSlot;
  // Element i of the window argument (first row / bag, count) as an index
  // (one restrict to_tensor of the argument for both).
  Value window;
  auto windowValue = [&](int64_t i) -> Value {
    if (!window)
      window = tensorArg(Slot::window);
    Value v = tensor::ExtractOp::create(
        b, loc, window,
        ValueRange{arith::ConstantIndexOp::create(b, loc, i)});
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  };
  if (pswGrad) {
    Value grad = tensorArg(Slot::grad);
    Value weight = tensorArg(Slot::weight);
    Value indices = tensorArg(Slot::indices);
    Value offsets = tensorArg(Slot::offsets);
    Value out = arg(Slot::gradPerSampleWeights);
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
    Value grad = tensorArg(Slot::grad);
    Value indices = tensorArg(Slot::indices);
    IntegerAttr pad = spec.paddingIdx >= 0
                          ? b.getI64IntegerAttr(spec.paddingIdx)
                          : IntegerAttr();
    UnitAttr coalesced = spec.coalesced ? b.getUnitAttr() : UnitAttr();
    auto rowsT = RankedTensorType::get({dyn}, b.getI64Type());
    auto valuesT = RankedTensorType::get({dyn, spec.dim}, wElt);
    Value rowsR, valuesR;
    if (spec.op == OpKind::embedding_sparse_backward) {
      auto op = mlir::emb::LookupSparseGradOp::create(
          b, loc, rowsT, valuesT, grad, indices,
          b.getI64IntegerAttr(spec.numEmbeddings), pad,
          b.getF64FloatAttr(spec.gradScale), coalesced);
      rowsR = op.getRows();
      valuesR = op.getValues();
    } else {
      Value offsets = tensorArg(Slot::offsets);
      Value psw = tensorArg(Slot::perSampleWeights);
      auto op = mlir::emb::BagSparseGradOp::create(
          b, loc, rowsT, valuesT,
          mlir::emb::BagModeAttr::get(&ctx, toMlir(spec.mode)), grad, indices,
          offsets, psw, b.getI64IntegerAttr(spec.numEmbeddings),
          spec.includeLastOffset && !spec.twoD ? b.getUnitAttr() : UnitAttr(),
          pad, b.getF64FloatAttr(spec.gradScale), coalesced);
      rowsR = op.getRows();
      valuesR = op.getValues();
    }
    Value rowsOut = arg(Slot::sparseRows);
    Value valuesOut = arg(Slot::sparseValues);
    Value countOut = arg(Slot::sparseCount);
    Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
    Value m = tensor::DimOp::create(b, loc, rowsR, c0);
    Value m64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), m);
    if (spec.target == Target::host && !spec.coalesced) {
      // The caller passes buffers of exactly the uncoalesced size (the
      // non-padding entries): the results bufferise straight into them.
      Value count = tensor::FromElementsOp::create(
          b, loc, RankedTensorType::get({1}, b.getI64Type()), ValueRange{m64});
      materialize(rowsR, rowsOut);
      materialize(valuesR, valuesOut);
      materialize(count, countOut);
      func::ReturnOp::create(b, loc);
      return module;
    }
    // Coalesced, and on the GPU: the results (whose size only the kernel
    // knows) are copied into the front of the caller's buffers (of any
    // capacity; device memory on the GPU), seen as identity-layout memrefs
    // of m rows so that the copy is one memcpy (a subview's strided copy
    // went element by element through memrefCopy: half of a coalesced
    // gradient's time), and their number stored into `count` (host memory).
    auto front = [&](Value buffer) -> Value {
      auto type = cast<MemRefType>(buffer.getType());
      SmallVector<OpFoldResult> sizes{m}, strides;
      if (type.getRank() == 2) {
        sizes.push_back(b.getIndexAttr(spec.dim));
        strides.push_back(b.getIndexAttr(spec.dim));
      }
      strides.push_back(b.getIndexAttr(1));
      return memref::ReinterpretCastOp::create(b, loc, type, buffer,
                                               b.getIndexAttr(0), sizes,
                                               strides);
    };
    materialize(rowsR, front(rowsOut));
    materialize(valuesR, front(valuesOut));
    memref::StoreOp::create(b, loc, m64, countOut, ValueRange{c0});
    func::ReturnOp::create(b, loc);
    return module;
  }
  if (spec.op == OpKind::embedding_bag_tables_update) {
    // Every table, and each state of every table, flat in one buffer
    // (FBGEMM's layout), updated in place.
    Value weightArg = arg(Slot::weight);
    SmallVector<Value> stateArgs, states;
    for (Slot slot : {Slot::optimizerState, Slot::optimizerState2})
      if (Value m = arg(slot)) {
        stateArgs.push_back(m);
        states.push_back(toTensor(m, /*writable=*/true));
      }
    SmallVector<int64_t> shapes, pads;
    SmallVector<Attribute> modes;
    for (const TableSpec &t : spec.tables) {
      shapes.append({t.rows, t.dim});
      modes.push_back(mlir::emb::BagModeAttr::get(&ctx, toMlir(t.mode)));
      pads.push_back(t.paddingIdx);
    }
    Value hyper = tensorArg(Slot::hyper);
    auto hyperValue = [&](int64_t i) -> Value {
      return tensor::ExtractOp::create(
          b, loc, hyper, ValueRange{arith::ConstantIndexOp::create(b, loc, i)});
    };
    Value step;
    if (spec.optimizer == ::emb::Optimizer::adam)
      step = arith::FPToSIOp::create(b, loc, b.getI64Type(), hyperValue(1));
    Value weights = toTensor(weightArg, /*writable=*/true);
    SmallVector<Type> resultTypes{weights.getType()};
    for (Value v : states)
      resultTypes.push_back(v.getType());
    auto op = mlir::emb::MultiBagUpdateOp::create(
        b, loc, resultTypes,
        mlir::emb::OptimizerAttr::get(&ctx, toMlir(spec.optimizer)),
        tensorArg(Slot::grad), weights, tensorArg(Slot::indices),
        tensorArg(Slot::offsets), tensorArg(Slot::perSampleWeights),
        windowValue(0), windowValue(1), states, hyperValue(0), step,
        b.getDenseI64ArrayAttr(shapes), b.getArrayAttr(modes),
        b.getDenseI64ArrayAttr(pads), sequenceLengthsAttr(b, spec.tables),
        b.getI64IntegerAttr(::emb::kTableRowParts),
        b.getF64FloatAttr(spec.weightDecay), b.getF64FloatAttr(spec.eps),
        b.getF64FloatAttr(spec.beta1), b.getF64FloatAttr(spec.beta2));
    materialize(op.getResult(0), weightArg);
    for (auto [k, m] : llvm::enumerate(stateArgs))
      materialize(op.getResult(k + 1), m);
    func::ReturnOp::create(b, loc);
    return module;
  }
  if (spec.op == OpKind::embedding_bag_update) {
    // The window's rows of the weight and the states, updated in place.
    Value grad = tensorArg(Slot::grad);
    Value indices = tensorArg(Slot::indices);
    Value first = windowValue(0), count = windowValue(1);
    Value weightArg = arg(Slot::weight);
    SmallVector<Value> stateArgs, states;
    for (Slot slot : {Slot::optimizerState, Slot::optimizerState2})
      if (Value m = arg(slot)) {
        stateArgs.push_back(m);
        states.push_back(toTensor(m, /*writable=*/true));
      }
    // hyper = (lr, step): host memory, read once.
    Value hyper = tensorArg(Slot::hyper);
    auto hyperValue = [&](int64_t i) -> Value {
      return tensor::ExtractOp::create(
          b, loc, hyper, ValueRange{arith::ConstantIndexOp::create(b, loc, i)});
    };
    Value lr = hyperValue(0);
    Value step;
    if (spec.optimizer == ::emb::Optimizer::adam)
      step = arith::FPToSIOp::create(b, loc, b.getI64Type(), hyperValue(1));
    SmallVector<Type> resultTypes{tensorOf(rows)};
    for (Value t : states)
      resultTypes.push_back(t.getType());
    IntegerAttr pad = spec.paddingIdx >= 0
                          ? b.getI64IntegerAttr(spec.paddingIdx)
                          : IntegerAttr();
    auto op = mlir::emb::BagUpdateOp::create(
        b, loc, resultTypes,
        mlir::emb::OptimizerAttr::get(&ctx, toMlir(spec.optimizer)),
        mlir::emb::BagModeAttr::get(&ctx, toMlir(spec.mode)), grad, indices,
        tensorArg(Slot::offsets), tensorArg(Slot::perSampleWeights),
        tensorArg(Slot::maxIndices), first, count,
        toTensor(weightArg, /*writable=*/true), states, lr, step,
        b.getI64IntegerAttr(spec.numEmbeddings),
        spec.includeLastOffset && !spec.twoD ? b.getUnitAttr() : UnitAttr(),
        pad, spec.scaleGradByFreq ? b.getUnitAttr() : UnitAttr(),
        b.getF64FloatAttr(spec.gradScale), b.getF64FloatAttr(spec.weightDecay),
        b.getF64FloatAttr(spec.eps), b.getF64FloatAttr(spec.beta1),
        b.getF64FloatAttr(spec.beta2));
    materialize(op.getResult(0), weightArg);
    for (auto [k, m] : llvm::enumerate(stateArgs))
      materialize(op.getResult(k + 1), m);
    func::ReturnOp::create(b, loc);
    return module;
  }
  if (backward) {
    // (grad rows, indices, [offsets], [per_sample_weights], gW)
    Value grad = tensorArg(Slot::grad);
    Value indices = tensorArg(Slot::indices);
    IntegerAttr pad = spec.paddingIdx >= 0
                          ? b.getI64IntegerAttr(spec.paddingIdx)
                          : IntegerAttr();
    UnitAttr byFreq = spec.scaleGradByFreq ? b.getUnitAttr() : UnitAttr();
    Value gw = arg(Slot::gradWeight);
    Value first = windowValue(0), count = windowValue(1);
    UnitAttr deterministic = spec.deterministic ? b.getUnitAttr() : UnitAttr();
    auto gwType = tensorOf(cast<MemRefType>(gw.getType()));
    Value r;
    if (spec.op == OpKind::embedding_backward) {
      r = mlir::emb::LookupGradOp::create(
          b, loc, gwType, grad, indices, first, count,
          b.getI64IntegerAttr(spec.numEmbeddings), pad, byFreq,
          b.getF64FloatAttr(spec.gradScale), deterministic);
    } else {
      Value offsets = tensorArg(Slot::offsets);
      Value psw = tensorArg(Slot::perSampleWeights);
      Value maxIdx = tensorArg(Slot::maxIndices);
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
  Value weight = arg(Slot::weight);
  Value indices = arg(Slot::indices);
  IntegerAttr pad = spec.paddingIdx >= 0 ? b.getI64IntegerAttr(spec.paddingIdx)
                                         : IntegerAttr();
  switch (spec.op) {
  case OpKind::embedding: {
    Value out = arg(Slot::out);
    auto mode = mlir::emb::PaddingModeAttr::get(
        &ctx, spec.zeroPadding ? mlir::emb::PaddingMode::zero
                               : mlir::emb::PaddingMode::keep);
    Value r = mlir::emb::LookupOp::create(
        b, loc, tensorOf(rows), toTensor(weight), toTensor(indices), pad, mode);
    materialize(r, out);
    break;
  }
  case OpKind::embedding_bag: {
    Value offsets = tensorArg(Slot::offsets);
    Value psw = tensorArg(Slot::perSampleWeights);
    Value out = arg(Slot::out);
    Value argmax = arg(Slot::maxIndices);
    Type argType =
        argmax ? Type(tensorOf(cast<MemRefType>(argmax.getType()))) : Type();
    auto op = mlir::emb::BagOp::create(
        b, loc, tensorOf(rows), argType,
        mlir::emb::BagModeAttr::get(&ctx, toMlir(spec.mode)), toTensor(weight),
        toTensor(indices), offsets, psw,
        spec.includeLastOffset && !spec.twoD ? b.getUnitAttr() : UnitAttr(),
        pad,
        spec.quant == Quantization::none
            ? mlir::emb::QuantizationAttr()
            : mlir::emb::QuantizationAttr::get(
                  &ctx, spec.quant == Quantization::int8
                            ? mlir::emb::Quantization::int8
                            : mlir::emb::Quantization::int4));
    materialize(op.getOutput(), out);
    if (argmax)
      materialize(op.getMaxIndices(), argmax);
    break;
  }
  case OpKind::embedding_bag_tables: {
    // Each table a [rows, dim] view of its part of the flat buffer.
    Value flat = toTensor(weight);
    SmallVector<Value> tables;
    SmallVector<Attribute> modes;
    SmallVector<int64_t> pads;
    int64_t at = 0;
    for (const TableSpec &t : spec.tables) {
      auto part = RankedTensorType::get({t.rows * t.dim}, wElt);
      Value slice = tensor::ExtractSliceOp::create(
          b, loc, part, flat, ValueRange{}, ValueRange{}, ValueRange{},
          b.getDenseI64ArrayAttr({at}), b.getDenseI64ArrayAttr({t.rows * t.dim}),
          b.getDenseI64ArrayAttr({1}));
      tables.push_back(tensor::ExpandShapeOp::create(
          b, loc, RankedTensorType::get({t.rows, t.dim}, wElt), slice,
          ArrayRef<ReassociationIndices>{{0, 1}}));
      modes.push_back(mlir::emb::BagModeAttr::get(&ctx, toMlir(t.mode)));
      pads.push_back(t.paddingIdx);
      at += t.rows * t.dim;
    }
    Value r = mlir::emb::MultiBagOp::create(
        b, loc, tensorOf(rows), tables, toTensor(indices),
        tensorArg(Slot::offsets), tensorArg(Slot::perSampleWeights),
        windowValue(0), windowValue(1), b.getArrayAttr(modes),
        b.getDenseI64ArrayAttr(pads), sequenceLengthsAttr(b, spec.tables));
    materialize(r, arg(Slot::out));
    break;
  }
  case OpKind::renorm: {
    Value tw = toTensor(weight, /*writable=*/true);
    Value r = mlir::emb::RenormOp::create(
        b, loc, tw.getType(), tw, toTensor(indices),
        b.getF64FloatAttr(spec.maxNorm), b.getF64FloatAttr(spec.normType));
    materialize(r, weight);
    break;
  }
  case OpKind::embedding_backward:
  case OpKind::embedding_bag_backward:
  case OpKind::embedding_bag_psw_backward:
  case OpKind::embedding_sparse_backward:
  case OpKind::embedding_bag_sparse_backward:
  case OpKind::embedding_bag_update:
  case OpKind::embedding_bag_tables_update:
    break; // built above
  }
  func::ReturnOp::create(b, loc);
  return module;
}

auto ::emb::jit::addPackedEntryPoint(ModuleOp module, const KernelSpec &spec)
    -> LogicalResult {
  // void _emb_packed_<symbol>(void **args) {
  //   _mlir_ciface_<symbol>(args[0], ..., args[n - 1]);
  // }
  std::string cifaceName = "_mlir_ciface_" + spec.symbolName();
  auto ciface = module.lookupSymbol<LLVM::LLVMFuncOp>(cifaceName);
  size_t numArgs = KernelABI(spec).args().size();
  if (!ciface)
    return module.emitError("no ") << cifaceName << " to wrap";
  MLIRContext *ctx = module.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  LLVM::LLVMFunctionType cifaceType = ciface.getFunctionType();
  if (cifaceType.getNumParams() != numArgs ||
      !llvm::all_of(cifaceType.getParams(), [&](Type t) { return t == ptr; }))
    return ciface.emitError("expected ")
           << numArgs << " descriptor pointers (the kernel's KernelABI)";
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  Location loc = ciface.getLoc();
  auto fn = LLVM::LLVMFuncOp::create(
      b, loc, KernelABI::packedEntryName(spec),
      LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptr}));
  Block *entry = fn.addEntryBlock(b);
  b.setInsertionPointToStart(entry);
  SmallVector<Value> descriptors;
  for (size_t i = 0; i < numArgs; ++i) {
    Value slot =
        LLVM::GEPOp::create(b, loc, ptr, ptr, entry->getArgument(0),
                            ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)});
    descriptors.push_back(LLVM::LoadOp::create(b, loc, ptr, slot));
  }
  LLVM::CallOp::create(b, loc, ciface, descriptors);
  LLVM::ReturnOp::create(b, loc, ValueRange());
  return success();
}
