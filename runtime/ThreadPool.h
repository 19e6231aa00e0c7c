//===- ThreadPool.h - a fixed pool for splitting rows and bags --*- C++ -*-===//
//
// parallelFor splits [0, n) into one contiguous chunk per thread (the
// caller's thread takes the first). The split depends only on n and the
// thread count, and the forward kernels write disjoint rows, so results are
// bit-identical for any thread count. Workers (and the caller, for the
// workers) spin for a few microseconds before sleeping: calls are often
// jobs back to back.
//
//===----------------------------------------------------------------------===//

#ifndef EMB_RUNTIME_THREADPOOL_H
#define EMB_RUNTIME_THREADPOOL_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace emb {

class ThreadPool {
public:
  explicit ThreadPool(int threads);
  ~ThreadPool();

  int size() const { return static_cast<int>(workers.size()) + 1; }

  /// Runs fn(begin, end) over contiguous chunks of [0, n); chunks smaller
  /// than `minChunk` are not split further. Returns when all are done.
  void parallelFor(int64_t n, int64_t minChunk,
                   const std::function<void(int64_t, int64_t)> &fn);

private:
  void work(int id);

  std::vector<std::thread> workers;
  std::mutex mutex;
  std::condition_variable wake, done;
  // The job: written under `mutex` before `generation` moves; workers that
  // spin read it after seeing the new generation, sleeping ones under the
  // mutex.
  const std::function<void(int64_t, int64_t)> *job = nullptr;
  int64_t jobN = 0;
  int jobChunks = 0;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  std::atomic<bool> stopping{false};
  std::mutex callMutex; // one parallelFor at a time
};

} // namespace emb

#endif // EMB_RUNTIME_THREADPOOL_H
