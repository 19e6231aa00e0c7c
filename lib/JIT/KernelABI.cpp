//===- KernelABI.cpp - the ordered arguments of each kind of kernel -------===//
//
// The argument order of every op kind (include/emb/JIT/KernelABI.h). A
// change here changes the generated code and the runtime together; this
// file is part of the build id that keys the disk cache (BuildId.cmake).
//
//===----------------------------------------------------------------------===//

#include "emb/JIT/KernelABI.h"

namespace emb {

const char *argSlotName(ArgSlot slot) {
  switch (slot) {
  case ArgSlot::weight:
    return "weight";
  case ArgSlot::indices:
    return "indices";
  case ArgSlot::offsets:
    return "offsets";
  case ArgSlot::perSampleWeights:
    return "per_sample_weights";
  case ArgSlot::grad:
    return "grad";
  case ArgSlot::out:
    return "out";
  case ArgSlot::maxIndices:
    return "max_indices";
  case ArgSlot::window:
    return "window";
  case ArgSlot::gradWeight:
    return "grad_weight";
  case ArgSlot::gradPerSampleWeights:
    return "grad_per_sample_weights";
  case ArgSlot::sparseRows:
    return "rows";
  case ArgSlot::sparseValues:
    return "values";
  case ArgSlot::sparseCount:
    return "count";
  case ArgSlot::optimizerState:
    return "state";
  case ArgSlot::optimizerState2:
    return "state2";
  case ArgSlot::hyper:
    return "hyper";
  }
  return "?";
}

void KernelABI::add(ArgSlot slot, ArgElement element, ArgShape shape,
                    bool twoD) {
  unsigned rank = shape == ArgShape::rows || shape == ArgShape::packedRows ||
                          (shape == ArgShape::indexed && twoD)
                      ? 2
                      : 1;
  positions[unsigned(slot)] = static_cast<int>(count);
  arguments[count++] = {slot, element, shape, rank};
}

KernelABI::KernelABI(const KernelSpec &spec) {
  for (int &p : positions)
    p = -1;
  bool bag = spec.op == OpKind::embedding_bag ||
             spec.op == OpKind::embedding_bag_backward ||
             spec.op == OpKind::embedding_bag_psw_backward ||
             spec.op == OpKind::embedding_bag_sparse_backward ||
             spec.op == OpKind::embedding_bag_update;
  bool twoD = bag && spec.twoD;
  using E = ArgElement;
  using S = ArgShape;
  auto arg = [&](ArgSlot slot, E element, S shape) {
    add(slot, element, shape, twoD);
  };
  // The bag structure after the indices: offsets (1-D bags), then the
  // per-sample weights when the spec has them.
  auto bagInputs = [&](bool psw) {
    if (!twoD)
      arg(ArgSlot::offsets, E::offsets, S::list);
    if (psw)
      arg(ArgSlot::perSampleWeights, E::weight, S::indexed);
  };
  // A dense gradient's output: the row window, then those rows.
  auto gradRows = [&] {
    arg(ArgSlot::window, E::i64, S::pair);
    arg(ArgSlot::gradWeight, E::weight, S::rows);
  };
  // A sparse gradient's outputs: rows, values, count.
  auto coo = [&] {
    arg(ArgSlot::sparseRows, E::i64, S::list);
    arg(ArgSlot::sparseValues, E::weight, S::rows);
    arg(ArgSlot::sparseCount, E::i64, S::single);
  };

  switch (spec.op) {
  case OpKind::embedding: // (weight, indices, out)
    arg(ArgSlot::weight, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::list);
    arg(ArgSlot::out, E::weight, S::rows);
    break;
  case OpKind::embedding_bag:
    // (weight, indices, [offsets], [psw], out, [max_indices]); a quantised
    // table is bytes.
    if (spec.quant != Quantization::none)
      arg(ArgSlot::weight, E::bytes, S::packedRows);
    else
      arg(ArgSlot::weight, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::indexed);
    bagInputs(spec.perSampleWeights);
    arg(ArgSlot::out, E::weight, S::rows);
    if (spec.maxIndices)
      arg(ArgSlot::maxIndices, E::i64, S::rows);
    break;
  case OpKind::embedding_bag_tables:
    // (every table in one buffer, indices, offsets, [psw], the window of
    // bags, out)
    arg(ArgSlot::weight, E::weight, S::list);
    arg(ArgSlot::indices, E::indices, S::list);
    arg(ArgSlot::offsets, E::offsets, S::list);
    if (spec.perSampleWeights)
      arg(ArgSlot::perSampleWeights, E::weight, S::list);
    arg(ArgSlot::window, E::i64, S::pair);
    arg(ArgSlot::out, E::weight, S::rows);
    break;
  case OpKind::renorm: // (weight, indices): the weight is written in place
    arg(ArgSlot::weight, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::list);
    break;
  case OpKind::embedding_backward: // (grad, indices, window, gW)
    arg(ArgSlot::grad, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::list);
    gradRows();
    break;
  case OpKind::embedding_bag_backward:
    // (grad, indices, [offsets], [psw], [max_indices], window, gW)
    arg(ArgSlot::grad, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::indexed);
    bagInputs(spec.perSampleWeights);
    if (spec.maxIndices)
      arg(ArgSlot::maxIndices, E::i64, S::rows);
    gradRows();
    break;
  case OpKind::embedding_bag_psw_backward:
    // (grad, weight, indices, [offsets], grad_psw)
    arg(ArgSlot::grad, E::weight, S::rows);
    arg(ArgSlot::weight, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::indexed);
    bagInputs(/*psw=*/false);
    arg(ArgSlot::gradPerSampleWeights, E::weight, S::indexed);
    break;
  case OpKind::embedding_bag_update: {
    // (grad, indices, [offsets], [psw], [max_indices], window, weight rows,
    //  [state rows], [state2 rows], hyper): the weight and the states are
    //  the window's rows, updated in place.
    arg(ArgSlot::grad, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::indexed);
    bagInputs(spec.perSampleWeights);
    if (spec.maxIndices)
      arg(ArgSlot::maxIndices, E::i64, S::rows);
    arg(ArgSlot::window, E::i64, S::pair);
    arg(ArgSlot::weight, E::weight, S::rows);
    int states = numOptimizerStates(spec.optimizer);
    S stateShape = spec.optimizer == Optimizer::rowwise_adagrad ? S::list : S::rows;
    if (states > 0)
      arg(ArgSlot::optimizerState, E::state, stateShape);
    if (states > 1)
      arg(ArgSlot::optimizerState2, E::state, stateShape);
    arg(ArgSlot::hyper, E::f64, S::pair);
    break;
  }
  case OpKind::embedding_bag_tables_update: {
    // (grad rows, indices, offsets, [psw], the window of tables, every
    //  table flat, [every table's state flat], [...], hyper)
    arg(ArgSlot::grad, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::list);
    arg(ArgSlot::offsets, E::offsets, S::list);
    if (spec.perSampleWeights)
      arg(ArgSlot::perSampleWeights, E::weight, S::list);
    arg(ArgSlot::window, E::i64, S::pair);
    arg(ArgSlot::weight, E::weight, S::list);
    int states = numOptimizerStates(spec.optimizer);
    if (states > 0)
      arg(ArgSlot::optimizerState, E::state, S::list);
    if (states > 1)
      arg(ArgSlot::optimizerState2, E::state, S::list);
    arg(ArgSlot::hyper, E::f64, S::pair);
    break;
  }
  case OpKind::embedding_sparse_backward: // (grad, indices, rows, values, n)
    arg(ArgSlot::grad, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::list);
    coo();
    break;
  case OpKind::embedding_bag_sparse_backward:
    // (grad, indices, [offsets], [psw], rows, values, n)
    arg(ArgSlot::grad, E::weight, S::rows);
    arg(ArgSlot::indices, E::indices, S::indexed);
    bagInputs(spec.perSampleWeights);
    coo();
    break;
  }
}

std::string KernelABI::packedEntryName(const KernelSpec &spec) {
  return "_emb_packed_" + spec.symbolName();
}

} // namespace emb
