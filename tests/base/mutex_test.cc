#include "base/mutex.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace moestream {
namespace {

// Shared state as the library uses it: fields guarded by the mutex, a waiter
// that Awaits a condition another thread makes true.
class Counter {
 public:
  void Add(int n) {
    MutexLock lock(&mu_);
    value_ += n;
  }
  // Blocks until the value reaches `target`; returns it.
  int AwaitAtLeast(int target) {
    MutexLock lock(&mu_);
    auto reached = [this, target]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return value_ >= target; };
    mu_.Await(absl::Condition(&reached));
    return value_;
  }

 private:
  Mutex mu_;
  int value_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(MutexTest, ExcludesWriters) {
  Counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 10000; ++i) c.Add(1);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c.AwaitAtLeast(0), 40000);
}

TEST(MutexTest, AwaitReturnsOnceAnotherThreadMakesTheConditionTrue) {
  Counter c;
  std::thread producer([&c] {
    for (int i = 0; i < 100; ++i) c.Add(1);
  });
  EXPECT_GE(c.AwaitAtLeast(100), 100);
  producer.join();
}

}  // namespace
}  // namespace moestream
