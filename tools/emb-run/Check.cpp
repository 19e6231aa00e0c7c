//===- Check.cpp - emb-run --check: the outputs against the reference -----===//
//
// The reference runs on a compact copy of the referenced rows (the table
// may have a million rows); the forward outputs, the dense and sparse
// gradients and the renormalised rows are compared element by element.
//
//===----------------------------------------------------------------------===//

#include "EmbRun.h"

#include "emb/Reference/Reference.h"
#include "emb/Runtime/Numeric.h"

#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace emb::run {

namespace {

/// Compares kernel output with reference values; keeps the worst error.
bool compare(const char *what, const void *got, DType dtype,
             const std::vector<double> &want, double &worst) {
  double tol = dtype == DType::f64   ? 1e-12
               : dtype == DType::f32 ? 2e-5
               : dtype == DType::f16 ? 4e-3
                                     : 3e-2;
  for (size_t i = 0; i < want.size(); ++i) {
    double g = loadDouble(got, dtype, i);
    double err = std::fabs(g - want[i]) / std::max(1.0, std::fabs(want[i]));
    worst = std::max(worst, err);
    if (!(err <= tol)) {
      llvm::errs() << "emb-run: mismatch in " << what << " at element " << i
                   << ": got " << g << ", want " << want[i] << "\n";
      return false;
    }
  }
  return true;
}

/// The referenced rows, renumbered in order of first use.
struct Compact {
  std::map<int64_t, int64_t> rows; ///< table row -> compact row
  std::vector<int64_t> x;          ///< the indices, renumbered
  std::vector<double> w;           ///< the compact table, [rows, D]
  std::optional<int64_t> pad;      ///< the padding row, renumbered

  Compact(const Setup &s, const Instance &inst, const Buffer &weight) {
    x.resize(s.N);
    for (int64_t i = 0; i < s.N; ++i)
      x[i] = rows.emplace(inst.indices.intAt(i), rows.size()).first->second;
    w.resize(rows.size() * s.D);
    for (auto [row, c] : rows)
      for (int64_t d = 0; d < s.D; ++d)
        w[c * s.D + d] = weight.at(row * s.D + d);
    if (s.padRow >= 0 && rows.count(s.padRow))
      pad = rows.at(s.padRow);
  }
  int64_t size() const { return static_cast<int64_t>(rows.size()); }
};

ref::Bags bagsOf(const Setup &s, const Instance &inst) {
  ref::Bags bags;
  if (s.flags.twoD) {
    bags.numBags = s.B;
    bags.bagLength = s.L;
  } else {
    bags.offsets = inst.offsets.toInt();
    bags.includeLastOffset = s.flags.includeLastOffset;
  }
  return bags;
}

std::vector<double> perSampleWeights(const Setup &s, const Instance &inst) {
  return s.flags.perSampleWeights ? inst.psw.toDouble() : std::vector<double>{};
}

/// The sparse gradient needs no table: rows and values.
bool checkSparse(const Setup &s, const Instance &inst, double &worst) {
  ref::Bags bags = bagsOf(s, inst);
  std::optional<int64_t> p;
  if (s.padRow >= 0)
    p = s.padRow;
  auto want = ref::sparseBackward(inst.out.toDouble(), s.D,
                                  inst.indices.toInt(), s.bag ? &bags : nullptr,
                                  s.mode, perSampleWeights(s, inst), p, 1.0);
  if (s.flags.coalesced)
    want = ref::coalesce(want, s.D);
  if (inst.sparseCount != static_cast<int64_t>(want.rows.size())) {
    llvm::errs() << "emb-run: " << inst.sparseCount << " sparse rows, want "
                 << want.rows.size() << "\n";
    return false;
  }
  for (int64_t k = 0; k < inst.sparseCount; ++k)
    if (inst.sparseRows.intAt(k) != want.rows[k]) {
      llvm::errs() << "emb-run: sparse row " << k << " is "
                   << inst.sparseRows.intAt(k) << ", want " << want.rows[k]
                   << "\n";
      return false;
    }
  Buffer got(s.dtype, {inst.sparseCount, s.D});
  for (int64_t i = 0; i < inst.sparseCount * s.D; ++i)
    got.set(i, inst.sparseValues.at(i));
  return compare("sparse values", got.view.data, s.dtype, want.values, worst);
}

/// max_indices in compact rows.
std::vector<int64_t> compactMaxIndices(const Setup &s, const Instance &inst,
                                       const Compact &c) {
  std::vector<int64_t> mi;
  if (s.bag && s.mode == BagMode::max)
    for (int64_t r : inst.argmax.toInt()) {
      auto it = c.rows.find(r);
      mi.push_back(r < 0 ? -1 : it == c.rows.end() ? 0 : it->second);
    }
  return mi;
}

/// The reference dense gradient of the referenced rows (compact).
std::vector<double> referenceGradient(const Setup &s, const Instance &inst,
                                      const Compact &c, double gradScale) {
  bool byFreq = s.flags.scaleGradByFreq;
  if (!s.bag)
    return ref::embeddingBackward(inst.out.toDouble(), s.D, c.x, c.size(),
                                  c.pad, byFreq, gradScale);
  return ref::embeddingBagBackward(
      inst.out.toDouble(), s.D, c.x, bagsOf(s, inst), s.mode,
      perSampleWeights(s, inst), compactMaxIndices(s, inst, c), c.size(),
      s.mode == BagMode::max ? std::nullopt : c.pad, byFreq, gradScale);
}

/// --optimizer: the referenced rows and their states after the unfused
/// step (the reference gradient, then the update of the touched rows);
/// every other row and its state unchanged.
bool checkUpdate(const Setup &s, const Instance &inst, const Compact &c,
                 double gradScale, const Buffer &weightBefore,
                 const std::vector<Buffer> &statesBefore, double &worst) {
  std::vector<double> grad = referenceGradient(s, inst, c, gradScale);
  std::vector<bool> touched =
      ref::touchedRows(c.x, s.bag ? s.mode : BagMode::sum,
                       compactMaxIndices(s, inst, c), c.size(),
                       s.bag && s.mode == BagMode::max ? std::nullopt : c.pad);
  bool rowwise = s.optimizer->optimizer == Optimizer::rowwise_adagrad;
  int64_t perRow = rowwise ? 1 : s.D;
  std::vector<std::vector<double>> states;
  const Buffer *after[2] = {&inst.state0, &inst.state1};
  for (const Buffer &before : statesBefore) {
    std::vector<double> compact(c.size() * perRow);
    for (auto [row, k] : c.rows)
      for (int64_t d = 0; d < perRow; ++d)
        compact[k * perRow + d] = before.at(row * perRow + d);
    states.push_back(compact);
  }
  std::vector<double> w = c.w;
  ref::optimizerStep(w, states, grad, touched, s.D, *s.optimizer);
  auto gather = [&](const Buffer &b, DType dtype, int64_t cols) {
    Buffer got(dtype, {c.size() * cols});
    for (auto [row, k] : c.rows)
      for (int64_t d = 0; d < cols; ++d)
        got.set(k * cols + d, b.at(row * cols + d));
    return got;
  };
  if (!compare("updated weight", gather(inst.weight, s.dtype, s.D).view.data,
               s.dtype, w, worst))
    return false;
  for (size_t k = 0; k < states.size(); ++k) {
    DType dtype = after[k]->view.dtype;
    if (!compare("optimizer state", gather(*after[k], dtype, perRow).view.data,
                 dtype, states[k], worst))
      return false;
  }
  for (int64_t r = 0; r < s.V; ++r) {
    if (c.rows.count(r))
      continue;
    bool same = std::memcmp(static_cast<const char *>(inst.weight.view.data) +
                                r * s.D * dtypeSize(s.dtype),
                            static_cast<const char *>(weightBefore.view.data) +
                                r * s.D * dtypeSize(s.dtype),
                            s.D * dtypeSize(s.dtype)) == 0;
    for (size_t k = 0; k < statesBefore.size(); ++k)
      for (int64_t d = 0; d < perRow; ++d)
        same &= after[k]->at(r * perRow + d) ==
                statesBefore[k].at(r * perRow + d);
    if (!same) {
      llvm::errs() << "emb-run: row " << r
                   << " is not referenced but the step changed it\n";
      return false;
    }
  }
  return true;
}

/// The dense gradient on the referenced rows; every other row is zero.
bool checkDense(const Setup &s, const Instance &inst, const Compact &c,
                double gradScale, double &worst) {
  std::vector<double> want = referenceGradient(s, inst, c, gradScale);
  Buffer got(s.dtype, {c.size(), s.D});
  for (auto [row, k] : c.rows)
    for (int64_t d = 0; d < s.D; ++d)
      got.set(k * s.D + d, inst.gradWeight.at(row * s.D + d));
  if (!compare("weight gradient", got.view.data, s.dtype, want, worst))
    return false;
  for (int64_t r = 0; r < s.V; ++r)
    if (!c.rows.count(r))
      for (int64_t d = 0; d < s.D; ++d)
        if (inst.gradWeight.at(r * s.D + d) != 0.0) {
          llvm::errs() << "emb-run: row " << r
                       << " of the weight gradient is not referenced but "
                          "not zero\n";
          return false;
        }
  return true;
}

/// The renormalised rows; the compact table becomes them (the lookup reads
/// the stored, rounded rows).
bool checkRenorm(const Setup &s, const Instance &inst, Compact &c,
                 double &worst) {
  ref::renorm(c.w, s.D, c.x, *s.norm, s.flags.normType);
  Buffer got(s.dtype, {c.size() * s.D});
  for (auto [row, k] : c.rows)
    for (int64_t d = 0; d < s.D; ++d)
      got.set(k * s.D + d, inst.weight.at(row * s.D + d));
  bool ok = compare("renormalised weight", got.view.data, s.dtype, c.w, worst);
  c.w = got.toDouble();
  return ok;
}

/// The bag outputs, and max_indices in mode max.
bool checkBag(const Setup &s, const Instance &inst, const Compact &c,
              double &worst) {
  std::vector<int64_t> offs;
  if (!s.flags.twoD)
    offs = inst.offsets.toInt();
  auto want = ref::embeddingBag(
      c.w, s.D, c.x, offs, s.B, s.L, s.mode, perSampleWeights(s, inst),
      s.flags.includeLastOffset && !s.flags.twoD, c.pad);
  if (!compare("output", inst.out.view.data, s.dtype, want.output, worst))
    return false;
  if (s.mode != BagMode::max || s.quant != Quantization::none)
    return true; // (a quantised bag has no max_indices: no gradient)
  std::vector<int64_t> rowOf(c.rows.size());
  for (auto [row, k] : c.rows)
    rowOf[k] = row;
  for (size_t i = 0; i < want.maxIndices.size(); ++i) {
    int64_t wantRow = want.maxIndices[i] < 0 ? -1 : rowOf[want.maxIndices[i]];
    int64_t got = inst.argmax.intAt(i);
    if (got != wantRow) {
      llvm::errs() << "emb-run: mismatch in max_indices at element " << i
                   << ": got " << got << ", want " << wantRow << "\n";
      return false;
    }
  }
  return true;
}

/// Many tables: each table's columns against its own reference bag.
bool checkTables(const Setup &s, const Instance &inst, double &worst) {
  std::vector<double> w = inst.weight.toDouble(), p = inst.psw.toDouble();
  std::vector<int64_t> x = inst.indices.toInt(), offs = inst.offsets.toInt();
  std::vector<double> want(s.B * s.D);
  int64_t at = 0, column = 0;
  for (size_t t = 0; t < s.tables.size(); ++t) {
    const TableOptions &table = s.tables[t];
    int64_t V = table.numEmbeddings, D = table.embeddingDim;
    int64_t first = offs[t * s.B], last = offs[(t + 1) * s.B];
    std::vector<int64_t> tx(x.begin() + first, x.begin() + last), to;
    // A sequence table: its entries as bags of one, L of them side by side.
    bool sequence = table.mode == BagMode::none;
    int64_t L = sequence ? s.L : 1;
    if (sequence)
      for (int64_t j = 0; j <= last - first; ++j)
        to.push_back(j);
    else
      for (int64_t b = 0; b <= s.B; ++b)
        to.push_back(offs[t * s.B + b] - first);
    std::vector<double> tp;
    if (s.flags.perSampleWeights)
      tp.assign(p.begin() + first, p.begin() + last);
    std::optional<int64_t> pad;
    if (table.paddingIdx)
      pad = (*table.paddingIdx % V + V) % V;
    auto bag = ref::embeddingBag(
        std::vector<double>(w.begin() + at, w.begin() + at + V * D), D, tx,
        to, 0, 0, sequence ? BagMode::sum : table.mode, tp,
        /*includeLastOffset=*/true, pad);
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t d = 0; d < L * D; ++d)
        want[b * s.D + column + d] = bag.output[b * L * D + d];
    at += V * D;
    column += L * D;
  }
  return compare("output", inst.out.view.data, s.dtype, want, worst);
}

} // namespace

CheckResult checkResults(const Setup &s, const Instance &inst,
                         const Buffer &weightBefore, double gradScale,
                         const std::vector<Buffer> &statesBefore) {
  CheckResult r;
  if (!s.tables.empty()) {
    r.ok = checkTables(s, inst, r.worst);
    return r;
  }
  Compact c(s, inst, weightBefore);
  if (s.optimizer)
    r.ok = checkUpdate(s, inst, c, gradScale, weightBefore, statesBefore,
                       r.worst);
  else if (s.backward && s.flags.sparse)
    r.ok = checkSparse(s, inst, r.worst);
  else if (s.backward)
    r.ok = checkDense(s, inst, c, gradScale, r.worst);
  else if (s.norm)
    r.ok = checkRenorm(s, inst, c, r.worst);
  if (s.backward)
    return r;
  if (s.flags.opName == "embedding")
    r.ok &= compare("output", inst.out.view.data, s.dtype,
                    ref::embedding(c.w, s.D, c.x, c.pad,
                                   s.profile == Profile::zero_padding),
                    r.worst);
  else if (s.bag)
    r.ok &= checkBag(s, inst, c, r.worst);
  return r;
}

} // namespace emb::run
