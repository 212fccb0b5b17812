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

double MeasureReadGbps(int threads, int reps) {
  constexpr size_t kWords = (size_t{128} << 20) / sizeof(uint64_t);
  static std::vector<uint64_t>* src = new std::vector<uint64_t>(kWords, 3);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  const size_t part = (kWords / threads + 7) / 8 * 8;
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < std::max(1, reps); ++r) {
    pool.ParallelFor(threads, [&](int64_t i) {
      const size_t b = std::min(kWords, static_cast<size_t>(i) * part), e = std::min(kWords, b + part);
      // Four independent sums, so the loop is bound by the loads.
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const uint64_t* p = src->data();
      size_t k = b;
      for (; k + 4 <= e; k += 4) {
        s0 += p[k];
        s1 += p[k + 1];
        s2 += p[k + 2];
        s3 += p[k + 3];
      }
      for (; k < e; ++k) s0 += p[k];
      sums[static_cast<size_t>(i)] += s0 + s1 + s2 + s3;
    });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile uint64_t sink = sums[0];  // the sums are used, so the reads cannot be dropped
  (void)sink;
  return static_cast<double>(kWords * sizeof(uint64_t)) * std::max(1, reps) / secs / 1e9;
}

}  // namespace moestream::kernels::cpu
