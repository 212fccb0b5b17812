// A fixed pool of compute threads for the CPU backend's ops. The calling
// thread takes part in every ParallelFor, so a pool of N threads runs N-1
// workers. Work is handed out in index order from an atomic counter, so
// neighbouring indices (neighbouring weight rows) tend to run on one thread.
//
//   ThreadPool pool(4);
//   pool.ParallelFor(n_chunks, [&](int64_t i) { Compute(i); });
//
// ParallelFor is not reentrant and must be called from one thread at a time
// (the backend's compute stream).
#ifndef MOESTREAM_KERNELS_CPU_THREAD_POOL_H_
#define MOESTREAM_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"

namespace moestream::kernels::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }
  // Runs fn(i) for i in [0, n) across the pool; returns when all are done.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunTasks();

  const int threads_;
  std::vector<std::thread> workers_;
  // Guards the generation handshake: workers Await a new generation_ (or
  // stop_), the caller Awaits pending_ == 0.
  Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Workers yet to finish the current generation. Every worker checks in each
  // generation, so the job fields below are never rewritten while a worker
  // may still read them.
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // The current job: written by the caller under mu_ before it bumps
  // generation_, read by workers without the lock after they see the new
  // generation (the mutex orders the two), so not annotated as guarded.
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
};

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_THREAD_POOL_H_
