// The CUDA backend against the CPU backend's results (the CPU backend is
// itself checked against scalar references). Skips, saying why, where no GPU
// or driver is usable; on a build without CUDA, checks the clear error.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/quant.h"

#ifdef MOESTREAM_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace moestream::kernels {
namespace {

#ifndef MOESTREAM_HAVE_CUDA
TEST(CudaBackendTest, UnavailableWithoutCuda) {
  BackendOptions o;
  o.kind = "cuda";
  auto be = CreateBackend(o);
  ASSERT_FALSE(be.ok());
  EXPECT_EQ(be.status().code(), absl::StatusCode::kUnavailable);
}
#else

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BackendOptions o;
    o.kind = "cuda";
    o.device_budget_bytes = 256ull << 20;
    auto be = CreateCudaBackend(o);
    if (!be.ok()) {
      ASSERT_EQ(be.status().code(), absl::StatusCode::kUnavailable) << be.status();
      GTEST_SKIP() << "no usable GPU: " << be.status().message();
    }
    gpu_ = std::move(*be);
    BackendOptions c;
    c.kind = "cpu";
    auto cpu = CreateBackend(c);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    cpu_ = std::move(*cpu);
  }

  template <typename T>
  T* Upload(const std::vector<T>& v) {
    auto p = gpu_->DeviceAlloc(v.size() * sizeof(T), "test");
    EXPECT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(gpu_->CopyToDevice(*p, v.data(), v.size() * sizeof(T)).ok());
    return static_cast<T*>(*p);
  }
  std::vector<float> Download(const float* d, size_t n) {
    std::vector<float> v(n);
    EXPECT_TRUE(gpu_->CopyToHost(v.data(), d, n * sizeof(float)).ok());
    return v;
  }

  std::unique_ptr<Backend> gpu_, cpu_;
};

TEST_F(CudaBackendTest, BudgetIsHard) {
  auto a = gpu_->DeviceAlloc(200ull << 20, "a");
  ASSERT_TRUE(a.ok());
  auto b = gpu_->DeviceAlloc(100ull << 20, "b");
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LE(gpu_->device_memory().high_water_bytes, 256ull << 20);
  gpu_->DeviceFree(*a);
  EXPECT_EQ(gpu_->device_memory().used_bytes, 0u);
}

TEST_F(CudaBackendTest, AsyncCopyAndEvents) {
  auto pinned = gpu_->HostPinnedAlloc(1 << 20, "src");
  ASSERT_TRUE(pinned.ok());
  auto* src = static_cast<uint8_t*>(*pinned);
  for (int i = 0; i < (1 << 20); ++i) src[i] = static_cast<uint8_t>(i * 7);
  auto dst = gpu_->DeviceAlloc(1 << 20, "dst");
  ASSERT_TRUE(dst.ok());
  auto stream = gpu_->CreateStream(StreamKind::kCopy);
  auto ev = gpu_->CreateEvent();
  ASSERT_TRUE(stream.ok() && ev.ok());
  ASSERT_TRUE(gpu_->CopyToDeviceAsync(*dst, src, 1 << 20, **stream).ok());
  ASSERT_TRUE((*stream)->Record(**ev).ok());
  ASSERT_TRUE(gpu_->compute_stream().Wait(**ev).ok());
  std::vector<uint8_t> back(1 << 20);
  ASSERT_TRUE(gpu_->compute_stream().Synchronize().ok());
  ASSERT_TRUE(gpu_->CopyToHost(back.data(), *dst, back.size()).ok());
  EXPECT_EQ(0, std::memcmp(back.data(), src, back.size()));
  EXPECT_EQ(gpu_->link_stats().bytes, 1u << 20);
  gpu_->HostPinnedFree(src);
}

TEST_F(CudaBackendTest, MatMulMatchesCpuForEachType) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  const int64_t n_in = 512, n_out = 96, n_tok = 3;
  std::vector<float> w(n_in * n_out), x(n_in * n_tok);
  for (float& v : w) v = nd(rng);
  for (float& v : x) v = nd(rng);
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                     GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    std::vector<uint8_t> q(RowBytes(t, n_in) * n_out);
    for (int64_t r = 0; r < n_out; ++r) {
      ASSERT_TRUE(QuantizeRow(t, &w[r * n_in], n_in, &q[r * RowBytes(t, n_in)]).ok());
    }
    std::vector<float> ref(n_tok * n_out);
    cpu_->MatMul({t, n_in, n_out, q.data()}, x.data(), n_tok, ref.data());
    auto* dw = Upload(q);
    auto* dx = Upload(x);
    auto dy = gpu_->DeviceAlloc(ref.size() * sizeof(float), "y");
    ASSERT_TRUE(dy.ok());
    gpu_->MatMul({t, n_in, n_out, dw}, dx, n_tok, static_cast<float*>(*dy));
    auto got = Download(static_cast<float*>(*dy), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_NEAR(got[i], ref[i], 2e-2 * (1 + std::fabs(ref[i]))) << GgmlTypeName(t) << " " << i;
    }
    gpu_->DeviceFree(dw);
    gpu_->DeviceFree(dx);
    gpu_->DeviceFree(*dy);
  }
}

TEST_F(CudaBackendTest, NormSoftmaxAttentionMatchCpu) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  const int64_t n_tok = 4, n_head = 4, n_kv = 2, hd = 32, pos0 = 3, ctx = pos0 + n_tok;
  std::vector<float> q(n_tok * n_head * hd), k(ctx * n_kv * hd), v(ctx * n_kv * hd);
  for (auto* vec : {&q, &k, &v}) {
    for (float& f : *vec) f = nd(rng);
  }
  std::vector<float> ref(q.size());
  AttentionArgs a{q.data(), k.data(), v.data(), GgmlType::kF32, n_tok, n_head, n_kv, hd, pos0,
                  1.0f / std::sqrt(float(hd)), ref.data()};
  cpu_->Attention(a);
  auto* dq = Upload(q);
  auto* dk = Upload(k);
  auto* dv = Upload(v);
  auto dout = gpu_->DeviceAlloc(q.size() * sizeof(float), "out");
  ASSERT_TRUE(dout.ok());
  AttentionArgs g = a;
  g.q = dq;
  g.k_cache = dk;
  g.v_cache = dv;
  g.out = static_cast<float*>(*dout);
  gpu_->Attention(g);
  auto got = Download(g.out, q.size());
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-4) << i;

  std::vector<float> x(3 * 100), wn(100), y_ref(x.size());
  for (float& f : x) f = nd(rng);
  for (float& f : wn) f = nd(rng);
  cpu_->RmsNorm(x.data(), wn.data(), y_ref.data(), 3, 100, 1e-5f);
  auto* dxn = Upload(x);
  auto* dwn = Upload(wn);
  gpu_->RmsNorm(dxn, dwn, dxn, 3, 100, 1e-5f);
  auto yn = Download(dxn, x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(yn[i], y_ref[i], 1e-4);

  std::vector<float> sm = x;
  cpu_->Softmax(sm.data(), 3, 100);
  auto* dsm = Upload(x);
  gpu_->Softmax(dsm, 3, 100);
  auto gsm = Download(dsm, x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(gsm[i], sm[i], 1e-6);
}

#endif  // MOESTREAM_HAVE_CUDA

}  // namespace
}  // namespace moestream::kernels
