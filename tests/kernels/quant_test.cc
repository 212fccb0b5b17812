// Quant formats: every dequantizer against blocks assembled by hand from the
// ggml block description (the expected floats come from the format's formula
// in this file, not from our code), conversions of special values, and
// quantize→dequantize error bounds per type.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/quant.h"

namespace moestream::kernels {
namespace {

// Little-endian stores into a raw block.
void PutU16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v & 0xFF);
  b[off + 1] = static_cast<uint8_t>(v >> 8);
}

std::vector<float> Dequant(GgmlType t, const std::vector<uint8_t>& block, int64_t n) {
  std::vector<float> y(n);
  EXPECT_TRUE(DequantizeRow(t, block.data(), n, y.data()).ok());
  return y;
}

// Half constants used below: 0.5 = 0x3800, 0.25 = 0x3400, 0.125 = 0x3000.
constexpr uint16_t kHalf05 = 0x3800, kHalf025 = 0x3400, kHalf0125 = 0x3000;

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -26)), 0x0000);  // below half the smallest subnormal
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie to even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie to even (up)
  EXPECT_EQ(FloatToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(FloatToHalf(NAN) & 0x7c00, 0x7c00);
  EXPECT_NE(FloatToHalf(NAN) & 0x3ff, 0);
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0xfbff), -65504.0f);
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)));
  // Every finite half survives the round trip.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h) << h;
  }
}

TEST(Bf16Test, KnownValues) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(Bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(FloatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie to even
  EXPECT_EQ(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie to even (up)
  EXPECT_EQ(FloatToBf16(-3.0f), 0xc040);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(NAN))));
}

TEST(DequantTest, Q8_0) {
  std::vector<uint8_t> b(34);
  PutU16(b, 0, kHalf025);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j * 7 - 100));
  auto y = Dequant(GgmlType::kQ8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.25f * (j * 7 - 100)) << j;
}

TEST(DequantTest, Q4_0) {
  std::vector<uint8_t> b(18);
  PutU16(b, 0, kHalf05);
  // Element j (< 16) is the low nibble of qs[j], element j + 16 the high one.
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y = Dequant(GgmlType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * (j - 8));
    EXPECT_EQ(y[j + 16], 0.5f * (15 - j - 8));
  }
}

// MXFP4: E2M1 codes (values doubled: 0, 1, 2, 3, 4, 6, 8, 12, then the
// negatives) times 2^(e - 128).
TEST(DequantTest, Mxfp4) {
  const float kValues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  for (int e : {0, 1, 2, 120, 127, 130, 254}) {
    std::vector<uint8_t> b(17);
    b[0] = static_cast<uint8_t>(e);
    for (int j = 0; j < 16; ++j) b[1 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    auto y = Dequant(GgmlType::kMXFP4, b, 32);
    const float scale = std::ldexp(1.0f, e - 128);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[j], kValues[j] * scale) << "e " << e << " j " << j;
      EXPECT_EQ(y[j + 16], kValues[15 - j] * scale) << "e " << e << " j " << j + 16;
    }
  }
}

// The quantizer's exponent puts the block maximum at 4..8 units (the table
// tops out at 12), and exactly representable values come back exactly.
TEST(QuantTest, Mxfp4ExactValuesAndExponent) {
  std::vector<float> x(32);
  const float kValues[8] = {0, 1, 2, 3, 4, 6, 8, 12};
  for (int j = 0; j < 32; ++j) x[j] = (j % 2 ? -1.0f : 1.0f) * kValues[j % 8] * 0.25f;
  std::vector<uint8_t> q(17);
  ASSERT_TRUE(QuantizeRow(GgmlType::kMXFP4, x.data(), 32, q.data()).ok());
  // max |x| = 3 = 12 * 2^(e-128) with e = floor(log2 3) - 2 + 127 = 126.
  EXPECT_EQ(q[0], 126);
  std::vector<float> y = Dequant(GgmlType::kMXFP4, q, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]) << j;
  // Halfway between 1 and 2 units goes to the lower code.
  std::vector<float> h(32, 0.0f);
  h[0] = 12.0f;  // scale 1
  h[1] = 1.5f;
  ASSERT_TRUE(QuantizeRow(GgmlType::kMXFP4, h.data(), 32, q.data()).ok());
  y = Dequant(GgmlType::kMXFP4, q, 32);
  EXPECT_EQ(y[0], 12.0f);
  EXPECT_EQ(y[1], 1.0f);
}

TEST(DequantTest, Q4_1) {
  std::vector<uint8_t> b(20);
  PutU16(b, 0, kHalf05);
  PutU16(b, 2, 0xbc00);  // m = -1
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(((j * 3) % 16) | (j << 4));
  auto y = Dequant(GgmlType::kQ4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * ((j * 3) % 16) - 1.0f);
    EXPECT_EQ(y[j + 16], 0.5f * j - 1.0f);
  }
}

TEST(DequantTest, Q5_0) {
  std::vector<uint8_t> b(22);
  PutU16(b, 0, kHalf025);
  // Fifth bit of element j is bit j of the little-endian 32-bit qh.
  const uint32_t qh = 0xA5C3F00Fu;
  std::memcpy(&b[2], &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>(j | (((j + 5) % 16) << 4));
  auto y = Dequant(GgmlType::kQ5_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    const int q0 = j | (((qh >> j) & 1) << 4);
    const int q1 = ((j + 5) % 16) | (((qh >> (j + 16)) & 1) << 4);
    EXPECT_EQ(y[j], 0.25f * (q0 - 16));
    EXPECT_EQ(y[j + 16], 0.25f * (q1 - 16));
  }
}

// The 12-byte 6-bit scale/min packing of Q4_K and Q5_K, as the format
// describes it: bytes 0-3 low 6 bits of scales 0-3 (bits 6-7: top bits of
// scales 4-7), bytes 4-7 the same for mins, bytes 8-11 low nibbles of scales
// 4-7 (low half) and mins 4-7 (high half).
void PackScales(const int sc[8], const int m[8], uint8_t* out) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

constexpr int kSc[8] = {1, 2, 3, 4, 17, 33, 50, 63};
constexpr int kMin[8] = {0, 5, 10, 63, 16, 31, 47, 2};

TEST(DequantTest, Q4K) {
  std::vector<uint8_t> b(144, 0);
  PutU16(b, 0, kHalf05);    // d
  PutU16(b, 2, kHalf025);   // dmin
  PackScales(kSc, kMin, &b[4]);
  // Group g (32 elements) lives in bytes 32*(g/2).. of qs: low nibbles for
  // even g, high nibbles for odd g.
  auto q = [](int e) { return (e * 7 + 3) % 16; };
  for (int e = 0; e < 256; ++e) {
    const int g = e / 32, l = e % 32;
    b[16 + 32 * (g / 2) + l] |= static_cast<uint8_t>(q(e) << (4 * (g % 2)));
  }
  auto y = Dequant(GgmlType::kQ4_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int g = e / 32;
    EXPECT_FLOAT_EQ(y[e], 0.5f * kSc[g] * q(e) - 0.25f * kMin[g]) << e;
  }
}

TEST(DequantTest, Q5K) {
  std::vector<uint8_t> b(176, 0);
  PutU16(b, 0, kHalf0125);
  PutU16(b, 2, kHalf05);
  PackScales(kSc, kMin, &b[4]);
  // As Q4_K, plus the fifth bit of element e (group g) in bit g of qh[e % 32].
  auto q = [](int e) { return (e * 11 + 1) % 32; };
  for (int e = 0; e < 256; ++e) {
    const int g = e / 32, l = e % 32;
    b[48 + 32 * (g / 2) + l] |= static_cast<uint8_t>((q(e) & 15) << (4 * (g % 2)));
    b[16 + l] |= static_cast<uint8_t>((q(e) >> 4) << g);
  }
  auto y = Dequant(GgmlType::kQ5_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int g = e / 32;
    EXPECT_FLOAT_EQ(y[e], 0.125f * kSc[g] * q(e) - 0.5f * kMin[g]) << e;
  }
}

TEST(DequantTest, Q6K) {
  std::vector<uint8_t> b(210, 0);
  // ql[128], qh[64], scales[16] (int8), d.
  for (int g = 0; g < 16; ++g) b[192 + g] = static_cast<uint8_t>(static_cast<int8_t>(g * 9 - 70));
  PutU16(b, 208, kHalf0125);
  // Each half of 128 elements: element i of quarter k (32 each) takes its low
  // 4 bits from ql[64h + 32*(k%2) + i] (low nibble for k < 2, high for k >= 2)
  // and its top 2 bits from bits 2k..2k+1 of qh[32h + i].
  auto q = [](int e) { return (e * 13 + 5) % 64; };
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, i = e % 32;
    b[64 * h + 32 * (k % 2) + i] |= static_cast<uint8_t>((q(e) & 15) << (k >= 2 ? 4 : 0));
    b[128 + 32 * h + i] |= static_cast<uint8_t>((q(e) >> 4) << (2 * k));
  }
  auto y = Dequant(GgmlType::kQ6_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_FLOAT_EQ(y[e], 0.125f * (((e / 16) * 9) - 70) * (q(e) - 32)) << e;
  }
}

TEST(DequantTest, Q2K) {
  std::vector<uint8_t> b(84, 0);
  // scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
  for (int g = 0; g < 16; ++g) b[g] = static_cast<uint8_t>((g % 16) | (((15 - g) % 16) << 4));
  PutU16(b, 80, kHalf05);
  PutU16(b, 82, kHalf025);
  // Element i of quarter k of half h: bits 2k..2k+1 of qs[32h + i % 32].
  auto q = [](int e) { return (e * 5 + 2) % 4; };
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, i = e % 32;
    b[16 + 32 * h + i] |= static_cast<uint8_t>(q(e) << (2 * k));
  }
  auto y = Dequant(GgmlType::kQ2_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int g = e / 16;
    EXPECT_FLOAT_EQ(y[e], 0.5f * g * q(e) - 0.25f * (15 - g)) << e;
  }
}

TEST(DequantTest, Q3K) {
  std::vector<uint8_t> b(110, 0);
  // hmask[32], qs[64], scales[12], d. Scales are 6-bit, biased by 32: the low
  // 4 bits of scale g are the low nibble of byte g (g < 8) or the high nibble
  // of byte g-8; the top 2 bits are bits 2*(g/4) of byte 8 + g%4.
  int s6[16];
  for (int g = 0; g < 16; ++g) s6[g] = (g * 19 + 7) % 64;
  for (int g = 0; g < 16; ++g) {
    b[96 + (g % 8)] |= static_cast<uint8_t>((s6[g] & 15) << (g < 8 ? 0 : 4));
    b[96 + 8 + g % 4] |= static_cast<uint8_t>((s6[g] >> 4) << (2 * (g / 4)));
  }
  PutU16(b, 108, kHalf025);
  // Low 2 bits as Q2_K; the high bit of element i of quarter k of half h is
  // bit 4h+k of hmask[i % 32], and a clear high bit subtracts 4.
  auto q = [](int e) { return (e * 3 + 1) % 8; };  // 3-bit value, stored unbiased by 4
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, i = e % 32;
    b[32 + 32 * h + i] |= static_cast<uint8_t>((q(e) & 3) << (2 * k));
    b[i] |= static_cast<uint8_t>((q(e) >> 2) << (4 * h + k));
  }
  auto y = Dequant(GgmlType::kQ3_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    const int hbit = q(e) >> 2;
    const int v = (q(e) & 3) - (hbit ? 0 : 4);
    EXPECT_FLOAT_EQ(y[e], 0.25f * (s6[e / 16] - 32) * v) << e;
  }
}

TEST(QuantTest, Q8KBlockSums) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> x(512);
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> q(RowBytes(GgmlType::kQ8_K, 512));
  ASSERT_TRUE(QuantizeRow(GgmlType::kQ8_K, x.data(), 512, q.data()).ok());
  // Block: float d, int8 qs[256], int16 bsums[16].
  for (int blk = 0; blk < 2; ++blk) {
    const uint8_t* b = q.data() + blk * 292;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += static_cast<int8_t>(b[4 + 16 * g + l]);
      int16_t bs;
      std::memcpy(&bs, b + 260 + 2 * g, 2);
      EXPECT_EQ(bs, sum);
    }
  }
}

// Q8_0 quantization is ggml's reference quantizer byte for byte: d =
// absmax/127 stored as half, q = roundf(x * (1/d)) with halves away from zero.
// The expected bytes come from that definition here (libm roundf), over random
// blocks, exact ties, values just below a half, zero blocks and large ranges.
TEST(QuantTest, Q8_0IsGgmlReferenceRoundingBitForBit) {
  constexpr int64_t kBlocks = 4096;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> x(kBlocks * 32);
  for (int64_t b = 0; b < kBlocks; ++b) {
    float* blk = x.data() + b * 32;
    const int kind = static_cast<int>(b % 6);
    const float scale = std::ldexp(1.0f, static_cast<int>(b % 41) - 20);
    for (int j = 0; j < 32; ++j) {
      switch (kind) {
        case 0: blk[j] = nd(rng) * scale; break;
        case 1: blk[j] = ud(rng) * scale; break;
        // amax 127 makes 1/d exactly 1: k + 0.5 are exact ties.
        case 2: blk[j] = j == 0 ? 127.0f : static_cast<float>(static_cast<int>(rng() % 253) - 126) + 0.5f; break;
        case 3: blk[j] = j == 0 ? -127.0f : std::nextafter(static_cast<float>(static_cast<int>(rng() % 200) - 100) + 0.5f, 0.0f); break;
        case 4: blk[j] = 0.0f; break;
        default: blk[j] = (j % 2 ? -1.0f : 1.0f) * static_cast<float>(rng() % 1000) * scale; break;
      }
    }
  }
  std::vector<uint8_t> got(RowBytes(GgmlType::kQ8_0, x.size()));
  ASSERT_TRUE(QuantizeRow(GgmlType::kQ8_0, x.data(), static_cast<int64_t>(x.size()), got.data()).ok());
  int ties = 0;
  for (int64_t b = 0; b < kBlocks; ++b) {
    const float* blk = x.data() + b * 32;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(blk[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const uint8_t* q = got.data() + b * 34;
    uint16_t dh;
    std::memcpy(&dh, q, 2);
    ASSERT_EQ(dh, FloatToHalf(d)) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      const float v = blk[j] * id;
      ties += v - std::floor(v) == 0.5f;
      ASSERT_EQ(static_cast<int8_t>(q[2 + j]), static_cast<int8_t>(std::roundf(v)))
          << "block " << b << " element " << j << " x*id=" << v;
    }
  }
  EXPECT_GT(ties, 1000);
}

TEST(QuantTest, RejectsPartialBlocksAndUnknownTypes) {
  std::vector<float> x(100, 1.0f);
  std::vector<uint8_t> q(1024);
  absl::Status s = QuantizeRow(GgmlType::kQ4_K, x.data(), 100, q.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("256"), std::string::npos) << s;
  EXPECT_EQ(QuantizeRow(GgmlType::kIQ2_XXS, x.data(), 256, q.data()).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(DequantizeRow(GgmlType::kIQ2_XXS, q.data(), 256, x.data()).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_FALSE(CanQuantize(GgmlType::kQ2_K));
  EXPECT_TRUE(CanCompute(GgmlType::kQ2_K));
}

struct RoundTripCase {
  GgmlType type;
  double max_rel_rmse;  // rmse / rms(x) over gaussian data
};

class RoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, ErrorWithinBound) {
  const RoundTripCase c = GetParam();
  const int64_t n = 256 * 16;
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(rng);
  x[5] = 0.3f;  // an outlier, as real weights have
  std::vector<uint8_t> q(RowBytes(c.type, n));
  ASSERT_TRUE(QuantizeRow(c.type, x.data(), n, q.data()).ok());
  ASSERT_TRUE(DequantizeRow(c.type, q.data(), n, y.data()).ok());
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += double(x[i]) * x[i];
  }
  const double rel = std::sqrt(err / ref);
  EXPECT_LE(rel, c.max_rel_rmse) << GgmlTypeName(c.type);
  // All-zero rows stay zero (no NaN from a zero scale).
  std::vector<float> z(n, 0.0f);
  ASSERT_TRUE(QuantizeRow(c.type, z.data(), n, q.data()).ok());
  ASSERT_TRUE(DequantizeRow(c.type, q.data(), n, y.data()).ok());
  for (float v : y) ASSERT_EQ(v, 0.0f);
}

// Bounds sit about 30% above the error the formats reach on gaussian data:
// a uniform quantizer with 2^b levels over a group's range.
INSTANTIATE_TEST_SUITE_P(
    Types, RoundTripTest,
    ::testing::Values(RoundTripCase{GgmlType::kF32, 0.0}, RoundTripCase{GgmlType::kF16, 1e-3},
                      RoundTripCase{GgmlType::kBF16, 4e-3}, RoundTripCase{GgmlType::kQ8_0, 0.01},
                      RoundTripCase{GgmlType::kQ8_K, 0.015}, RoundTripCase{GgmlType::kQ4_0, 0.11},
                      RoundTripCase{GgmlType::kQ4_1, 0.09}, RoundTripCase{GgmlType::kQ5_0, 0.055},
                      RoundTripCase{GgmlType::kQ5_1, 0.045}, RoundTripCase{GgmlType::kQ4_K, 0.09},
                      RoundTripCase{GgmlType::kQ5_K, 0.045}, RoundTripCase{GgmlType::kQ6_K, 0.025},
                      RoundTripCase{GgmlType::kMXFP4, 0.16}),
    [](const auto& info) { return std::string(GgmlTypeName(info.param.type)); });

}  // namespace
}  // namespace moestream::kernels
