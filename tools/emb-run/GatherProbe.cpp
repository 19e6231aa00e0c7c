//===- GatherProbe.cpp - emb-run --bench: the random-row gather limit -----===//
//
// What the memory system gives for the access pattern of a forward call:
// the same rows, at the same addresses, in the same order, read with a
// software prefetch 16 indices ahead (every cache line of the row), summed
// per bag in AVX-512 registers (f16 / bf16 widened to f32; an int8
// table's D bytes widened, its whole packed row prefetched) and written
// once; embedding copies each row to its output slot. Bags are split
// evenly over the same number of threads (where there is 1 MiB of rows
// for each, as in the Engine), kept alive between repetitions
// (and woken as the Engine's pool is) so that small calls do not time
// thread creation.
//
// This is a benchmark helper, not a kernel users run: it does no
// validation, no padding, no weights, and sums whatever the mode. A memcpy
// probe measures sequential bandwidth; random rows cost TLB misses and one
// DRAM latency per row, so this is the bound a gather kernel is held to.
//
//===----------------------------------------------------------------------===//

#include "EmbRun.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#if defined(__x86_64__)
#include <immintrin.h>
#define EMB_PROBE_TARGET                                                       \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c")))
#endif

namespace emb::run {

#if defined(__x86_64__)
namespace {

constexpr int64_t kPrefetchDistance = 16;

/// One element type's 512-bit vector: loads widen to the accumulator
/// (f32 lanes for f32 / f16 / bf16, f64 lanes for f64), stores narrow back.
/// F32Lanes is what the three 16-lane types share.
struct F32Lanes {
  using V = __m512;
  static constexpr int lanes = 16;
  EMB_PROBE_TARGET static V zero() { return _mm512_setzero_ps(); }
  EMB_PROBE_TARGET static V add(V a, V b) { return _mm512_add_ps(a, b); }
};
struct F32 : F32Lanes {
  using T = float;
  using O = T;
  EMB_PROBE_TARGET static V load(const T *p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, p);
  }
  EMB_PROBE_TARGET static void store(T *p, V v, __mmask16 m) {
    _mm512_mask_storeu_ps(p, m, v);
  }
};
struct F16 : F32Lanes {
  using T = uint16_t;
  using O = T;
  EMB_PROBE_TARGET static V load(const T *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
  EMB_PROBE_TARGET static void store(T *p, V v, __mmask16 m) {
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
};
struct BF16 : F32Lanes {
  using T = uint16_t;
  using O = T;
  EMB_PROBE_TARGET static V load(const T *p, __mmask16 m) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  EMB_PROBE_TARGET static void store(T *p, V v, __mmask16 m) {
    __m512i high = _mm512_srli_epi32(_mm512_castps_si512(v), 16); // truncates
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(high));
  }
};
/// A quantised table's bytes (int8 rows: the D bytes of a row, widened; the
/// scale and bias are only read, by the prefetch of the whole row), summed
/// into the output type `Out` (F32 or F16).
template <class Out> struct U8 : F32Lanes {
  using T = uint8_t;
  using O = typename Out::T;
  EMB_PROBE_TARGET static V load(const T *p, __mmask16 m) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p)));
  }
  EMB_PROBE_TARGET static void store(O *p, V v, __mmask16 m) {
    Out::store(p, v, m);
  }
};
struct F64 {
  using T = double;
  using O = T;
  using V = __m512d;
  static constexpr int lanes = 8;
  EMB_PROBE_TARGET static V zero() { return _mm512_setzero_pd(); }
  EMB_PROBE_TARGET static V add(V a, V b) { return _mm512_add_pd(a, b); }
  EMB_PROBE_TARGET static V load(const T *p, __mmask16 m) {
    return _mm512_maskz_loadu_pd(static_cast<__mmask8>(m), p);
  }
  EMB_PROBE_TARGET static void store(T *p, V v, __mmask16 m) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>(m), v);
  }
};

/// The probe's view of the call: the table, the flat indices, and where
/// each bag starts (`starts[b]`..`starts[b + 1]`; a lookup is bags of one).
struct Job {
  const char *table = nullptr;
  const void *indices = nullptr;
  char *out = nullptr;
  std::vector<int64_t> starts;
  int64_t numIndices = 0, D = 0, rowBytes = 0;
  bool lookup = false;
};

EMB_PROBE_TARGET inline void prefetchRow(const char *row, int64_t bytes) {
  for (int64_t b = 0; b < bytes; b += 64)
    _mm_prefetch(row + b, _MM_HINT_T0);
}

/// Bags [first, last) of `job`: NV > 0 keeps a row of exactly NV vectors in
/// registers; NV = 0 handles any D through an accumulator in memory.
template <class E, class I, int NV>
EMB_PROBE_TARGET void runBags(const Job &job, int64_t first, int64_t last,
                              std::vector<typename E::V> &spill) {
  using T = typename E::T;
  using O = typename E::O;
  const I *idx = static_cast<const I *>(job.indices);
  const int64_t D = job.D, lastIndex = job.numIndices - 1;
  const int64_t chunks = NV ? NV : (D + E::lanes - 1) / E::lanes;
  const __mmask16 full = E::lanes == 16 ? 0xFFFF : 0xFF;
  const __mmask16 tail =
      D % E::lanes ? static_cast<__mmask16>((1u << (D % E::lanes)) - 1) : full;
  auto mask = [&](int64_t c) { return c == chunks - 1 ? tail : full; };
  auto row = [&](int64_t i) {
    return reinterpret_cast<const T *>(
        job.table + static_cast<int64_t>(idx[i]) * job.rowBytes);
  };
  auto prefetchAhead = [&](int64_t i) {
    int64_t ahead = std::min(i + kPrefetchDistance, lastIndex);
    prefetchRow(job.table + static_cast<int64_t>(idx[ahead]) * job.rowBytes,
                job.rowBytes);
  };
  typename E::V acc[NV ? NV : 1];
  for (int64_t b = first; b < last; ++b) {
    O *out = reinterpret_cast<O *>(job.out) + b * D;
    const int64_t begin = job.starts[b], end = job.starts[b + 1];
    if (job.lookup) { // a bag of one, copied
      prefetchAhead(begin);
      const T *r = row(begin);
      for (int64_t c = 0; c < chunks; ++c)
        E::store(out + c * E::lanes, E::load(r + c * E::lanes, mask(c)),
                 mask(c));
      continue;
    }
    if constexpr (NV > 0) {
      for (int c = 0; c < NV; ++c)
        acc[c] = E::zero();
      for (int64_t i = begin; i < end; ++i) {
        prefetchAhead(i);
        const T *r = row(i);
        for (int c = 0; c < NV; ++c)
          acc[c] = E::add(acc[c], E::load(r + c * E::lanes, full));
      }
      for (int c = 0; c < NV; ++c)
        E::store(out + c * E::lanes, acc[c], full);
    } else {
      for (int64_t c = 0; c < chunks; ++c)
        spill[c] = E::zero();
      for (int64_t i = begin; i < end; ++i) {
        prefetchAhead(i);
        const T *r = row(i);
        for (int64_t c = 0; c < chunks; ++c)
          spill[c] = E::add(spill[c], E::load(r + c * E::lanes, mask(c)));
      }
      for (int64_t c = 0; c < chunks; ++c)
        E::store(out + c * E::lanes, spill[c], mask(c));
    }
  }
}

using BagsFn = void (*)(const Job &, int64_t, int64_t,
                        std::vector<__m512> &, std::vector<__m512d> &);

template <class E, class I, int NV>
void runBagsAny(const Job &job, int64_t first, int64_t last,
                std::vector<__m512> &s32, std::vector<__m512d> &s64) {
  if constexpr (std::is_same_v<typename E::V, __m512>)
    runBags<E, I, NV>(job, first, last, s32);
  else
    runBags<E, I, NV>(job, first, last, s64);
}

/// The specialisation for this dtype, index type and row width.
template <class E, class I> BagsFn pickWidth(int64_t D) {
  if (D % E::lanes)
    return runBagsAny<E, I, 0>;
  switch (D / E::lanes) {
  case 1: return runBagsAny<E, I, 1>;
  case 2: return runBagsAny<E, I, 2>;
  case 4: return runBagsAny<E, I, 4>;
  case 8: return runBagsAny<E, I, 8>;
  case 16: return runBagsAny<E, I, 16>;
  default: return runBagsAny<E, I, 0>;
  }
}
template <class E> BagsFn pickIndex(DType idx, int64_t D) {
  return idx == DType::i32 ? pickWidth<E, int32_t>(D)
                           : pickWidth<E, int64_t>(D);
}
BagsFn pick(DType dtype, DType idx, int64_t D, Quantization quant) {
  if (quant == Quantization::int8)
    return dtype == DType::f16 ? pickIndex<U8<F16>>(idx, D)
                               : pickIndex<U8<F32>>(idx, D);
  if (quant != Quantization::none) // int4: no probe of nibbles
    return nullptr;
  switch (dtype) {
  case DType::f32: return pickIndex<F32>(idx, D);
  case DType::f16: return pickIndex<F16>(idx, D);
  case DType::bf16: return pickIndex<BF16>(idx, D);
  case DType::f64: return pickIndex<F64>(idx, D);
  default: return nullptr;
  }
}

/// Threads that live across repetitions: each run() hands every worker its
/// share and does share 0 on the caller's thread. Idle workers sleep (a
/// spinning one would take a core from the kernel timed in turn with it).
class Crew {
public:
  Crew(int n, std::function<void(int)> work) : work(std::move(work)) {
    for (int t = 1; t < n; ++t)
      threads.emplace_back([this, t] {
        for (uint64_t seen = 0;;) {
          {
            std::unique_lock<std::mutex> lock(mutex);
            wake.wait(lock, [&] { return stop || generation != seen; });
            if (stop)
              return;
            seen = generation;
          }
          this->work(t);
          std::lock_guard<std::mutex> lock(mutex);
          if (--pending == 0)
            done.notify_one();
        }
      });
  }
  ~Crew() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    wake.notify_all();
    for (auto &t : threads)
      t.join();
  }
  void run() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      pending = static_cast<int>(threads.size());
      ++generation;
    }
    wake.notify_all();
    work(0);
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, [&] { return pending == 0; });
  }

private:
  std::function<void(int)> work;
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::condition_variable wake, done;
  uint64_t generation = 0;
  int pending = 0;
  bool stop = false;
};

} // namespace

std::function<void()> gatherProbe(const Setup &s, Instance &inst,
                                  int nthreads) {
  // Many tables lie flat, one after another, each of its own D: no
  // single-table probe reads them.
  if (inst.device || s.backward || !(s.bag || s.lookup) || s.N == 0 ||
      !s.tables.empty() ||
      !__builtin_cpu_supports("avx512f") ||
      !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl"))
    return {};
  BagsFn fn = pick(s.dtype, s.idxType, s.D, s.quant);
  if (!fn)
    return {};
  bool quantized = s.quant != Quantization::none;
  auto job = std::make_shared<Job>();
  job->table = static_cast<const char *>(quantized ? inst.vPacked.data
                                                   : inst.vWeight.data);
  job->indices = inst.vIndices.data;
  job->out = static_cast<char *>(inst.vOut.data);
  job->numIndices = s.N;
  job->D = s.D;
  job->rowBytes = quantized ? quantizedRowBytes(s.quant, s.D)
                            : s.D * static_cast<int64_t>(dtypeSize(s.dtype));
  job->lookup = s.lookup;
  const int64_t bags = s.lookup ? s.N : s.B;
  job->starts.resize(bags + 1);
  for (int64_t b = 0; b < bags; ++b)
    job->starts[b] = s.lookup || s.flags.twoD ? b * (s.lookup ? 1 : s.L)
                                              : inst.offsets.intAt(b);
  job->starts[bags] = s.N;
  if (s.bag && !s.flags.twoD && s.flags.includeLastOffset)
    job->starts[bags] = inst.offsets.intAt(bags);

  // As many threads as the Engine would wake: at least 1 MiB of rows each
  // (kMinBytesPerChunk in runtime/EngineInternal.h); waking a thread costs
  // more than a small call.
  int64_t rowBytes = s.N * job->rowBytes;
  nthreads = static_cast<int>(std::clamp<int64_t>(rowBytes >> 20, 1,
                                                  std::max(1, nthreads)));
  size_t chunks = static_cast<size_t>((s.D + 7) / 8);
  auto s32 = std::make_shared<std::vector<std::vector<__m512>>>(
      nthreads, std::vector<__m512>(chunks));
  auto s64 = std::make_shared<std::vector<std::vector<__m512d>>>(
      nthreads, std::vector<__m512d>(chunks));
  auto crew = std::make_shared<Crew>(nthreads, [=](int t) {
    fn(*job, bags * t / nthreads, bags * (t + 1) / nthreads, (*s32)[t],
       (*s64)[t]);
  });
  return [crew] { crew->run(); };
}

#else

std::function<void()> gatherProbe(const Setup &, Instance &, int) {
  return {};
}

#endif

} // namespace emb::run
