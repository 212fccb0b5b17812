// Matrix products of every computable weight type, on every ISA path: against
// a double-precision product of the dequantized weights (dequantization is
// itself checked against hand-built blocks in quant_test.cc), and each
// optimised ISA against the scalar kernels.
#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/quant.h"
#include "tests/kernels/kernel_test_util.h"

namespace moestream::kernels {
namespace {

using testing::MakeIsaBackend;
using testing::RandomVec;

constexpr GgmlType kTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ8_0,
                               GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
                               GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K,
                               GgmlType::kQ6_K, GgmlType::kMXFP4};

// Types whose kernels round the activations to 8 bits first.
bool QuantizesActivations(GgmlType t) {
  return t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0 || t == GgmlType::kQ5_0 || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ5_K || t == GgmlType::kQ6_K || t == GgmlType::kMXFP4;
}

struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // n_out × n_in, dequantized
};

Weights MakeWeights(GgmlType t, int64_t n_in, int64_t n_out, uint32_t seed) {
  Weights w;
  const size_t rb = RowBytes(t, n_in);
  w.bytes.resize(rb * n_out);
  w.deq.resize(n_in * n_out);
  if (CanQuantize(t)) {
    std::vector<float> src = RandomVec(n_in * n_out, seed, 0.05f);
    for (int64_t r = 0; r < n_out; ++r) {
      EXPECT_TRUE(QuantizeRow(t, src.data() + r * n_in, n_in, w.bytes.data() + r * rb).ok());
    }
  } else {
    // Random bits with sane super-block scales (Q2_K: d, dmin at 80, 82;
    // Q3_K: d at 108).
    std::mt19937 rng(seed);
    for (auto& b : w.bytes) b = static_cast<uint8_t>(rng());
    const int bb = static_cast<int>(GgmlTypeTraitsOf(t)->block_bytes);
    for (size_t off = 0; off < w.bytes.size(); off += bb) {
      const uint16_t d = FloatToHalf(0.003f), dmin = FloatToHalf(0.001f);
      if (t == GgmlType::kQ2_K) {
        std::memcpy(&w.bytes[off + 80], &d, 2);
        std::memcpy(&w.bytes[off + 82], &dmin, 2);
      } else {
        std::memcpy(&w.bytes[off + 108], &d, 2);
      }
    }
  }
  for (int64_t r = 0; r < n_out; ++r) {
    EXPECT_TRUE(DequantizeRow(t, w.bytes.data() + r * rb, n_in, w.deq.data() + r * n_in).ok());
  }
  return w;
}

class MatMulTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MatMulTest, MatchesDoubleReference) {
  std::string skip;
  auto be = MakeIsaBackend(GetParam(), &skip);
  if (!be) GTEST_SKIP() << skip;
  for (GgmlType t : kTypes) {
    const int64_t block = GgmlTypeTraitsOf(t)->block_elems;
    const int64_t n_in = block == 256 ? 768 : 32 * 23;  // odd block counts
    for (int64_t n_out : {1, 37}) {
      for (int64_t n_tok : {1, 3, 9}) {
        Weights w = MakeWeights(t, n_in, n_out, static_cast<uint32_t>(n_out * 7 + n_tok));
        std::vector<float> x = RandomVec(n_tok * n_in, 99 + static_cast<uint32_t>(n_tok));
        std::vector<float> y(n_tok * n_out, NAN);
        be->MatMul({t, n_in, n_out, w.bytes.data()}, x.data(), n_tok, y.data());
        const double c = QuantizesActivations(t) ? 4e-3 : 1e-5;
        for (int64_t k = 0; k < n_tok; ++k) {
          double xn = 0;
          for (int64_t i = 0; i < n_in; ++i) xn += double(x[k * n_in + i]) * x[k * n_in + i];
          for (int64_t r = 0; r < n_out; ++r) {
            double ref = 0, wn = 0;
            for (int64_t i = 0; i < n_in; ++i) {
              ref += double(w.deq[r * n_in + i]) * x[k * n_in + i];
              wn += double(w.deq[r * n_in + i]) * w.deq[r * n_in + i];
            }
            const double tol = c * std::sqrt(wn * xn) + 1e-6;
            ASSERT_NEAR(y[k * n_out + r], ref, tol)
                << GgmlTypeName(t) << " n_out=" << n_out << " n_tok=" << n_tok << " tok " << k
                << " row " << r;
          }
        }
      }
    }
  }
}

TEST_P(MatMulTest, OptimisedIsaMatchesScalar) {
  std::string skip;
  auto be = MakeIsaBackend(GetParam(), &skip);
  if (!be) GTEST_SKIP() << skip;
  auto scalar = MakeIsaBackend("scalar", &skip, 1);
  ASSERT_TRUE(scalar) << skip;
  for (GgmlType t : kTypes) {
    const int64_t block = GgmlTypeTraitsOf(t)->block_elems;
    for (int64_t n_in : {block == 256 ? 256 : 32, block == 256 ? 2816 : 32 * 45}) {
      const int64_t n_out = 29, n_tok = 5;
      Weights w = MakeWeights(t, n_in, n_out, 5);
      std::vector<float> x = RandomVec(n_tok * n_in, 17);
      x[3] = 9.0f;  // an activation outlier
      std::vector<float> y(n_tok * n_out), ys(n_tok * n_out);
      const WeightView wv{t, n_in, n_out, w.bytes.data()};
      be->MatMul(wv, x.data(), n_tok, y.data());
      scalar->MatMul(wv, x.data(), n_tok, ys.data());
      // Every ISA rounds the activations identically and forms the same
      // integer sums (or float products); only the float summation order
      // differs, bounded relative to Σ|w·x|: per type, the float types by
      // their element count, the integer ones by their block count.
      const double rel = QuantizesActivations(t) ? 2e-6 : 1e-5;
      for (int64_t k = 0; k < n_tok; ++k) {
        for (int64_t r = 0; r < n_out; ++r) {
          double mag = 0;
          for (int64_t i = 0; i < n_in; ++i) mag += std::fabs(double(w.deq[r * n_in + i]) * x[k * n_in + i]);
          const int64_t i = k * n_out + r;
          ASSERT_NEAR(y[i], ys[i], rel * mag + 1e-7)
              << GetParam() << " " << GgmlTypeName(t) << " n_in=" << n_in << " tok " << k << " row " << r;
        }
      }
    }
  }
}

// MXFP4's E8M0 scales from the two subnormal ones (0 and 1) up: every ISA's
// scale decoding gives the scalar kernel's value. Row r's blocks take
// exponents 8r, 8r + 1, ..., so 20 rows of 8 blocks cover 0..159 (higher
// ones would overflow the float sums).
TEST_P(MatMulTest, Mxfp4EveryExponentMatchesScalar) {
  std::string skip;
  auto be = MakeIsaBackend(GetParam(), &skip);
  if (!be) GTEST_SKIP() << skip;
  auto scalar = MakeIsaBackend("scalar", &skip, 1);
  ASSERT_TRUE(scalar) << skip;
  const int64_t n_in = 32 * 8, n_out = 20;
  const size_t rb = RowBytes(GgmlType::kMXFP4, n_in);
  std::vector<uint8_t> w(rb * n_out);
  std::mt19937 rng(3);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  for (int64_t r = 0; r < n_out; ++r) {
    for (int64_t b = 0; b < n_in / 32; ++b) w[r * rb + b * 17] = static_cast<uint8_t>(r * 8 + b);
  }
  std::vector<float> deq(n_in * n_out);
  for (int64_t r = 0; r < n_out; ++r) {
    ASSERT_TRUE(DequantizeRow(GgmlType::kMXFP4, w.data() + r * rb, n_in, deq.data() + r * n_in).ok());
  }
  for (int64_t n_tok : {1, 2, 5}) {
    std::vector<float> x = RandomVec(n_tok * n_in, 41);
    std::vector<float> y(n_tok * n_out), ys(n_tok * n_out);
    be->MatMul({GgmlType::kMXFP4, n_in, n_out, w.data()}, x.data(), n_tok, y.data());
    scalar->MatMul({GgmlType::kMXFP4, n_in, n_out, w.data()}, x.data(), n_tok, ys.data());
    for (int64_t k = 0; k < n_tok; ++k) {
      for (int64_t r = 0; r < n_out; ++r) {
        double mag = 0;
        for (int64_t i = 0; i < n_in; ++i) mag += std::fabs(double(deq[r * n_in + i]) * x[k * n_in + i]);
        const int64_t i = k * n_out + r;
        ASSERT_TRUE(std::isfinite(ys[i]) && mag > 0) << r;
        ASSERT_NEAR(y[i], ys[i], 2e-6 * mag) << GetParam() << " n_tok " << n_tok << " tok " << k << " row " << r;
      }
    }
  }
}

TEST_P(MatMulTest, BatchEqualsSeparateProducts) {
  std::string skip;
  auto be = MakeIsaBackend(GetParam(), &skip);
  if (!be) GTEST_SKIP() << skip;
  const GgmlType types[] = {GgmlType::kQ4_K, GgmlType::kQ8_0, GgmlType::kQ6_K, GgmlType::kF16};
  std::vector<Weights> ws;
  std::vector<std::vector<float>> xs, ys, expect;
  std::vector<MatMulJob> jobs;
  for (int j = 0; j < 4; ++j) {
    const int64_t n_in = 512, n_out = 33 + 10 * j, n_tok = 1 + j;
    ws.push_back(MakeWeights(types[j], n_in, n_out, 100 + j));
    xs.push_back(RandomVec(n_tok * n_in, 200 + j));
    ys.emplace_back(n_tok * n_out);
    expect.emplace_back(n_tok * n_out);
  }
  for (int j = 0; j < 4; ++j) {
    const int64_t n_in = 512, n_out = 33 + 10 * j, n_tok = 1 + j;
    const WeightView wv{types[j], n_in, n_out, ws[j].bytes.data()};
    be->MatMul(wv, xs[j].data(), n_tok, expect[j].data());
    jobs.push_back({wv, xs[j].data(), n_tok, ys[j].data()});
  }
  be->MatMulBatch(jobs);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(ys[j], expect[j]) << j;
}

// A prefill's product must equal token-by-token decode bit for bit, whatever
// tiles the kernels cut it into.
TEST_P(MatMulTest, PrefillEqualsTokenByToken) {
  std::string skip;
  auto be = MakeIsaBackend(GetParam(), &skip);
  if (!be) GTEST_SKIP() << skip;
  for (GgmlType t : kTypes) {
    const int64_t block = GgmlTypeTraitsOf(t)->block_elems;
    const int64_t n_in = block == 256 ? 512 : 32 * 9, n_out = 37, n_tok = 11;
    Weights w = MakeWeights(t, n_in, n_out, 31);
    std::vector<float> x = RandomVec(n_tok * n_in, 32);
    const WeightView wv{t, n_in, n_out, w.bytes.data()};
    std::vector<float> y(n_tok * n_out), y1(n_tok * n_out);
    be->MatMul(wv, x.data(), n_tok, y.data());
    for (int64_t k = 0; k < n_tok; ++k) be->MatMul(wv, x.data() + k * n_in, 1, y1.data() + k * n_out);
    for (int64_t i = 0; i < n_tok * n_out; ++i) {
      ASSERT_EQ(y[i], y1[i]) << GetParam() << " " << GgmlTypeName(t) << " i=" << i;
    }
  }
}

// Jobs reading the same activations (gate and up of one expert) share one
// conversion; the results are those of separate products.
TEST_P(MatMulTest, BatchWithSharedActivations) {
  std::string skip;
  auto be = MakeIsaBackend(GetParam(), &skip);
  if (!be) GTEST_SKIP() << skip;
  const GgmlType types[] = {GgmlType::kQ8_0, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                            GgmlType::kQ6_K, GgmlType::kF16};
  const int64_t n_in = 512, n_tok = 3;
  const std::vector<float> x = RandomVec(n_tok * n_in, 400);
  const std::vector<float> x2 = RandomVec(n_tok * n_in, 401);
  std::vector<Weights> ws;
  std::vector<std::vector<float>> ys, expect;
  std::vector<MatMulJob> jobs;
  for (size_t j = 0; j < std::size(types); ++j) {
    const int64_t n_out = 20 + 3 * static_cast<int64_t>(j);
    ws.push_back(MakeWeights(types[j], n_in, n_out, 300 + static_cast<uint32_t>(j)));
    ys.emplace_back(n_tok * n_out);
    expect.emplace_back(n_tok * n_out);
  }
  for (size_t j = 0; j < std::size(types); ++j) {
    const int64_t n_out = 20 + 3 * static_cast<int64_t>(j);
    const WeightView wv{types[j], n_in, n_out, ws[j].bytes.data()};
    const float* in = j == 1 ? x2.data() : x.data();  // one job reads other rows
    be->MatMul(wv, in, n_tok, expect[j].data());
    jobs.push_back({wv, in, n_tok, ys[j].data()});
  }
  be->MatMulBatch(jobs);
  for (size_t j = 0; j < std::size(types); ++j) EXPECT_EQ(ys[j], expect[j]) << j;
}

INSTANTIATE_TEST_SUITE_P(Isa, MatMulTest, ::testing::ValuesIn(testing::kIsas),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace moestream::kernels

namespace moestream::kernels::cpu {
namespace {

TEST(KernelCheckTest, Avx2AgreesWithScalarAndBrokenKernelsAreCaught) {
  if (!DetectCpuFeatures().HasAvx2Set()) GTEST_SKIP() << "CPU lacks avx2/fma/f16c";
  const MatmulKernels& scalar = KernelsFor(Isa::kScalar);
  EXPECT_TRUE(CheckKernelsAgainst(KernelsFor(Isa::kAvx2), scalar).empty());
  MatmulKernels broken = KernelsFor(Isa::kAvx2);
  broken.For(GgmlType::kQ4_K).dot = [](int64_t n, const void* w, const void* x) {
    return KernelsFor(Isa::kScalar).For(GgmlType::kQ4_K).dot(n, w, x) * 1.01f;
  };
  EXPECT_EQ(CheckKernelsAgainst(broken, scalar), std::vector<GgmlType>{GgmlType::kQ4_K});
}

// Activations are rounded as llama.cpp rounds them before a quantized matmul
// (Q8_0: q = x·127/amax, Q8_K: q = x·(-127/signed max), both ties to even),
// which is not how the weight quantizer rounds (ties away from zero).
TEST(KernelCheckTest, ActivationRoundingIsLlamaCpps) {
  for (const char* name : testing::kIsas) {
    const absl::StatusOr<Isa> resolved = ResolveIsa(name);
    if (!resolved.ok()) continue;  // this CPU lacks it
    const Isa isa = *resolved;
    const MatmulKernels& k = KernelsFor(isa);
    // Q8_0: amax 127 makes the multiplier exactly 1, so x.5 values are ties.
    std::vector<float> x(64, 0.0f);
    x[0] = 127.0f, x[1] = 2.5f, x[2] = 3.5f, x[3] = -2.5f, x[4] = -0.5f, x[5] = 126.5f;
    x[32] = 0.1f, x[33] = -0.05f;  // second block: amax 0.1, 127/0.1 is inexact
    for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ5_0}) {
      const TypeKernels& tk = k.For(t);
      ASSERT_EQ(tk.act_type, GgmlType::kQ8_0) << GgmlTypeName(t);
      BlockQ8_0 b[2];
      tk.quantize_act(x.data(), 64, b);
      EXPECT_EQ(b[0].qs[0], 127);
      EXPECT_EQ(b[0].qs[1], 2) << IsaName(isa);
      EXPECT_EQ(b[0].qs[2], 4) << IsaName(isa);
      EXPECT_EQ(b[0].qs[3], -2) << IsaName(isa);
      EXPECT_EQ(b[0].qs[4], 0) << IsaName(isa);
      EXPECT_EQ(b[0].qs[5], 126) << IsaName(isa);
      EXPECT_EQ(HalfToFloat(b[0].d), HalfToFloat(FloatToHalf(1.0f)));
      EXPECT_EQ(b[1].qs[0], 127);
      const float id = 127.0f / 0.1f;
      EXPECT_EQ(b[1].qs[1], static_cast<int8_t>(std::nearbyint(-0.05f * id))) << IsaName(isa);
      EXPECT_EQ(HalfToFloat(b[1].d), HalfToFloat(FloatToHalf(0.1f / 127.0f)));
    }
    // Q8_K: the signed max -127 makes iscale exactly 1.
    std::vector<float> xk(256, 0.0f);
    xk[7] = -127.0f, xk[8] = 127.0f, xk[1] = 2.5f, xk[2] = -3.5f, xk[3] = 0.5f;
    for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K}) {
      const TypeKernels& tk = k.For(t);
      ASSERT_EQ(tk.act_type, GgmlType::kQ8_K) << GgmlTypeName(t);
      BlockQ8K b;
      tk.quantize_act(xk.data(), 256, &b);
      EXPECT_EQ(b.d, 1.0f) << IsaName(isa);  // 1/iscale, iscale = -127/(-127)
      // Multiplied by iscale = 1: -127 → -127, 127 → 127, 2.5 → 2, -3.5 → -4.
      EXPECT_EQ(b.qs[7], -127);
      EXPECT_EQ(b.qs[8], 127);
      EXPECT_EQ(b.qs[1], 2) << IsaName(isa);
      EXPECT_EQ(b.qs[2], -4) << IsaName(isa);
      EXPECT_EQ(b.qs[3], 0) << IsaName(isa);
      EXPECT_EQ(b.bsums[0], 2 - 4 - 127 + 127);
    }
  }
}

// Every tile shape (full tiles and each row/token remainder) of each ISA's
// register-tiled kernels gives exactly the row dot of each (row, token) pair.
class TiledKernelTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TiledKernelTest, EqualsTheRowDotForEveryShape) {
  const absl::StatusOr<Isa> isa = ResolveIsa(GetParam());
  if (!isa.ok()) GTEST_SKIP() << isa.status().message();
  const MatmulKernels& k = KernelsFor(*isa);
  int tiled = 0;
  for (int id = 0; id < kMaxTypeId; ++id) {
    const TypeKernels& tk = k.types[id];
    if (tk.dot_tile == nullptr) continue;
    ++tiled;
    const GgmlType t = static_cast<GgmlType>(id);
    const int64_t block = GgmlTypeTraitsOf(t)->block_elems;
    const int64_t n = block == 256 ? 256 * 3 : 32 * 7;
    constexpr int64_t kMax = 10;
    const size_t wb = RowBytes(t, n), ab = ActRowBytes(tk, n);
    std::vector<uint8_t> w(wb * kMax), x(ab * kMax);
    const std::vector<float> wf = testing::RandomVec(n * kMax, 7, 0.05f);
    const std::vector<float> xf = testing::RandomVec(n * kMax, 8);
    for (int64_t r = 0; r < kMax; ++r) {
      ASSERT_TRUE(QuantizeRow(t, wf.data() + r * n, n, w.data() + r * wb).ok());
      tk.quantize_act(xf.data() + r * n, n, x.data() + r * ab);
    }
    for (int64_t rows = 1; rows <= kMax; ++rows) {
      for (int64_t n_tok = 1; n_tok <= kMax; ++n_tok) {
        std::vector<float> y(kMax * kMax, NAN);
        tk.dot_tile(n, w.data(), wb, rows, x.data(), ab, n_tok, y.data(), kMax);
        for (int64_t tok = 0; tok < kMax; ++tok) {
          for (int64_t r = 0; r < kMax; ++r) {
            const float v = y[tok * kMax + r];
            if (tok >= n_tok || r >= rows) {
              ASSERT_TRUE(std::isnan(v)) << "wrote outside the tile";
              continue;
            }
            ASSERT_EQ(v, tk.dot(n, w.data() + r * wb, x.data() + tok * ab))
                << GgmlTypeName(t) << " rows=" << rows << " n_tok=" << n_tok << " r=" << r
                << " tok=" << tok;
          }
        }
      }
    }
  }
  if (*isa != Isa::kScalar) {
    EXPECT_GT(tiled, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, TiledKernelTest, ::testing::ValuesIn(testing::kIsas),
                         [](const auto& info) { return std::string(info.param); });

TEST(KernelCheckTest, BrokenTileRemainderIsCaught) {
  if (!DetectCpuFeatures().HasAvx2Set()) GTEST_SKIP() << "CPU lacks avx2/fma/f16c";
  MatmulKernels broken = KernelsFor(Isa::kAvx2);
  ASSERT_NE(broken.For(GgmlType::kQ8_0).dot_tile, nullptr);
  broken.For(GgmlType::kQ8_0).dot_tile = [](int64_t n, const void* w, size_t ws, int64_t rows,
                                            const void* x, size_t xs, int64_t n_tok, float* y,
                                            size_t ys) {
    KernelsFor(Isa::kAvx2).For(GgmlType::kQ8_0).dot_tile(n, w, ws, rows, x, xs, n_tok, y, ys);
    if (rows == 5 && n_tok == 3) y[2 * ys + 4] *= 1.01f;  // one remainder pair
  };
  EXPECT_EQ(CheckKernelsAgainst(broken, KernelsFor(Isa::kScalar)),
            std::vector<GgmlType>{GgmlType::kQ8_0});
}

TEST(KernelCheckTest, Avx512KernelsPassTheirStartupCheck) {
  if (!DetectCpuFeatures().HasAvx512Set()) {
    GTEST_SKIP() << "CPU lacks avx512f/bw/vl/dq: the AVX-512 kernels are compiled but not run here";
  }
  KernelsFor(Isa::kAvx512);
  EXPECT_TRUE(Avx512RejectedKernels().empty());
}

}  // namespace
}  // namespace moestream::kernels::cpu
