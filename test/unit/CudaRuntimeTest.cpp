//===- CudaRuntimeTest.cpp - the CUDA runtime shim, with and without a GPU ===//
//
// LaunchPlan: the Engine's nvptx target against a fake driver API that
// records what the generated host code asks of it (module loads, launches,
// scratch allocations, copies) and whose "device memory" is host memory:
// the launch plan, the caches, the stream, index validation and error
// paths are tested on machines without a GPU. The kernels themselves are
// tested by the emulated differential suites and ptxas (NVPTXTests).
//
// NoDriver: run by CTest with $EMB_MLIR_LIBCUDA naming a missing library or
// the toolkit's stub, and $EMB_TEST_DRIVER_ERROR the expected message.
//
// GPUDevice: the nvptx kernels on a real device against the host kernels;
// skipped (with the reason) where there is no driver or no device.
//
//===----------------------------------------------------------------------===//

#include "emb/Runtime/Cuda.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"

#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <string>

using namespace emb;
using cuda::DevicePtr;
using cuda::Result;

namespace {

//===----------------------------------------------------------------------===//
// The fake driver
//===----------------------------------------------------------------------===//

constexpr Result kLaunchFailed = 719; // CUDA_ERROR_LAUNCH_FAILED

struct Launch {
  std::string kernel;
  unsigned grid[3], block[3];
  void *stream;
};

struct Fake {
  int major = 9, minor = 0;
  void *current = reinterpret_cast<void *>(0xC0);
  int primaryRetains = 0;
  std::vector<std::string> images; // "cubin" or "ptx" per module load
  std::deque<std::string> functions;
  std::vector<Launch> launches;
  Result launchResult = 0;
  int64_t kernelParams = 0; // what cuFuncGetParamInfo reports, when set
  std::map<DevicePtr, size_t> live;
  std::vector<size_t> allocs;
  std::vector<void *> allocStreams, freeStreams;
  int frees = 0, copies = 0;   // copies: the validation's, to the host
  std::vector<size_t> memcpys; // the generated code's (bytes)
  std::vector<std::pair<size_t, void *>> memsets;
};
Fake *fake = nullptr;

Result fInit(unsigned) { return 0; }
Result fCount(int *n) {
  *n = 1;
  return 0;
}
Result fGet(int *d, int) {
  *d = 0;
  return 0;
}
Result fAttr(int *v, int attribute, int) {
  // 75, 76: the compute capability; 115: memory pools (supported).
  *v = attribute == 75 ? fake->major : attribute == 76 ? fake->minor : 1;
  return 0;
}
Result fName(char *name, int length, int) {
  std::snprintf(name, length, "fake");
  return 0;
}
Result fRetain(void **ctx, int) {
  ++fake->primaryRetains;
  *ctx = reinterpret_cast<void *>(0xC1);
  return 0;
}
Result fGetCurrent(void **ctx) {
  *ctx = fake->current;
  return 0;
}
Result fSetCurrent(void *ctx) {
  fake->current = ctx;
  return 0;
}
Result fCtxDevice(int *d) {
  *d = 0;
  return 0;
}
Result fLoad(void **module, const void *image) {
  const char *p = static_cast<const char *>(image);
  bool cubin = std::memcmp(p,
                           "\x7f"
                           "ELF",
                           4) == 0;
  bool ptx = !cubin && std::strstr(p, ".version") != nullptr;
  fake->images.push_back(cubin ? "cubin" : ptx ? "ptx" : "?");
  *module = reinterpret_cast<void *>(fake->images.size());
  return 0;
}
Result fFunction(void **fn, void *, const char *name) {
  fake->functions.push_back(name);
  *fn = &fake->functions.back();
  return 0;
}
Result fLaunch(void *fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
               unsigned by, unsigned bz, unsigned, void *stream, void **,
               void **) {
  if (fake->launchResult)
    return fake->launchResult;
  fake->launches.push_back(
      {*static_cast<std::string *>(fn), {gx, gy, gz}, {bx, by, bz}, stream});
  return 0;
}
Result fParamInfo(void *, size_t index, size_t *offset, size_t *size) {
  *offset = index * 8;
  *size = 8;
  return static_cast<int64_t>(index) < fake->kernelParams ? 0 : 1;
}
Result fAllocAsync(DevicePtr *p, size_t bytes, void *stream) {
  // Zeroed, so that a size read back from "device memory" is 0.
  *p = reinterpret_cast<uintptr_t>(std::calloc(bytes, 1));
  fake->live[*p] = bytes;
  fake->allocs.push_back(bytes);
  fake->allocStreams.push_back(stream);
  return 0;
}
Result fFreeAsync(DevicePtr p, void *stream) {
  fake->live.erase(p);
  std::free(reinterpret_cast<void *>(p));
  ++fake->frees;
  fake->freeStreams.push_back(stream);
  return 0;
}
Result fDtoHAsync(void *dst, DevicePtr src, size_t bytes, void *) {
  ++fake->copies;
  std::memcpy(dst, reinterpret_cast<void *>(src), bytes);
  return 0;
}
Result fMemcpyAsync(DevicePtr dst, DevicePtr src, size_t bytes, void *) {
  fake->memcpys.push_back(bytes);
  std::memcpy(reinterpret_cast<void *>(dst), reinterpret_cast<void *>(src),
              bytes);
  return 0;
}
Result fMemset(DevicePtr dst, unsigned char v, size_t bytes, void *stream) {
  std::memset(reinterpret_cast<void *>(dst), v, bytes);
  fake->memsets.push_back({bytes, stream});
  return 0;
}
Result fSync(void *) { return 0; }
Result fErrorName(Result r, const char **name) {
  *name = r == kLaunchFailed ? "CUDA_ERROR_LAUNCH_FAILED" : "CUDA_ERROR_?";
  return 0;
}
Result fErrorString(Result, const char **text) {
  *text = "fake";
  return 0;
}

cuda::DriverAPI fakeAPI() {
  cuda::DriverAPI a{};
  a.init = fInit;
  a.deviceGetCount = fCount;
  a.deviceGet = fGet;
  a.deviceGetAttribute = fAttr;
  a.deviceGetName = fName;
  a.primaryCtxRetain = fRetain;
  a.ctxGetCurrent = fGetCurrent;
  a.ctxSetCurrent = fSetCurrent;
  a.ctxGetDevice = fCtxDevice;
  a.moduleLoadData = fLoad;
  a.moduleGetFunction = fFunction;
  a.launchKernel = fLaunch;
  a.memAllocAsync = fAllocAsync;
  a.memFreeAsync = fFreeAsync;
  a.memcpyDtoHAsync = fDtoHAsync;
  a.memcpyAsync = fMemcpyAsync;
  a.memsetD8Async = fMemset;
  a.streamSynchronize = fSync;
  a.getErrorName = fErrorName;
  a.getErrorString = fErrorString;
  return a;
}

void *const kStream = reinterpret_cast<void *>(0x5);

class LaunchPlan : public ::testing::Test {
protected:
  void SetUp() override {
    state = Fake();
    fake = &state;
    api = fakeAPI();
  }
  void TearDown() override { fake = nullptr; }

  Engine make(bool validate = true, std::string chip = "") {
    EngineOptions o;
    o.target = Target::nvptx;
    o.cudaDriver = &api;
    o.stream = kStream;
    o.validateIndices = validate;
    o.chip = std::move(chip);
    o.cache.useDiskCache = false;
    return Engine(o);
  }

  Fake state;
  cuda::DriverAPI api;
};

HostTensor indicesOf(int64_t n, int64_t v) {
  HostTensor x(DType::i64, {n});
  for (int64_t i = 0; i < n; ++i)
    x.set(i, static_cast<double>((i * 7) % v));
  return x;
}

TEST_F(LaunchPlan, LookupIsOneLaunchOnTheCallersStream) {
  Engine e = make();
  HostTensor w(DType::f32, {100, 128}), x = indicesOf(1000, 100),
                                        out(DType::f32, {1000, 128});
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
  ASSERT_EQ(state.launches.size(), 1u);
  const Launch &l = state.launches[0];
  // D = 128 f32: a warp of float4 per row, 8 rows per 256-thread block.
  EXPECT_EQ(l.grid[0], 125u);
  EXPECT_EQ(l.grid[1], 1u);
  EXPECT_EQ(l.block[0], 256u);
  EXPECT_EQ(l.stream, kStream);
  ASSERT_EQ(state.images.size(), 1u);
  EXPECT_EQ(state.images[0], havePtxas() ? "cubin" : "ptx");
  EXPECT_EQ(state.copies, 1); // the indices, for validation

  // The module and function stay loaded: the next call only launches.
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
  EXPECT_EQ(state.launches.size(), 2u);
  EXPECT_EQ(state.images.size(), 1u);
  EXPECT_EQ(state.functions.size(), 1u);
  EXPECT_TRUE(state.allocs.empty());
}

TEST_F(LaunchPlan, HalfGradientScratchIsStreamOrderedAndFreed) {
  Engine e = make();
  const int64_t V = 1000, D = 64, n = 300;
  HostTensor g(DType::f16, {n, D}), x = indicesOf(n, V), gw(DType::f16, {V, D});
  EmbeddingOptions o;
  o.scaleGradByFreq = true;
  ASSERT_FALSE(
      static_cast<bool>(e.embeddingBackward(g.view, x.view, gw.view, o)));
  // zeros, zero counts, counts, the atomic scatter, the f16 rounding.
  EXPECT_EQ(state.launches.size(), 5u);
  std::vector<size_t> want{V * D * 4, V * 8}; // f32 accumulators, i64 counts
  EXPECT_EQ(state.allocs, want);
  EXPECT_EQ(state.frees, 2);
  EXPECT_TRUE(state.live.empty());
  for (void *s : state.allocStreams)
    EXPECT_EQ(s, kStream);
  for (void *s : state.freeStreams)
    EXPECT_EQ(s, kStream);
  for (const Launch &l : state.launches)
    EXPECT_EQ(l.stream, kStream);
}

TEST_F(LaunchPlan, DeterministicGradientLoopsOverRadixPasses) {
  Engine e = make();
  const int64_t V = 1000, D = 32, n = 600;
  HostTensor g(DType::f32, {n, D}), x = indicesOf(n, V), gw(DType::f32, {V, D});
  EmbeddingOptions o;
  o.deterministic = true;
  ASSERT_FALSE(
      static_cast<bool>(e.embeddingBackward(g.view, x.view, gw.view, o)));
  // Keys up to 1000: two 8-bit passes of five launches (histogram, the
  // scan's three, scatter) between the keys and the ordered sums.
  ASSERT_EQ(state.launches.size(), 12u);
  EXPECT_EQ(state.images.size(), 7u); // each kernel loaded once
  // Four key / position buffers of n, the histogram (3 chunks x 256
  // digits) and the scan's block sums, once per pass.
  std::vector<size_t> want{n * 8,       n * 8, n * 8, n * 8,
                           3 * 256 * 8, 3 * 8, 3 * 8};
  EXPECT_EQ(state.allocs, want);
  EXPECT_TRUE(state.live.empty());
}

// A launch whose parameter count is not the kernel's is refused (on
// drivers that report it): a lookup passes the indices (5 fields), the
// table and the output (7 fields each) = 19.
TEST_F(LaunchPlan, ParameterCountMismatchIsAnError) {
  HostTensor w(DType::f32, {100, 128}), x = indicesOf(10, 100),
                                        out(DType::f32, {10, 128});
  api.funcGetParamInfo = fParamInfo;
  state.kernelParams = 19;
  {
    Engine e = make();
    ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
    EXPECT_EQ(state.launches.size(), 1u);
  }
  state = Fake();
  state.kernelParams = 3;
  Engine e = make();
  llvm::Error err = e.embedding(x.view, w.view, out.view);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err))
                .find("takes 3 parameters, its launch passes 19"),
            std::string::npos);
  EXPECT_TRUE(state.launches.empty());
}

TEST_F(LaunchPlan, MisalignedSparseGradientIsRejected) {
  Engine e = make();
  HostTensor g(DType::f32, {5, 16}),
      x = indicesOf(4, 10), rows(DType::i64, {4}), values(DType::f32, {4, 16});
  Tensor shifted = g.view; // one float into the buffer: rows misaligned
  shifted.data = static_cast<float *>(g.view.data) + 1;
  shifted.shape = {4, 16};
  auto m =
      e.embeddingSparseBackward(shifted, x.view, 10, rows.view, values.view);
  ASSERT_FALSE(static_cast<bool>(m));
  EXPECT_NE(llvm::toString(m.takeError()).find("16-byte aligned"),
            std::string::npos);
  EXPECT_TRUE(state.launches.empty());
}

TEST_F(LaunchPlan, BadIndicesAreRejectedBeforeAnyLaunch) {
  Engine e = make();
  HostTensor w(DType::f32, {10, 16}), x = indicesOf(50, 10),
                                      out(DType::f32, {50, 16});
  x.set(31, 10);
  llvm::Error err = e.embedding(x.view, w.view, out.view);
  ASSERT_TRUE(static_cast<bool>(err));
  std::error_code code = llvm::errorToErrorCode(std::move(err));
  EXPECT_EQ(errorKind(code), ErrorKind::index_out_of_range);
  EXPECT_TRUE(state.launches.empty());

  // Bad offsets too: their values are copied and checked.
  HostTensor offsets(DType::i64, {3});
  offsets.set(1, 20);
  offsets.set(2, 10);
  x.set(31, 3);
  HostTensor pooled(DType::f32, {3, 16});
  EmbeddingBagOptions bo;
  bo.mode = BagMode::sum;
  llvm::Error bagErr =
      e.embeddingBag(x.view, w.view, &offsets.view, pooled.view, bo);
  ASSERT_TRUE(static_cast<bool>(bagErr));
  EXPECT_NE(llvm::toString(std::move(bagErr)).find("non-decreasing"),
            std::string::npos);
  EXPECT_TRUE(state.launches.empty());
}

// max_norm renormalises with the indices the lookup validated: one copy.
TEST_F(LaunchPlan, MaxNormReadsTheIndicesOnce) {
  Engine e = make();
  HostTensor w(DType::f32, {10, 16}), x = indicesOf(50, 10),
                                      out(DType::f32, {50, 16});
  EmbeddingOptions o;
  o.maxNorm = 1.0;
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view, o)));
  EXPECT_EQ(state.copies, 1);
  EXPECT_EQ(state.launches.size(), 3u); // renorm's flags and rows, the lookup
}

TEST_F(LaunchPlan, TrustedIndicesAreNotCopied) {
  Engine e = make(/*validate=*/false);
  HostTensor w(DType::f32, {10, 16}), x = indicesOf(50, 10),
                                      out(DType::f32, {50, 16});
  x.set(31, 10); // not checked: the caller vouched for the indices
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
  EXPECT_EQ(state.copies, 0);
  EXPECT_EQ(state.launches.size(), 1u);
}

// Many tables are one launch: each table's blocks laid out for its D
// (docs/semantics.md §6.3), every table's columns stored into `out` by the
// kernel (no scratch, no copies but the validation's reads).
TEST_F(LaunchPlan, ManyTablesAreOneLaunch) {
  const int64_t B = 100, L = 2;
  std::vector<TableOptions> tables(3);
  tables[0] = {1000, 64, BagMode::sum, std::nullopt, std::nullopt};
  tables[1] = {50, 8, BagMode::mean, 0, std::nullopt};
  tables[2] = {20, 16, BagMode::none, std::nullopt, std::nullopt};
  int64_t elements = 1000 * 64 + 50 * 8 + 20 * 16, total = 64 + 8 + L * 16;
  HostTensor w(DType::f32, {elements}), x(DType::i64, {3 * B * L}),
      offsets(DType::i64, {3 * B + 1}), out(DType::f32, {B, total});
  for (int64_t i = 0; i < 3 * B * L; ++i)
    x.set(i, static_cast<double>(i % 20));
  for (int64_t i = 0; i <= 3 * B; ++i)
    offsets.set(i, static_cast<double>(i * L));
  Engine e = make();
  ASSERT_FALSE(static_cast<bool>(
      e.embeddingBagTables(x.view, w.view, tables, offsets.view, out.view)));
  ASSERT_EQ(state.launches.size(), 1u);
  // f32 vectors of 4: D = 64 is 16 threads a bag, 16 bags a block (7
  // blocks); D = 8 two threads, 128 bags (1); the sequence table's 200
  // entries of D = 16 four threads each, 64 a block (4).
  EXPECT_EQ(state.launches[0].grid[0], 7u + 1u + 4u);
  EXPECT_EQ(state.launches[0].block[0], 256u);
  EXPECT_TRUE(state.allocs.empty());
  EXPECT_TRUE(state.memcpys.empty());
  EXPECT_EQ(state.copies, 2); // the indices and the offsets, once each

  // Trusted device offsets are not read: a sequence table's length must
  // then be given.
  Engine trusted = make(/*validate=*/false);
  state.copies = 0;
  llvm::Error err = trusted.embeddingBagTables(x.view, w.view, tables,
                                               offsets.view, out.view);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err))
                .find("its sequence length must be "
                      "given"),
            std::string::npos);
  tables[2].sequenceLength = -1;
  err = trusted.embeddingBagTables(x.view, w.view, tables, offsets.view,
                                   out.view);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_NE(llvm::toString(std::move(err))
                .find("table 2: negative sequence "
                      "length -1"),
            std::string::npos);
  tables[2].sequenceLength = L;
  ASSERT_FALSE(static_cast<bool>(trusted.embeddingBagTables(
      x.view, w.view, tables, offsets.view, out.view)));
  EXPECT_EQ(state.copies, 0);
  EXPECT_EQ(state.launches.size(), 2u);
}

TEST_F(LaunchPlan, LaunchFailureIsReportedAndScratchStillFreed) {
  Engine e = make();
  state.launchResult = kLaunchFailed;
  const int64_t V = 50, D = 8;
  HostTensor g(DType::bf16, {20, D}), x = indicesOf(20, V),
                                      gw(DType::bf16, {V, D});
  llvm::Error err = e.embeddingBackward(g.view, x.view, gw.view);
  ASSERT_TRUE(static_cast<bool>(err));
  std::string message = llvm::toString(std::move(err));
  EXPECT_NE(message.find("cuLaunchKernel failed: CUDA_ERROR_LAUNCH_FAILED"),
            std::string::npos)
      << message;
  EXPECT_EQ(state.allocs.size(), 1u); // the f32 accumulators
  EXPECT_EQ(state.frees, 1);
  EXPECT_TRUE(state.live.empty());
}

TEST_F(LaunchPlan, ChipFollowsTheCurrentDeviceUnlessSet) {
  Engine e = make();
  HostTensor w(DType::f32, {10, 16}), x = indicesOf(8, 10),
                                      out(DType::f32, {8, 16});
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
  uint64_t compiles = e.cache().stats().compiles;
  state.major = 8; // another device: sm_80, another kernel
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
  EXPECT_EQ(e.cache().stats().compiles, compiles + 1);

  Engine pinned = make(true, "sm_90");
  ASSERT_FALSE(static_cast<bool>(pinned.embedding(x.view, w.view, out.view)));
  ASSERT_FALSE(static_cast<bool>(pinned.embedding(x.view, w.view, out.view)));
  EXPECT_EQ(pinned.cache().stats().compiles, 1u);
}

TEST_F(LaunchPlan, WithoutAContextThePrimaryContextIsUsed) {
  state.current = nullptr;
  Engine e = make();
  HostTensor w(DType::f32, {10, 16}), x = indicesOf(8, 10),
                                      out(DType::f32, {8, 16});
  ASSERT_FALSE(static_cast<bool>(e.embedding(x.view, w.view, out.view)));
  EXPECT_EQ(state.primaryRetains, 1);
  EXPECT_EQ(state.current, reinterpret_cast<void *>(0xC1));
  EXPECT_EQ(state.launches.size(), 1u);
}

TEST_F(LaunchPlan, NoBagsZeroTheGradientOnTheStream) {
  Engine e = make();
  HostTensor g(DType::f32, {0, 16}), x(DType::i64, {0}),
      offsets(DType::i64, {0}), gw(DType::f32, {10, 16});
  gw.set(3, 1.0);
  EmbeddingBagOptions o;
  o.mode = BagMode::sum;
  ASSERT_FALSE(static_cast<bool>(
      e.embeddingBagBackward(g.view, x.view, &offsets.view, gw.view, o)));
  ASSERT_EQ(state.memsets.size(), 1u);
  EXPECT_EQ(state.memsets[0].first, 10u * 16 * 4);
  EXPECT_EQ(state.memsets[0].second, kStream);
  EXPECT_EQ(gw.at(3), 0.0);
}

TEST_F(LaunchPlan, SparseGradientReadsItsSizeBack) {
  Engine e = make();
  const int64_t n = 300, D = 16;
  HostTensor g(DType::f32, {n, D}), x = indicesOf(n, 10), rows(DType::i64, {n}),
                                    values(DType::f32, {n, D});
  EmbeddingOptions o;
  o.paddingIdx = 3;
  auto m =
      e.embeddingSparseBackward(g.view, x.view, 10, rows.view, values.view, o);
  ASSERT_TRUE(static_cast<bool>(m)) << llvm::toString(m.takeError());
  // Nothing ran on the fake device: the live entries it "counted" are 0.
  EXPECT_EQ(*m, 0);
  // The chunk counts, the scan's three launches, the writes, the values.
  EXPECT_EQ(state.launches.size(), 6u);
  // The size, read back once (the empty results copy nothing).
  std::vector<size_t> want{8};
  EXPECT_EQ(state.memcpys, want);
  // The indices, copied once: validated, and their non-padding positions
  // counted (the rows the caller's buffers must hold).
  EXPECT_EQ(state.copies, 1);
  EXPECT_TRUE(state.live.empty());
}

//===----------------------------------------------------------------------===//
// No driver: a clear error at the call, not at load time
//===----------------------------------------------------------------------===//

TEST(NoDriver, IsAnErrorAtTheCall) {
  const char *expected = std::getenv("EMB_TEST_DRIVER_ERROR");
  if (!expected)
    GTEST_SKIP() << "run by CTest with EMB_MLIR_LIBCUDA and "
                    "EMB_TEST_DRIVER_ERROR set";
  EngineOptions o;
  o.target = Target::nvptx;
  o.cache.useDiskCache = false;
  Engine e(o); // constructing needs no driver
  HostTensor w(DType::f32, {10, 16}), x = indicesOf(8, 10),
                                      out(DType::f32, {8, 16});
  for (int attempt = 0; attempt < 2; ++attempt) { // and stays an error
    llvm::Error err = e.embedding(x.view, w.view, out.view);
    ASSERT_TRUE(static_cast<bool>(err));
    std::string message = llvm::toString(std::move(err));
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  auto device = cuda::Device::open();
  ASSERT_FALSE(static_cast<bool>(device));
  EXPECT_NE(llvm::toString(device.takeError()).find(expected),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// A real device, when there is one
//===----------------------------------------------------------------------===//

class GPUDevice : public ::testing::Test {
protected:
  void SetUp() override {
    auto opened = cuda::Device::open();
    if (!opened)
      GTEST_SKIP() << "no CUDA device: " << llvm::toString(opened.takeError());
    device = std::move(*opened);
  }

  /// A device copy of `t`, freed with the test.
  Tensor upload(const HostTensor &t) {
    auto p = device->alloc(std::max<size_t>(t.size(), 16));
    EXPECT_TRUE(static_cast<bool>(p));
    if (!p) {
      llvm::consumeError(p.takeError());
      return t.view;
    }
    buffers.push_back(*p);
    EXPECT_FALSE(
        static_cast<bool>(device->copyToDevice(*p, t.view.data, t.size())));
    Tensor d = t.view;
    d.data = *p;
    return d;
  }
  void download(HostTensor &t, const Tensor &d) {
    EXPECT_FALSE(static_cast<bool>(device->synchronize()));
    EXPECT_FALSE(
        static_cast<bool>(device->copyToHost(t.view.data, d.data, t.size())));
  }
  void TearDown() override {
    for (void *p : buffers)
      device->free(p);
  }

  static Engine &gpu() {
    static Engine e([] {
      EngineOptions o;
      o.target = Target::nvptx;
      return o;
    }());
    return e;
  }
  static Engine &host() {
    static Engine e;
    return e;
  }

  std::unique_ptr<cuda::Device> device;
  std::vector<void *> buffers;
};

double tolerance(DType d) {
  return d == DType::f64   ? 1e-12
         : d == DType::f32 ? 2e-5
         : d == DType::f16 ? 4e-3
                           : 3e-2;
}

::testing::AssertionResult same(const HostTensor &got, const HostTensor &want) {
  double tol = tolerance(got.view.dtype);
  for (int64_t i = 0; i < want.view.numel(); ++i) {
    double g = got.at(i), w = want.at(i);
    if (!(std::fabs(g - w) <= tol * std::max(1.0, std::fabs(w))))
      return ::testing::AssertionFailure()
             << "element " << i << ": GPU " << g << ", host " << w;
  }
  return ::testing::AssertionSuccess();
}

HostTensor randomTable(DType d, int64_t v, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  HostTensor t(d, {v, dim});
  for (int64_t i = 0; i < v * dim; ++i)
    t.set(i, u(rng));
  return t;
}

TEST_F(GPUDevice, ForwardMatchesTheHostKernels) {
  const int64_t V = 1000, B = 257, L = 9;
  for (DType d : {DType::f32, DType::f16, DType::bf16, DType::f64})
    for (int64_t dim : {1, 17, 64, 128, 256})
      for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::max}) {
        SCOPED_TRACE(std::string(dtypeName(d)) + " D=" + std::to_string(dim) +
                     " " + bagModeName(mode));
        HostTensor w = randomTable(d, V, dim, 7 + dim);
        HostTensor x = indicesOf(B * L, V);
        HostTensor offsets(DType::i64, {B});
        for (int64_t b = 0; b < B; ++b)
          offsets.set(b, static_cast<double>(b * L - (b % 3 == 1 ? 2 : 0)));
        EmbeddingBagOptions o;
        o.mode = mode;
        o.paddingIdx = 3;
        HostTensor want(d, {B, dim}), got(d, {B, dim});
        HostTensor wantMax(DType::i64, {B, dim}), gotMax(DType::i64, {B, dim});
        bool max = mode == BagMode::max;
        ASSERT_FALSE(static_cast<bool>(
            host().embeddingBag(x.view, w.view, &offsets.view, want.view, o,
                                nullptr, max ? &wantMax.view : nullptr)));
        Tensor dw = upload(w), dx = upload(x), doff = upload(offsets),
               dout = upload(got), dmax = upload(gotMax);
        ASSERT_FALSE(static_cast<bool>(gpu().embeddingBag(
            dx, dw, &doff, dout, o, nullptr, max ? &dmax : nullptr)));
        download(got, dout);
        EXPECT_TRUE(same(got, want));
        if (max) {
          download(gotMax, dmax);
          EXPECT_EQ(gotMax.toInt(), wantMax.toInt());
        }

        HostTensor look(d, {B * L, dim}), wantLook(d, {B * L, dim});
        ASSERT_FALSE(
            static_cast<bool>(host().embedding(x.view, w.view, wantLook.view)));
        Tensor dlook = upload(look);
        ASSERT_FALSE(static_cast<bool>(gpu().embedding(dx, dw, dlook)));
        download(look, dlook);
        EXPECT_TRUE(same(look, wantLook));
      }
}

// Many tables in one launch (every mode, a sequence table, padding, per
// sample weights) equal the host's call; 296 columns, so that the tables
// move 16-byte vectors (f16: 8-byte for the D = 36 table at column 128).
TEST_F(GPUDevice, ManyTablesMatchTheHostKernels) {
  const int64_t B = 300, L = 3;
  for (DType d : {DType::f32, DType::f16, DType::bf16, DType::f64})
    for (bool psw : {false, true}) {
      SCOPED_TRACE(std::string(dtypeName(d)) + (psw ? " psw" : ""));
      std::vector<TableOptions> tables(5);
      tables[0] = {100000, 128, BagMode::sum, 3, std::nullopt};
      tables[1] = {1000, 36, psw ? BagMode::mean : BagMode::max, std::nullopt,
                   std::nullopt};
      tables[2] = {10, 64, BagMode::sqrtn, 0, std::nullopt};
      tables[3] = {50, 16, BagMode::none, 1, L};
      tables[4] = {7, 20, BagMode::mean, std::nullopt, std::nullopt};
      int64_t elements = 0, total = 0;
      for (const TableOptions &t : tables) {
        elements += t.numEmbeddings * t.embeddingDim;
        total += t.embeddingDim * (t.mode == BagMode::none ? L : 1);
      }
      std::mt19937 rng(5);
      std::vector<int64_t> offs{0}, ids;
      for (const TableOptions &t : tables)
        for (int64_t b = 0; b < B; ++b) {
          int64_t len = t.mode == BagMode::none ? L : rng() % 40;
          for (int64_t k = 0; k < len; ++k)
            ids.push_back(rng() % t.numEmbeddings);
          offs.push_back(static_cast<int64_t>(ids.size()));
        }
      HostTensor w = randomTable(d, elements, 1, 11);
      w.view.shape = {elements};
      int64_t n = static_cast<int64_t>(ids.size());
      HostTensor x(DType::i64, {n}), offsets(DType::i32, {5 * B + 1}),
          p = randomTable(d, n, 1, 13), want(d, {B, total}), got(d, {B, total});
      p.view.shape = {n};
      for (int64_t i = 0; i < n; ++i) {
        x.set(i, static_cast<double>(ids[i]));
        p.set(i, std::fabs(p.at(i)) + 0.25); // weighted means stay finite
      }
      for (int64_t i = 0; i <= 5 * B; ++i)
        offsets.set(i, static_cast<double>(offs[i]));
      ASSERT_FALSE(static_cast<bool>(
          host().embeddingBagTables(x.view, w.view, tables, offsets.view,
                                    want.view, psw ? &p.view : nullptr)));
      Tensor dw = upload(w), dx = upload(x), doff = upload(offsets),
             dp = upload(p), dout = upload(got);
      ASSERT_FALSE(static_cast<bool>(gpu().embeddingBagTables(
          dx, dw, tables, doff, dout, psw ? &dp : nullptr)));
      download(got, dout);
      EXPECT_TRUE(same(got, want));
    }
}

TEST_F(GPUDevice, GradientsMatchTheHostKernels) {
  const int64_t V = 500, B = 129, L = 6;
  for (DType d : {DType::f32, DType::f16, DType::bf16, DType::f64})
    for (int64_t dim : {3, 64, 128})
      for (bool byFreq : {false, true}) {
        SCOPED_TRACE(std::string(dtypeName(d)) + " D=" + std::to_string(dim) +
                     (byFreq ? " freq" : ""));
        HostTensor g = randomTable(d, B, dim, 11 + dim);
        HostTensor x = indicesOf(B * L, V);
        HostTensor offsets(DType::i64, {B});
        for (int64_t b = 0; b < B; ++b)
          offsets.set(b, static_cast<double>(b * L));
        EmbeddingBagOptions o;
        o.mode = BagMode::mean;
        o.scaleGradByFreq = byFreq;
        o.paddingIdx = 0;
        HostTensor want(d, {V, dim}), got(d, {V, dim});
        ASSERT_FALSE(static_cast<bool>(host().embeddingBagBackward(
            g.view, x.view, &offsets.view, want.view, o)));
        Tensor dg = upload(g), dx = upload(x), doff = upload(offsets),
               dgw = upload(got);
        ASSERT_FALSE(static_cast<bool>(
            gpu().embeddingBagBackward(dg, dx, &doff, dgw, o)));
        download(got, dgw);
        EXPECT_TRUE(same(got, want));
      }
}

TEST_F(GPUDevice, RenormAndPerSampleWeightGradient) {
  const int64_t V = 300, n = 900, dim = 64;
  HostTensor w = randomTable(DType::f32, V, dim, 5);
  for (int64_t i = 0; i < V * dim; ++i)
    w.set(i, w.at(i) * 3);
  HostTensor x = indicesOf(n, V);
  HostTensor want = w;
  ASSERT_FALSE(static_cast<bool>(host().renorm(want.view, x.view, 1.5, 2.0)));
  Tensor dw = upload(w), dx = upload(x);
  ASSERT_FALSE(static_cast<bool>(gpu().renorm(dw, dx, 1.5, 2.0)));
  HostTensor got(DType::f32, {V, dim});
  download(got, dw);
  EXPECT_TRUE(same(got, want));

  HostTensor offsets(DType::i64, {n / 3});
  for (int64_t b = 0; b < n / 3; ++b)
    offsets.set(b, static_cast<double>(b * 3));
  HostTensor grad = randomTable(DType::f32, n / 3, dim, 9);
  EmbeddingBagOptions o;
  o.mode = BagMode::sum;
  HostTensor wantPsw(DType::f32, {n}), gotPsw(DType::f32, {n});
  ASSERT_FALSE(static_cast<bool>(host().embeddingBagPerSampleWeightsBackward(
      grad.view, want.view, x.view, &offsets.view, wantPsw.view, o)));
  Tensor dgrad = upload(grad), doff = upload(offsets), dpsw = upload(gotPsw);
  ASSERT_FALSE(static_cast<bool>(gpu().embeddingBagPerSampleWeightsBackward(
      dgrad, dw, dx, &doff, dpsw, o)));
  download(gotPsw, dpsw);
  EXPECT_TRUE(same(gotPsw, wantPsw));
}

// The fused optimizer step on the device updates the table and its state
// as the host kernel does (same sums in the same order; the row-wise sum of
// squares may round differently).
TEST_F(GPUDevice, FusedUpdateMatchesTheHostKernel) {
  const int64_t V = 3000, B = 200, L = 7;
  for (Optimizer opt : {Optimizer::sgd, Optimizer::adagrad,
                        Optimizer::rowwise_adagrad, Optimizer::adam})
    for (int64_t dim : {5, 128}) {
      SCOPED_TRACE(std::string(optimizerName(opt)) + " D=" +
                   std::to_string(dim));
      HostTensor w = randomTable(DType::f32, V, dim, 21 + dim);
      HostTensor g = randomTable(DType::f32, B, dim, 22 + dim);
      HostTensor x = indicesOf(B * L, V);
      for (int64_t i = 0; i < B * L; i += 5)
        x.set(i, 17); // a hot row
      HostTensor offsets(DType::i64, {B});
      for (int64_t b = 0; b < B; ++b)
        offsets.set(b, static_cast<double>(b * L));
      std::vector<HostTensor> states;
      for (int k = 0; k < numOptimizerStates(opt); ++k)
        states.push_back(opt == Optimizer::rowwise_adagrad
                             ? HostTensor(DType::f32, {V})
                             : HostTensor(DType::f32, {V, dim}));
      OptimizerOptions oo;
      oo.optimizer = opt;
      oo.lr = 0.05;
      oo.step = 2;
      EmbeddingBagOptions o;
      o.mode = BagMode::mean;
      o.paddingIdx = 3;
      HostTensor wantW = w;
      std::vector<HostTensor> wantStates = states;
      std::vector<Tensor> hostViews, deviceViews;
      for (HostTensor &t : wantStates)
        hostViews.push_back(t.view);
      ASSERT_FALSE(static_cast<bool>(host().embeddingBagUpdate(
          g.view, x.view, &offsets.view, wantW.view, hostViews, oo, o)));
      Tensor dw = upload(w), dg = upload(g), dx = upload(x),
             doff = upload(offsets);
      for (HostTensor &t : states)
        deviceViews.push_back(upload(t));
      ASSERT_FALSE(static_cast<bool>(gpu().embeddingBagUpdate(
          dg, dx, &doff, dw, deviceViews, oo, o)));
      download(w, dw);
      EXPECT_TRUE(same(w, wantW));
      for (size_t k = 0; k < states.size(); ++k) {
        download(states[k], deviceViews[k]);
        EXPECT_TRUE(same(states[k], wantStates[k]));
      }
    }
}

// The deterministic and the sparse gradients compute what the host kernels
// compute, in the same order: equal to the bit.
TEST_F(GPUDevice, DeterministicAndSparseGradientsEqualTheHostKernels) {
  const int64_t V = 70000, D = 64, B = 300, L = 5, n = B * L;
  HostTensor x = indicesOf(n, V), offsets(DType::i64, {B});
  for (int64_t i = 0; i < n; i += 4)
    x.set(i, 65537); // a hot row
  for (int64_t b = 0; b < B; ++b)
    offsets.set(b, static_cast<double>(b * L));
  HostTensor grad = randomTable(DType::f32, B, D, 3);
  Tensor dx = upload(x), doff = upload(offsets), dgrad = upload(grad);

  EmbeddingBagOptions o;
  o.mode = BagMode::mean;
  o.deterministic = true;
  o.scaleGradByFreq = true;
  HostTensor want(DType::f32, {V, D}), got(DType::f32, {V, D});
  ASSERT_FALSE(static_cast<bool>(host().embeddingBagBackward(
      grad.view, x.view, &offsets.view, want.view, o)));
  Tensor dgw = upload(got);
  ASSERT_FALSE(
      static_cast<bool>(gpu().embeddingBagBackward(dgrad, dx, &doff, dgw, o)));
  download(got, dgw);
  EXPECT_TRUE(got.bytes == want.bytes);

  for (bool coalesced : {false, true}) {
    SCOPED_TRACE(coalesced ? "coalesced" : "uncoalesced");
    EmbeddingBagOptions so;
    so.mode = BagMode::sum;
    so.paddingIdx = 65537;
    HostTensor wantRows(DType::i64, {n}), wantValues(DType::f32, {n, D}),
        gotRows(DType::i64, {n}), gotValues(DType::f32, {n, D});
    auto m = host().embeddingBagSparseBackward(
        grad.view, x.view, &offsets.view, V, wantRows.view, wantValues.view, so,
        nullptr, coalesced);
    ASSERT_TRUE(static_cast<bool>(m)) << llvm::toString(m.takeError());
    Tensor drows = upload(gotRows), dvalues = upload(gotValues);
    auto dm = gpu().embeddingBagSparseBackward(dgrad, dx, &doff, V, drows,
                                               dvalues, so, nullptr, coalesced);
    ASSERT_TRUE(static_cast<bool>(dm)) << llvm::toString(dm.takeError());
    ASSERT_EQ(*dm, *m);
    download(gotRows, drows);
    download(gotValues, dvalues);
    EXPECT_TRUE(std::equal(gotRows.bytes.begin(),
                           gotRows.bytes.begin() + *m * 8,
                           wantRows.bytes.begin()));
    EXPECT_TRUE(std::equal(gotValues.bytes.begin(),
                           gotValues.bytes.begin() + *m * D * 4,
                           wantValues.bytes.begin()));
  }
}

TEST_F(GPUDevice, OutOfRangeIndexIsAnErrorBeforeAnythingRuns) {
  HostTensor w = randomTable(DType::f32, 10, 16, 1), x = indicesOf(40, 10);
  x.set(17, -1);
  HostTensor out(DType::f32, {40, 16});
  Tensor dw = upload(w), dx = upload(x), dout = upload(out);
  llvm::Error err = gpu().embedding(dx, dw, dout);
  ASSERT_TRUE(static_cast<bool>(err));
  EXPECT_EQ(llvm::toString(std::move(err)),
            "index -1 at position 17 is out of range [0, 10)");
}

} // namespace
