// A fixed pool of compute threads for the CPU backend's ops. The calling
// thread takes part in every ParallelFor, so a pool of N threads runs N-1
// workers. Work is handed out in index order from an atomic counter, so
// neighbouring indices (neighbouring weight rows) tend to run on one thread.
//
//   ThreadPool pool(4);
//   pool.ParallelFor(n_chunks, [&](int64_t i) { Compute(i); });
//
// A decode step runs a hundred or more short ParallelFors tens of
// microseconds apart; waking a sleeping thread costs about as much. So idle
// workers, and the caller waiting for them, spin on an atomic for a short
// while (kSpin: pausing, then yielding the core) before sleeping on the
// mutex, and an idle pool stops using CPU soon after. Nobody waits for an
// idle worker to notice a job: the caller runs tasks too and returns when
// all tasks are done, so on a machine with more runnable threads than cores
// a descheduled worker delays nothing (measured: a longer pure spin made
// decode slower there, not faster).
//
// ParallelFor is not reentrant and must be called from one thread at a time
// (the backend's compute stream).
#ifndef MOESTREAM_KERNELS_CPU_THREAD_POOL_H_
#define MOESTREAM_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"

namespace moestream::kernels::cpu {

class ThreadPool {
 public:
  // How long an idle worker (or the waiting caller) spins before sleeping.
  static constexpr std::chrono::microseconds kSpin{50};

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }
  // Runs fn(i) for i in [0, n) across the pool; returns when all are done.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkerLoop();
  // Claims and runs tasks of the current job until none is left.
  void RunTasks();
  // Spins up to kSpin until done() is true, then sleeps on mu_ until it is,
  // counted in *sleepers while asleep. Returns false only if stop_ was set
  // (done() may be false again by the time a woken thread returns).
  template <typename Done>
  bool SpinThenWait(const Done& done, std::atomic<int>* sleepers);
  // Wakes the threads sleeping on mu_ (if *sleepers says there are any)
  // after an atomic they wait on has changed.
  void WakeSleepers(const std::atomic<int>& sleepers);

  // The job word packs (generation, task count, next index). Claiming a task
  // is one fetch_add; the count in the same word tells the claimer whether
  // its index is a task, so nothing else of a job is read unless a task was
  // claimed, and fn_ cannot change until every task is done.
  static constexpr int kIndexBits = 22, kCountBits = 22;
  static constexpr int64_t kMaxTasks = (int64_t{1} << kIndexBits) - 1024;
  static uint64_t Pack(uint64_t gen, int64_t n) {
    return (gen << (kIndexBits + kCountBits)) | (static_cast<uint64_t>(n) << kIndexBits);
  }
  static int64_t Count(uint64_t w) { return static_cast<int64_t>((w >> kIndexBits) & ((1u << kCountBits) - 1)); }
  static int64_t Index(uint64_t w) { return static_cast<int64_t>(w & ((1u << kIndexBits) - 1)); }
  bool HasUnclaimed() const {
    const uint64_t w = job_.load(std::memory_order_acquire);
    return Index(w) < Count(w);
  }

  const int threads_;
  std::vector<std::thread> workers_;
  // Lock-free handshake: the caller publishes fn_ and resets done_, then
  // stores the job word (release); any thread claims tasks with fetch_add
  // (acquire) and counts finished ones in done_ (release); the caller
  // returns once done_ reaches the count. No thread waits for another to
  // merely notice a job, so a descheduled idle worker delays nobody. mu_
  // only parks threads that spun too long; its Await conditions read the
  // atomics.
  Mutex mu_;
  std::atomic<uint64_t> job_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleeping_workers_{0};
  std::atomic<int> sleeping_caller_{0};
  uint64_t generation_ = 0;  // the caller's
  // The current job's function, published by the job word.
  const std::function<void(int64_t)>* fn_ = nullptr;
};

}  // namespace moestream::kernels::cpu

#endif  // MOESTREAM_KERNELS_CPU_THREAD_POOL_H_
