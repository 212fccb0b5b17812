// The CPU backend's thread pool: every index runs exactly once per
// ParallelFor, across back-to-back calls (workers spinning), calls after the
// workers went to sleep, workers woken to find nothing left, and task
// counts from 1 to beyond what one job word holds. Run under ThreadSanitizer by ./test.sh --sanitize thread.
#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace moestream::kernels::cpu {
namespace {

void ExpectEachIndexOnce(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  pool.ParallelFor(n, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed); });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
}

TEST(ThreadPoolTest, BackToBackCallsRunEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 2000; ++rep) ExpectEachIndexOnce(pool, 1 + rep % 13);
  }
}

TEST(ThreadPoolTest, CallsAfterWorkersSleptRunEveryIndexOnce) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 5; ++rep) {
    std::this_thread::sleep_for(ThreadPool::kSpin * 4);  // workers park on the mutex
    ExpectEachIndexOnce(pool, 64);
  }
}

// A worker woken from its sleep may find the job's tasks already claimed
// (the caller ran them). It must go back to waiting, not leave: after many
// such wake-ups, a job of slow tasks still runs on more than one thread.
TEST(ThreadPoolTest, WorkersSurviveWakingToNothing) {
  ThreadPool pool(2);
  std::mt19937 rng(7);
  auto spin_for = [](std::chrono::nanoseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  // Wake-ups racing the caller for the last tasks of a job, many times over.
  for (int rep = 0; rep < 3000; ++rep) {
    if (rep % 3 == 0) std::this_thread::sleep_for(ThreadPool::kSpin * 2);  // the worker parks
    const int64_t n = 1 + int64_t(rng() % 8);
    const auto task = std::chrono::nanoseconds(rng() % 20000);
    pool.ParallelFor(n, [&](int64_t) { spin_for(task); });
  }
  std::vector<std::thread::id> ran(64);
  pool.ParallelFor(64, [&](int64_t i) {
    ran[static_cast<size_t>(i)] = std::this_thread::get_id();
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  });
  int other = 0;
  for (const std::thread::id& id : ran) other += id != std::this_thread::get_id();
  EXPECT_GT(other, 0) << "every task ran on the calling thread: the worker is gone";
}

TEST(ThreadPoolTest, ResultsWrittenByWorkersAreVisibleToTheCaller) {
  ThreadPool pool(4);
  std::vector<int64_t> out(1000);  // plain writes, ordered by the pool's handshake
  for (int rep = 0; rep < 50; ++rep) {
    pool.ParallelFor(1000, [&](int64_t i) { out[static_cast<size_t>(i)] = i * rep; });
    for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], i * rep);
  }
}

TEST(ThreadPoolTest, MoreTasksThanOneJobWordCounts) {
  ThreadPool pool(2);
  const int64_t n = (int64_t{1} << 22) + 5;
  std::atomic<int64_t> sum{0};
  pool.ParallelFor(n, [&](int64_t i) { sum.fetch_add(i, std::memory_order_relaxed); });
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
}

}  // namespace
}  // namespace moestream::kernels::cpu
