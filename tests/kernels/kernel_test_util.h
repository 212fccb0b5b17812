// Helpers shared by the kernel op tests: a backend per ISA (skipping with the
// reason where the CPU lacks it), random data, and tolerance checks.
#ifndef MOESTREAM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define MOESTREAM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace moestream::kernels::testing {

// A cpu backend forced to `isa`; null (with *skip set to the reason) when
// this CPU cannot run it.
inline std::unique_ptr<Backend> MakeIsaBackend(const std::string& isa, std::string* skip,
                                               int threads = 3) {
  BackendOptions o;
  o.kind = "cpu";
  o.isa = isa;
  o.threads = threads;
  auto be = CreateBackend(o);
  if (!be.ok()) {
    *skip = std::string(be.status().message());
    return nullptr;
  }
  return std::move(be).value();
}

inline std::vector<float> RandomVec(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

inline const char* kIsas[] = {"scalar", "avx2", "avx512", "avx512vnni"};

}  // namespace moestream::kernels::testing

#endif  // MOESTREAM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
