#include "kernels/cpu/memcpy_probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>

#include "base/check.h"
#include "kernels/cpu/huge_pages.h"
#include "kernels/cpu/thread_pool.h"

namespace moestream::kernels::cpu {

namespace {

constexpr size_t kProbeBytes = size_t{128} << 20;

// Bytes per second (÷1e9) of the fastest of `reps` passes of `part(i,
// threads)` over kProbeBytes, run as `threads` (0 = one per core) parts of a
// pool. The fastest, not the mean: a pass slowed by another process on the
// machine says nothing about its memory, and a higher baseline only makes
// the ratios divided by it more conservative.
template <class Part>
double TimedPasses(int threads, int reps, Part part) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  double best = 0;
  for (int r = 0; r < std::max(1, reps); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.ParallelFor(threads, [&](int64_t i) { part(i, threads); });
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(kProbeBytes) / secs / 1e9);
  }
  return best;
}

// [begin, end) of part i of n over `count` items, parts rounded to `align`.
std::pair<size_t, size_t> PartRange(int64_t i, int n, size_t count, size_t align) {
  const size_t part = (count / n + align - 1) / align * align;
  const size_t b = std::min(count, static_cast<size_t>(i) * part);
  return {b, std::min(count, b + part)};
}

// A kProbeBytes buffer filled with `fill`, kept for the process. It is on
// 2 MiB pages like the weights the kernels stream (cpu_backend.cc), so the
// baseline and the kernels pay the same for address translation.
template <class T>
T* ProbeBuffer(T fill) {
  T* p = static_cast<T*>(HugePageAlloc(kProbeBytes));
  MOESTREAM_CHECK(p != nullptr) << "out of memory for the bandwidth probe";
  std::fill(p, p + kProbeBytes / sizeof(T), fill);
  return p;
}

}  // namespace

double MeasureMemcpyGbps(int threads, int reps) {
  static uint8_t* src = ProbeBuffer<uint8_t>(1);
  static uint8_t* dst = ProbeBuffer<uint8_t>(2);
  const double gbps = TimedPasses(threads, reps, [&](int64_t i, int n) {
    const auto [b, e] = PartRange(i, n, kProbeBytes, 64);
    std::memcpy(dst + b, src + b, e - b);
  });
  // The destination is read back so the copies cannot be dropped.
  volatile uint8_t sink = dst[kProbeBytes / 2];
  (void)sink;
  return gbps;
}

double MeasureReadGbps(int threads, int reps) {
  constexpr size_t kWords = kProbeBytes / sizeof(uint64_t);
  static const uint64_t* src = ProbeBuffer<uint64_t>(3);
  std::atomic<uint64_t> total{0};
  const double gbps = TimedPasses(threads, reps, [&](int64_t i, int n) {
    const auto [b, e] = PartRange(i, n, kWords, 8);
    // Four independent sums, so the loop is bound by the loads.
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const uint64_t* p = src;
    size_t k = b;
    for (; k + 4 <= e; k += 4) {
      s0 += p[k];
      s1 += p[k + 1];
      s2 += p[k + 2];
      s3 += p[k + 3];
    }
    for (; k < e; ++k) s0 += p[k];
    total.fetch_add(s0 + s1 + s2 + s3, std::memory_order_relaxed);
  });
  volatile uint64_t sink = total.load();  // the sums are used, so the reads cannot be dropped
  (void)sink;
  return gbps;
}

}  // namespace moestream::kernels::cpu
