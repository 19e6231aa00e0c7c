//===- EngineExtensions.cpp - the entry points beyond PyTorch -------------===//
//
// The Engine's plans of docs/semantics.md §6: bags of row-wise quantised
// tables (§6.2) and many tables in one call (§6.3). The forward ops and the
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

llvm::Expected<Plan> Planner::embeddingBagTables(
    const Tensor &indices, const Tensor &weights,
    llvm::ArrayRef<TableOptions> tables, const Tensor &offsets,
    const Tensor &out, const Tensor *psw) {
  // On a device each table's bag writes into its columns of `out` through
  // a host buffer and a strided copy, which the CUDA runtime lowering
  // rejects; the emulated GPU kernels are the same and run.
  if (engine.target == Target::nvptx)
    return fail("many tables in one call do not run on a GPU device yet (the "
                "host and gpu_emulated targets run them): call "
                "embeddingBag once per table");
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
    if (__builtin_add_overflow(totalDim, table.embeddingDim, &totalDim))
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
  if (offsets.data && indices.numel() >= 0 &&
      loadInt(offsets.data, offsets.dtype, numOffsets - 1) != indices.numel())
    return fail("the last offset (offsets[T * B] = " +
                std::to_string(
                    loadInt(offsets.data, offsets.dtype, numOffsets - 1)) +
                ") must equal the number of indices " +
                std::to_string(indices.numel()));
  // Every table's bags as one list of T * B bags closed by the last offset
  // (0 first, non-decreasing, the last len(indices)); per_sample_weights.
  EmbeddingBagOptions asOneList;
  asOneList.includeLastOffset = true;
  auto bags = engine.bagInputs(indices, &offsets, asOneList, psw, dtype);
  if (!bags)
    return bags.takeError();
  if (auto err = checkOutput(out, "out", {numBags, totalDim}, dtype))
    return std::move(err);
  if (auto err = engine.checkTableIndices(indices, offsets, rows, numBags))
    return std::move(err);
  if (numBags == 0 || totalDim == 0)
    return Plan::nothing();
  // On a GPU each table's rows move as the vectors its D allows: its start
  // in `weights` must be aligned for them.
  int64_t at = 0;
  for (size_t t = 0; t < specs.size(); ++t) {
    Tensor part = weights;
    part.data = advance(weights.data, at, dtype);
    if (specs[t].rows * specs[t].dim > 0)
      if (auto err =
              checkGPUAlignment(engine.target, specs[t].dim, dtype, {&part}))
        return fail("table " + std::to_string(t) + " (its first element in "
                    "'weights'): " + llvm::toString(std::move(err)));
    at += specs[t].rows * specs[t].dim;
  }
  Plan plan;
  plan.spec = spec(OpKind::embedding_bag_tables, dtype, indices, totalDim);
  plan.spec.offsets = offsets.dtype;
  plan.spec.perSampleWeights = psw != nullptr;
  plan.spec.tables = std::move(specs);
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

} // namespace emb
