//===- ThreadPool.cpp -----------------------------------------------------===//

#include "ThreadPool.h"

#include <algorithm>

namespace emb {

namespace {
/// Chunk `c` of `chunks` over [0, n): [n*c/chunks, n*(c+1)/chunks).
std::pair<int64_t, int64_t> chunkOf(int64_t n, int chunks, int c) {
  return {n * c / chunks, n * (c + 1) / chunks};
}
} // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(threads, 1); ++i)
    workers.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  for (std::thread &t : workers)
    t.join();
}

void ThreadPool::work(int id) {
  uint64_t seen = 0;
  while (true) {
    const std::function<void(int64_t, int64_t)> *fn;
    int64_t n;
    int chunks;
    {
      std::unique_lock<std::mutex> lock(mutex);
      wake.wait(lock, [&] { return stopping || generation != seen; });
      if (stopping)
        return;
      seen = generation;
      fn = job;
      n = jobN;
      chunks = jobChunks;
    }
    if (id < chunks) {
      auto [b, e] = chunkOf(n, chunks, id);
      (*fn)(b, e);
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (--pending == 0)
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
    pending = static_cast<int>(workers.size());
    ++generation;
  }
  wake.notify_all();
  auto [b, e] = chunkOf(n, chunks, 0);
  fn(b, e);
  std::unique_lock<std::mutex> lock(mutex);
  done.wait(lock, [&] { return pending == 0; });
}

} // namespace emb
