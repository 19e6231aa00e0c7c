//===- OnBuffersOp.cpp - emb.on_buffers: verifier and bufferisation -------===//
//
// emb.on_buffers is the GPU lowering's form of an op (EmbOps.td): a body
// that writes the buffers of the op's inits. It is a destination-style op
// to upstream bufferisation, which decides those buffers (in place, a
// copy, or the buffer a result is materialised in, after
// eliminate-empty-tensors); bufferising it inlines the body on them.
//
//===----------------------------------------------------------------------===//

#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::emb;
using namespace mlir::bufferization;

/// The buffer the body sees for a tensor of `type`: its shape, row-major.
static MemRefType bodyBufferType(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return MemRefType::get(tensor.getShape(), tensor.getElementType());
}

void OnBuffersOp::build(OpBuilder &builder, OperationState &state,
                        ValueRange inits, bool updates) {
  state.addOperands(inits);
  llvm::copy(
      ArrayRef<int32_t>({0, static_cast<int32_t>(inits.size())}),
      state.getOrAddProperties<Properties>().operandSegmentSizes.begin());
  state.addTypes(inits.getTypes());
  if (updates)
    state.addAttribute(getUpdatesAttrName(state.name), builder.getUnitAttr());
  Region *body = state.addRegion();
  Block *block = new Block();
  body->push_back(block);
  for (Value init : inits)
    block->addArgument(bodyBufferType(init.getType()), init.getLoc());
}

LogicalResult OnBuffersOp::verify() {
  if (getInits().empty())
    return emitOpError() << "must have at least one init";
  Block &body = getBody().front();
  if (body.getNumArguments() != getInits().size())
    return emitOpError() << "the body must take one buffer per init, got "
                         << body.getNumArguments() << " for "
                         << getInits().size();
  for (auto [i, init, arg] : llvm::enumerate(getInits(), body.getArguments()))
    if (arg.getType() != bodyBufferType(init.getType()))
      return emitOpError() << "the body's argument #" << i << " must be "
                           << bodyBufferType(init.getType()) << ", got "
                           << arg.getType();
  return success();
}

// Inputs are read; inits are written, and read too when the body updates
// them. An init's buffer is its result's.
bool OnBuffersOp::bufferizesToMemoryRead(OpOperand &operand,
                                         const AnalysisState &) {
  return !isDpsInit(&operand) || getUpdates();
}

bool OnBuffersOp::bufferizesToMemoryWrite(OpOperand &operand,
                                          const AnalysisState &) {
  return isDpsInit(&operand);
}

AliasingValueList OnBuffersOp::getAliasingValues(OpOperand &operand,
                                                 const AnalysisState &) {
  if (!isDpsInit(&operand))
    return {};
  return {{getTiedOpResult(&operand), BufferRelation::Equivalent}};
}

LogicalResult OnBuffersOp::bufferize(RewriterBase &rewriter,
                                     const BufferizationOptions &options,
                                     BufferizationState &state) {
  Location loc = getLoc();
  Block &body = getBody().front();
  SmallVector<Value> buffers, bodyBuffers;
  // Buffers of another layout (a strided view) and their row-major copies.
  SmallVector<std::pair<Value, Value>> copiedBack;
  rewriter.setInsertionPoint(*this);
  for (auto [init, arg] : llvm::zip(getInitsMutable(), body.getArguments())) {
    FailureOr<Value> buffer = getBuffer(rewriter, init.get(), options, state);
    if (failed(buffer))
      return failure();
    buffers.push_back(*buffer);
    if (buffer->getType() == arg.getType()) {
      bodyBuffers.push_back(*buffer);
      continue;
    }
    // The kernels address rows of a row-major buffer (aligned row starts,
    // [N..., D] collapsed to rows), so a strided view (or a buffer in
    // another memory space) is copied into one.
    auto type = cast<MemRefType>(arg.getType());
    SmallVector<Value> sizes;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (type.isDynamicDim(d))
        sizes.push_back(memref::DimOp::create(rewriter, loc, *buffer, d));
    FailureOr<Value> copy = options.createAlloc(rewriter, loc, type, sizes);
    if (failed(copy))
      return failure();
    if (getUpdates() &&
        failed(options.createMemCpy(rewriter, loc, *buffer, *copy)))
      return failure();
    bodyBuffers.push_back(*copy);
    copiedBack.push_back({*copy, *buffer});
  }
  rewriter.inlineBlockBefore(&body, *this, bodyBuffers);
  for (auto [copy, buffer] : copiedBack)
    if (failed(options.createMemCpy(rewriter, loc, copy, buffer)))
      return failure();
  replaceOpWithBufferizedValues(rewriter, *this, buffers);
  return success();
}
