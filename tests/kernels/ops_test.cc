// The CPU backend's non-matmul ops against straightforward double-precision
// references written here from each op's definition (RoPE from llama.cpp's
// formulas: theta = pos·base^(-2i/n_rot), linear scaling, YaRN ramp and
// mscale, per-dimension frequency factors), over random shapes including odd
// sizes, on every ISA the CPU runs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/ops_scalar.h"
#include "kernels/quant.h"
#include "tests/kernels/kernel_test_util.h"

namespace moestream::kernels {
namespace {

using testing::MakeIsaBackend;
using testing::RandomVec;

class OpsTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    std::string skip;
    be_ = MakeIsaBackend(GetParam(), &skip);
    if (!be_) GTEST_SKIP() << skip;
  }
  std::unique_ptr<Backend> be_;
};

TEST_P(OpsTest, RmsNorm) {
  for (int64_t n : {1, 7, 64, 1001, 4096}) {
    const int64_t rows = 5;
    auto x = RandomVec(rows * n, static_cast<uint32_t>(n));
    auto w = RandomVec(n, 3);
    std::vector<float> y(rows * n), y2(rows * n);
    be_->RmsNorm(x.data(), w.data(), y.data(), rows, n, 1e-5f);
    be_->RmsNorm(x.data(), nullptr, y2.data(), rows, n, 1e-5f);
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
      const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(y[r * n + i], x[r * n + i] * inv * w[i], 1e-5 * (1 + std::fabs(x[r * n + i] * inv * w[i])));
        ASSERT_NEAR(y2[r * n + i], x[r * n + i] * inv, 1e-5 * (1 + std::fabs(x[r * n + i] * inv)));
      }
    }
  }
}

TEST_P(OpsTest, SoftmaxIsStableForLargeInputs) {
  for (int64_t n : {1, 3, 128, 1027}) {
    const int64_t rows = 4;
    auto x = RandomVec(rows * n, static_cast<uint32_t>(n), 5.0f);
    x[0] += 1000.0f;  // would overflow exp without the max subtraction
    auto y = x;
    be_->Softmax(y.data(), rows, n);
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -1e300, sum = 0;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[r * n + i]));
      for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[r * n + i]) - mx);
      for (int64_t i = 0; i < n; ++i) {
        const double ref = std::exp(double(x[r * n + i]) - mx) / sum;
        ASSERT_NEAR(y[r * n + i], ref, 1e-6 + 1e-5 * ref) << n << " " << r << " " << i;
      }
    }
  }
}

TEST_P(OpsTest, TopKTiesGoToLowerIndex) {
  const std::vector<float> x = {0.5f, 2.0f, -1.0f, 2.0f, 0.5f, 3.0f, 2.0f, 0.1f};
  int32_t ids[4];
  float vals[4];
  be_->TopK(x.data(), static_cast<int64_t>(x.size()), 4, false, ids, vals);
  EXPECT_EQ(std::vector<int32_t>(ids, ids + 4), (std::vector<int32_t>{5, 1, 3, 6}));
  EXPECT_EQ(std::vector<float>(vals, vals + 4), (std::vector<float>{3.0f, 2.0f, 2.0f, 2.0f}));
  be_->TopK(x.data(), static_cast<int64_t>(x.size()), 4, true, ids, vals);
  EXPECT_NEAR(vals[0], 3.0 / 9.0, 1e-6);
  EXPECT_NEAR(vals[1] + vals[2] + vals[3] + vals[0], 1.0, 1e-6);
}

TEST_P(OpsTest, TopKRandom) {
  for (int64_t n : {8, 61, 128, 257}) {
    auto x = RandomVec(n, static_cast<uint32_t>(n));
    for (int64_t i = 0; i < n; i += 5) x[i] = 0.25f;  // many ties
    for (int k : {1, 2, 8}) {
      std::vector<int32_t> ids(k);
      std::vector<float> vals(k);
      be_->TopK(x.data(), n, k, false, ids.data(), vals.data());
      std::vector<int32_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[a] > x[b]; });
      for (int i = 0; i < k; ++i) {
        ASSERT_EQ(ids[i], order[i]) << n << " k=" << k << " i=" << i;
        ASSERT_EQ(vals[i], x[order[i]]);
      }
    }
  }
}

TEST_P(OpsTest, ElementwiseOps) {
  for (int64_t n : {1, 17, 1000, 100003}) {
    auto a = RandomVec(n, 1, 4.0f), b = RandomVec(n, 2);
    std::vector<float> out(n);
    auto s = a;
    be_->Sigmoid(s.data(), n);
    be_->SiluMul(a.data(), b.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double sig = 1.0 / (1.0 + std::exp(-double(a[i])));
      ASSERT_NEAR(s[i], sig, 1e-6);
      ASSERT_NEAR(out[i], double(a[i]) * sig * b[i], 1e-5 * (1 + std::fabs(a[i] * b[i])));
    }
    // gpt-oss's clamped SwiGLU (alpha 1.702, limit 7; a spans beyond ±7).
    auto big = RandomVec(n, 5, 12.0f);
    std::vector<float> up(n);
    for (int64_t i = 0; i < n; ++i) up[i] = big[(i + 1) % n];
    be_->SwigluClamped(big.data(), up.data(), out.data(), n, 1.702f, 7.0f);
    for (int64_t i = 0; i < n; ++i) {
      const double g = std::min(double(big[i]), 7.0);
      const double u = std::clamp(double(big[(i + 1) % n]), -7.0, 7.0);
      const double want = g / (1.0 + std::exp(-1.702 * g)) * (u + 1.0);
      ASSERT_NEAR(out[i], want, 1e-5 * (1 + std::fabs(want))) << i;
    }
    be_->Add(a.data(), b.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(out[i], a[i] + b[i]);
    auto c = a;
    be_->Scale(c.data(), -0.75f, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(c[i], a[i] * -0.75f);
    c = a;
    be_->AddScaled(c.data(), b.data(), 0.3f, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(c[i], a[i] + 0.3 * b[i], 1e-6 * (1 + std::fabs(c[i])));
  }
}

// ScatterAdd is the bits of the AddScaled calls it replaces (each token's
// choices in order), on this backend's one pass and on the interface's
// default; over shapes whose elements span several of the pool's ranges,
// with repeated rows and several tokens. A scalar check of one element
// pins the order: product rounded, then the sum, choice by choice.
TEST_P(OpsTest, ScatterAddIsTheAddScaledCallsInChoiceOrder) {
  struct Case {
    int64_t n_tok, n;
    int k;
  };
  for (const Case& c : {Case{1, 5, 1}, Case{1, 4096, 8}, Case{3, 1001, 2}, Case{40, 2048, 4},
                        Case{9, 70000, 3}}) {
    const int64_t rows = c.n_tok * c.k;
    const auto src = RandomVec(rows * c.n, 1), out0 = RandomVec(c.n_tok * c.n, 2);
    const auto w = RandomVec(rows, 3);
    std::vector<ScatterChoice> choices(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) {
      // Rows permuted and one repeated, as grouped experts' rows are.
      choices[size_t(i)] = {int32_t((i * 7 + 3) % rows), w[size_t(i)]};
    }
    if (rows > 1) choices[1].row = choices[0].row;
    auto want = out0;
    for (int64_t t = 0; t < c.n_tok; ++t) {
      for (int j = 0; j < c.k; ++j) {
        const ScatterChoice& ch = choices[size_t(t * c.k + j)];
        be_->AddScaled(want.data() + t * c.n, src.data() + int64_t(ch.row) * c.n, ch.weight, c.n);
      }
    }
    auto got = out0, got_default = out0;
    be_->ScatterAdd(got.data(), src.data(), c.n, choices, c.k);
    be_->Backend::ScatterAdd(got_default.data(), src.data(), c.n, choices, c.k);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
        << "n_tok " << c.n_tok << " n " << c.n << " k " << c.k;
    ASSERT_EQ(std::memcmp(got_default.data(), want.data(), want.size() * sizeof(float)), 0);
    const int64_t t = c.n_tok - 1, i = c.n - 1;
    volatile float acc = out0[size_t(t * c.n + i)];
    for (int j = 0; j < c.k; ++j) {
      const ScatterChoice& ch = choices[size_t(t * c.k + j)];
      volatile float prod = ch.weight * src[size_t(int64_t(ch.row) * c.n + i)];
      acc = acc + prod;
    }
    ASSERT_EQ(got[size_t(t * c.n + i)], acc);
  }
}

TEST_P(OpsTest, AddBiasAddsTheRowToEveryRow) {
  for (auto [rows, n] : {std::pair<int64_t, int64_t>{1, 5}, {7, 256}, {300, 33}}) {
    auto x = RandomVec(rows * n, 1), bias = RandomVec(n, 2);
    auto y = x;
    be_->AddBias(y.data(), bias.data(), rows, n);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(y[r * n + i], x[r * n + i] + bias[i]);
    }
  }
}

TEST_P(OpsTest, GetRowsDequantizes) {
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    const int64_t n_in = 512, n_out = 9;
    auto src = RandomVec(n_in * n_out, 4);
    const size_t rb = RowBytes(t, n_in);
    std::vector<uint8_t> table(rb * n_out);
    for (int64_t r = 0; r < n_out; ++r) ASSERT_TRUE(QuantizeRow(t, &src[r * n_in], n_in, &table[r * rb]).ok());
    const std::vector<int32_t> ids = {8, 0, 3, 3};
    std::vector<float> out(ids.size() * n_in), expect(n_in);
    be_->GetRows({t, n_in, n_out, table.data()}, ids.data(), static_cast<int64_t>(ids.size()), out.data());
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_TRUE(DequantizeRow(t, &table[ids[i] * rb], n_in, expect.data()).ok());
      for (int64_t j = 0; j < n_in; ++j) ASSERT_EQ(out[i * n_in + j], expect[j]);
    }
  }
}

TEST_P(OpsTest, StoreKv) {
  const int64_t n = 1001;
  auto x = RandomVec(n, 8);
  std::vector<uint16_t> h(n);
  std::vector<float> f(n);
  be_->StoreKv(x.data(), h.data(), GgmlType::kF16, n);
  be_->StoreKv(x.data(), f.data(), GgmlType::kF32, n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(h[i], FloatToHalf(x[i]));
    ASSERT_EQ(f[i], x[i]);
  }
}

// ---------------------------------------------------------------- RoPE

struct RopeCase {
  const char* name;
  RopeMode mode;
  int64_t head_dim, n_rot;
  RopeScaling scaling;
  float freq_scale, ext_factor;
  bool freq_factors;
};

void RopeReference(std::vector<float>& x, int64_t n_tok, int64_t n_head, int64_t hd,
                   const std::vector<int32_t>& pos, const RopeParams& p) {
  const int64_t nd = p.n_rot;
  const bool yarn = p.scaling == RopeScaling::kYarn && p.ext_factor != 0;
  const double fs = (p.scaling == RopeScaling::kLinear || p.scaling == RopeScaling::kYarn) ? p.freq_scale : 1.0;
  auto corr_dim = [&](double rot) {
    return nd * std::log(p.n_ctx_orig / (rot * 2 * M_PI)) / (2 * std::log(double(p.freq_base)));
  };
  const double lo = std::max(0.0, std::floor(corr_dim(p.beta_fast)));
  const double hi = std::min(double(nd - 1), std::ceil(corr_dim(p.beta_slow)));
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = &x[(t * n_head + h) * hd];
      for (int64_t i = 0; i < nd / 2; ++i) {
        const double ff = p.freq_factors ? p.freq_factors[i] : 1.0;
        const double extrap = pos[t] * std::pow(double(p.freq_base), -2.0 * i / nd) / ff;
        double theta = fs * extrap, msc = p.attn_factor;
        if (yarn) {
          const double y = (i - lo) / std::max(0.001, hi - lo);
          const double ramp = (1 - std::min(1.0, std::max(0.0, y))) * p.ext_factor;
          theta = theta * (1 - ramp) + extrap * ramp;
          msc *= 1.0 + 0.1 * std::log(1.0 / fs);
        }
        const int64_t a = p.mode == RopeMode::kNeox ? i : 2 * i;
        const int64_t b = p.mode == RopeMode::kNeox ? i + nd / 2 : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = static_cast<float>((x0 * std::cos(theta) - x1 * std::sin(theta)) * msc);
        v[b] = static_cast<float>((x0 * std::sin(theta) + x1 * std::cos(theta)) * msc);
      }
    }
  }
}

TEST_P(OpsTest, Rope) {
  const RopeCase cases[] = {
      {"normal", RopeMode::kNormal, 64, 64, RopeScaling::kNone, 1.0f, 0.0f, false},
      {"neox_partial", RopeMode::kNeox, 64, 32, RopeScaling::kNone, 1.0f, 0.0f, false},
      {"linear", RopeMode::kNormal, 128, 128, RopeScaling::kLinear, 0.25f, 0.0f, false},
      {"yarn", RopeMode::kNeox, 128, 128, RopeScaling::kYarn, 0.25f, 1.0f, false},
      {"llama3_factors", RopeMode::kNormal, 128, 128, RopeScaling::kLlama3, 1.0f, 0.0f, true},
  };
  for (const RopeCase& c : cases) {
    const int64_t n_tok = 7, n_head = 3;
    std::vector<int32_t> pos(n_tok);
    for (int64_t t = 0; t < n_tok; ++t) pos[t] = static_cast<int32_t>(t * 137 % 900);
    std::vector<float> ff(c.n_rot / 2);
    for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + static_cast<float>(i % 8);
    RopeParams p;
    p.mode = c.mode;
    p.n_rot = c.n_rot;
    p.freq_base = 10000.0f;
    p.freq_scale = c.freq_scale;
    p.scaling = c.scaling;
    p.ext_factor = c.ext_factor;
    p.n_ctx_orig = 4096;
    p.freq_factors = c.freq_factors ? ff.data() : nullptr;
    auto x = RandomVec(n_tok * n_head * c.head_dim, 11);
    auto ref = x;
    be_->Rope(x.data(), n_tok, n_head, c.head_dim, pos.data(), p);
    RopeReference(ref, n_tok, n_head, c.head_dim, pos, p);
    // Angles are accumulated in float as llama.cpp does: ~1e-3 rad at pos 900.
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], ref[i], 4e-3) << c.name << " " << i;
  }
}

// ---------------------------------------------------------------- attention

TEST_P(OpsTest, AttentionMatchesReference) {
  struct Case {
    int64_t n_tok, n_head, n_kv_head, head_dim, pos0;
    GgmlType kv;
    int64_t window = 0;  // sliding window; 0 = none
    bool sinks = false;  // one extra softmax logit per head
    int64_t chunk = 0;   // chunked local attention; 0 = none
  };
  const Case cases[] = {{1, 4, 4, 64, 0, GgmlType::kF32},   {1, 8, 2, 64, 37, GgmlType::kF16},
                        {5, 6, 3, 40, 11, GgmlType::kF32},  {9, 8, 1, 128, 100, GgmlType::kF16},
                        {3, 2, 2, 17, 0, GgmlType::kF32},
                        // gpt-oss: a window shorter than the context, with sinks.
                        {6, 8, 2, 64, 20, GgmlType::kF32, 8, true},
                        {4, 4, 2, 32, 2, GgmlType::kF16, 3, false},
                        {2, 4, 4, 64, 0, GgmlType::kF32, 0, true},
                        // Prefill tiles (4 tokens or more) over several key
                        // blocks: a window that hides whole blocks from the
                        // later queries, chunks, and 128 heads on one KV head
                        // (more than one tile's heads).
                        {20, 4, 2, 32, 120, GgmlType::kF32, 10, true},
                        {70, 4, 2, 16, 0, GgmlType::kF16},
                        {33, 4, 1, 16, 60, GgmlType::kF32, 0, false, 40},
                        {5, 128, 1, 16, 3, GgmlType::kF32},
                        // A head width that is no multiple of 8.
                        {6, 2, 1, 21, 5, GgmlType::kF16}};
  for (const Case& c : cases) {
    const int64_t n_ctx = c.pos0 + c.n_tok;
    const int64_t kv_n = n_ctx * c.n_kv_head * c.head_dim;
    auto q = RandomVec(c.n_tok * c.n_head * c.head_dim, 1);
    auto kf = RandomVec(kv_n, 2), vf = RandomVec(kv_n, 3);
    std::vector<uint16_t> kh(kv_n), vh(kv_n);
    if (c.kv == GgmlType::kF16) {
      for (int64_t i = 0; i < kv_n; ++i) {
        kh[i] = FloatToHalf(kf[i]);
        vh[i] = FloatToHalf(vf[i]);
        kf[i] = HalfToFloat(kh[i]);  // the reference sees the stored values
        vf[i] = HalfToFloat(vh[i]);
      }
    }
    std::vector<float> out(q.size(), NAN);
    AttentionArgs a;
    a.q = q.data();
    a.k_cache = c.kv == GgmlType::kF16 ? static_cast<const void*>(kh.data()) : kf.data();
    a.v_cache = c.kv == GgmlType::kF16 ? static_cast<const void*>(vh.data()) : vf.data();
    a.kv_type = c.kv;
    a.n_tok = c.n_tok;
    a.n_head = c.n_head;
    a.n_kv_head = c.n_kv_head;
    a.head_dim = c.head_dim;
    a.pos0 = c.pos0;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    a.out = out.data();
    a.window = c.window;
    a.chunk = c.chunk;
    const std::vector<float> sinks = RandomVec(c.n_head, 4, 2.0f);
    if (c.sinks) a.sinks = sinks.data();
    be_->Attention(a);
    const int64_t d = c.head_dim, group = c.n_head / c.n_kv_head;
    for (int64_t t = 0; t < c.n_tok; ++t) {
      for (int64_t h = 0; h < c.n_head; ++h) {
        const int64_t kvh = h / group, n_kv = c.pos0 + t + 1;
        int64_t j0 = c.window > 0 ? std::max<int64_t>(0, n_kv - c.window) : 0;
        if (c.chunk > 0) j0 = std::max(j0, (n_kv - 1) / c.chunk * c.chunk);
        std::vector<double> s(n_kv, -INFINITY);
        double mx = c.sinks ? sinks[h] : -1e300, sum = 0;
        for (int64_t j = j0; j < n_kv; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += double(q[(t * c.n_head + h) * d + i]) * kf[(j * c.n_kv_head + kvh) * d + i];
          s[j] = dot * a.scale;
          mx = std::max(mx, s[j]);
        }
        for (auto& v : s) sum += (v = std::exp(v - mx));
        if (c.sinks) sum += std::exp(sinks[h] - mx);
        for (int64_t i = 0; i < d; ++i) {
          double o = 0;
          for (int64_t j = 0; j < n_kv; ++j) o += s[j] / sum * vf[(j * c.n_kv_head + kvh) * d + i];
          ASSERT_NEAR(out[(t * c.n_head + h) * d + i], o, 2e-5)
              << "n_tok=" << c.n_tok << " t=" << t << " h=" << h << " i=" << i;
        }
      }
    }
  }
}

// Query heads of one KV head are computed together (each key and value row
// read once for the group), in prefill with several queries; how many go
// together depends on the thread count. Each row's arithmetic is its own, so
// every grouping gives the same bits: 1 thread (whole groups, long tiles)
// against 16 (one head per task, short tiles).
TEST_P(OpsTest, AttentionDoesNotDependOnHowHeadsAreGrouped) {
  std::string skip;
  auto one = testing::MakeIsaBackend(GetParam(), &skip, 1);
  auto many = testing::MakeIsaBackend(GetParam(), &skip, 16);
  if (!one || !many) GTEST_SKIP() << skip;
  for (auto [n_tok, n_head, n_kv_head, pos0] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 16, 4, 300}, {3, 8, 1, 40}, {2, 12, 3, 7},
        // Prefill tiles: how many queries a tile holds depends on the
        // thread count too.
        {40, 8, 2, 90}, {7, 12, 3, 0}}) {
    const int64_t d = 64, n_ctx = pos0 + n_tok, kv_n = n_ctx * n_kv_head * d;
    const auto q = RandomVec(n_tok * n_head * d, 1), k = RandomVec(kv_n, 2), v = RandomVec(kv_n, 3);
    const auto sinks = RandomVec(n_head, 4);
    std::vector<float> out1(q.size()), out2(q.size());
    AttentionArgs a;
    a.q = q.data();
    a.k_cache = k.data();
    a.v_cache = v.data();
    a.n_tok = n_tok;
    a.n_head = n_head;
    a.n_kv_head = n_kv_head;
    a.head_dim = d;
    a.pos0 = pos0;
    a.scale = 0.125f;
    a.sinks = sinks.data();
    a.out = out1.data();
    one->Attention(a);
    a.out = out2.data();
    many->Attention(a);
    ASSERT_EQ(std::memcmp(out1.data(), out2.data(), out1.size() * sizeof(float)), 0)
        << n_head << "/" << n_kv_head << " heads, " << n_tok << " tokens";
  }
}

// The AVX2 block form of attention's values keeps the output in registers
// across the keys; it must give the bits of key-by-key axpy (what decode
// computed before it), head widths with and without a tail included.
TEST(AttentionKernels, BlockValuesAreKeyByKeyAxpyBitForBit) {
  if (!cpu::DetectCpuFeatures().HasAvx2Set()) GTEST_SKIP() << "CPU lacks avx2/fma/f16c";
  for (GgmlType kv : {GgmlType::kF32, GgmlType::kF16}) {
    const cpu::KvRowKernels k = cpu::Avx2KvKernels(kv);
    ASSERT_NE(k.block_values, nullptr);
    for (int64_t dv : {128, 40, 21}) {
      const int64_t n = 37, rows = 3, p_stride = 50;
      const size_t es = kv == GgmlType::kF16 ? 2 : 4;
      const std::vector<float> vf = testing::RandomVec(n * dv, 5);
      std::vector<uint16_t> vh(vf.size());
      for (size_t i = 0; i < vf.size(); ++i) vh[i] = FloatToHalf(vf[i]);
      const void* v = kv == GgmlType::kF16 ? static_cast<const void*>(vh.data()) : vf.data();
      const std::vector<float> p = testing::RandomVec(rows * p_stride, 6);
      std::vector<float> want = testing::RandomVec(rows * dv, 7), got = want;
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t r = 0; r < rows; ++r) {
          k.axpy(want.data() + r * dv, p[r * p_stride + j], static_cast<const uint8_t*>(v) + j * dv * es, dv);
        }
      }
      k.block_values(p.data(), p_stride, rows, v, dv * es, n, dv, got.data());
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << GgmlTypeName(kv) << " dv " << dv;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, OpsTest, ::testing::ValuesIn(testing::kIsas),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace moestream::kernels
