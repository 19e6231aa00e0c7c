//===- EngineGradients.cpp - plans of the gradients -----------------------===//
//
// The dense weight gradients split rows of gW over threads: each call scans
// every index but keeps, sorts and writes only the rows of its window, so
// the result does not depend on the thread count. The per_sample_weights
// gradient splits bags; the sparse gradients are one call each.
//
//===----------------------------------------------------------------------===//

#include "EngineInternal.h"
#include "Validation.h"

#include <cmath>

namespace emb {

using namespace validation;

namespace {

/// The whole-gradient multiplier of a profile (unit-scaling: sqrt(V / n)).
double profileGradScale(Profile profile, int64_t numEmbeddings, int64_t n) {
  if (profile != Profile::unit_scaling || n == 0)
    return 1.0;
  return std::sqrt(static_cast<double>(numEmbeddings) / static_cast<double>(n));
}

/// The V a windowed gradient kernel (or a sparse gradient's) is made for.
/// Its code depends on V only through the number of 8-bit digits of a row
/// (the passes of its radix sort, whose dead key V' >= V sorts after every
/// row; every size it writes is the window's or the caller's): every V with
/// as many digits shares one kernel, made for the largest of them. A table
/// of a new size then costs no compile (issue 16: each distinct V was one).
int64_t radixBound(int64_t numEmbeddings) {
  if (numEmbeddings <= 0)
    return 0;
  for (int shift = 8; shift < 63; shift += 8)
    if ((numEmbeddings >> shift) == 0)
      return (int64_t(1) << shift) - 1;
  return INT64_MAX;
}

/// The gradient options of a dense gradient's (or the fused step's) spec,
/// whose numEmbeddings is the table's V on entry and its radixBound after.
void setDenseGradOptions(KernelSpec &spec, Target target, int64_t n,
                         Profile profile, bool scaleGradByFreq,
                         bool deterministic) {
  spec.scaleGradByFreq = scaleGradByFreq;
  spec.gradScale = profileGradScale(profile, spec.numEmbeddings, n);
  spec.deterministic = deterministic && target != Target::host;
  spec.numEmbeddings = radixBound(spec.numEmbeddings);
}

/// A dense gradient's plan (nothing for an empty gW): rows of gW split over
/// threads; the executor sets each call's window, `fillInputs` the rest
/// but gW.
llvm::Expected<Plan>
denseGradPlan(KernelSpec spec, const Tensor &grad, const Tensor &gradWeight,
              std::function<void(KernelArgs &)> fillInputs) {
  if (gradWeight.numel() == 0)
    return Plan::nothing();
  if (auto err = checkGPUAlignment(spec.target, spec.dim, grad.dtype,
                                   {&grad, &gradWeight}))
    return std::move(err);
  Plan plan;
  plan.spec = std::move(spec);
  plan.count = gradWeight.shape[0];
  plan.grain = kMinGradRowsPerChunk;
  plan.split = true;
  int64_t dim = gradWeight.shape[1];
  plan.fill = [&gradWeight, dim, fillInputs](KernelArgs &args, int64_t r0,
                                             int64_t r1) {
    fillInputs(args);
    args.set(ArgSlot::gradWeight,
             advance(gradWeight.data, r0 * dim, gradWeight.dtype), r1 - r0,
             dim);
  };
  return plan;
}

/// A sparse gradient's plan: one call; its COO outputs are the caller's
/// `rows` / `values`: on the host uncoalesced, exactly `needed` rows,
/// written in place; coalesced and GPU kernels: the capacity, the result at
/// its front. The executor sets the count.
Plan sparseGradPlan(KernelSpec spec, const Tensor &rows, const Tensor &values,
                    int64_t needed,
                    std::function<void(KernelArgs &)> fillInputs) {
  Plan plan;
  int64_t capacity =
      spec.coalesced || spec.target != Target::host ? rows.shape[0] : needed;
  int64_t dim = spec.dim;
  plan.spec = std::move(spec);
  plan.fill = [&rows, &values, capacity, dim, fillInputs](KernelArgs &args,
                                                          int64_t, int64_t) {
    fillInputs(args);
    args.set(ArgSlot::sparseRows, rows.data, capacity);
    args.set(ArgSlot::sparseValues, values.data, capacity, dim);
  };
  return plan;
}

} // namespace

//===----------------------------------------------------------------------===//
// Dense gradients
//===----------------------------------------------------------------------===//

llvm::Expected<int64_t> Planner::densePadding(bool sparse,
                                              const char *sparseEntry,
                                              std::optional<int64_t> paddingIdx,
                                              const Tensor &indices,
                                              int64_t numEmbeddings) {
  if (sparse)
    return fail(std::string("'sparse' is set: the sparse gradient is computed "
                            "by ") +
                sparseEntry);
  return padAndIndices(paddingIdx, indices, numEmbeddings);
}

llvm::Expected<Plan>
Planner::embeddingBackward(const Tensor &grad, const Tensor &indices,
                           const Tensor &gradWeight,
                           const EmbeddingOptions &options) {
  if (auto err = lookupInputs(gradWeight, "grad_weight", indices, grad, "grad",
                              options))
    return std::move(err);
  int64_t numEmbeddings = gradWeight.shape[0], dim = gradWeight.shape[1];
  auto pad = densePadding(options.sparse, "embeddingSparseBackward",
                          options.paddingIdx, indices, numEmbeddings);
  if (!pad)
    return pad.takeError();
  int64_t n = indices.numel();
  KernelSpec s =
      spec(OpKind::embedding_backward, gradWeight.dtype, indices, dim);
  s.numEmbeddings = numEmbeddings;
  s.paddingIdx = *pad;
  setDenseGradOptions(s, engine.target, n, options.profile,
                      options.scaleGradByFreq, options.deterministic);
  return denseGradPlan(s, grad, gradWeight,
                       [&grad, &indices, n, dim](KernelArgs &args) {
                         args.set(ArgSlot::grad, grad.data, n, dim);
                         args.set(ArgSlot::indices, indices.data, n);
                       });
}

llvm::Expected<Plan>
Planner::embeddingBagBackward(const Tensor &grad, const Tensor &indices,
                              const Tensor *offsets, const Tensor &gradWeight,
                              const EmbeddingBagOptions &options,
                              const Tensor *psw, const Tensor *maxIndices) {
  auto checkedBags = bagInputs(gradWeight, "grad_weight", indices, offsets,
                               options, psw, grad, "grad");
  if (!checkedBags)
    return checkedBags.takeError();
  int64_t numBags = *checkedBags;
  int64_t numEmbeddings = gradWeight.shape[0], dim = gradWeight.shape[1];
  bool max = options.mode == BagMode::max;
  if (max && !maxIndices)
    return fail("the gradient of mode 'max' needs 'max_indices'");
  if (!max && maxIndices)
    return fail(std::string("'max_indices' is only used with mode 'max', "
                            "got '") +
                bagModeName(options.mode) + "'");
  if (max) {
    if (auto err =
            checkOutput(*maxIndices, "max_indices", {numBags, dim}, DType::i64))
      return std::move(err);
    if (auto err = engine.checkMaxIndices(*maxIndices, numEmbeddings))
      return std::move(err);
  }
  auto pad = densePadding(options.sparse, "embeddingBagSparseBackward",
                          options.paddingIdx, indices, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (numBags == 0) // no bag, no contribution (e.g. empty offsets); an
    return Plan::zero(gradWeight); // empty gW is left as it is
  int64_t n = indices.numel();
  KernelSpec s = bagSpec(OpKind::embedding_bag_backward, gradWeight.dtype,
                         indices, offsets, dim, options, psw);
  s.maxIndices = max;
  s.numEmbeddings = numEmbeddings;
  s.paddingIdx = max ? -1 : *pad; // max_indices never name padding
  setDenseGradOptions(s, engine.target, n, options.profile,
                      options.scaleGradByFreq, options.deterministic);
  bool includeLast = s.includeLastOffset;
  return denseGradPlan(
      s, grad, gradWeight,
      [&grad, &indices, offsets, psw, maxIndices, numBags, dim,
       includeLast](KernelArgs &args) {
        args.set(ArgSlot::grad, grad.data, numBags, dim);
        fillBags(args, indices, offsets, ArgSlot::perSampleWeights, psw, 0,
                 numBags, numBags, includeLast);
        if (maxIndices)
          args.set(ArgSlot::maxIndices, maxIndices->data, numBags, dim);
      });
}

llvm::Expected<Plan>
Planner::perSampleWeightsBackward(const Tensor &grad, const Tensor &weight,
                                  const Tensor &indices, const Tensor *offsets,
                                  const Tensor &gradPsw,
                                  const EmbeddingBagOptions &options) {
  if (auto err = begin(&weight, "weight", indices))
    return std::move(err);
  if (options.mode != BagMode::sum)
    return fail(std::string("the per_sample_weights gradient needs mode "
                            "'sum', got '") +
                bagModeName(options.mode) + "'");
  int64_t numEmbeddings = weight.shape[0], dim = weight.shape[1];
  auto checkedBags =
      bags(indices, offsets, options, nullptr, grad, "grad", dim, weight.dtype);
  if (!checkedBags)
    return checkedBags.takeError();
  int64_t numBags = *checkedBags;
  if (auto err = checkOutput(gradPsw, "grad_per_sample_weights", indices.shape,
                             weight.dtype))
    return std::move(err);
  auto pad = padAndIndices(options.paddingIdx, indices, numEmbeddings);
  if (!pad)
    return pad.takeError();
  int64_t n = indices.numel();
  if (n == 0)
    return Plan::nothing();
  if (dim == 0 || numBags == 0) // every entry's gradient is 0
    return Plan::zero(gradPsw);
  if (auto err =
          checkGPUAlignment(engine.target, dim, weight.dtype, {&weight, &grad}))
    return std::move(err);
  Plan plan;
  plan.spec = bagSpec(OpKind::embedding_bag_psw_backward, weight.dtype, indices,
                      offsets, dim, options, nullptr);
  plan.spec.paddingIdx = *pad;
  // 2-D: bags split over threads through exact views. 1-D: one call, since
  // a view of the offsets would leave the entries before its first bag
  // outside every bag of the kernel's (whole-tensor) result.
  int64_t bagBytes = (n / std::max<int64_t>(numBags, 1) + 1) * dim *
                     static_cast<int64_t>(dtypeSize(weight.dtype));
  plan.count = numBags;
  plan.grain = grainFor(bagBytes);
  plan.split = plan.spec.twoD;
  bool includeLast = plan.spec.includeLastOffset;
  plan.fill = [&grad, &weight, &indices, &gradPsw, offsets, numBags, dim,
               includeLast](KernelArgs &args, int64_t b, int64_t e) {
    args.set(ArgSlot::grad, advance(grad.data, b * dim, grad.dtype), e - b,
             dim);
    args.set(ArgSlot::weight, weight.data, weight.shape[0], dim);
    fillBags(args, indices, offsets, ArgSlot::gradPerSampleWeights, &gradPsw, b,
             e, numBags, includeLast);
  };
  return plan;
}

//===----------------------------------------------------------------------===//
// Sparse gradients
//===----------------------------------------------------------------------===//

llvm::Expected<Plan>
Planner::sparseBackward(const Tensor &grad, const Tensor &indices,
                        int64_t numEmbeddings, const Tensor &rows,
                        const Tensor &values, const EmbeddingOptions &options,
                        bool coalesced) {
  if (auto err = begin(nullptr, nullptr, indices))
    return std::move(err);
  if (auto err = checkGradTensor(grad, indices.rank() + 1,
                                 "have the shape of 'indices' followed by D "
                                 "and a float dtype"))
    return std::move(err);
  int64_t dim = grad.shape.back();
  if (auto err = checkRowsOf(grad, "grad", indices, dim, grad.dtype))
    return std::move(err);
  if (auto err = checkSparseOptions(options.profile, options.scaleGradByFreq))
    return std::move(err);
  auto sparse = sparseOutputs(indices, numEmbeddings, options.paddingIdx, grad,
                              rows, values);
  if (!sparse)
    return sparse.takeError();
  auto [pad, needed] = *sparse;
  if (needed == 0)
    return Plan::nothing();
  int64_t n = indices.numel();
  KernelSpec s =
      spec(OpKind::embedding_sparse_backward, grad.dtype, indices, dim);
  s.numEmbeddings = radixBound(numEmbeddings); // shared by nearby V
  s.paddingIdx = pad;
  s.coalesced = coalesced;
  return sparseGradPlan(s, rows, values, needed,
                        [&grad, &indices, n, dim](KernelArgs &args) {
                          args.set(ArgSlot::grad, grad.data, n, dim);
                          args.set(ArgSlot::indices, indices.data, n);
                        });
}

llvm::Expected<Plan> Planner::bagSparseBackward(
    const Tensor &grad, const Tensor &indices, const Tensor *offsets,
    int64_t numEmbeddings, const Tensor &rows, const Tensor &values,
    const EmbeddingBagOptions &options, const Tensor *psw, bool coalesced) {
  if (auto err = begin(nullptr, nullptr, indices))
    return std::move(err);
  if (auto err =
          checkGradTensor(grad, 2, "be a 2-D tensor of f32, f64, f16 or bf16"))
    return std::move(err);
  int64_t dim = grad.shape[1];
  if (options.mode == BagMode::max)
    return fail("sparse gradients are not supported with mode 'max'");
  if (auto err = checkSparseOptions(options.profile, options.scaleGradByFreq))
    return std::move(err);
  EmbeddingBagOptions checked = options;
  checked.sparse = false; // checked here, not as a forward option
  auto checkedBags =
      bags(indices, offsets, checked, psw, grad, "grad", dim, grad.dtype);
  if (!checkedBags)
    return checkedBags.takeError();
  int64_t numBags = *checkedBags;
  auto sparse = sparseOutputs(indices, numEmbeddings, options.paddingIdx, grad,
                              rows, values);
  if (!sparse)
    return sparse.takeError();
  auto [pad, needed] = *sparse;
  if (needed == 0 || numBags == 0)
    return Plan::nothing();
  KernelSpec s = bagSpec(OpKind::embedding_bag_sparse_backward, grad.dtype,
                         indices, offsets, dim, options, psw);
  s.numEmbeddings = radixBound(numEmbeddings); // shared by nearby V
  s.paddingIdx = pad;
  s.coalesced = coalesced;
  bool includeLast = s.includeLastOffset;
  return sparseGradPlan(s, rows, values, needed,
                        [&grad, &indices, offsets, psw, numBags, dim,
                         includeLast](KernelArgs &args) {
                          args.set(ArgSlot::grad, grad.data, numBags, dim);
                          fillBags(args, indices, offsets,
                                   ArgSlot::perSampleWeights, psw, 0, numBags,
                                   numBags, includeLast);
                        });
}

llvm::Expected<Planner::SparseRows>
Planner::sparseOutputs(const Tensor &indices, int64_t numEmbeddings,
                       std::optional<int64_t> paddingIdx, const Tensor &grad,
                       const Tensor &rows, const Tensor &values) {
  if (auto err = checkNumEmbeddings(numEmbeddings))
    return std::move(err);
  auto pad = normalizePadding(paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  auto needed = engine.sparseRowsNeeded(indices, numEmbeddings, *pad);
  if (!needed)
    return needed.takeError();
  int64_t dim = grad.shape.back();
  if (dim == 0)
    return fail("sparse gradients need D > 0");
  if (auto err = checkGPUAlignment(engine.target, dim, grad.dtype, {&grad}))
    return std::move(err);
  if (auto err = checkSparseOutputs(rows, values, dim, grad.dtype, *needed))
    return std::move(err);
  return SparseRows{*pad, *needed};
}

} // namespace emb

//===----------------------------------------------------------------------===//
// The backward fused with an optimizer (docs/semantics.md §6.4)
//===----------------------------------------------------------------------===//

namespace emb {

using namespace validation;

namespace {

/// The optimizer's hyper-parameters, then its states: [V, D] (rowwise
/// adagrad: [V]) of f32 (f64 for an f64 table), named as torch names them.
llvm::Error checkOptimizer(const OptimizerOptions &o,
                           llvm::ArrayRef<Tensor> states, const Tensor &weight) {
  if (auto err = checkOptimizerOptions(o))
    return err;
  std::vector<int64_t> shape{weight.shape[0]};
  if (o.optimizer != Optimizer::rowwise_adagrad)
    shape.push_back(weight.shape[1]);
  return checkOptimizerStates(o.optimizer, states, shape,
                              weight.dtype == DType::f64 ? DType::f64
                                                         : DType::f32);
}

} // namespace

llvm::Expected<Plan> Planner::embeddingBagUpdate(
    const Tensor &grad, const Tensor &indices, const Tensor *offsets,
    const Tensor &weight, llvm::ArrayRef<Tensor> states,
    const OptimizerOptions &optimizer, const EmbeddingBagOptions &options,
    const Tensor *psw, const Tensor *maxIndices) {
  auto checkedBags = bagInputs(weight, "weight", indices, offsets, options, psw,
                               grad, "grad");
  if (!checkedBags)
    return checkedBags.takeError();
  int64_t numBags = *checkedBags;
  int64_t numEmbeddings = weight.shape[0], dim = weight.shape[1];
  if (auto err = checkGradientOptions(options.profile, options.scaleGradByFreq,
                                      /*sparse=*/false))
    return std::move(err);
  if (auto err = checkOptimizer(optimizer, states, weight))
    return std::move(err);
  bool max = options.mode == BagMode::max;
  if (max && !maxIndices)
    return fail("the gradient of mode 'max' needs 'max_indices'");
  if (!max && maxIndices)
    return fail(std::string("'max_indices' is only used with mode 'max', "
                            "got '") +
                bagModeName(options.mode) + "'");
  if (max) {
    if (auto err =
            checkOutput(*maxIndices, "max_indices", {numBags, dim}, DType::i64))
      return std::move(err);
    if (auto err = engine.checkMaxIndices(*maxIndices, numEmbeddings))
      return std::move(err);
  }
  auto pad = padAndIndices(options.paddingIdx, indices, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (numBags == 0 || numEmbeddings == 0 || dim == 0)
    return Plan::nothing(); // no row is touched
  // GPU kernels move the rows of the gradient, the table and [V, D] states
  // as vectors.
  if (auto err = checkGPUAlignment(engine.target, dim, weight.dtype,
                                   {&grad, &weight}))
    return std::move(err);
  for (const Tensor &state : states)
    if (state.rank() == 2)
      if (auto err = checkGPUAlignment(engine.target, dim, state.dtype,
                                       {&state}))
        return std::move(err);
  int64_t n = indices.numel();
  KernelSpec s = bagSpec(OpKind::embedding_bag_update, weight.dtype, indices,
                         offsets, dim, options, psw);
  s.maxIndices = max;
  s.numEmbeddings = numEmbeddings;
  s.paddingIdx = max ? -1 : *pad;
  setDenseGradOptions(s, engine.target, n, options.profile,
                      options.scaleGradByFreq, /*deterministic=*/false);
  // Only the hyper-parameters the optimizer reads name the kernel (an
  // SGD step's eps does not make a new one).
  s.optimizer = optimizer.optimizer;
  s.weightDecay = optimizer.weightDecay;
  if (optimizer.optimizer != Optimizer::sgd)
    s.eps = optimizer.eps;
  if (optimizer.optimizer == Optimizer::adam) {
    s.beta1 = optimizer.beta1;
    s.beta2 = optimizer.beta2;
  }
  Plan plan;
  plan.spec = std::move(s);
  // Rows of the table split over threads, as the dense gradient's.
  plan.count = numEmbeddings;
  plan.grain = kMinGradRowsPerChunk;
  plan.split = true;
  auto hyper = std::make_shared<std::array<double, 2>>(std::array<double, 2>{
      optimizer.lr, static_cast<double>(optimizer.step)});
  std::array<Tensor, 2> stateViews;
  std::copy(states.begin(), states.end(), stateViews.begin());
  size_t numStates = states.size();
  bool includeLast = plan.spec.includeLastOffset;
  plan.fill = [&grad, &indices, &weight, offsets, psw, maxIndices, numBags,
               dim, includeLast, hyper, stateViews,
               numStates](KernelArgs &args, int64_t r0, int64_t r1) {
    args.set(ArgSlot::grad, grad.data, numBags, dim);
    fillBags(args, indices, offsets, ArgSlot::perSampleWeights, psw, 0,
             numBags, numBags, includeLast);
    if (maxIndices)
      args.set(ArgSlot::maxIndices, maxIndices->data, numBags, dim);
    args.set(ArgSlot::weight, advance(weight.data, r0 * dim, weight.dtype),
             r1 - r0, dim);
    ArgSlot slots[2] = {ArgSlot::optimizerState, ArgSlot::optimizerState2};
    for (size_t k = 0; k < numStates; ++k) {
      const Tensor &t = stateViews[k];
      if (t.rank() == 1)
        args.set(slots[k], advance(t.data, r0, t.dtype), r1 - r0);
      else
        args.set(slots[k], advance(t.data, r0 * dim, t.dtype), r1 - r0, dim);
    }
    args.set(ArgSlot::hyper, hyper->data(), 2);
  };
  return plan;
}

llvm::Error Engine::embeddingBagUpdate(
    const Tensor &grad, const Tensor &indices, const Tensor *offsets,
    const Tensor &weight, llvm::ArrayRef<Tensor> states,
    const OptimizerOptions &optimizer, const EmbeddingBagOptions &options,
    const Tensor *psw, const Tensor *maxIndices) {
  return run(Planner{*this}.embeddingBagUpdate(grad, indices, offsets, weight,
                                               states, optimizer, options, psw,
                                               maxIndices))
      .takeError();
}

llvm::Error Engine::embeddingUpdate(const Tensor &grad, const Tensor &indices,
                                    const Tensor &weight,
                                    llvm::ArrayRef<Tensor> states,
                                    const OptimizerOptions &optimizer,
                                    const EmbeddingOptions &options) {
  // The lookup's own checks (its messages), then the sum bag of [N, 1].
  if (auto err = Planner{*this}.lookupInputs(weight, "weight", indices, grad,
                                             "grad", options))
    return err;
  int64_t n = indices.numel(), dim = weight.shape[1];
  Tensor bagIndices = indices, bagGrad = grad;
  bagIndices.shape = {n, 1};
  bagGrad.shape = {n, dim};
  EmbeddingBagOptions bag;
  bag.mode = BagMode::sum;
  bag.paddingIdx = options.paddingIdx;
  bag.scaleGradByFreq = options.scaleGradByFreq;
  bag.profile = options.profile;
  return run(Planner{*this}.embeddingBagUpdate(bagGrad, bagIndices, nullptr,
                                               weight, states, optimizer, bag,
                                               nullptr, nullptr))
      .takeError();
}

} // namespace emb
