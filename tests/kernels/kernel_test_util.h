// Helpers shared by the kernel op tests: a backend per ISA (skipping with the
// reason where the CPU lacks it), random data, and tolerance checks.
#ifndef MOESTREAM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define MOESTREAM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/quant.h"

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

// Random blocks of a quantized type with finite scale fields (every bit
// pattern of the quants is legal; a random half scale could be Inf or NaN):
// reaches the bit patterns a quantizer may never write, and the types we
// have no quantizer for (Q2_K, Q3_K, MXFP4).
inline std::vector<uint8_t> RandomQuantBlocks(GgmlType t, int64_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  const GgmlTypeTraits* tr = GgmlTypeTraitsOf(t);
  std::vector<uint8_t> b(RowBytes(t, n));
  for (uint8_t& v : b) v = static_cast<uint8_t>(byte(rng));
  auto half_at = [&](uint8_t* p) {
    const uint16_t h = FloatToHalf(scale(rng));
    std::memcpy(p, &h, 2);
  };
  for (size_t off = 0; off < b.size(); off += tr->block_bytes) {
    uint8_t* blk = &b[off];
    switch (t) {
      case GgmlType::kQ4_0: case GgmlType::kQ5_0: case GgmlType::kQ8_0:
        half_at(blk);
        break;
      case GgmlType::kQ4_1: case GgmlType::kQ5_1: case GgmlType::kQ4_K: case GgmlType::kQ5_K:
        half_at(blk);
        half_at(blk + 2);
        break;
      case GgmlType::kQ8_K: {
        const float d = scale(rng);
        std::memcpy(blk, &d, 4);
        break;
      }
      case GgmlType::kQ2_K:
        half_at(blk + 80);
        half_at(blk + 82);
        break;
      case GgmlType::kQ3_K: half_at(blk + 108); break;
      case GgmlType::kQ6_K: half_at(blk + 208); break;
      case GgmlType::kMXFP4: blk[0] = static_cast<uint8_t>(110 + byte(rng) % 30); break;
      default: ADD_FAILURE() << "no scale layout for " << tr->name;
    }
  }
  return b;
}

// Row n of type t as floats: DequantizeRow, or for MXFP4 its definition
// (E2M1 value table times 2^(e-127); independent of any dequantizer, so it
// also checks the CUDA unpacker's integer arithmetic).
inline std::vector<float> DequantizeForTest(GgmlType t, const uint8_t* row, int64_t n) {
  std::vector<float> y(n);
  if (t == GgmlType::kMXFP4) {
    static const float kE2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* b = row + (i / 32) * 17;
      const int j = int(i % 32);
      const int code = j < 16 ? (b[1 + j] & 0xF) : (b[1 + j - 16] >> 4);
      const float v = kE2m1[code & 7] * std::ldexp(1.0f, int(b[0]) - 127);
      y[i] = (code & 8) ? -v : v;
    }
    return y;
  }
  EXPECT_TRUE(DequantizeRow(t, row, n, y.data()).ok()) << GgmlTypeName(t);
  return y;
}

inline const char* kIsas[] = {"scalar", "avx2", "avx512", "avx512vnni"};

}  // namespace moestream::kernels::testing

#endif  // MOESTREAM_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
