//===- Engine.cpp - validation, thread split and kernel calls -------------===//
//
// Every public entry point validates all of its arguments first
// (docs/semantics.md §5) and only then writes: a bad index, bad offsets or
// a bad option leave the outputs and the weight untouched.
//
//===----------------------------------------------------------------------===//

#include "emb/Runtime/Engine.h"
#include "emb/Runtime/Cuda.h"
#include "emb/Runtime/Numeric.h"

#include "ThreadPool.h"

#include "llvm/ADT/Twine.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

namespace emb {

//===----------------------------------------------------------------------===//
// Small helpers
//===----------------------------------------------------------------------===//

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape)
    n *= s;
  return n;
}

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

namespace {

llvm::Error fail(const std::string &message,
                 ErrorKind kind = ErrorKind::invalid_argument) {
  return llvm::createStringError(make_error_code(kind), message);
}

llvm::Error failIndex(const std::string &message) {
  return fail(message, ErrorKind::index_out_of_range);
}

llvm::Error failDType(const std::string &message) {
  return fail(message, ErrorKind::wrong_dtype);
}

std::string shapeStr(const std::vector<int64_t> &shape) {
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

llvm::Error checkWeight(const Tensor &w, const char *name = "weight") {
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

llvm::Error checkIndexTensor(const Tensor &t, const char *name) {
  if (auto err = checkView(t, name))
    return err;
  if (!isIndex(t.dtype))
    return failDType(std::string("'") + name +
                     "' must be a tensor of i32 or i64, got " + describe(t));
  return llvm::Error::success();
}

/// Every index must lie in [0, V): the message names the first bad one.
/// The scan is split over the pool (it is a full pass over the indices on
/// every call); each chunk finds its first bad position and the smallest
/// wins, so the message does not depend on the thread count.
llvm::Error checkIndexRange(const Tensor &indices, int64_t numEmbeddings,
                            ThreadPool &pool) {
  int64_t n = indices.numel();
  std::atomic<int64_t> firstBad{n};
  auto scan = [&](auto *x) {
    pool.parallelFor(n, 1 << 16, [&](int64_t b, int64_t e) {
      // An unsigned compare checks both bounds at once.
      for (int64_t i = b; i < e; ++i)
        if (static_cast<uint64_t>(x[i]) >=
            static_cast<uint64_t>(numEmbeddings)) {
          int64_t seen = firstBad.load();
          while (i < seen && !firstBad.compare_exchange_weak(seen, i)) {
          }
          return;
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

/// The gradient options a forward call records: checked at the forward, as
/// PyTorch does, so that a training step fails before it writes anything.
llvm::Error checkGradientOptions(Profile profile, bool scaleGradByFreq,
                                 bool sparse) {
  if (sparse && scaleGradByFreq)
    return fail("'scale_grad_by_freq' is not supported with sparse gradients");
  if (profile != Profile::unit_scaling)
    return llvm::Error::success();
  if (scaleGradByFreq)
    return fail("'scale_grad_by_freq' is not supported by the unit-scaling "
                "profile");
  if (sparse)
    return fail("'sparse' is not supported by the unit-scaling profile");
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
  const char *modeName = bagModeName(options.mode);
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
    if (options.mode != BagMode::sum)
      return fail(std::string("'per_sample_weights' is only allowed with mode "
                              "'sum', got '") +
                  modeName + "'");
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

//===----------------------------------------------------------------------===//
// Kernel calls: one pointer to a memref descriptor per argument
//===----------------------------------------------------------------------===//

struct Desc1 {
  void *allocated, *aligned;
  int64_t offset, size, stride;
};
struct Desc2 {
  void *allocated, *aligned;
  int64_t offset, size0, size1, stride0, stride1;
};

Desc1 desc1(void *p, int64_t n) { return {p, p, 0, n, 1}; }
Desc2 desc2(void *p, int64_t rows, int64_t cols) {
  return {p, p, 0, rows, cols, cols, 1};
}

/// Descriptors of a bag op's whole indices, offsets and per_sample_weights,
/// appended in the order the kernels take them. Lives as long as the call.
struct BagArgs {
  Desc2 x2, p2;
  Desc1 x1, o1, p1;
  void append(std::vector<void *> &args, const Tensor &indices,
              const Tensor *offsets, const Tensor *psw) {
    bool twoD = indices.rank() == 2;
    if (twoD) {
      x2 = desc2(indices.data, indices.shape[0], indices.shape[1]);
      args.push_back(&x2);
    } else {
      x1 = desc1(indices.data, indices.numel());
      o1 = desc1(offsets->data, offsets->shape[0]);
      args.push_back(&x1);
      args.push_back(&o1);
    }
    if (psw) {
      if (twoD) {
        p2 = desc2(psw->data, indices.shape[0], indices.shape[1]);
        args.push_back(&p2);
      } else {
        p1 = desc1(psw->data, indices.numel());
        args.push_back(&p1);
      }
    }
  }
};

void *advance(void *p, int64_t elements, DType dtype) {
  return static_cast<char *>(p) +
         elements * static_cast<int64_t>(dtypeSize(dtype));
}

/// Calls the packed entry point (KernelABI.h): one descriptor pointer per
/// argument, in the order of the spec's KernelABI.
void call(KernelFn fn, const std::vector<void *> &a) {
  fn(const_cast<void **>(a.data()));
}

/// GPU kernels move a row as 16-byte vectors when D allows: the buffers
/// they read and write rows of must then be 16-byte aligned (thread views
/// start at whole rows, so they stay aligned).
llvm::Error checkGPUAlignment(Target target, int64_t dim, DType dtype,
                              std::initializer_list<const Tensor *> rows) {
  if (target == Target::host || (dim * dtypeSize(dtype)) % 16 != 0)
    return llvm::Error::success();
  for (const Tensor *t : rows)
    if (t && t->data && reinterpret_cast<uintptr_t>(t->data) % 16 != 0)
      return fail("GPU kernels need 16-byte aligned rows: a buffer of rows "
                  "starts at an address that is not a multiple of 16");
  return llvm::Error::success();
}

/// Runs `fn` over [0, count): split over the pool on the host (and in the
/// emulation), in one call on the GPU, where one launch covers everything
/// and chunk bounds must not be read from device memory.
template <typename Fn>
void forChunks(Target target, ThreadPool &pool, int64_t count, int64_t grain,
               Fn &&fn) {
  if (target != Target::nvptx)
    return pool.parallelFor(count, grain, fn);
  if (count > 0)
    fn(0, count);
}

/// Bytes of rows a forward chunk must move for a split over threads to
/// pay: waking a worker costs tens of microseconds on a busy machine (a
/// 64-bag call took 72 us split in two, 5.5 us on one thread).
constexpr int64_t kMinBytesPerChunk = 1 << 20;

/// Items per chunk, for items that move `itemBytes` each.
int64_t grainFor(int64_t itemBytes) {
  return std::max<int64_t>(1,
                           kMinBytesPerChunk / std::max<int64_t>(itemBytes, 1));
}
/// Gradient rows per thread below which splitting does not pay (every
/// thread scans all the indices).
constexpr int64_t kMinGradRowsPerChunk = 4096;

} // namespace

//===----------------------------------------------------------------------===//
// The GPU target
//===----------------------------------------------------------------------===//

struct GPUState {
  std::mutex mutex;
  const cuda::DriverAPI *api = nullptr;
  std::string requestedChip;
  unsigned ptx = 0;
  void *stream = nullptr;
  bool validate = true;
};

namespace {

/// The chip of this thread's current GPU call (its context's device, or the
/// requested one): threads of one Engine may drive different devices.
thread_local std::string callChip;

/// Runs kernels: directly on the host; on nvptx in a cuda::Call on the
/// engine's stream, keeping the first error.
class KernelCalls {
public:
  explicit KernelCalls(GPUState *gpu) : gpu(gpu) {}

  void operator()(KernelFn fn, const std::vector<void *> &args) {
    if (!gpu)
      return call(fn, args);
    cuda::Call scope(*gpu->api, gpu->stream);
    call(fn, args);
    llvm::Error err = scope.finish();
    std::lock_guard<std::mutex> lock(mutex);
    if (err && first.empty())
      first = llvm::toString(std::move(err));
    else
      llvm::consumeError(std::move(err));
  }

  llvm::Error finish() {
    if (first.empty())
      return llvm::Error::success();
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "the GPU call failed: " + first);
  }

private:
  GPUState *gpu;
  std::mutex mutex;
  std::string first;
};

cuda::DevicePtr devicePtr(const void *p) {
  return static_cast<cuda::DevicePtr>(reinterpret_cast<uintptr_t>(p));
}

} // namespace

llvm::Error Engine::gpuReady() {
  if (target != Target::nvptx)
    return llvm::Error::success();
  std::lock_guard<std::mutex> lock(gpu->mutex);
  if (!gpu->api) {
    auto api = cuda::driver();
    if (!api)
      return api.takeError();
    gpu->api = *api;
  }
  // Also makes a context current when the caller has none.
  auto chip = cuda::currentChip(*gpu->api);
  if (!chip)
    return chip.takeError();
  callChip = gpu->requestedChip.empty() ? *chip : gpu->requestedChip;
  return llvm::Error::success();
}

void Engine::setTarget(KernelSpec &spec) const {
  spec.target = target;
  if (target == Target::nvptx) {
    spec.chip = callChip;
    spec.ptx = gpu->ptx;
  }
}

void Engine::setStream(void *stream) {
  if (gpu)
    gpu->stream = stream;
}

llvm::Expected<const Tensor *> Engine::readable(const Tensor *t, Tensor &copy,
                                                std::vector<char> &storage) {
  if (!t || target != Target::nvptx || !t->data || t->numel() == 0)
    return t;
  if (!gpu->validate)
    return nullptr;
  size_t bytes = static_cast<size_t>(t->numel()) * dtypeSize(t->dtype);
  storage.resize(bytes);
  // Ordered after the work already on the stream (which may be writing the
  // indices), and complete on return.
  if (auto err = cuda::check(*gpu->api,
                             gpu->api->memcpyDtoHAsync(storage.data(),
                                                       devicePtr(t->data),
                                                       bytes, gpu->stream),
                             "cuMemcpyDtoHAsync (index validation)"))
    return std::move(err);
  if (auto err =
          cuda::check(*gpu->api, gpu->api->streamSynchronize(gpu->stream),
                      "cuStreamSynchronize (index validation)"))
    return std::move(err);
  copy = *t;
  copy.data = storage.data();
  return &copy;
}

llvm::Error Engine::checkIndices(const Tensor &indices, int64_t numEmbeddings) {
  Tensor copy;
  std::vector<char> storage;
  auto values = readable(&indices, copy, storage);
  if (!values)
    return values.takeError();
  if (!*values)
    return llvm::Error::success();
  return checkIndexRange(**values, numEmbeddings, *pool);
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
  if (auto err = checkIndexRange(**values, numEmbeddings, *pool))
    return std::move(err);
  return liveCount(**values, padRow);
}

llvm::Error Engine::zero(const Tensor &t) {
  size_t bytes = static_cast<size_t>(t.numel()) * dtypeSize(t.dtype);
  if (bytes == 0)
    return llvm::Error::success();
  if (target != Target::nvptx) {
    std::memset(t.data, 0, bytes);
    return llvm::Error::success();
  }
  return cuda::check(
      *gpu->api,
      gpu->api->memsetD8Async(devicePtr(t.data), 0, bytes, gpu->stream),
      "cuMemsetD8Async");
}

//===----------------------------------------------------------------------===//
// Engine
//===----------------------------------------------------------------------===//

Engine::Engine(EngineOptions options) : target(options.target) {
  if (target == Target::nvptx) {
    options.cache.gpuRuntime = &cuda::runtimeTable();
    gpu = std::make_unique<GPUState>();
    gpu->api = options.cudaDriver;
    gpu->requestedChip = options.chip;
    gpu->ptx = options.ptx;
    gpu->stream = options.stream;
    gpu->validate = options.validateIndices;
  }
  kernelCache = std::make_unique<KernelCache>(options.cache);
  int threads = options.threads > 0
                    ? options.threads
                    : std::max(1u, std::thread::hardware_concurrency());
  pool = std::make_unique<ThreadPool>(threads);
}

Engine::~Engine() = default;

int Engine::threads() const { return pool->size(); }

llvm::Expected<KernelFn> Engine::kernel(const KernelSpec &spec) {
  return kernelCache->get(spec);
}

llvm::Error Engine::renorm(const Tensor &weight, const Tensor &indices,
                           double maxNorm, double normType) {
  if (auto err = gpuReady())
    return err;
  if (auto err = checkWeight(weight))
    return err;
  if (auto err = checkIndexTensor(indices, "indices"))
    return err;
  if (auto err = checkNorm(maxNorm, normType))
    return err;
  if (auto err = checkIndices(indices, weight.shape[0]))
    return err;
  return renormChecked(weight, indices, maxNorm, normType);
}

llvm::Error Engine::renormChecked(const Tensor &weight, const Tensor &indices,
                                  double maxNorm, double normType) {
  int64_t n = indices.numel();
  if (n == 0 || weight.shape[1] == 0)
    return llvm::Error::success();
  if (auto err =
          checkGPUAlignment(target, weight.shape[1], weight.dtype, {&weight}))
    return err;
  KernelSpec spec;
  spec.op = OpKind::renorm;
  setTarget(spec);
  spec.weight = weight.dtype;
  spec.indices = indices.dtype;
  spec.dim = weight.shape[1];
  spec.maxNorm = maxNorm;
  spec.normType = normType;
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  // Sequential: rows repeat across the indices, and each is rescaled once.
  Desc2 w = desc2(weight.data, weight.shape[0], weight.shape[1]);
  Desc1 x = desc1(indices.data, n);
  KernelCalls calls(gpu.get());
  calls(*fn, {&w, &x});
  return calls.finish();
}

llvm::Error Engine::embedding(const Tensor &indices, const Tensor &weight,
                              const Tensor &out,
                              const EmbeddingOptions &options) {
  if (auto err = gpuReady())
    return err;
  if (auto err = checkWeight(weight))
    return err;
  if (auto err = checkIndexTensor(indices, "indices"))
    return err;
  int64_t numEmbeddings = weight.shape[0], dim = weight.shape[1];
  std::vector<int64_t> outShape = indices.shape;
  outShape.push_back(dim);
  if (auto err = checkOutput(out, "out", outShape, weight.dtype))
    return err;
  if (auto err = checkGradientOptions(options.profile, options.scaleGradByFreq,
                                      options.sparse))
    return err;
  if (auto err = checkNorm(options.maxNorm, options.normType))
    return err;
  auto pad = normalizePadding(options.paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (auto err = checkIndices(indices, numEmbeddings))
    return err;

  int64_t n = indices.numel();
  if (n == 0 || dim == 0)
    return llvm::Error::success();
  if (auto err = checkGPUAlignment(target, dim, weight.dtype, {&weight, &out}))
    return err;
  KernelSpec spec;
  spec.op = OpKind::embedding;
  setTarget(spec);
  spec.weight = weight.dtype;
  spec.indices = indices.dtype;
  spec.dim = dim;
  spec.paddingIdx = options.profile == Profile::zero_padding ? *pad : -1;
  spec.zeroPadding = options.profile == Profile::zero_padding && *pad >= 0;
  // Every kernel is obtained before anything is written: a failed
  // compilation must not leave a renormalised weight behind.
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  KernelFn kernel = *fn;

  // Validated and compiled: from here on, we write.
  if (options.maxNorm)
    if (auto err =
            renormChecked(weight, indices, *options.maxNorm, options.normType))
      return err;
  int64_t rowBytes = dim * static_cast<int64_t>(dtypeSize(weight.dtype));
  KernelCalls calls(gpu.get());
  forChunks(
      target, *pool, n, grainFor(2 * rowBytes), [&](int64_t b, int64_t e) {
        Desc2 w = desc2(weight.data, numEmbeddings, dim);
        Desc1 x = desc1(advance(indices.data, b, indices.dtype), e - b);
        Desc2 o = desc2(advance(out.data, b * dim, out.dtype), e - b, dim);
        calls(kernel, {&w, &x, &o});
      });
  return calls.finish();
}

llvm::Error Engine::embeddingBag(const Tensor &indices, const Tensor &weight,
                                 const Tensor *offsets, const Tensor &out,
                                 const EmbeddingBagOptions &options,
                                 const Tensor *psw, const Tensor *maxIndices) {
  if (auto err = gpuReady())
    return err;
  if (auto err = checkWeight(weight))
    return err;
  if (auto err = checkIndexTensor(indices, "indices"))
    return err;
  int64_t numEmbeddings = weight.shape[0], dim = weight.shape[1];
  const char *modeName = bagModeName(options.mode);
  bool twoD = indices.rank() == 2;
  bool includeLast = options.includeLastOffset && !twoD;
  int64_t n = indices.numel();
  auto checkedBags = bagInputs(indices, offsets, options, psw, weight.dtype);
  if (!checkedBags)
    return checkedBags.takeError();
  int64_t numBags = *checkedBags;
  if (auto err = checkOutput(out, "out", {numBags, dim}, weight.dtype))
    return err;
  if (maxIndices) {
    if (options.mode != BagMode::max)
      return fail(std::string("'max_indices' is only produced with mode "
                              "'max', got '") +
                  modeName + "'");
    if (auto err =
            checkOutput(*maxIndices, "max_indices", {numBags, dim}, DType::i64))
      return err;
  }
  auto pad = normalizePadding(options.paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (auto err = checkIndices(indices, numEmbeddings))
    return err;

  // max_norm renormalises every referenced row, even with no bags.
  bool renormFirst = options.maxNorm && n > 0 && dim > 0;
  if (numBags == 0 || dim == 0) {
    if (renormFirst)
      return renormChecked(weight, indices, *options.maxNorm, options.normType);
    return llvm::Error::success();
  }

  if (auto err = checkGPUAlignment(target, dim, weight.dtype,
                                   {&weight, &out, maxIndices}))
    return err;
  KernelSpec spec;
  spec.op = OpKind::embedding_bag;
  setTarget(spec);
  spec.weight = weight.dtype;
  spec.indices = indices.dtype;
  spec.offsets = offsets ? offsets->dtype : DType::i64;
  spec.dim = dim;
  spec.mode = options.mode;
  spec.twoD = twoD;
  spec.perSampleWeights = psw != nullptr;
  spec.includeLastOffset = includeLast;
  spec.maxIndices = maxIndices != nullptr;
  spec.paddingIdx = *pad;
  // Every kernel is obtained before anything is written.
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  KernelFn kernel = *fn;
  int64_t bagLen = twoD ? indices.shape[1] : 0;

  // Validated and compiled: from here on, we write.
  if (renormFirst)
    if (auto err =
            renormChecked(weight, indices, *options.maxNorm, options.normType))
      return err;

  // Each thread runs the kernel on a contiguous range of bags, through
  // views of the caller's buffers (no copies). With 1-D indices the offsets
  // are absolute, so the indices view starts at 0 and ends where the
  // range's last bag ends.
  int64_t bagBytes = (n / std::max<int64_t>(numBags, 1) + 1) * dim *
                     static_cast<int64_t>(dtypeSize(weight.dtype));
  KernelCalls calls(gpu.get());
  forChunks(
      target, *pool, numBags, grainFor(bagBytes), [&](int64_t b, int64_t e) {
        Desc2 w = desc2(weight.data, numEmbeddings, dim);
        Desc2 x2, p2;
        Desc1 x1, p1, o1;
        std::vector<void *> args{&w};
        if (twoD) {
          x2 = desc2(advance(indices.data, b * bagLen, indices.dtype), e - b,
                     bagLen);
          args.push_back(&x2);
        } else {
          int64_t end = includeLast || e == numBags
                            ? n
                            : loadInt(offsets->data, offsets->dtype, e);
          x1 = desc1(indices.data, end);
          o1 = desc1(advance(offsets->data, b, offsets->dtype),
                     e - b + (includeLast ? 1 : 0));
          args.push_back(&x1);
          args.push_back(&o1);
        }
        if (psw) {
          if (twoD) {
            p2 = desc2(advance(psw->data, b * bagLen, psw->dtype), e - b,
                       bagLen);
            args.push_back(&p2);
          } else {
            p1 = desc1(psw->data, x1.size);
            args.push_back(&p1);
          }
        }
        Desc2 o = desc2(advance(out.data, b * dim, out.dtype), e - b, dim);
        args.push_back(&o);
        Desc2 m;
        if (maxIndices) {
          m = desc2(advance(maxIndices->data, b * dim, DType::i64), e - b, dim);
          args.push_back(&m);
        }
        calls(kernel, args);
      });
  return calls.finish();
}

//===----------------------------------------------------------------------===//
// Gradients
//===----------------------------------------------------------------------===//

namespace {

/// The whole-gradient multiplier of a profile (unit-scaling: sqrt(V / n)).
double profileGradScale(Profile profile, int64_t numEmbeddings, int64_t n) {
  if (profile != Profile::unit_scaling || n == 0)
    return 1.0;
  return std::sqrt(static_cast<double>(numEmbeddings) / static_cast<double>(n));
}

} // namespace

llvm::Error Engine::embeddingBackward(const Tensor &grad, const Tensor &indices,
                                      const Tensor &gradWeight,
                                      const EmbeddingOptions &options) {
  if (auto err = gpuReady())
    return err;
  if (auto err = checkWeight(gradWeight, "grad_weight"))
    return err;
  if (auto err = checkIndexTensor(indices, "indices"))
    return err;
  int64_t numEmbeddings = gradWeight.shape[0], dim = gradWeight.shape[1];
  std::vector<int64_t> gradShape = indices.shape;
  gradShape.push_back(dim);
  if (auto err = checkOutput(grad, "grad", gradShape, gradWeight.dtype))
    return err;
  if (auto err = checkGradientOptions(options.profile, options.scaleGradByFreq,
                                      options.sparse))
    return err;
  if (options.sparse)
    return fail("'sparse' is set: the sparse gradient is computed by "
                "embeddingSparseBackward");
  auto pad = normalizePadding(options.paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (auto err = checkIndices(indices, numEmbeddings))
    return err;
  int64_t n = indices.numel();
  if (numEmbeddings == 0 || dim == 0)
    return llvm::Error::success();

  if (auto err =
          checkGPUAlignment(target, dim, grad.dtype, {&grad, &gradWeight}))
    return err;
  KernelSpec spec;
  spec.op = OpKind::embedding_backward;
  setTarget(spec);
  spec.weight = gradWeight.dtype;
  spec.indices = indices.dtype;
  spec.dim = dim;
  spec.numEmbeddings = numEmbeddings;
  spec.paddingIdx = *pad;
  spec.scaleGradByFreq = options.scaleGradByFreq;
  spec.gradScale = profileGradScale(options.profile, numEmbeddings, n);
  spec.deterministic = options.deterministic && target != Target::host;
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  // Rows split over threads: each call scans every index but keeps, sorts
  // and writes only its own rows, so the result does not depend on the
  // thread count.
  KernelFn kernel = *fn;
  KernelCalls calls(gpu.get());
  forChunks(
      target, *pool, numEmbeddings, kMinGradRowsPerChunk,
      [&](int64_t r0, int64_t r1) {
        int64_t window[2] = {r0, r1 - r0}; // host memory, read on the host
        Desc2 g = desc2(grad.data, n, dim);
        Desc1 x = desc1(indices.data, n);
        Desc1 w = desc1(window, 2);
        Desc2 gw = desc2(advance(gradWeight.data, r0 * dim, gradWeight.dtype),
                         r1 - r0, dim);
        calls(kernel, {&g, &x, &w, &gw});
      });
  return calls.finish();
}

llvm::Error
Engine::embeddingBagBackward(const Tensor &grad, const Tensor &indices,
                             const Tensor *offsets, const Tensor &gradWeight,
                             const EmbeddingBagOptions &options,
                             const Tensor *psw, const Tensor *maxIndices) {
  if (auto err = gpuReady())
    return err;
  if (auto err = checkWeight(gradWeight, "grad_weight"))
    return err;
  if (auto err = checkIndexTensor(indices, "indices"))
    return err;
  int64_t numEmbeddings = gradWeight.shape[0], dim = gradWeight.shape[1];
  auto numBags = bagInputs(indices, offsets, options, psw, gradWeight.dtype);
  if (!numBags)
    return numBags.takeError();
  if (auto err = checkOutput(grad, "grad", {*numBags, dim}, gradWeight.dtype))
    return err;
  bool max = options.mode == BagMode::max;
  if (max && !maxIndices)
    return fail("the gradient of mode 'max' needs 'max_indices'");
  if (!max && maxIndices)
    return fail(std::string("'max_indices' is only used with mode 'max', "
                            "got '") +
                bagModeName(options.mode) + "'");
  if (max) {
    if (auto err = checkOutput(*maxIndices, "max_indices", {*numBags, dim},
                               DType::i64))
      return err;
    // Each entry selects the row its column adds to: -1 or a row of gW.
    Tensor copy;
    std::vector<char> storage;
    auto values = readable(maxIndices, copy, storage);
    if (!values)
      return values.takeError();
    const int64_t *m =
        *values ? static_cast<const int64_t *>((*values)->data) : nullptr;
    for (int64_t i = 0; m && i < *numBags * dim; ++i)
      if (m[i] < -1 || m[i] >= numEmbeddings)
        return failIndex("max_indices value " + std::to_string(m[i]) +
                         " at position " + std::to_string(i) +
                         " is out of range [-1, " +
                         std::to_string(numEmbeddings) + ")");
  }
  if (options.sparse)
    return fail("'sparse' is set: the sparse gradient is computed by "
                "embeddingBagSparseBackward");
  auto pad = normalizePadding(options.paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (auto err = checkIndices(indices, numEmbeddings))
    return err;
  int64_t n = indices.numel();
  if (numEmbeddings == 0 || dim == 0)
    return llvm::Error::success();
  if (*numBags == 0) // no bag, no contribution (e.g. empty offsets)
    return zero(gradWeight);

  bool twoD = indices.rank() == 2;
  if (auto err =
          checkGPUAlignment(target, dim, grad.dtype, {&grad, &gradWeight}))
    return err;
  KernelSpec spec;
  spec.op = OpKind::embedding_bag_backward;
  setTarget(spec);
  spec.weight = gradWeight.dtype;
  spec.indices = indices.dtype;
  spec.offsets = offsets ? offsets->dtype : DType::i64;
  spec.dim = dim;
  spec.mode = options.mode;
  spec.twoD = twoD;
  spec.perSampleWeights = psw != nullptr;
  spec.includeLastOffset = options.includeLastOffset && !twoD;
  spec.maxIndices = max;
  spec.numEmbeddings = numEmbeddings;
  spec.paddingIdx = max ? -1 : *pad; // max_indices never name padding
  spec.scaleGradByFreq = options.scaleGradByFreq;
  spec.gradScale = profileGradScale(options.profile, numEmbeddings, n);
  spec.deterministic = options.deterministic && target != Target::host;
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  KernelFn kernel = *fn;
  // Rows split over threads, as in embeddingBackward.
  KernelCalls calls(gpu.get());
  forChunks(target, *pool, numEmbeddings, kMinGradRowsPerChunk,
            [&](int64_t r0, int64_t r1) {
              int64_t window[2] = {r0, r1 - r0};
              Desc2 g = desc2(grad.data, *numBags, dim);
              std::vector<void *> args{&g};
              BagArgs bagArgs;
              bagArgs.append(args, indices, offsets, psw);
              Desc2 mi;
              if (max) {
                mi = desc2(maxIndices->data, *numBags, dim);
                args.push_back(&mi);
              }
              Desc1 w = desc1(window, 2);
              args.push_back(&w);
              Desc2 gw =
                  desc2(advance(gradWeight.data, r0 * dim, gradWeight.dtype),
                        r1 - r0, dim);
              args.push_back(&gw);
              calls(kernel, args);
            });
  return calls.finish();
}

llvm::Error Engine::embeddingBagPerSampleWeightsBackward(
    const Tensor &grad, const Tensor &weight, const Tensor &indices,
    const Tensor *offsets, const Tensor &gradPsw,
    const EmbeddingBagOptions &options) {
  if (auto err = gpuReady())
    return err;
  if (auto err = checkWeight(weight))
    return err;
  if (auto err = checkIndexTensor(indices, "indices"))
    return err;
  if (options.mode != BagMode::sum)
    return fail(std::string("the per_sample_weights gradient needs mode "
                            "'sum', got '") +
                bagModeName(options.mode) + "'");
  int64_t numEmbeddings = weight.shape[0], dim = weight.shape[1];
  auto numBags = bagInputs(indices, offsets, options, nullptr, weight.dtype);
  if (!numBags)
    return numBags.takeError();
  if (auto err = checkOutput(grad, "grad", {*numBags, dim}, weight.dtype))
    return err;
  if (auto err = checkOutput(gradPsw, "grad_per_sample_weights", indices.shape,
                             weight.dtype))
    return err;
  auto pad = normalizePadding(options.paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  if (auto err = checkIndices(indices, numEmbeddings))
    return err;
  int64_t n = indices.numel();
  if (n == 0)
    return llvm::Error::success();
  if (dim == 0 || *numBags == 0) // every entry's gradient is 0
    return zero(gradPsw);
  bool twoD = indices.rank() == 2;
  bool includeLast = options.includeLastOffset && !twoD;
  if (auto err = checkGPUAlignment(target, dim, weight.dtype, {&weight, &grad}))
    return err;
  KernelSpec spec;
  spec.op = OpKind::embedding_bag_psw_backward;
  setTarget(spec);
  spec.weight = weight.dtype;
  spec.indices = indices.dtype;
  spec.offsets = offsets ? offsets->dtype : DType::i64;
  spec.dim = dim;
  spec.twoD = twoD;
  spec.includeLastOffset = includeLast;
  spec.paddingIdx = *pad;
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  KernelFn kernel = *fn;
  int64_t bagLen = twoD ? indices.shape[1] : 0;
  KernelCalls calls(gpu.get());
  // 2-D: bags split over threads through exact views. 1-D: one call, since
  // a view of the offsets would leave the entries before its first bag
  // outside every bag of the kernel's (whole-tensor) result.
  auto split = [&](int64_t count, int64_t grain, auto &&fn) {
    if (twoD)
      forChunks(target, *pool, count, grain, fn);
    else
      fn(0, count);
  };
  int64_t bagBytes = (indices.numel() / std::max<int64_t>(*numBags, 1) + 1) *
                     dim * static_cast<int64_t>(dtypeSize(weight.dtype));
  split(*numBags, grainFor(bagBytes), [&](int64_t b, int64_t e) {
    Desc2 g = desc2(advance(grad.data, b * dim, grad.dtype), e - b, dim);
    Desc2 w = desc2(weight.data, numEmbeddings, dim);
    Desc2 x2, p2;
    Desc1 x1, o1, p1;
    std::vector<void *> args{&g, &w};
    if (twoD) {
      x2 = desc2(advance(indices.data, b * bagLen, indices.dtype), e - b,
                 bagLen);
      p2 = desc2(advance(gradPsw.data, b * bagLen, gradPsw.dtype), e - b,
                 bagLen);
      args.push_back(&x2);
      args.push_back(&p2);
    } else {
      int64_t end = includeLast || e == *numBags
                        ? n
                        : loadInt(offsets->data, offsets->dtype, e);
      x1 = desc1(indices.data, end);
      o1 = desc1(advance(offsets->data, b, offsets->dtype),
                 e - b + (includeLast ? 1 : 0));
      p1 = desc1(gradPsw.data, end);
      args.push_back(&x1);
      args.push_back(&o1);
      args.push_back(&p1);
    }
    calls(kernel, args);
  });
  return calls.finish();
}

//===----------------------------------------------------------------------===//
// Sparse gradients
//===----------------------------------------------------------------------===//

namespace {

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

} // namespace

llvm::Expected<int64_t> Engine::embeddingSparseBackward(
    const Tensor &grad, const Tensor &indices, int64_t numEmbeddings,
    const Tensor &rows, const Tensor &values, const EmbeddingOptions &options,
    bool coalesced) {
  if (auto err = gpuReady())
    return std::move(err);
  if (auto err = checkIndexTensor(indices, "indices"))
    return std::move(err);
  if (auto err = checkView(grad, "grad"))
    return std::move(err);
  if (grad.rank() != indices.rank() + 1 || !isFloat(grad.dtype))
    return fail("'grad' must have the shape of 'indices' followed by D and a "
                "float dtype, got " +
                    describe(grad),
                isFloat(grad.dtype) ? ErrorKind::invalid_argument
                                    : ErrorKind::wrong_dtype);
  int64_t dim = grad.shape.back();
  std::vector<int64_t> gradShape = indices.shape;
  gradShape.push_back(dim);
  if (auto err = checkOutput(grad, "grad", gradShape, grad.dtype))
    return std::move(err);
  if (options.scaleGradByFreq)
    return fail("'scale_grad_by_freq' is not supported with sparse gradients");
  if (auto err = checkGradientOptions(options.profile, false, /*sparse=*/true))
    return std::move(err);
  if (numEmbeddings < 0)
    return fail("'num_embeddings' must be non-negative, got " +
                std::to_string(numEmbeddings));
  auto pad = normalizePadding(options.paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  int64_t n = indices.numel();
  int64_t padRow = *pad;
  auto needed = sparseRowsNeeded(indices, numEmbeddings, padRow);
  if (!needed)
    return needed.takeError();
  if (dim == 0)
    return fail("sparse gradients need D > 0");
  if (auto err = checkGPUAlignment(target, dim, grad.dtype, {&grad}))
    return std::move(err);
  if (auto err = checkSparseOutputs(rows, values, dim, grad.dtype, *needed))
    return std::move(err);
  if (*needed == 0)
    return 0;
  KernelSpec spec;
  setTarget(spec);
  spec.op = OpKind::embedding_sparse_backward;
  spec.weight = grad.dtype;
  spec.indices = indices.dtype;
  spec.dim = dim;
  spec.numEmbeddings = numEmbeddings;
  spec.paddingIdx = padRow;
  spec.coalesced = coalesced;
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  int64_t count = 0;
  Desc2 g = desc2(grad.data, n, dim);
  Desc1 x = desc1(indices.data, n);
  // Host, uncoalesced: exactly `needed` rows, written in place; coalesced
  // and GPU kernels: the capacity, the result at its front.
  int64_t capacity =
      coalesced || target != Target::host ? rows.shape[0] : *needed;
  Desc1 r = desc1(rows.data, capacity);
  Desc2 v = desc2(values.data, capacity, dim);
  Desc1 c = desc1(&count, 1); // host memory, on every target
  KernelCalls calls(gpu.get());
  calls(*fn, {&g, &x, &r, &v, &c});
  if (auto err = calls.finish())
    return std::move(err);
  return count;
}

llvm::Expected<int64_t> Engine::embeddingBagSparseBackward(
    const Tensor &grad, const Tensor &indices, const Tensor *offsets,
    int64_t numEmbeddings, const Tensor &rows, const Tensor &values,
    const EmbeddingBagOptions &options, const Tensor *psw, bool coalesced) {
  if (auto err = gpuReady())
    return std::move(err);
  if (auto err = checkIndexTensor(indices, "indices"))
    return std::move(err);
  if (auto err = checkView(grad, "grad"))
    return std::move(err);
  if (grad.rank() != 2 || !isFloat(grad.dtype))
    return fail("'grad' must be a 2-D tensor of f32, f64, f16 or bf16, got " +
                    describe(grad),
                isFloat(grad.dtype) ? ErrorKind::invalid_argument
                                    : ErrorKind::wrong_dtype);
  int64_t dim = grad.shape[1];
  if (options.mode == BagMode::max)
    return fail("sparse gradients are not supported with mode 'max'");
  if (options.scaleGradByFreq)
    return fail("'scale_grad_by_freq' is not supported with sparse gradients");
  if (auto err = checkGradientOptions(options.profile, false, /*sparse=*/true))
    return std::move(err);
  EmbeddingBagOptions checked = options;
  checked.sparse = false; // checked here, not as a forward option
  auto numBags = bagInputs(indices, offsets, checked, psw, grad.dtype);
  if (!numBags)
    return numBags.takeError();
  if (auto err = checkOutput(grad, "grad", {*numBags, dim}, grad.dtype))
    return std::move(err);
  if (numEmbeddings < 0)
    return fail("'num_embeddings' must be non-negative, got " +
                std::to_string(numEmbeddings));
  auto pad = normalizePadding(options.paddingIdx, numEmbeddings);
  if (!pad)
    return pad.takeError();
  int64_t padRow = *pad;
  auto needed = sparseRowsNeeded(indices, numEmbeddings, padRow);
  if (!needed)
    return needed.takeError();
  if (dim == 0)
    return fail("sparse gradients need D > 0");
  if (auto err = checkGPUAlignment(target, dim, grad.dtype, {&grad}))
    return std::move(err);
  if (auto err = checkSparseOutputs(rows, values, dim, grad.dtype, *needed))
    return std::move(err);
  if (*needed == 0 || *numBags == 0)
    return 0;
  bool twoD = indices.rank() == 2;
  KernelSpec spec;
  setTarget(spec);
  spec.op = OpKind::embedding_bag_sparse_backward;
  spec.weight = grad.dtype;
  spec.indices = indices.dtype;
  spec.offsets = offsets ? offsets->dtype : DType::i64;
  spec.dim = dim;
  spec.mode = options.mode;
  spec.twoD = twoD;
  spec.perSampleWeights = psw != nullptr;
  spec.includeLastOffset = options.includeLastOffset && !twoD;
  spec.numEmbeddings = numEmbeddings;
  spec.paddingIdx = padRow;
  spec.coalesced = coalesced;
  auto fn = kernelCache->get(spec);
  if (!fn)
    return fn.takeError();
  int64_t count = 0;
  Desc2 g = desc2(grad.data, *numBags, dim);
  std::vector<void *> args{&g};
  BagArgs bagArgs;
  bagArgs.append(args, indices, offsets, psw);
  int64_t capacity =
      coalesced || target != Target::host ? rows.shape[0] : *needed;
  Desc1 r = desc1(rows.data, capacity);
  Desc2 v = desc2(values.data, capacity, dim);
  Desc1 c = desc1(&count, 1);
  args.push_back(&r);
  args.push_back(&v);
  args.push_back(&c);
  KernelCalls calls(gpu.get());
  calls(*fn, args);
  if (auto err = calls.finish())
    return std::move(err);
  return count;
}

} // namespace emb
