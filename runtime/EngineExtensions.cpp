//===- EngineExtensions.cpp - the entry points beyond PyTorch -------------===//
//
// The Engine's plans of docs/semantics.md §6: bags of row-wise quantised
// tables (§6.2), many tables in one call (§6.3) and their gradient fused
// with an optimizer step (§6.4). The forward ops and the
// executor are in Engine.cpp; the same Planner builds these.
//
//===----------------------------------------------------------------------===//

#include "EngineInternal.h"
#include "Validation.h"

#include "emb/Runtime/Numeric.h"

namespace emb {

using namespace validation;

llvm::Expected<Plan> Planner::embeddingBagQuantized(
    const Tensor &indices, const Tensor &table, Quantization quant,
    const Tensor *offsets, const Tensor &out,
    const EmbeddingBagOptions &options, const Tensor *psw) {
  if (quant == Quantization::none)
    return fail("a quantised bag needs int8 or int4 rows");
  if (auto err = begin(nullptr, nullptr, indices))
    return std::move(err);
  if (auto err = checkQuantizedTable(table, quant, out, options))
    return std::move(err);
  int64_t numEmbeddings = table.shape[0], dim = out.shape[1];
  auto checkedBags =
      bags(indices, offsets, options, psw, out, "out", dim, out.dtype);
  if (!checkedBags)
    return checkedBags.takeError();
  int64_t numBags = *checkedBags;
  auto pad = padAndIndices(options.paddingIdx, indices, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (numBags == 0 || dim == 0)
    return Plan::nothing();
  // The table's rows are D + 8 or ceil(D / 2) + 4 bytes: the GPU kernels
  // load them at the alignment the row layout gives from a 16-byte aligned
  // start, and store output chunks that divide D.
  if (engine.target != Target::host)
    for (const Tensor *t : {&table, &out})
      if (reinterpret_cast<uintptr_t>(t->data) % 16 != 0)
        return fail("GPU kernels of quantised tables need the table and the "
                    "output to start at a multiple of 16 bytes");
  Plan plan;
  plan.spec = bagSpec(OpKind::embedding_bag, out.dtype, indices, offsets, dim,
                      options, psw);
  plan.spec.quant = quant;
  plan.spec.paddingIdx = *pad;
  int64_t rowBytes = quantizedRowBytes(quant, dim);
  int64_t n = indices.numel();
  plan.count = numBags;
  plan.grain = grainFor((n / numBags + 1) * rowBytes);
  plan.split = true;
  bool includeLast = plan.spec.includeLastOffset;
  plan.fill = [&table, &indices, &out, offsets, psw, numBags, dim, rowBytes,
               includeLast](KernelArgs &args, int64_t b, int64_t e) {
    args.set(ArgSlot::weight, table.data, table.shape[0], rowBytes);
    fillBags(args, indices, offsets, ArgSlot::perSampleWeights, psw, b, e,
             numBags, includeLast);
    args.set(ArgSlot::out, advance(out.data, b * dim, out.dtype), e - b, dim);
  };
  return plan;
}

/// The length L of every bag of sequence table `t` (mode none): `given`, or
/// its first bag's; a bag of another length is an error.
static llvm::Expected<int64_t> sequenceLength(const Tensor &offsets, size_t t,
                                              int64_t numBags,
                                              std::optional<int64_t> given) {
  std::string table = "table " + std::to_string(t);
  if (given && *given < 0)
    return fail(table + ": negative sequence length " +
                std::to_string(*given));
  int64_t first = static_cast<int64_t>(t) * numBags;
  auto lengthOf = [&](int64_t b) {
    return loadInt(offsets.data, offsets.dtype, first + b + 1) -
           loadInt(offsets.data, offsets.dtype, first + b);
  };
  int64_t length = given ? *given : (numBags > 0 ? lengthOf(0) : 0);
  for (int64_t b = 0; b < numBags; ++b)
    if (int64_t n = lengthOf(b); n != length)
      return fail(table + " is 'none' (a sequence table, bags of length " +
                  std::to_string(length) + "): bag " + std::to_string(b) +
                  " has " + std::to_string(n) + " entries");
  return length;
}

llvm::Expected<Planner::CheckedTables>
Planner::tablesInputs(const Tensor &indices, const Tensor &weights,
                      llvm::ArrayRef<TableOptions> tables,
                      const Tensor &offsets, const Tensor *psw) {
  if (auto err = begin(nullptr, nullptr, indices))
    return std::move(err);
  int64_t numTables = static_cast<int64_t>(tables.size());
  if (numTables == 0)
    return fail("a many-table bag needs at least one table");
  if (auto err = checkView(weights, "weights"))
    return std::move(err);
  if (weights.rank() != 1 || !isFloat(weights.dtype))
    return fail("'weights' must be a 1-D tensor of f32, f64, f16 or bf16 "
                "(every table, flat), got " +
                    describe(weights),
                isFloat(weights.dtype) ? ErrorKind::invalid_argument
                                       : ErrorKind::wrong_dtype);
  DType dtype = weights.dtype;
  std::vector<TableSpec> specs;
  std::vector<int64_t> rows;
  int64_t elements = 0, totalDim = 0;
  const TableOptions *maxTable = nullptr;
  for (size_t t = 0; t < tables.size(); ++t) {
    const TableOptions &table = tables[t];
    if (table.mode > BagMode::none)
      return fail("table " + std::to_string(t) + ": invalid bag mode " +
                  std::to_string(static_cast<int>(table.mode)));
    if (table.numEmbeddings < 0 || table.embeddingDim < 0)
      return fail("table " + std::to_string(t) + ": negative size [" +
                  std::to_string(table.numEmbeddings) + ", " +
                  std::to_string(table.embeddingDim) + "]");
    auto pad = normalizePadding(table.paddingIdx, table.numEmbeddings);
    if (!pad)
      return fail("table " + std::to_string(t) + ": " +
                  llvm::toString(pad.takeError()));
    int64_t size;
    if (__builtin_mul_overflow(table.numEmbeddings, table.embeddingDim,
                               &size) ||
        __builtin_add_overflow(elements, size, &elements))
      return fail("the tables are too large");
    if (table.sequenceLength && table.mode != BagMode::none)
      return fail("table " + std::to_string(t) + ": a sequence length is "
                  "only for mode 'none', the table is '" +
                  bagModeName(table.mode) + "'");
    if (table.mode != BagMode::none &&
        __builtin_add_overflow(totalDim, table.embeddingDim, &totalDim))
      return fail("the tables' embedding dimensions are too large");
    if (table.mode == BagMode::max && !maxTable)
      maxTable = &table;
    specs.push_back(
        {table.numEmbeddings, table.embeddingDim, table.mode, *pad});
    rows.push_back(table.numEmbeddings);
  }
  if (weights.shape[0] != elements)
    return fail("'weights' has " + std::to_string(weights.shape[0]) +
                " elements, the tables need " + std::to_string(elements) +
                " (the sum of V_t * D_t)");
  if (indices.rank() != 1)
    return fail("'indices' of a many-table bag must be 1-D, got " +
                describe(indices));
  if (psw && maxTable)
    return fail("'per_sample_weights' are not allowed with mode 'max' (table " +
                std::to_string(maxTable - tables.data()) + ")");
  if (auto err = checkIndexTensor(offsets, "offsets"))
    return std::move(err);
  int64_t numOffsets = offsets.numel();
  if (offsets.rank() != 1 || numOffsets < 1 ||
      (numOffsets - 1) % numTables != 0)
    return fail("'offsets' must be 1-D with T * B + 1 entries for T = " +
                std::to_string(numTables) + " tables, got " +
                describe(offsets));
  int64_t numBags = (numOffsets - 1) / numTables;
  // Every table's bags as one list of T * B bags closed by the last offset
  // (0 first, non-decreasing, the last len(indices)); per_sample_weights.
  // Shapes first: a bad call fails before any copy from a device.
  EmbeddingBagOptions asOneList;
  asOneList.includeLastOffset = true;
  if (auto shapes =
          checkBagInputs(indices, &offsets, asOneList, psw, dtype, nullptr);
      !shapes)
    return shapes.takeError();
  // The offsets' values, through a host copy on a device (null: trusted
  // device offsets, not read).
  Tensor offsetCopy;
  std::vector<char> offsetStorage;
  auto readOffsets = engine.readable(&offsets, offsetCopy, offsetStorage);
  if (!readOffsets)
    return readOffsets.takeError();
  const Tensor *values = *readOffsets;
  if (values && values->data &&
      loadInt(values->data, values->dtype, numOffsets - 1) != indices.numel())
    return fail(
        "the last offset (offsets[T * B] = " +
        std::to_string(loadInt(values->data, values->dtype, numOffsets - 1)) +
        ") must equal the number of indices " +
        std::to_string(indices.numel()));
  if (values)
    if (auto checked =
            checkBagInputs(indices, &offsets, asOneList, psw, dtype, values);
        !checked)
      return checked.takeError();
  // Sequence tables: every bag has the table's length L_t, and L_t * D_t
  // columns. Trusted device offsets are not read: the length must be given.
  for (size_t t = 0; t < tables.size(); ++t) {
    if (tables[t].mode != BagMode::none)
      continue;
    if (!values && !tables[t].sequenceLength)
      return fail("table " + std::to_string(t) +
                  " is 'none' (a sequence table): without index validation "
                  "its offsets are not read, so its sequence length must be "
                  "given");
    auto length =
        values ? sequenceLength(*values, t, numBags, tables[t].sequenceLength)
        : *tables[t].sequenceLength < 0
            ? llvm::Expected<int64_t>(fail(
                  "table " + std::to_string(t) + ": negative sequence length " +
                  std::to_string(*tables[t].sequenceLength)))
            : llvm::Expected<int64_t>(*tables[t].sequenceLength);
    if (!length)
      return length.takeError();
    int64_t columns;
    if (__builtin_mul_overflow(*length, tables[t].embeddingDim, &columns) ||
        __builtin_add_overflow(totalDim, columns, &totalDim))
      return fail("the tables' output columns are too many");
    specs[t].sequenceLength = *length;
  }
  CheckedTables checked;
  checked.specs = std::move(specs);
  checked.rows = std::move(rows);
  checked.totalDim = totalDim;
  checked.numBags = numBags;
  checked.dtype = dtype;
  checked.maxTable =
      maxTable ? static_cast<int64_t>(maxTable - tables.data()) : -1;
  if (values && values != &offsets)
    checked.offsetCopy = std::move(offsetStorage);
  return checked;
}

llvm::Error Planner::tablesIndices(const CheckedTables &checked,
                                   const Tensor &indices,
                                   const Tensor &offsets,
                                   const Tensor &weights) {
  Tensor offsetCopy = offsets;
  offsetCopy.data = const_cast<char *>(checked.offsetCopy.data());
  if (auto err = engine.checkTableIndices(
          indices, offsets, checked.rows, checked.numBags,
          checked.offsetCopy.empty() ? nullptr : &offsetCopy))
    return err;
  // On a GPU each table's rows move as the vectors its D allows: its start
  // in `weights` must be aligned for them.
  int64_t at = 0;
  for (size_t t = 0; t < checked.specs.size(); ++t) {
    const TableSpec &table = checked.specs[t];
    Tensor part = weights;
    part.data = advance(weights.data, at, checked.dtype);
    if (table.rows * table.dim > 0)
      if (auto err = checkGPUAlignment(engine.target, table.dim, checked.dtype,
                                       {&part}))
        return fail("table " + std::to_string(t) + " (its first element in "
                    "'weights'): " + llvm::toString(std::move(err)));
    at += table.rows * table.dim;
  }
  return llvm::Error::success();
}

llvm::Expected<Plan>
Planner::embeddingBagTables(const Tensor &indices, const Tensor &weights,
                            llvm::ArrayRef<TableOptions> tables,
                            const Tensor &offsets, const Tensor &out,
                            const Tensor *psw) {
  auto checked = tablesInputs(indices, weights, tables, offsets, psw);
  if (!checked)
    return checked.takeError();
  int64_t numBags = checked->numBags, totalDim = checked->totalDim;
  DType dtype = checked->dtype;
  if (auto err = checkOutput(out, "out", {numBags, totalDim}, dtype))
    return std::move(err);
  if (auto err = tablesIndices(*checked, indices, offsets, weights))
    return std::move(err);
  // On a GPU each table stores vectors that divide the output's row (and
  // its columns' start): the output must be aligned for the row's.
  if (auto err = checkGPUAlignment(engine.target, totalDim, dtype, {&out}))
    return std::move(err);
  if (numBags == 0 || totalDim == 0)
    return Plan::nothing();
  Plan plan;
  plan.spec = spec(OpKind::embedding_bag_tables, dtype, indices, totalDim);
  plan.spec.offsets = offsets.dtype;
  plan.spec.perSampleWeights = psw != nullptr;
  plan.spec.tables = std::move(checked->specs);
  // Threads own ranges of bags, of every table (the kernel's window).
  int64_t n = indices.numel();
  plan.count = numBags;
  plan.grain = grainFor((n / numBags + 1) * totalDim *
                        static_cast<int64_t>(dtypeSize(dtype)));
  plan.split = true;
  plan.fill = [&weights, &indices, &offsets, &out, psw,
               totalDim](KernelArgs &args, int64_t b, int64_t e) {
    args.set(ArgSlot::weight, weights.data, weights.shape[0]);
    args.set(ArgSlot::indices, indices.data, indices.numel());
    args.set(ArgSlot::offsets, offsets.data, offsets.numel());
    if (psw)
      args.set(ArgSlot::perSampleWeights, psw->data, psw->numel());
    args.set(ArgSlot::out, advance(out.data, b * totalDim, out.dtype), e - b,
             totalDim);
  };
  return plan;
}

llvm::Expected<Plan> Planner::embeddingBagTablesUpdate(
    const Tensor &grad, const Tensor &indices, const Tensor &weights,
    llvm::ArrayRef<TableOptions> tables, const Tensor &offsets,
    llvm::ArrayRef<Tensor> states, const OptimizerOptions &optimizer,
    const Tensor *psw) {
  // The GPU lowering of the tables' views into the flat buffers does not
  // compile yet (a strided view reaches the LLVM translation).
  if (engine.target != Target::host)
    return fail("the many-table fused step runs on the host only for now: "
                "on a GPU target call embeddingBagUpdate once per table");
  auto checked = tablesInputs(indices, weights, tables, offsets, psw);
  if (!checked)
    return checked.takeError();
  if (checked->maxTable >= 0)
    return fail("table " + std::to_string(checked->maxTable) +
                " is 'max', which has no many-table fused step (it needs "
                "the forward's max_indices): call embeddingBagUpdate for it");
  int64_t numBags = checked->numBags, totalDim = checked->totalDim;
  DType dtype = checked->dtype;
  if (auto err = checkOutput(grad, "grad", {numBags, totalDim}, dtype))
    return std::move(err);
  if (auto err = checkOptimizerOptions(optimizer))
    return std::move(err);
  // The states are flat like the weights: sum V_t * D_t elements, or sum
  // V_t for row-wise Adagrad.
  int64_t rows = 0;
  for (const TableSpec &t : checked->specs)
    rows += t.rows;
  int64_t perRow = optimizer.optimizer == Optimizer::rowwise_adagrad;
  if (auto err = checkOptimizerStates(
          optimizer.optimizer, states,
          {perRow ? rows : weights.shape[0]},
          dtype == DType::f64 ? DType::f64 : DType::f32))
    return std::move(err);
  if (auto err = tablesIndices(*checked, indices, offsets, weights))
    return std::move(err);
  if (numBags == 0 || totalDim == 0)
    return Plan::nothing();
  Plan plan;
  plan.spec = spec(OpKind::embedding_bag_tables_update, dtype, indices,
                   totalDim);
  plan.spec.offsets = offsets.dtype;
  plan.spec.perSampleWeights = psw != nullptr;
  plan.spec.tables = std::move(checked->specs);
  plan.spec.optimizer = optimizer.optimizer;
  plan.spec.weightDecay = optimizer.weightDecay;
  if (optimizer.optimizer != Optimizer::sgd)
    plan.spec.eps = optimizer.eps;
  if (optimizer.optimizer == Optimizer::adam) {
    plan.spec.beta1 = optimizer.beta1;
    plan.spec.beta2 = optimizer.beta2;
  }
  // Threads own ranges of kTableRowParts parts of every table (the
  // kernel's window), as the single-table step splits its rows: each row
  // is updated by one thread, in one order, whatever the thread count. A
  // part of every table, not a range of the tables' concatenated rows:
  // the entries follow the rows of each table, and a split of the
  // concatenated rows left one thread the tables with most entries
  // (docs/performance.md, issue 18). At least kMinGradRowsPerChunk rows a
  // thread, as the single-table step.
  plan.count = kTableRowParts;
  plan.grain = std::max<int64_t>(1, kTableRowParts * kMinGradRowsPerChunk /
                                        std::max<int64_t>(rows, 1));
  plan.split = true;
  auto hyper = std::make_shared<std::array<double, 2>>(std::array<double, 2>{
      optimizer.lr, static_cast<double>(optimizer.step)});
  std::array<Tensor, 2> stateViews;
  std::copy(states.begin(), states.end(), stateViews.begin());
  size_t numStates = states.size();
  plan.fill = [&grad, &weights, &indices, &offsets, psw, numBags, totalDim,
               hyper, stateViews, numStates](KernelArgs &args, int64_t,
                                             int64_t) {
    args.set(ArgSlot::grad, grad.data, numBags, totalDim);
    args.set(ArgSlot::indices, indices.data, indices.numel());
    args.set(ArgSlot::offsets, offsets.data, offsets.numel());
    if (psw)
      args.set(ArgSlot::perSampleWeights, psw->data, psw->numel());
    args.set(ArgSlot::weight, weights.data, weights.shape[0]);
    ArgSlot slots[2] = {ArgSlot::optimizerState, ArgSlot::optimizerState2};
    for (size_t k = 0; k < numStates; ++k)
      args.set(slots[k], stateViews[k].data, stateViews[k].numel());
    args.set(ArgSlot::hyper, hyper->data(), 2);
  };
  return plan;
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

llvm::Error Engine::embeddingBagQuantized(const Tensor &indices,
                                          const Tensor &table,
                                          Quantization quant,
                                          const Tensor *offsets,
                                          const Tensor &out,
                                          const EmbeddingBagOptions &options,
                                          const Tensor *psw) {
  return run(Planner{*this}.embeddingBagQuantized(indices, table, quant,
                                                  offsets, out, options, psw))
      .takeError();
}

llvm::Error Engine::embeddingBagTables(const Tensor &indices,
                                       const Tensor &weights,
                                       llvm::ArrayRef<TableOptions> tables,
                                       const Tensor &offsets,
                                       const Tensor &out, const Tensor *psw) {
  return run(Planner{*this}.embeddingBagTables(indices, weights, tables,
                                               offsets, out, psw))
      .takeError();
}

llvm::Error Engine::embeddingBagTablesUpdate(
    const Tensor &grad, const Tensor &indices, const Tensor &weights,
    llvm::ArrayRef<TableOptions> tables, const Tensor &offsets,
    llvm::ArrayRef<Tensor> states, const OptimizerOptions &optimizer,
    const Tensor *psw) {
  return run(Planner{*this}.embeddingBagTablesUpdate(
                 grad, indices, weights, tables, offsets, states, optimizer,
                 psw))
      .takeError();
}

} // namespace emb
