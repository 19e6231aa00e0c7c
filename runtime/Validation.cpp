//===- Validation.cpp - the Engine's argument checks ----------------------===//
//
// The checks of docs/semantics.md §5 (runtime/Validation.h), the error
// kinds the Engine reports, and the Engine's checks that read index values
// (through a host copy on nvptx: Engine::readable, runtime/EngineGPU.cpp).
//
//===----------------------------------------------------------------------===//

#include "Validation.h"

#include "emb/Runtime/Numeric.h"


#include <atomic>
#include <cmath>
#include <sstream>

namespace emb {

//===----------------------------------------------------------------------===//
// Profiles and error kinds
//===----------------------------------------------------------------------===//

std::optional<Profile> parseProfile(std::string_view name) {
  if (name == "torch")
    return Profile::torch;
  if (name == "zero-padding")
    return Profile::zero_padding;
  if (name == "unit-scaling")
    return Profile::unit_scaling;
  return std::nullopt;
}

const char *profileName(Profile profile) {
  switch (profile) {
  case Profile::torch:
    return "torch";
  case Profile::zero_padding:
    return "zero-padding";
  case Profile::unit_scaling:
    return "unit-scaling";
  }
  return "?";
}

namespace {

class EmbErrorCategory : public std::error_category {
public:
  const char *name() const noexcept override { return "emb"; }
  std::string message(int kind) const override {
    switch (static_cast<ErrorKind>(kind)) {
    case ErrorKind::invalid_argument:
      return "invalid argument";
    case ErrorKind::index_out_of_range:
      return "index out of range";
    case ErrorKind::wrong_dtype:
      return "wrong dtype";
    }
    return "unknown emb error";
  }
};

} // namespace

const std::error_category &errorCategory() {
  static EmbErrorCategory category;
  return category;
}

std::error_code make_error_code(ErrorKind kind) {
  return {static_cast<int>(kind), errorCategory()};
}

std::optional<ErrorKind> errorKind(std::error_code code) {
  if (code.category() != errorCategory())
    return std::nullopt;
  return static_cast<ErrorKind>(code.value());
}

//===----------------------------------------------------------------------===//
// Checks
//===----------------------------------------------------------------------===//

namespace validation {

llvm::Error fail(const std::string &message, ErrorKind kind) {
  return llvm::createStringError(make_error_code(kind), message);
}

llvm::Error failIndex(const std::string &message) {
  return fail(message, ErrorKind::index_out_of_range);
}

static llvm::Error failDType(const std::string &message) {
  return fail(message, ErrorKind::wrong_dtype);
}

static std::string shapeStr(const std::vector<int64_t> &shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i)
    os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::string describe(const Tensor &t) {
  return shapeStr(t.shape) + " " + dtypeName(t.dtype);
}

llvm::Error checkView(const Tensor &t, const char *name) {
  int64_t bytes = static_cast<int64_t>(dtypeSize(t.dtype));
  for (int64_t s : t.shape) {
    if (s < 0)
      return fail(std::string("'") + name +
                  "' has a negative size: " + shapeStr(t.shape));
    if (s > 0 && __builtin_mul_overflow(bytes, s, &bytes))
      return fail(std::string("'") + name +
                  "' is too large: " + shapeStr(t.shape));
  }
  if (!t.data && t.numel() > 0)
    return fail(std::string("'") + name + "' has no data");
  return llvm::Error::success();
}

llvm::Error checkWeight(const Tensor &w, const char *name) {
  if (auto err = checkView(w, name))
    return err;
  if (w.rank() != 2 || !isFloat(w.dtype))
    return fail(std::string("'") + name +
                    "' must be a 2-D tensor of f32, f64, f16 or bf16, got " +
                    describe(w),
                isFloat(w.dtype) ? ErrorKind::invalid_argument
                                 : ErrorKind::wrong_dtype);
  return llvm::Error::success();
}

llvm::Error checkQuantizedTable(const Tensor &table, Quantization quant,
                                const Tensor &out,
                                const EmbeddingBagOptions &options) {
  if (auto err = checkView(table, "table"))
    return err;
  if (table.rank() != 2 || table.dtype != DType::u8)
    return fail("'table' of a quantised bag must be a 2-D tensor of u8 (the "
                "packed rows), got " +
                    describe(table),
                table.dtype == DType::u8 ? ErrorKind::invalid_argument
                                         : ErrorKind::wrong_dtype);
  if (auto err = checkView(out, "out"))
    return err;
  if (out.rank() != 2 || (out.dtype != DType::f32 && out.dtype != DType::f16))
    return fail("'out' of a quantised bag must be a 2-D tensor of f32 or "
                "f16, got " +
                    describe(out),
                out.rank() == 2 ? ErrorKind::wrong_dtype
                                : ErrorKind::invalid_argument);
  int64_t dim = out.shape[1];
  int64_t rowBytes = quantizedRowBytes(quant, dim);
  if (table.shape[1] != rowBytes)
    return fail("'table' rows are " + std::to_string(table.shape[1]) +
                " bytes, but " + quantizationName(quant) + " rows of D = " +
                std::to_string(dim) + " (out's dimension 1) are " +
                std::to_string(rowBytes) +
                (quant == Quantization::int8 ? " (D + 8)" : " (ceil(D/2) + 4)"));
  if (options.maxNorm)
    return fail("'max_norm' is not supported with a quantised table");
  if (options.scaleGradByFreq || options.sparse)
    return fail("a quantised table has no gradient: 'scale_grad_by_freq' "
                "and 'sparse' are not supported");
  return llvm::Error::success();
}

llvm::Error checkIndexTensor(const Tensor &t, const char *name) {
  if (auto err = checkView(t, name))
    return err;
  if (!isIndex(t.dtype))
    return failDType(std::string("'") + name +
                     "' must be a tensor of i32 or i64, got " + describe(t));
  return llvm::Error::success();
}

namespace {
/// Whether any of x[0, n) is outside [0, bound): a loop without an early
/// exit, cloned for AVX2 / AVX-512 (x86-64's baseline SSE2 has no 64-bit
/// compare, so the default clone stays scalar: ~10% of a small-row bag's
/// time was this scan).
#if defined(__x86_64__) && defined(__linux__)
#define EMB_VECTOR_CLONES                                                      \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EMB_VECTOR_CLONES
#endif
EMB_VECTOR_CLONES bool anyOutOfRange(const int64_t *x, int64_t n,
                                     uint64_t bound) {
  bool bad = false;
  for (int64_t i = 0; i < n; ++i)
    bad |= static_cast<uint64_t>(x[i]) >= bound;
  return bad;
}
EMB_VECTOR_CLONES bool anyOutOfRange(const int32_t *x, int64_t n,
                                     uint64_t bound) {
  bool bad = false;
  for (int64_t i = 0; i < n; ++i)
    bad |= static_cast<uint64_t>(static_cast<int64_t>(x[i])) >= bound;
  return bad;
}
} // namespace

/// Every index must lie in [0, V): the message names the first bad one.
/// The scan is split over the Engine's threads (it is a full pass over the
/// indices on every call); each range finds its first bad position and the
/// smallest wins, so the message does not depend on the split.
llvm::Error checkIndexRange(const Tensor &indices, int64_t numEmbeddings,
                            SplitFn split) {
  int64_t n = indices.numel();
  std::atomic<int64_t> firstBad{n};
  auto scan = [&](auto *x) {
    const auto bound = static_cast<uint64_t>(numEmbeddings);
    split(n, 1 << 16, [&](int64_t b, int64_t e) {
      // Blocks scanned without an early exit (vectorised); a block with a
      // bad index is searched again for the first. An unsigned compare
      // checks both bounds at once.
      constexpr int64_t kBlock = 2048;
      for (int64_t block = b; block < e; block += kBlock) {
        int64_t end = std::min(block + kBlock, e);
        if (!anyOutOfRange(x + block, end - block, bound))
          continue;
        for (int64_t i = block; i < end; ++i)
          if (static_cast<uint64_t>(x[i]) >= bound) {
            int64_t seen = firstBad.load();
            while (i < seen && !firstBad.compare_exchange_weak(seen, i)) {
            }
            return;
          }
      }
    });
  };
  if (indices.dtype == DType::i32)
    scan(static_cast<const int32_t *>(indices.data));
  else
    scan(static_cast<const int64_t *>(indices.data));
  int64_t i = firstBad.load();
  if (i == n)
    return llvm::Error::success();
  return failIndex(
      "index " + std::to_string(loadInt(indices.data, indices.dtype, i)) +
      " at position " + std::to_string(i) + " is out of range [0, " +
      std::to_string(numEmbeddings) + ")");
}

/// Non-padding entries of `indices`.
int64_t liveCount(const Tensor &indices, int64_t padRow) {
  int64_t n = indices.numel();
  if (padRow < 0)
    return n;
  int64_t live = 0;
  for (int64_t i = 0; i < n; ++i)
    live += loadInt(indices.data, indices.dtype, i) != padRow;
  return live;
}

/// padding_idx normalised to [0, V), or -1 without one.
llvm::Expected<int64_t> normalizePadding(std::optional<int64_t> paddingIdx,
                                         int64_t numEmbeddings) {
  if (!paddingIdx)
    return -1;
  if (*paddingIdx < -numEmbeddings || *paddingIdx >= numEmbeddings)
    return fail("'padding_idx' " + std::to_string(*paddingIdx) +
                " is out of range [" + std::to_string(-numEmbeddings) + ", " +
                std::to_string(numEmbeddings) + ")");
  return *paddingIdx < 0 ? *paddingIdx + numEmbeddings : *paddingIdx;
}

llvm::Error checkOutput(const Tensor &t, const char *name,
                        const std::vector<int64_t> &shape, DType dtype) {
  if (auto err = checkView(t, name))
    return err;
  if (t.shape != shape || t.dtype != dtype)
    return fail(std::string("'") + name + "' must be " + shapeStr(shape) + " " +
                    dtypeName(dtype) + ", got " + describe(t),
                t.shape == shape ? ErrorKind::wrong_dtype
                                 : ErrorKind::invalid_argument);
  return llvm::Error::success();
}

llvm::Error checkNorm(std::optional<double> maxNorm, double normType) {
  if (maxNorm && std::isnan(*maxNorm))
    return fail("'max_norm' must not be NaN");
  if (maxNorm && std::isnan(normType))
    return fail("'norm_type' must not be NaN");
  return llvm::Error::success();
}

/// The gradient options a forward call records that no backward accepts:
/// checked at the forward, so that a training step fails before it writes
/// anything. `scale_grad_by_freq` with `sparse` is not one of them: as in
/// PyTorch, the forward (an eval or no_grad call of such a module) runs and
/// the sparse backward raises (checkSparseOptions).
llvm::Error checkGradientOptions(Profile profile, bool scaleGradByFreq,
                                 bool sparse) {
  if (profile != Profile::unit_scaling)
    return llvm::Error::success();
  if (scaleGradByFreq)
    return fail("'scale_grad_by_freq' is not supported by the unit-scaling "
                "profile");
  if (sparse)
    return fail("'sparse' is not supported by the unit-scaling profile");
  return llvm::Error::success();
}

llvm::Error checkRowsOf(const Tensor &t, const char *name,
                        const Tensor &indices, int64_t dim, DType dtype) {
  std::vector<int64_t> shape = indices.shape;
  shape.push_back(dim);
  return checkOutput(t, name, shape, dtype);
}

llvm::Error checkGradTensor(const Tensor &grad, int64_t rank,
                            const char *mustBe) {
  if (auto err = checkView(grad, "grad"))
    return err;
  if (grad.rank() != rank || !isFloat(grad.dtype))
    return fail(std::string("'grad' must ") + mustBe + ", got " +
                    describe(grad),
                isFloat(grad.dtype) ? ErrorKind::invalid_argument
                                    : ErrorKind::wrong_dtype);
  return llvm::Error::success();
}

llvm::Error checkSparseOptions(Profile profile, bool scaleGradByFreq) {
  if (scaleGradByFreq)
    return fail("'scale_grad_by_freq' is not supported with sparse gradients");
  return checkGradientOptions(profile, false, /*sparse=*/true);
}

llvm::Error checkNumEmbeddings(int64_t numEmbeddings) {
  if (numEmbeddings < 0)
    return fail("'num_embeddings' must be non-negative, got " +
                std::to_string(numEmbeddings));
  return llvm::Error::success();
}

llvm::Error checkMaxIndexValues(const Tensor &maxIndices,
                                int64_t numEmbeddings) {
  // Each entry selects the row its column adds to: -1 or a row of gW.
  const auto *m = static_cast<const int64_t *>(maxIndices.data);
  for (int64_t i = 0, n = maxIndices.numel(); i < n; ++i)
    if (m[i] < -1 || m[i] >= numEmbeddings)
      return failIndex("max_indices value " + std::to_string(m[i]) +
                       " at position " + std::to_string(i) +
                       " is out of range [-1, " +
                       std::to_string(numEmbeddings) + ")");
  return llvm::Error::success();
}

/// The checks every embedding_bag entry point shares: the input form
/// (1-D + offsets or 2-D), offsets, per_sample_weights (of `floatType`),
/// option combinations. Returns the number of bags.
llvm::Expected<int64_t> checkBagInputs(const Tensor &indices,
                                       const Tensor *offsets,
                                       const EmbeddingBagOptions &options,
                                       const Tensor *psw, DType floatType,
                                       const Tensor *offsetValues) {
  if (options.mode == BagMode::none)
    return fail("mode 'none' (no pooling) is only for the sequence tables of "
                "a many-table bag; one table's unpooled rows are embedding's");
  if (options.mode > BagMode::none)
    return fail("invalid bag mode " +
                std::to_string(static_cast<int>(options.mode)));
  bool twoD = indices.rank() == 2;
  if (indices.rank() != 1 && !twoD)
    return fail("'indices' of embedding_bag must be 1-D (with 'offsets') or "
                "2-D, got " +
                describe(indices));
  if (twoD && offsets)
    return fail("'offsets' must be absent when 'indices' is 2-D (every row is "
                "a bag)");
  if (!twoD && !offsets)
    return fail("1-D 'indices' need 'offsets'");
  if (offsets) {
    if (auto err = checkIndexTensor(*offsets, "offsets"))
      return err;
    if (offsets->rank() != 1)
      return fail("'offsets' must be 1-D, got " + describe(*offsets));
  }
  if (psw) {
    if (options.mode == BagMode::max)
      return fail("'per_sample_weights' is not allowed with mode 'max'");
    if (auto err =
            checkOutput(*psw, "per_sample_weights", indices.shape, floatType))
      return err;
  }
  if (options.mode == BagMode::max && options.scaleGradByFreq)
    return fail("'scale_grad_by_freq' is not supported with mode 'max'");
  if (options.mode == BagMode::max && options.sparse)
    return fail("'sparse' is not supported with mode 'max'");
  if (auto err = checkGradientOptions(options.profile, options.scaleGradByFreq,
                                      options.sparse))
    return err;
  if (auto err = checkNorm(options.maxNorm, options.normType))
    return err;

  int64_t n = indices.numel();
  bool includeLast = options.includeLastOffset && !twoD;
  int64_t numOffsets = offsets ? offsets->shape[0] : 0;
  if (includeLast && numOffsets == 0)
    return fail("'include_last_offset' needs at least one offset");
  int64_t numBags =
      twoD ? indices.shape[0] : (includeLast ? numOffsets - 1 : numOffsets);
  if (offsetValues && numOffsets > 0) {
    auto off = [&](int64_t i) {
      return loadInt(offsetValues->data, offsetValues->dtype, i);
    };
    if (off(0) != 0)
      return fail("offsets[0] must be 0, got " + std::to_string(off(0)));
    for (int64_t i = 1; i < numOffsets; ++i)
      if (off(i) < off(i - 1))
        return fail("offsets must be non-decreasing: offsets[" +
                    std::to_string(i) + "] = " + std::to_string(off(i)) +
                    " < offsets[" + std::to_string(i - 1) +
                    "] = " + std::to_string(off(i - 1)));
    if (off(numOffsets - 1) > n)
      return fail("offsets[" + std::to_string(numOffsets - 1) +
                  "] = " + std::to_string(off(numOffsets - 1)) +
                  " exceeds the number of indices " + std::to_string(n));
    if (includeLast && off(numOffsets - 1) != n)
      return fail("with include_last_offset the last offset must equal the "
                  "number of indices " +
                  std::to_string(n) + ", got " +
                  std::to_string(off(numOffsets - 1)));
  }
  return numBags;
}

/// Checks the COO outputs against D, the dtype and the number of rows the
/// uncoalesced gradient needs (an upper bound of the coalesced one).
llvm::Error checkSparseOutputs(const Tensor &rows, const Tensor &values,
                               int64_t dim, DType dtype, int64_t needed) {
  if (auto err = checkView(rows, "rows"))
    return err;
  if (rows.rank() != 1 || rows.dtype != DType::i64)
    return fail("'rows' must be a 1-D tensor of i64, got " + describe(rows),
                rows.rank() == 1 ? ErrorKind::wrong_dtype
                                 : ErrorKind::invalid_argument);
  if (auto err = checkOutput(values, "values", {rows.shape[0], dim}, dtype))
    return err;
  if (rows.shape[0] < needed)
    return fail("'rows' has room for " + std::to_string(rows.shape[0]) +
                " rows, the gradient needs " + std::to_string(needed));
  return llvm::Error::success();
}

/// GPU kernels move a row as vectors of the largest power-of-two bytes, up
/// to 16, that divides the row's bytes (gpu_config::vectorWidth): the
/// buffers they read and write rows of must start at a multiple of that
/// (thread views start at whole rows, so they stay aligned).
llvm::Error checkGPUAlignment(Target target, int64_t dim, DType dtype,
                              std::initializer_list<const Tensor *> rows) {
  int64_t element = static_cast<int64_t>(dtypeSize(dtype));
  int64_t align = 16;
  while (align > element && (dim * element) % align != 0)
    align /= 2;
  if (target == Target::host || align <= element)
    return llvm::Error::success();
  for (const Tensor *t : rows)
    if (t && t->data && reinterpret_cast<uintptr_t>(t->data) % align != 0)
      return fail("GPU kernels need " + std::to_string(align) +
                  "-byte aligned rows: a buffer of rows starts at an "
                  "address that is not a multiple of " +
                  std::to_string(align));
  return llvm::Error::success();
}

llvm::Error checkOptimizerOptions(const OptimizerOptions &o) {
  auto finiteAtLeastZero = [](const char *name, double v) -> llvm::Error {
    if (std::isfinite(v) && v >= 0)
      return llvm::Error::success();
    return fail(std::string("'") + name +
                "' must be a finite non-negative number, got " +
                std::to_string(v));
  };
  if (auto err = finiteAtLeastZero("lr", o.lr))
    return err;
  // Only what the optimizer reads (an SGD step ignores eps and betas).
  if (o.optimizer != Optimizer::sgd)
    if (auto err = finiteAtLeastZero("eps", o.eps))
      return err;
  if (auto err = finiteAtLeastZero("weight_decay", o.weightDecay))
    return err;
  if (o.optimizer == Optimizer::adam)
    for (auto [name, beta] :
         {std::pair<const char *, double>{"beta1", o.beta1}, {"beta2", o.beta2}})
      if (!(beta >= 0 && beta < 1))
        return fail(std::string("'") + name + "' must be in [0, 1), got " +
                    std::to_string(beta));
  if (o.optimizer == Optimizer::adam && (o.step < 1 || o.step > (1LL << 53)))
    return fail("adam's 'step' must be in [1, 2^53], got " +
                std::to_string(o.step));
  return llvm::Error::success();
}

llvm::Error checkOptimizerStates(Optimizer optimizer,
                                 llvm::ArrayRef<Tensor> states,
                                 const std::vector<int64_t> &shape,
                                 DType dtype) {
  static const char *const names[][2] = {
      {nullptr, nullptr}, {"sum", nullptr}, {"sum", nullptr},
      {"exp_avg", "exp_avg_sq"}};
  int want = numOptimizerStates(optimizer);
  const char *const *stateNames = names[static_cast<int>(optimizer)];
  if (static_cast<int>(states.size()) != want) {
    std::string list;
    for (int k = 0; k < want; ++k)
      list += std::string(k ? ", " : " (") + stateNames[k] +
              (k + 1 == want ? ")" : "");
    return fail(std::string("optimizer '") + optimizerName(optimizer) +
                "' keeps " + std::to_string(want) + " state tensor(s)" + list +
                ", got " + std::to_string(states.size()));
  }
  for (int k = 0; k < want; ++k)
    if (auto err = checkOutput(states[k], stateNames[k], shape, dtype))
      return err;
  return llvm::Error::success();
}

} // namespace validation

//===----------------------------------------------------------------------===//
// Checks that read index values
//===----------------------------------------------------------------------===//

using namespace validation;

llvm::Error Engine::checkIndices(const Tensor &indices, int64_t numEmbeddings) {
  Tensor copy;
  std::vector<char> storage;
  auto values = readable(&indices, copy, storage);
  if (!values)
    return values.takeError();
  if (!*values)
    return llvm::Error::success();
  return checkIndexRange(**values, numEmbeddings, [this](int64_t n, int64_t grain,
                                llvm::function_ref<void(int64_t, int64_t)> body) {
    parallelFor(n, grain, body);
  });
}

/// `err` with "table t: " before its message (and its kind kept).
static llvm::Error inTable(llvm::Error err, size_t t) {
  std::error_code code;
  std::string message;
  llvm::handleAllErrors(std::move(err), [&](const llvm::ErrorInfoBase &e) {
    code = e.convertToErrorCode();
    message = e.message();
  });
  return llvm::createStringError(code, "table " + std::to_string(t) + ": " +
                                           message);
}

llvm::Error Engine::checkTableIndices(const Tensor &indices,
                                      const Tensor &offsets,
                                      llvm::ArrayRef<int64_t> numEmbeddings,
                                      int64_t numBags,
                                      const Tensor *hostOffsets) {
  Tensor indexCopy, offsetCopy;
  std::vector<char> indexStorage, offsetStorage;
  auto x = readable(&indices, indexCopy, indexStorage);
  if (!x)
    return x.takeError();
  auto o = hostOffsets ? llvm::Expected<const Tensor *>(hostOffsets)
                       : readable(&offsets, offsetCopy, offsetStorage);
  if (!o)
    return o.takeError();
  if (!*x || !*o)
    return llvm::Error::success(); // trusted device indices
  for (size_t t = 0; t < numEmbeddings.size(); ++t) {
    int64_t begin = loadInt((*o)->data, (*o)->dtype, t * numBags);
    int64_t end = loadInt((*o)->data, (*o)->dtype, (t + 1) * numBags);
    Tensor part = **x;
    part.data = static_cast<char *>(part.data) +
                begin * static_cast<int64_t>(dtypeSize(part.dtype));
    part.shape = {end - begin};
    if (auto err = checkIndexRange(
            part, numEmbeddings[t],
            [this](int64_t n, int64_t grain,
                   llvm::function_ref<void(int64_t, int64_t)> body) {
              parallelFor(n, grain, body);
            }))
      return inTable(std::move(err), t);
  }
  return llvm::Error::success();
}

llvm::Expected<int64_t> Engine::bagInputs(const Tensor &indices,
                                          const Tensor *offsets,
                                          const EmbeddingBagOptions &options,
                                          const Tensor *psw, DType floatType) {
  if (target != Target::nvptx)
    return checkBagInputs(indices, offsets, options, psw, floatType, offsets);
  // Shapes first: a bad call fails before any copy.
  auto shapes =
      checkBagInputs(indices, offsets, options, psw, floatType, nullptr);
  if (!shapes)
    return shapes.takeError();
  Tensor copy;
  std::vector<char> storage;
  auto values = readable(offsets, copy, storage);
  if (!values)
    return values.takeError();
  if (!*values)
    return *shapes;
  return checkBagInputs(indices, offsets, options, psw, floatType, *values);
}

llvm::Error Engine::checkMaxIndices(const Tensor &maxIndices,
                                    int64_t numEmbeddings) {
  Tensor copy;
  std::vector<char> storage;
  auto values = readable(&maxIndices, copy, storage);
  if (!values)
    return values.takeError();
  if (!*values || maxIndices.numel() == 0)
    return llvm::Error::success();
  return checkMaxIndexValues(**values, numEmbeddings);
}

llvm::Expected<int64_t> Engine::sparseRowsNeeded(const Tensor &indices,
                                                 int64_t numEmbeddings,
                                                 int64_t padRow) {
  Tensor copy;
  std::vector<char> storage;
  auto values = readable(&indices, copy, storage);
  if (!values)
    return values.takeError();
  // Trusted device indices are not read: every position may be live.
  if (!*values)
    return indices.numel();
  if (auto err = checkIndexRange(**values, numEmbeddings, [this](int64_t n, int64_t grain,
                                llvm::function_ref<void(int64_t, int64_t)> body) {
    parallelFor(n, grain, body);
  }))
    return std::move(err);
  return liveCount(**values, padRow);
}

} // namespace emb
