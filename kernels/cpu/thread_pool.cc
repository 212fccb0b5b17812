#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <system_error>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace moestream::kernels::cpu {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {
  try {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  } catch (const std::system_error&) {
    // Out of threads: stop the ones started (a joinable std::thread must not
    // be destroyed) and let the creator report it.
    {
      MutexLock lock(&mu_);
      stop_ = true;
    }
    for (auto& t : workers_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  { MutexLock lock(&mu_); }  // wakes sleepers: their conditions read stop_
  for (auto& t : workers_) t.join();
}

template <typename Done>
bool ThreadPool::SpinThenWait(const Done& done, std::atomic<int>* sleepers) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (done()) return true;
    if (stop_.load(std::memory_order_relaxed)) return false;
    // Pause a little, then yield: on a machine with more runnable threads
    // than cores a spinner gives its core away instead of delaying the
    // thread it waits for.
    if (i < 64) {
      CpuRelax();
    } else {
      std::this_thread::yield();
      if ((i & 7) == 7 && std::chrono::steady_clock::now() > until) break;
    }
  }
  // Announce the sleep before the last check (both seq_cst): a waker either
  // sees the count, or its change is visible to the check under the mutex.
  sleepers->fetch_add(1, std::memory_order_seq_cst);
  {
    MutexLock lock(&mu_);
    auto woken = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return done() || stop_.load(std::memory_order_seq_cst);
    };
    mu_.Await(absl::Condition(&woken));
  }
  sleepers->fetch_sub(1, std::memory_order_relaxed);
  // Not done(): by now another thread may have claimed what woke this one,
  // and a worker told "false" would take it for the pool stopping and exit,
  // leaving the caller to run every later job alone.
  return !stop_.load(std::memory_order_relaxed);
}

void ThreadPool::WakeSleepers(const std::atomic<int>& sleepers) {
  if (sleepers.load(std::memory_order_seq_cst) > 0) {
    MutexLock lock(&mu_);  // the unlock re-evaluates the sleepers' conditions
  }
}

void ThreadPool::RunTasks() {
  for (;;) {
    const uint64_t w = job_.fetch_add(1, std::memory_order_acquire);
    const int64_t i = Index(w);
    if (i >= Count(w)) break;
    (*fn_)(i);
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == Count(w)) WakeSleepers(sleeping_caller_);
  }
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    if (!SpinThenWait([this] { return HasUnclaimed(); }, &sleeping_workers_)) return;  // stopping
    RunTasks();
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n == 1 || workers_.empty()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  if (n > kMaxTasks) {  // more than the job word counts: in parts
    for (int64_t b = 0; b < n; b += kMaxTasks) {
      const int64_t e = std::min(n, b + kMaxTasks);
      ParallelFor(e - b, [&](int64_t i) { fn(b + i); });
    }
    return;
  }
  fn_ = &fn;
  done_.store(0, std::memory_order_relaxed);
  generation_ = (generation_ + 1) & ((uint64_t{1} << (64 - kIndexBits - kCountBits)) - 1);
  job_.store(Pack(generation_, n), std::memory_order_seq_cst);  // publishes fn_ and done_
  WakeSleepers(sleeping_workers_);
  RunTasks();
  SpinThenWait([this, n] { return done_.load(std::memory_order_acquire) == n; }, &sleeping_caller_);
}

}  // namespace moestream::kernels::cpu
