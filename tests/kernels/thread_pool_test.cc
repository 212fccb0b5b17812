// The CPU backend's thread pool: every index runs exactly once per
// ParallelFor, across back-to-back calls (workers spinning), calls after the
// workers went to sleep, and task counts from 1 to beyond what one job word
// holds. Run under ThreadSanitizer by ./test.sh --sanitize thread.
#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <chrono>
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
