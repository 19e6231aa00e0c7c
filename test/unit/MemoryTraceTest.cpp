//===- MemoryTraceTest.cpp - memory transactions and the bandwidth model --===//
//
// The collector on accesses whose transactions are known by hand; the PTX
// scan of loads in flight on hand-written PTX; the bandwidth model on
// known figures; and the generated forward kernels, emulated with their
// memory traced: the traced run computes what the untraced one does, and
// their row gathers are coalesced (issue 20's target: efficiency >= 0.9 for
// f32 / f16 / bf16 at D = 32 ... 256), so that a codegen regression fails
// here rather than on a device nobody has.
//
//===----------------------------------------------------------------------===//

#include "emb/JIT/GPUModel.h"
#include "emb/JIT/GPUResources.h"
#include "emb/JIT/JIT.h"
#include "emb/JIT/MemoryTrace.h"
#include "emb/Runtime/Engine.h"
#include "emb/Runtime/HostTensor.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"

#include <gtest/gtest.h>

#include <random>

using namespace emb;

namespace {

constexpr int64_t kBase = 1 << 20; // 128-byte aligned
/// A host buffer's pointer; the collector places buffers 256-byte aligned.
constexpr int64_t kHostBase = 0x7f0000000008;

/// One traced launch of a (grid x 1 x 1, block x 1 x 1) kernel whose threads
/// run `body(thread in the grid)`, which calls `access`.
template <typename Body>
KernelMemoryStats launch(const char *sites, int64_t grid, int64_t block,
                         Body body) {
  const MemoryTraceTable &t = memoryTraceTable();
  takeMemoryTrace();
  t.launch("test::k", sites, grid, 1, 1, block, 1, 1);
  for (int64_t b = 0; b < grid; ++b)
    for (int64_t x = 0; x < block; ++x)
      body(b, x, [&](int64_t site, int64_t address, int64_t bytes) {
        t.access(site, b, x, /*base=*/kHostBase, address, bytes);
      });
  t.end();
  std::vector<KernelMemoryStats> kernels = takeMemoryTrace();
  EXPECT_EQ(kernels.size(), 1u);
  return kernels.empty() ? KernelMemoryStats() : kernels[0];
}


TEST(MemoryTrace, CoalescedBroadcastAndStrided) {
  auto k = launch("load 4 coalesced\nload 8 broadcast\nload 4 strided", 1, 32,
                  [](int64_t, int64_t x, auto access) {
                    access(0, kBase + 4 * x, 4);
                    access(1, kBase + 4096, 8);
                    access(2, kBase + 8192 + 128 * x, 4);
                  });
  ASSERT_EQ(k.sites.size(), 3u);
  EXPECT_EQ(k.kernel, "test::k");
  EXPECT_EQ(k.sites[0].kind, "load");
  EXPECT_EQ(k.sites[0].bytes, 4);
  EXPECT_EQ(k.sites[0].what, "coalesced");
  // 32 consecutive floats: one request, 128 bytes, 4 sectors, 1 line.
  EXPECT_EQ(k.sites[0].requests, 1);
  EXPECT_EQ(k.sites[0].laneAccesses, 32);
  EXPECT_EQ(k.sites[0].usedBytes, 128);
  EXPECT_EQ(k.sites[0].sectors, 4);
  EXPECT_EQ(k.sites[0].lines, 1);
  EXPECT_DOUBLE_EQ(k.sites[0].efficiency(), 1.0);
  // Every lane the same 8 bytes: used once, one sector.
  EXPECT_EQ(k.sites[1].usedBytes, 8);
  EXPECT_EQ(k.sites[1].sectors, 1);
  EXPECT_DOUBLE_EQ(k.sites[1].efficiency(), 0.25);
  // A line apart: 32 sectors and 32 lines for 128 bytes.
  EXPECT_EQ(k.sites[2].sectors, 32);
  EXPECT_EQ(k.sites[2].lines, 32);
  EXPECT_DOUBLE_EQ(k.sites[2].efficiency(), 0.125);
  EXPECT_EQ(k.launches, 1);
  EXPECT_EQ(k.warps, 1);
  EXPECT_EQ(k.threads, 32);
  // The heaviest load is the strided one.
  ASSERT_NE(k.heaviestLoad(), nullptr);
  EXPECT_EQ(k.heaviestLoad()->what, "strided");
  MemorySiteStats loads = k.total("load");
  EXPECT_EQ(loads.sectors, 37);
  EXPECT_EQ(loads.usedBytes, 264);
}

TEST(MemoryTrace, MisalignedVectorsStraddleASector) {
  // 16-byte vectors starting 8 bytes into a sector: 512 bytes over 17
  // sectors and 5 lines.
  auto k = launch("load 16 v4", 1, 32, [](int64_t, int64_t x, auto access) {
    access(0, kBase + 8 + 16 * x, 16);
  });
  EXPECT_EQ(k.sites[0].usedBytes, 512);
  EXPECT_EQ(k.sites[0].sectors, 17);
  EXPECT_EQ(k.sites[0].lines, 5);
  EXPECT_DOUBLE_EQ(k.sites[0].sectorsPerRequest(), 17.0);
  EXPECT_DOUBLE_EQ(k.sites[0].bytesPerRequest(), 17.0 * 32);
}

TEST(MemoryTrace, BuffersAreAlignedAsOnTheDevice) {
  // Host buffers 8 bytes off a sector, as device buffers never are: a
  // warp reading 512 contiguous bytes from each touches 16 sectors.
  const MemoryTraceTable &t = memoryTraceTable();
  takeMemoryTrace();
  t.launch("test::aligned", "load 16 a\nload 16 b", 1, 1, 1, 32, 1, 1);
  for (int64_t x = 0; x < 32; ++x) {
    t.access(0, 0, x, 0x1008, 16 * x, 16);
    t.access(1, 0, x, 0x5678, 16 * x, 16);
  }
  t.end();
  auto kernels = takeMemoryTrace();
  ASSERT_EQ(kernels.size(), 1u);
  EXPECT_EQ(kernels[0].sites[0].sectors, 16);
  EXPECT_EQ(kernels[0].sites[1].sectors, 16);
  EXPECT_EQ(kernels[0].sites[1].lines, 4);
}

TEST(MemoryTrace, DramEfficiencyCountsAWarpsSectorOnce) {
  // The warp's lanes read index j of their bag together (a broadcast),
  // for j = 0..3: four requests of one sector each (0.25 per request),
  // but 32 distinct bytes of one sector over the warp (1.0).
  auto k = launch("load 8 index", 1, 32, [](int64_t, int64_t, auto access) {
    for (int64_t j = 0; j < 4; ++j)
      access(0, kBase + 8 * j, 8);
  });
  EXPECT_EQ(k.sites[0].requests, 4);
  EXPECT_EQ(k.sites[0].sectors, 4);
  EXPECT_DOUBLE_EQ(k.sites[0].efficiency(), 0.25);
  EXPECT_EQ(k.sites[0].warpSectors, 1);
  EXPECT_EQ(k.sites[0].warpUsedBytes, 32);
  EXPECT_DOUBLE_EQ(k.sites[0].dramEfficiency(), 1.0);
}

TEST(MemoryTrace, DramEfficiencyCountsASectorOnceAcrossSites) {
  // A bag's 4 entries in flight: indices j..j+3 read at 4 sites, one
  // sector. Each site alone reads 8 of its 32 bytes (0.25); the kernel's
  // loads read the sector once (1.0). A store to it is counted apart.
  auto k = launch("load 8 index\nload 8 index\nload 8 index\nload 8 index\n"
                  "store 8 index",
                  1, 32, [](int64_t, int64_t, auto access) {
                    for (int64_t j = 0; j < 4; ++j)
                      access(j, kBase + 8 * j, 8);
                    access(4, kBase, 8);
                  });
  for (int64_t s = 0; s < 4; ++s)
    EXPECT_DOUBLE_EQ(k.sites[s].dramEfficiency(), 0.25);
  EXPECT_EQ(k.total("load").warpSectors, 1);
  EXPECT_DOUBLE_EQ(k.total("load").dramEfficiency(), 1.0);
  EXPECT_EQ(k.total("store").warpSectors, 1);
  EXPECT_EQ(k.total().warpSectors, 2);
  EXPECT_EQ(k.total().warpUsedBytes, 32 + 8);
}

TEST(MemoryTrace, WarpsLoopsAndDivergence) {
  // Two blocks of 64 threads: 4 warps. Each lane runs site 0 twice (a
  // loop: two requests per warp); site 1 three times in lane 0, once in
  // the others (three requests per warp, the last two with one lane).
  auto k = launch("store 4 out\nload 4 tail", 2, 64,
                  [](int64_t b, int64_t x, auto access) {
                    int64_t t = b * 64 + x;
                    for (int i = 0; i < 2; ++i)
                      access(0, kBase + 4096 * i + 4 * t, 4);
                    for (int i = 0; i < (x % 32 == 0 ? 3 : 1); ++i)
                      access(1, kBase + 65536 + 4 * t + 1024 * i, 4);
                  });
  EXPECT_EQ(k.warps, 4);
  EXPECT_EQ(k.sites[0].kind, "store");
  EXPECT_EQ(k.sites[0].requests, 8);
  EXPECT_EQ(k.sites[0].sectors, 8 * 4);
  EXPECT_EQ(k.sites[1].requests, 12);
  EXPECT_EQ(k.sites[1].laneAccesses, 4 * (32 + 2));
  // The first request of each warp: 4 sectors; the two lone lanes: 1 each.
  EXPECT_EQ(k.sites[1].sectors, 4 * (4 + 2));
  EXPECT_EQ(k.total("store").sectors, 32);
}

TEST(MemoryTrace, LaunchesOfAKernelAddUp) {
  const MemoryTraceTable &t = memoryTraceTable();
  takeMemoryTrace();
  for (int i = 0; i < 3; ++i) {
    t.launch("test::again", "load 4 x", 1, 1, 1, 32, 1, 1);
    for (int64_t x = 0; x < 32; ++x)
      t.access(0, 0, x, kHostBase, kBase + 4 * x, 4);
    t.end();
  }
  auto kernels = takeMemoryTrace();
  ASSERT_EQ(kernels.size(), 1u);
  EXPECT_EQ(kernels[0].launches, 3);
  EXPECT_EQ(kernels[0].sites[0].requests, 3);
  EXPECT_TRUE(takeMemoryTrace().empty());
}

TEST(LoadsInFlight, PTXScan) {
  // Two 16-byte loads issued before either is used, in a loop: 2; the
  // index loads (8 bytes) are not counted.
  const char *two = R"(
.visible .entry k(
	.param .u64 k_param_0
)
{
	mov.u64 	%rd1, 0;
$L__BB0_1:
	ld.global.u64 	%rd2, [%rd1];
	ld.global.nc.v4.f32 	{%f1, %f2, %f3, %f4}, [%rd2];
	ld.global.nc.v4.f32 	{%f5, %f6, %f7, %f8}, [%rd2+16];
	add.f32 	%f9, %f1, %f5;
	add.s64 	%rd1, %rd1, 8;
	setp.lt.u64 	%p1, %rd1, 64;
	@%p1 bra 	$L__BB0_1;
	ret;
}
)";
  EXPECT_EQ(loadsInFlight(two, "k", 16).inOrder, 2);
  EXPECT_EQ(loadsInFlight(two, "k", 16).independent, 2);
  EXPECT_EQ(loadsInFlight(two, "k", 8).inOrder, 1);
  EXPECT_EQ(loadsInFlight(two, "k", 4).inOrder, 0);
  EXPECT_EQ(loadsInFlight(two, "other", 16).independent, 0);
  // Load, use, load, use: 1 in program order, 2 independent ones (as an
  // unrolled bag loop's). The loop is the innermost one with a load; the
  // loads before it do not count.
  const char *one = R"(
.visible .entry k(
)
{
	ld.global.v4.f32 	{%f10, %f11, %f12, %f13}, [%rd9];
	ld.global.v4.f32 	{%f14, %f15, %f16, %f17}, [%rd9+16];
	ld.global.v4.f32 	{%f18, %f19, %f20, %f21}, [%rd9+32];
$L__BB0_2:
	ld.global.v4.f32 	{%f1, %f2, %f3, %f4}, [%rd2];
	add.f32 	%f9, %f9, %f1;
	ld.global.v4.f32 	{%f5, %f6, %f7, %f8}, [%rd3];
	add.f32 	%f9, %f9, %f5;
	@%p1 bra 	$L__BB0_2;
	ret;
}
)";
  EXPECT_EQ(loadsInFlight(one, "k", 16).inOrder, 1);
  EXPECT_EQ(loadsInFlight(one, "k", 16).independent, 2);
  // A row load whose address derives from another's value: a chain of 2.
  const char *chain = R"(
.visible .entry c(
)
{
	ld.global.v2.u64 	{%rd1, %rd2}, [%rd0];
	add.s64 	%rd3, %rd1, %rd2;
	ld.global.v2.u64 	{%rd4, %rd5}, [%rd3];
	st.global.u64 	[%rd6], %rd4;
	ret;
}
)";
  EXPECT_EQ(loadsInFlight(chain, "c", 16).inOrder, 1);
  EXPECT_EQ(loadsInFlight(chain, "c", 16).independent, 1);
  // Half-precision vectors: v4.b16 is 8 bytes; f16x2 pairs 4.
  const char *half = R"(
.visible .entry h(
)
{
	ld.global.v4.b16 	{%rs1, %rs2, %rs3, %rs4}, [%rd2];
	ld.global.b32 	%r1, [%rd3];
	ld.global.v2.b16 	{%rs5, %rs6}, [%rd4];
	cvt.f32.f16 	%f1, %rs1;
	ret;
}
)";
  EXPECT_EQ(loadsInFlight(half, "h", 8).inOrder, 1);
  EXPECT_EQ(loadsInFlight(half, "h", 4).inOrder, 2);
}

TEST(BandwidthModel, LittlesLaw) {
  const GPUChip &h100 = gpuChips()[1];
  EXPECT_EQ(h100.name, "H100");
  EXPECT_EQ(h100.sms, 132);
  GatherLayout l;
  l.bytesPerRequest = 512;
  l.loadsInFlight = 1;
  l.residentWarps = 64;
  l.efficiency = 0.5;
  // 132 x 64 x 512 = 4.3 MB in flight against 3350 GB/s x 600 ns = 2.01 MB.
  BandwidthEstimate e = estimateBandwidth(l, h100);
  EXPECT_DOUBLE_EQ(e.bytesInFlight, 132.0 * 64 * 512);
  EXPECT_DOUBLE_EQ(e.bytesNeeded, 3350.0 * 600);
  EXPECT_DOUBLE_EQ(e.fraction, 1.0);
  EXPECT_DOUBLE_EQ(e.usefulFraction, 0.5);
  l.residentWarps = 16;
  e = estimateBandwidth(l, h100);
  EXPECT_NEAR(e.fraction, 132.0 * 16 * 512 / (3350.0 * 600), 1e-12);
  // Resident warps: the occupancy's, at most what the launch has per SM.
  EXPECT_DOUBLE_EQ(residentWarps(0.75, h100, 1e6), 48);
  EXPECT_DOUBLE_EQ(residentWarps(1.0, h100, 132 * 10), 10);
}

TEST(BandwidthModel, PeerLayouts) {
  const GPUChip &h100 = gpuChips()[1];
  // PyTorch f32 D = 128: a warp reads 32 floats of one row (128 bytes),
  // 8192 warps in all (62 per SM on H100), one row at a time.
  GatherLayout pt = pytorchBagLayout(4, 128, h100);
  EXPECT_DOUBLE_EQ(pt.bytesPerRequest, 128);
  EXPECT_DOUBLE_EQ(pt.loadsInFlight, 1);
  EXPECT_NEAR(pt.residentWarps, 8192.0 / 132, 1e-9);
  EXPECT_LT(estimateBandwidth(pt, h100).fraction, 0.6);
  // f16 halves the bytes per request.
  EXPECT_DOUBLE_EQ(pytorchBagLayout(2, 128, h100).bytesPerRequest, 64);
  // FBGEMM f32: 512 bytes a request at every D; D = 32: 8-lane groups,
  // four bags a warp; D = 256: two loads a lane in flight.
  GatherLayout fb32 = fbgemmBagLayout(4, 32, 16384, h100);
  EXPECT_DOUBLE_EQ(fb32.bytesPerRequest, 512);
  EXPECT_DOUBLE_EQ(fb32.loadsInFlight, 1);
  GatherLayout fb256 = fbgemmBagLayout(4, 256, 16384, h100);
  EXPECT_DOUBLE_EQ(fb256.bytesPerRequest, 512);
  EXPECT_DOUBLE_EQ(fb256.loadsInFlight, 2);
  // f16: 4 halves (8 bytes) a lane.
  EXPECT_DOUBLE_EQ(fbgemmBagLayout(2, 128, 16384, h100).bytesPerRequest, 256);
}

//===----------------------------------------------------------------------===//
// The generated kernels, emulated and traced
//===----------------------------------------------------------------------===//

std::string cacheDir() {
  llvm::SmallString<128> dir;
  llvm::sys::fs::current_path(dir);
  return std::string(dir) + "/emb-test-kernel-cache";
}

Engine &engine(bool traced) {
  static std::unique_ptr<Engine> engines[2];
  auto &e = engines[traced];
  if (!e) {
    EngineOptions o;
    o.threads = 1;
    o.target = Target::gpu_emulated;
    o.traceMemory = traced;
    o.cache.directory = cacheDir();
    e = std::make_unique<Engine>(o);
  }
  return *e;
}

struct Instance {
  HostTensor weight, indices, offsets, out;
  Instance(DType dtype, int64_t V, int64_t D, int64_t B, int64_t L)
      : weight(dtype, {V, D}), indices(DType::i64, {B * L}),
        offsets(DType::i64, {B}), out(dtype, {B, D}) {
    std::mt19937_64 rng(V * 31 + D);
    for (int64_t i = 0; i < V * D; ++i)
      weight.set(i, std::uniform_real_distribution<double>(-1, 1)(rng));
    for (int64_t i = 0; i < B * L; ++i)
      indices.set(i, static_cast<double>(rng() % V));
    for (int64_t b = 0; b < B; ++b)
      offsets.set(b, static_cast<double>(b * L));
  }
};

/// The traced kernels of one bag call (mode) or lookup (nullopt).
std::vector<KernelMemoryStats> traced(DType dtype, int64_t D,
                                      std::optional<BagMode> mode) {
  const int64_t V = 1000, B = 64, L = 8;
  Instance plain(dtype, V, D, B, L), traced(dtype, V, D, B, L);
  auto run = [&](Instance &inst, bool trace) {
    if (!mode) {
      HostTensor out(dtype, {B * L, D});
      llvm::Error err =
          engine(trace).embedding(inst.indices.view, inst.weight.view, out.view);
      inst.out = out;
      return err;
    }
    EmbeddingBagOptions o;
    o.mode = *mode;
    return engine(trace).embeddingBag(inst.indices.view, inst.weight.view,
                                      &inst.offsets.view, inst.out.view, o);
  };
  EXPECT_FALSE(static_cast<bool>(run(plain, false)));
  takeMemoryTrace();
  EXPECT_FALSE(static_cast<bool>(run(traced, true)));
  // Tracing observes; it changes nothing.
  EXPECT_EQ(plain.out.bytes, traced.out.bytes);
  return takeMemoryTrace();
}

TEST(TracedKernels, ForwardGathersAreCoalesced) {
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (int64_t D : {32, 64, 128, 256})
      for (std::optional<BagMode> mode :
           {std::optional<BagMode>(), std::optional<BagMode>(BagMode::sum),
            std::optional<BagMode>(BagMode::mean),
            std::optional<BagMode>(BagMode::max)}) {
        SCOPED_TRACE(std::string(dtypeName(dtype)) + " D=" +
                     std::to_string(D) + " " +
                     (mode ? bagModeName(*mode) : "lookup"));
        std::vector<KernelMemoryStats> kernels = traced(dtype, D, mode);
        ASSERT_EQ(kernels.size(), 1u);
        const MemorySiteStats *gather = kernels[0].heaviestLoad();
        ASSERT_NE(gather, nullptr);
        // Whole rows, 16 bytes a lane (a max bag of f16 / bf16: 8, its
        // 4 elements a thread, GPUConfig.h): every sector fully used.
        bool halfMax = mode == BagMode::max && dtype != DType::f32;
        EXPECT_EQ(gather->bytes, halfMax ? 8 : 16);
        EXPECT_GE(gather->efficiency(), 0.9);
        EXPECT_GE(kernels[0].total("store").efficiency(), 0.9);
        // All the kernel's traffic, indices and offsets included, as DRAM
        // sees it.
        EXPECT_GE(kernels[0].total().dramEfficiency(), 0.9);
        // Every request of the gather moves whole sectors of rows: at
        // least 4 (128 bytes) of them.
        EXPECT_GE(gather->sectorsPerRequest(), 4.0);
      }
}

/// The traced kernels of a dense gradient (atomic): a bag sum / mean
/// (mode) or a lookup (nullopt).
std::vector<KernelMemoryStats> tracedGradient(DType dtype, int64_t D,
                                              std::optional<BagMode> mode) {
  const int64_t V = 1000, B = 64, L = 8;
  Instance inst(dtype, V, D, B, L);
  HostTensor plainGrad(dtype, {V, D}), tracedGrad(dtype, {V, D});
  auto run = [&](HostTensor &gw, bool trace) {
    if (!mode) {
      HostTensor g(dtype, {B * L, D});
      for (int64_t i = 0; i < B * L * D; ++i)
        g.set(i, (i % 7) * 0.25 - 0.5);
      return engine(trace).embeddingBackward(g.view, inst.indices.view,
                                             gw.view);
    }
    EmbeddingBagOptions o;
    o.mode = *mode;
    for (int64_t i = 0; i < B * D; ++i)
      inst.out.set(i, (i % 5) * 0.25 - 0.5);
    return engine(trace).embeddingBagBackward(inst.out.view, inst.indices.view,
                                              &inst.offsets.view, gw.view, o);
  };
  EXPECT_FALSE(static_cast<bool>(run(plainGrad, false)));
  takeMemoryTrace();
  EXPECT_FALSE(static_cast<bool>(run(tracedGrad, true)));
  // The emulation adds in thread order, traced or not: the same bits.
  EXPECT_EQ(plainGrad.bytes, tracedGrad.bytes);
  return takeMemoryTrace();
}

TEST(TracedKernels, GradientAtomicsAreCoalesced) {
  // The scatter's columns are lane-interleaved (GradTarget::column): each
  // atomic of a lane group covers consecutive elements, not every 16
  // bytes' e-th one (0.25 before).
  for (DType dtype : {DType::f32, DType::bf16})
    for (int64_t D : {32, 64, 128, 256})
      for (std::optional<BagMode> mode :
           {std::optional<BagMode>(), std::optional<BagMode>(BagMode::sum),
            std::optional<BagMode>(BagMode::mean)}) {
        SCOPED_TRACE(std::string(dtypeName(dtype)) + " D=" +
                     std::to_string(D) + " " +
                     (mode ? bagModeName(*mode) : "lookup"));
        int atomics = 0;
        for (const KernelMemoryStats &k : tracedGradient(dtype, D, mode))
          for (const MemorySiteStats &site : k.sites) {
            if (site.kind != "atomic")
              continue;
            ++atomics;
            EXPECT_GE(site.efficiency(), 0.9) << k.kernel << " " << site.what;
          }
        EXPECT_GT(atomics, 0);
      }
}

TEST(TracedKernels, ModelOfTheBagKernelWithPtxas) {
  if (!havePtxas())
    GTEST_SKIP() << "ptxas not found: no occupancy";
  std::vector<KernelMemoryStats> kernels =
      traced(DType::f32, 128, BagMode::sum);
  ASSERT_EQ(kernels.size(), 1u);
  KernelSpec spec;
  spec.op = OpKind::embedding_bag;
  spec.target = Target::nvptx;
  spec.chip = "sm_90";
  spec.dim = 128;
  auto reports = gpuKernelResources(spec, "sm_90");
  ASSERT_TRUE(static_cast<bool>(reports)) << llvm::toString(reports.takeError());
  ASSERT_EQ(reports->size(), 1u);
  const GPUKernelResources &r = (*reports)[0];
  // Kernels are named after their spec's symbol.
  EXPECT_EQ(r.entry.rfind(spec.symbolName(), 0), 0u) << r.entry;
  // LLVM unrolls the entry loop by 4: four independent row loads.
  LoadParallelism p = loadsInFlight(r.ptx, r.entry, 16);
  EXPECT_GE(p.inOrder, 1);
  EXPECT_GE(p.independent, 4);
}

} // namespace
