#include "kernels/cpu/memcpy_probe.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "kernels/cpu/thread_pool.h"

namespace moestream::kernels::cpu {

double MeasureMemcpyGbps(int threads, int reps) {
  constexpr size_t kBytes = size_t{128} << 20;
  static std::vector<uint8_t>* src = new std::vector<uint8_t>(kBytes, 1);
  static std::vector<uint8_t>* dst = new std::vector<uint8_t>(kBytes, 2);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  const size_t part = (kBytes / threads + 63) / 64 * 64;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < std::max(1, reps); ++r) {
    pool.ParallelFor(threads, [&](int64_t i) {
      const size_t b = std::min(kBytes, static_cast<size_t>(i) * part), e = std::min(kBytes, b + part);
      std::memcpy(dst->data() + b, src->data() + b, e - b);
    });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The destination is read back so the copies cannot be dropped.
  volatile uint8_t sink = (*dst)[kBytes / 2];
  (void)sink;
  return static_cast<double>(kBytes) * std::max(1, reps) / secs / 1e9;
}

}  // namespace moestream::kernels::cpu
