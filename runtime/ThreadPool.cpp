//===- ThreadPool.cpp -----------------------------------------------------===//

#include "ThreadPool.h"

#include <algorithm>
#include <chrono>

namespace emb {

namespace {
/// Chunk `c` of `chunks` over [0, n): [n*c/chunks, n*(c+1)/chunks).
std::pair<int64_t, int64_t> chunkOf(int64_t n, int chunks, int c) {
  return {n * c / chunks, n * (c + 1) / chunks};
}

/// How long a worker waits for the next job, and the caller for the
/// workers, before sleeping on the condition variable. A call is often two
/// jobs back to back (the index check, then the kernel) and a wake-up
/// through the kernel costs tens of microseconds on a busy machine: on
/// small-row bags (bf16, D = 32, L = 8: 0.3 ms a call) the two round trips
/// were a quarter of the time. Short, so that an idle pool does not keep a
/// core from the caller's next (torch) op for long.
constexpr auto kSpin = std::chrono::microseconds(30);

void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

/// Spins until `ready()` or kSpin has passed; returns ready().
template <class Pred> bool spinUntil(Pred ready) {
  auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (unsigned i = 1;; ++i) {
    if (ready())
      return true;
    if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline)
      return ready();
    relax();
  }
}
} // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(threads, 1); ++i)
    workers.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping.store(true, std::memory_order_release);
  }
  wake.notify_all();
  for (std::thread &t : workers)
    t.join();
}

void ThreadPool::work(int id) {
  uint64_t seen = 0;
  while (true) {
    auto next = [&] {
      return stopping.load(std::memory_order_acquire) ||
             generation.load(std::memory_order_acquire) != seen;
    };
    if (!spinUntil(next)) {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, next);
    }
    if (stopping.load(std::memory_order_acquire))
      return;
    // The job's fields were written before generation moved (under the
    // mutex, then a release): read after seeing it, they are this job's.
    seen = generation.load(std::memory_order_acquire);
    const std::function<void(int64_t, int64_t)> *fn = job;
    int64_t n = jobN;
    int chunks = jobChunks;
    if (id < chunks) {
      auto [b, e] = chunkOf(n, chunks, id);
      (*fn)(b, e);
    }
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex);
      done.notify_all();
    }
  }
}

void ThreadPool::parallelFor(int64_t n, int64_t minChunk,
                             const std::function<void(int64_t, int64_t)> &fn) {
  if (n <= 0)
    return;
  int64_t byGrain = std::max<int64_t>(1, n / std::max<int64_t>(minChunk, 1));
  int chunks = static_cast<int>(std::min<int64_t>(size(), byGrain));
  if (chunks <= 1 || workers.empty()) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> call(callMutex);
  {
    std::lock_guard<std::mutex> lock(mutex);
    job = &fn;
    jobN = n;
    jobChunks = chunks;
    pending.store(static_cast<int>(workers.size()), std::memory_order_relaxed);
    generation.fetch_add(1, std::memory_order_release);
  }
  wake.notify_all();
  auto [b, e] = chunkOf(n, chunks, 0);
  fn(b, e);
  auto finished = [&] { return pending.load(std::memory_order_acquire) == 0; };
  if (!spinUntil(finished)) {
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, finished);
  }
}

} // namespace emb
