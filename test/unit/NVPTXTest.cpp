//===- NVPTXTest.cpp - every GPU kernel variant through NVPTX and ptxas ---===//
//
// Every GPU kernel variant of the differential tests (lookup: dtype x D x
// zero padding; bag: mode x form x per_sample_weights x padding x
// max_indices x dtypes x D; the dense gradients) compiled by
// emb-nvptx-pipeline for sm_80 and sm_90: the PTX has 64-bit addresses and
// 16-byte vector accesses where D allows, and, when ptxas is installed,
// assembles to a cubin. The values these kernels compute are checked by
// ForwardDiffTests and BackwardDiffTests (GPUEmulated.*).
//
//===----------------------------------------------------------------------===//

#include "emb/JIT/JIT.h"
#include "emb/JIT/KernelSpec.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <iterator>

using namespace emb;

namespace {

// As GPUEmulated.* in ForwardDiffTests: the scalar, narrow-vector and
// 16-byte paths, with one and with several chunks per thread.
const int64_t kDims[] = {1, 3, 6, 16, 17, 33, 36, 64, 100, 128, 1000};
const DType kFloats[] = {DType::f32, DType::f64, DType::f16, DType::bf16};
const char *kChips[] = {"sm_80", "sm_90"};

/// ptxas of the CUDA toolkit, as gpu-module-to-binary finds it.
bool havePtxas() { return emb::havePtxas(); }

size_t dtypeBytes(DType d) { return dtypeSize(d); }

/// The kernels of a spec: one per launch. The forward ops and the
/// per_sample_weights gradient are one; a dense gradient is zeros and the
/// atomic scatter, plus count zeros and counts with scale_grad_by_freq,
/// plus the rounding of the f32 scratch table for f16 / bf16. A
/// deterministic gradient is the entries' keys (a bag sum / mean: their
/// initial keys, then the bags'), the radix pass (histogram, the three
/// launches of the scan, scatter; run once per 8 bits of key) and the
/// ordered sums.
size_t expectedKernels(const KernelSpec &spec) {
  if (spec.op == OpKind::renorm) // zero the row flags, then renormalise
    return 2;
  if (spec.op == OpKind::embedding_bag_tables) // one for every table
    return 1;
  // The fused optimizer step: the sort of a deterministic gradient, then
  // the update of every row.
  if (spec.op == OpKind::embedding_bag_update)
    return spec.mode == BagMode::max ? 7 : 8;
  // Sparse: the compaction (chunk counts, the scan's three, its writes),
  // then the values; coalesced: the keys and the radix pass first, and a
  // sum per distinct row last. Bags: the bags' entries (and initial keys).
  bool bag = spec.op == OpKind::embedding_bag_sparse_backward;
  if (spec.op == OpKind::embedding_sparse_backward || bag)
    return spec.coalesced ? (bag ? 13 : 12) : (bag ? 7 : 6);
  if (spec.op != OpKind::embedding_backward &&
      spec.op != OpKind::embedding_bag_backward)
    return 1;
  if (spec.deterministic)
    return spec.op == OpKind::embedding_bag_backward &&
                   spec.mode != BagMode::max
               ? 8
               : 7;
  bool half = spec.weight == DType::f16 || spec.weight == DType::bf16;
  return 2 + (spec.scaleGradByFreq ? 2 : 0) + (half ? 1 : 0);
}

/// Compiles `spec` for both chips; checks the PTX and, with ptxas, the
/// cubin.
void compileEverywhere(const KernelSpec &spec, bool ptxas) {
  SCOPED_TRACE(spec.str());
  bool gradient = spec.op == OpKind::embedding_backward ||
                  spec.op == OpKind::embedding_bag_backward;
  for (const char *chip : kChips) {
    auto ptx = compileForNVPTX(spec, chip, 0, "isa");
    ASSERT_TRUE(static_cast<bool>(ptx))
        << chip << ": " << llvm::toString(ptx.takeError());
    ASSERT_EQ(ptx->size(), expectedKernels(spec));
    std::string all;
    for (const GPUKernelBinary &k : *ptx) {
      EXPECT_NE(k.data.find(std::string(".target ") + chip), std::string::npos);
      EXPECT_NE(k.data.find(".address_size 64"), std::string::npos);
      all += k.data;
    }
    // 16 bytes at once where D allows: v4 of 32-bit lanes (f32, or f16 /
    // bf16 pairs), v2 of f64. Forward: in its one kernel; a gradient reads
    // its gradient rows so in the scatter, but for the atomic scatter of a
    // lookup or a sum / mean bag, which reads them lane-interleaved (its
    // atomics coalesced: MemoryTraceTests) and writes 16 bytes at once in
    // its zero pass.
    // (The deterministic max gradient reads single elements: a thread per
    // (row, column).)
    // (Quantised rows are D + 8 or ceil(D/2) + 4 bytes: no 16-byte
    // alignment; QuantizedBagEveryFormatModeAndDim checks their loads.)
    // A forward max bag of f16 / bf16 loads 8 bytes a lane (4 elements a
    // thread: GPUConfig.h, kMaxBagLanesPerThread).
    int64_t vec = 16 / dtypeBytes(spec.weight);
    bool halfMaxBag = spec.op == OpKind::embedding_bag &&
                      spec.mode == BagMode::max && dtypeBytes(spec.weight) == 2;
    bool scalar = (spec.deterministic && spec.mode == BagMode::max &&
                   spec.op == OpKind::embedding_bag_backward) ||
                  spec.quant != Quantization::none ||
                  (spec.op == OpKind::embedding_bag_tables && spec.dim % 8);
    bool interleavedScatter =
        gradient && !spec.deterministic &&
        !(spec.op == OpKind::embedding_bag_backward &&
          spec.mode == BagMode::max);
    if (spec.dim % vec == 0 && !scalar) {
      const char *access =
          interleavedScatter ? (spec.weight == DType::f64 ? "st.global.v2.b64"
                                                          : "st.global.v4.b32")
                             : (spec.weight == DType::f64 ? "ld.global.v2.b64"
                                : halfMaxBag              ? "ld.global.v4.b16"
                                                          : "ld.global.v4.b32");
      EXPECT_NE(all.find(access), std::string::npos) << chip << "\n" << all;
    }
    bool sparse = spec.op == OpKind::embedding_sparse_backward ||
                  spec.op == OpKind::embedding_bag_sparse_backward;
    if (sparse || (gradient && spec.deterministic) ||
        spec.op == OpKind::embedding_bag_update) {
      EXPECT_EQ(all.find("atom."), std::string::npos) << chip;
    } else if (gradient) {
      const char *atom = spec.weight == DType::f64 ? "atom.global.add.f64"
                                                   : "atom.global.add.f32";
      EXPECT_NE(all.find(atom), std::string::npos) << chip;
      if (spec.scaleGradByFreq)
        EXPECT_NE(all.find("atom.global.add.u64"), std::string::npos) << chip;
    }
    if (!ptxas)
      continue;
    auto cubin = compileForNVPTX(spec, chip, 0, "bin");
    ASSERT_TRUE(static_cast<bool>(cubin))
        << chip << ": " << llvm::toString(cubin.takeError());
    for (const GPUKernelBinary &k : *cubin)
      EXPECT_EQ(k.data.substr(0, 4), "\x7f"
                                     "ELF");
  }
}

TEST(NVPTX, LookupEveryDtypeDimAndPadding) {
  bool ptxas = havePtxas();
  int k = 0;
  for (int64_t dim : kDims)
    for (DType w : kFloats) {
      KernelSpec spec;
      spec.op = OpKind::embedding;
      spec.target = Target::gpu_emulated;
      spec.weight = w;
      spec.indices = k % 2 ? DType::i32 : DType::i64;
      spec.dim = dim;
      spec.zeroPadding = k % 3 == 0;
      spec.paddingIdx = spec.zeroPadding ? 1 : -1;
      ++k;
      compileEverywhere(spec, ptxas);
      if (HasFatalFailure())
        return;
    }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found (CUDA_HOME, "
                    "/usr/local/cuda, PATH): cubins not built";
}

TEST(NVPTX, BagEveryVariantDtypeAndDim) {
  bool ptxas = havePtxas();
  for (int d = 0; d < static_cast<int>(std::size(kDims)); ++d) {
    int v = 0; // the variant; its dtypes rotate with D (see ForwardDiffTests)
    for (int form = 0; form < 3; ++form) // 1-D, 1-D + last, 2-D
      for (BagMode mode :
           {BagMode::sum, BagMode::mean, BagMode::max, BagMode::sqrtn})
        for (int psw = 0; psw < (mode == BagMode::max ? 1 : 2); ++psw)
          for (int pad = 0; pad < 2; ++pad, ++v) {
            KernelSpec spec;
            spec.op = OpKind::embedding_bag;
            spec.target = Target::gpu_emulated;
            spec.weight = kFloats[(v + d) % 4];
            spec.indices = (v / 2 + d) % 2 ? DType::i32 : DType::i64;
            spec.offsets = (v / 3 + d + 1) % 2 ? DType::i32 : DType::i64;
            spec.dim = kDims[d];
            spec.mode = mode;
            spec.twoD = form == 2;
            spec.includeLastOffset = form == 1;
            spec.perSampleWeights = psw == 1;
            spec.paddingIdx = pad ? 0 : -1;
            spec.maxIndices = mode == BagMode::max && (pad + form) % 2 == 0;
            compileEverywhere(spec, ptxas);
            if (HasFatalFailure())
              return;
          }
  }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found: cubins not built";
}

// Bags of quantised tables (docs/semantics.md §6.2): every format, mode,
// output dtype and D; where the row layout allows, a chunk's bytes are one
// wide load (int8 rows of D = 128 are 136 bytes: 8-byte loads; int4 rows
// are 68: 4-byte loads), never byte by byte.
TEST(NVPTX, QuantizedBagEveryFormatModeAndDim) {
  bool ptxas = havePtxas();
  int k = 0;
  for (Quantization q : {Quantization::int8, Quantization::int4})
    for (int64_t dim : {1, 3, 16, 17, 64, 128})
      for (BagMode mode :
           {BagMode::sum, BagMode::mean, BagMode::max, BagMode::sqrtn}) {
        KernelSpec spec;
        spec.op = OpKind::embedding_bag;
        spec.target = Target::gpu_emulated;
        spec.quant = q;
        spec.weight = k % 2 ? DType::f16 : DType::f32;
        spec.dim = dim;
        spec.mode = mode;
        spec.twoD = k % 3 == 2;
        spec.perSampleWeights = mode != BagMode::max && k % 2 == 0;
        spec.paddingIdx = k % 4 == 0 ? 0 : -1;
        ++k;
        compileEverywhere(spec, ptxas);
        if (HasFatalFailure())
          return;
        if (dim == 128) {
          // int8: 8 bytes of q at once; int4 (68-byte rows): 4 bytes. A
          // max bag holds 4 elements a thread (kMaxBagLanesPerThread):
          // int8 4 bytes, int4 2 (a v2 of bytes).
          auto ptx = compileForNVPTX(spec, "sm_90", 0, "isa");
          ASSERT_TRUE(static_cast<bool>(ptx));
          const std::string &text = (*ptx)[0].data;
          bool max = mode == BagMode::max;
          const char *load = q == Quantization::int8
                                 ? (max ? "ld.global.b32" : "ld.global.b64")
                                 : (max ? "ld.global.v2.b8" : "ld.global.b32");
          EXPECT_EQ(text.find("ld.global.b8"), std::string::npos) << text;
          EXPECT_EQ(text.find("ld.global.u8"), std::string::npos) << text;
          EXPECT_NE(text.find(load), std::string::npos) << text;
        }
      }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found: cubins not built";
}

// Many tables in one call (docs/semantics.md §6.3): one launch for every
// table (each table's blocks with its D's thread layout), every dtype.
TEST(NVPTX, TablesEveryDtype) {
  bool ptxas = havePtxas();
  for (DType w : kFloats) {
    KernelSpec spec;
    spec.op = OpKind::embedding_bag_tables;
    spec.target = Target::gpu_emulated;
    spec.weight = w;
    // Odd columns (scalar stores; the loads follow them), then columns
    // whose every table starts 16-byte aligned, with a sequence table.
    spec.tables = {{1000, 64, BagMode::sum, -1},
                   {10, 3, BagMode::max, 0},
                   {50, 36, BagMode::sqrtn, -1}};
    spec.dim = 64 + 3 + 36;
    spec.perSampleWeights = false;
    compileEverywhere(spec, ptxas);
    if (HasFatalFailure())
      return;
    spec.tables = {{1000, 64, BagMode::sum, -1},
                   {10, 8, BagMode::max, 0},
                   {50, 32, BagMode::mean, -1},
                   {20, 8, BagMode::none, 1, 3}};
    spec.dim = 64 + 8 + 32 + 3 * 8;
    compileEverywhere(spec, ptxas);
    if (HasFatalFailure())
      return;
  }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found: cubins not built";
}

// The dense gradients (atomics; f16 / bf16 through an f32 scratch table):
// lookup with and without padding, grad scale and scale_grad_by_freq, bag
// sum / mean (forms, psw, padding, scale_grad_by_freq) and max; at a third
// of the values of D also their deterministic form (no atomics at all).
TEST(NVPTX, DenseGradientsEveryVariantAndDim) {
  bool ptxas = havePtxas();
  const DType *grads = kFloats;
  for (int d = 0; d < static_cast<int>(std::size(kDims)); ++d) {
    for (int v = 0; v < 4; ++v) {
      KernelSpec spec;
      spec.op = OpKind::embedding_backward;
      spec.target = Target::gpu_emulated;
      spec.weight = grads[(v + d) % 4];
      spec.indices = (v / 2 + d) % 2 ? DType::i32 : DType::i64;
      spec.dim = kDims[d];
      spec.numEmbeddings = 1000;
      spec.paddingIdx = v % 2 ? 3 : -1;
      spec.gradScale = v / 2 ? 0.5 : 1.0;
      spec.scaleGradByFreq = (v + d) % 3 == 0;
      compileEverywhere(spec, ptxas);
      if (d % 3 == 0) { // and the deterministic form
        spec.deterministic = true;
        compileEverywhere(spec, ptxas);
      }
      if (HasFatalFailure())
        return;
    }
    int v = 0;
    for (int form = 0; form < 3; ++form)
      for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::max})
        for (int opt = 0; opt < 2; ++opt, ++v) {
          KernelSpec spec;
          spec.op = OpKind::embedding_bag_backward;
          spec.target = Target::gpu_emulated;
          spec.weight = grads[(v + d) % 4];
          spec.indices = (v / 2 + d) % 2 ? DType::i32 : DType::i64;
          spec.offsets = (v / 3 + d + 1) % 2 ? DType::i32 : DType::i64;
          spec.dim = kDims[d];
          spec.numEmbeddings = 1000;
          spec.mode = mode;
          spec.scaleGradByFreq = mode != BagMode::max && (v + d) % 3 == 0;
          spec.twoD = form == 2;
          spec.includeLastOffset = form == 1;
          spec.perSampleWeights = mode == BagMode::sum && opt == 1;
          spec.paddingIdx = mode != BagMode::max && opt == 1 ? 0 : -1;
          spec.maxIndices = mode == BagMode::max;
          compileEverywhere(spec, ptxas);
          if (d % 3 == 0) {
            spec.deterministic = true;
            compileEverywhere(spec, ptxas);
          }
          if (HasFatalFailure())
            return;
        }
  }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found: cubins not built";
}

TEST(NVPTX, PerSampleWeightsGradientEveryFormDtypeAndDim) {
  bool ptxas = havePtxas();
  for (int d = 0; d < static_cast<int>(std::size(kDims)); ++d)
    for (int form = 0; form < 3; ++form) {
      KernelSpec spec;
      spec.op = OpKind::embedding_bag_psw_backward;
      spec.target = Target::gpu_emulated;
      spec.weight = kFloats[(d + form) % 4];
      spec.indices = (d + form) % 2 ? DType::i32 : DType::i64;
      spec.offsets = d % 2 ? DType::i32 : DType::i64;
      spec.dim = kDims[d];
      spec.mode = BagMode::sum;
      spec.twoD = form == 2;
      spec.includeLastOffset = form == 1;
      spec.paddingIdx = (d + form) % 3 == 0 ? 0 : -1;
      compileEverywhere(spec, ptxas);
      if (HasFatalFailure())
        return;
    }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found: cubins not built";
}

// Renorm for every kind of p: general p calls libdevice's pow.
TEST(NVPTX, RenormEveryNormTypeDtypeAndDim) {
  bool ptxas = havePtxas();
  const double ps[] = {1, 2, INFINITY, 0.5, 0, -INFINITY, 3};
  int k = 0;
  for (double p : ps)
    for (int64_t dim : {1, 17, 128, 1000}) {
      KernelSpec spec;
      spec.op = OpKind::renorm;
      spec.target = Target::gpu_emulated;
      spec.weight = kFloats[k % 4];
      spec.indices = k % 3 ? DType::i64 : DType::i32;
      spec.dim = dim;
      spec.maxNorm = 0.5;
      spec.normType = p;
      ++k;
      compileEverywhere(spec, ptxas);
      if (HasFatalFailure())
        return;
    }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found: cubins not built";
}

TEST(NVPTX, BadChipIsAnErrorNotAnAbort) {
  KernelSpec spec;
  spec.dim = 8;
  auto bad = compileForNVPTX(spec, "sm_99", 0, "isa");
  ASSERT_FALSE(static_cast<bool>(bad));
  EXPECT_NE(llvm::toString(bad.takeError()).find("unknown NVIDIA chip 'sm_99'"),
            std::string::npos);
  auto old = compileForNVPTX(spec, "sm_90", 70, "isa");
  ASSERT_FALSE(static_cast<bool>(old));
  EXPECT_NE(llvm::toString(old.takeError())
                .find("PTX ISA 7.0 does not support sm_90"),
            std::string::npos);
}

// Every kind of op through the whole nvptx JIT pipeline (kernels, then the
// host side lowered by convert-gpu-to-emb-runtime to a host object): the
// host function may only pass device buffers to kernels, so a result that
// is not written into its destination (a host memref.alloc) fails here. Bag
// max, whose two results are materialised one after the other, once did.
TEST(NVPTX, EveryOpKindCompilesForTheRuntime) {
  auto base = [](OpKind op, DType w) {
    KernelSpec spec;
    spec.op = op;
    spec.target = Target::nvptx;
    spec.chip = "sm_90";
    spec.weight = w;
    spec.dim = 64;
    spec.numEmbeddings = 1000;
    return spec;
  };
  std::vector<KernelSpec> specs;
  KernelSpec s = base(OpKind::embedding, DType::f32);
  s.paddingIdx = 2;
  s.zeroPadding = true;
  specs.push_back(s);
  for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::max}) {
    s = base(OpKind::embedding_bag, DType::f16);
    s.mode = mode;
    s.maxIndices = mode == BagMode::max;
    s.perSampleWeights = mode == BagMode::sum;
    specs.push_back(s);
  }
  s = base(OpKind::renorm, DType::bf16);
  s.maxNorm = 1.0;
  s.normType = 3.0;
  specs.push_back(s);
  for (bool deterministic : {false, true}) {
    s = base(OpKind::embedding_backward, DType::f16);
    s.scaleGradByFreq = true;
    s.deterministic = deterministic;
    specs.push_back(s);
    for (BagMode mode : {BagMode::mean, BagMode::max}) {
      s = base(OpKind::embedding_bag_backward, DType::f32);
      s.mode = mode;
      s.maxIndices = mode == BagMode::max;
      s.twoD = mode == BagMode::max;
      s.deterministic = deterministic;
      specs.push_back(s);
    }
  }
  s = base(OpKind::embedding_bag_psw_backward, DType::f32);
  specs.push_back(s);
  for (bool coalesced : {false, true}) {
    s = base(OpKind::embedding_sparse_backward, DType::f32);
    s.coalesced = coalesced;
    s.paddingIdx = 1;
    specs.push_back(s);
    s = base(OpKind::embedding_bag_sparse_backward, DType::bf16);
    s.mode = BagMode::mean;
    s.coalesced = coalesced;
    specs.push_back(s);
  }
  for (const KernelSpec &spec : specs) {
    auto object = compileToObject(spec);
    EXPECT_TRUE(static_cast<bool>(object))
        << spec.str() << ": "
        << (object ? std::string() : llvm::toString(object.takeError()));
  }
}

// The sparse gradients: lookup and bag (1-D, 2-D, include_last_offset;
// sum, mean, psw; padding), uncoalesced and coalesced, every dtype: no
// atomics.
TEST(NVPTX, SparseGradientsEveryVariant) {
  bool ptxas = havePtxas();
  int k = 0;
  for (int64_t dim : {1, 17, 64, 128})
    for (int variant = 0; variant < 8; ++variant, ++k) {
      KernelSpec spec;
      bool bag = variant >= 2;
      spec.op = bag ? OpKind::embedding_bag_sparse_backward
                    : OpKind::embedding_sparse_backward;
      spec.target = Target::gpu_emulated;
      spec.weight = kFloats[k % 4];
      spec.indices = k % 3 ? DType::i64 : DType::i32;
      spec.offsets = k % 2 ? DType::i64 : DType::i32;
      spec.dim = dim;
      spec.numEmbeddings = 1000;
      spec.coalesced = variant % 2 == 1;
      spec.mode = variant >= 6 ? BagMode::mean : BagMode::sum;
      spec.twoD = variant == 4 || variant == 5;
      spec.includeLastOffset = variant == 3;
      spec.perSampleWeights = variant == 2 || variant == 3;
      spec.paddingIdx = k % 3 == 0 ? 5 : -1;
      compileEverywhere(spec, ptxas);
      if (HasFatalFailure())
        return;
    }
  if (!ptxas)
    GTEST_SKIP() << "PTX checked; ptxas not found: cubins not built";
}

// The backward fused with an optimizer: every optimizer, mode and dtype;
// no atomics (one thread group owns a row).
TEST(NVPTX, FusedUpdateEveryOptimizerModeAndDtype) {
  bool ptxas = havePtxas();
  const Optimizer optimizers[] = {Optimizer::sgd, Optimizer::adagrad,
                                  Optimizer::rowwise_adagrad, Optimizer::adam};
  const BagMode modes[] = {BagMode::sum, BagMode::mean, BagMode::max};
  int k = 0;
  for (Optimizer opt : optimizers)
    for (BagMode mode : modes) {
      KernelSpec spec;
      spec.op = OpKind::embedding_bag_update;
      spec.target = Target::gpu_emulated;
      spec.optimizer = opt;
      spec.mode = mode;
      spec.weight = kFloats[k % 4];
      spec.dim = kDims[(k * 3) % std::size(kDims)];
      spec.twoD = k % 3 == 1;
      spec.perSampleWeights = mode != BagMode::max && k % 2 == 0;
      spec.maxIndices = mode == BagMode::max;
      spec.numEmbeddings = 1000;
      spec.paddingIdx = mode == BagMode::max ? -1 : 0;
      spec.scaleGradByFreq = mode == BagMode::sum && k % 2 == 1;
      spec.weightDecay = k % 2 ? 0.01 : 0.0;
      ++k;
      compileEverywhere(spec, ptxas);
      if (HasFatalFailure())
        return;
    }
}

} // namespace
