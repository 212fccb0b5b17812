// The CUDA backend against the CPU backend's results (the CPU backend is
// itself checked against scalar references), op by op with per-type
// tolerances: every weight type with a CUDA kernel in MatMul (decode, token
// tiles, the prefill GEMM path), the fused expert batch, GetRows, top-k,
// flash attention (one pass and split over long contexts), the fused
// scatter of expert outputs (bit for bit), RoPE and the element-wise ops; the scratch budget; the
// refusal of a type without a kernel; and the link's bandwidth. Skips, saying
// why, where no GPU or driver is usable; on a build without CUDA, checks the
// clear error. tests/gpu/run.sh runs it on a GPU machine.
// MOESTREAM_GPU_TEST_BACKEND=cpu puts the CPU backend under test instead (the
// CUDA-only tests skip): a check of the tests themselves without a GPU.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "absl/strings/str_cat.h"
#include "kernels/quant.h"
#include "tests/kernels/kernel_test_util.h"

#ifdef MOESTREAM_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_attention_split.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_quant.h"
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
    // MOESTREAM_GPU_TEST_BACKEND=cpu puts the CPU backend under test: a check
    // of the tests themselves where there is no GPU (CUDA-only tests skip).
    const char* under_test = std::getenv("MOESTREAM_GPU_TEST_BACKEND");
    if (under_test != nullptr && std::string_view(under_test) == "cpu") o.kind = "cpu";
    auto be = o.kind == "cuda" ? CreateCudaBackend(o) : CreateBackend(o);
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

  // Skips a test of CUDA-only behaviour when another backend is under test.
  bool CudaOnly() {
    if (gpu_->name() == "cuda") return false;
    return true;
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

// A weight matrix of type t: quantized from normal floats where we have a
// quantizer, random blocks with sane scales otherwise (Q2_K, Q3_K, MXFP4).
std::vector<uint8_t> MakeWeights(GgmlType t, int64_t n_in, int64_t n_out, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  const size_t rb = RowBytes(t, n_in);
  std::vector<uint8_t> q(rb * n_out);
  std::vector<float> row(n_in);
  for (int64_t r = 0; r < n_out; ++r) {
    if (CanQuantize(t)) {
      for (float& v : row) v = nd(rng);
      EXPECT_TRUE(QuantizeRow(t, row.data(), n_in, &q[r * rb]).ok());
    } else {
      std::vector<uint8_t> b = testing::RandomQuantBlocks(t, n_in, rng);
      std::memcpy(&q[r * rb], b.data(), rb);
    }
  }
  return q;
}

std::vector<GgmlType> CudaTypes() {
  std::vector<GgmlType> v(std::begin(cuda::kCudaFloatTypes), std::end(cuda::kCudaFloatTypes));
  v.insert(v.end(), std::begin(cuda::kCudaQuantTypes), std::end(cuda::kCudaQuantTypes));
  return v;
}

// Per-type tolerance of the CUDA product against the CPU backend's. Both
// round int8 activations identically (cuda_quant.h), so the int8 path
// differs by float summation order only; prompts of 64+ tokens on quantized
// weights take F16 activations and weights through cuBLAS (bounded by the
// CPU's int8 rounding step plus F16 rounding); F16/BF16 batches convert
// activations to the weight's precision.
double Tolerance(GgmlType t, int64_t n_tok, std::span<const float> w_row, std::span<const float> x) {
  double mag = 0, step = 0;
  for (size_t i = 0; i < w_row.size(); ++i) {
    mag += std::fabs(double(w_row[i]) * x[i]);
    float amax = 0;
    const size_t b0 = i / 256 * 256;
    for (size_t j = b0; j < std::min(b0 + 256, x.size()); ++j) amax = std::max(amax, std::fabs(x[j]));
    step += std::fabs(double(w_row[i])) * amax / 127.0 * 0.5;
  }
  if (t == GgmlType::kF32) return 1e-5 * mag + 1e-5;
  if (t == GgmlType::kF16) return (n_tok == 1 ? 1e-5 : 2e-3) * mag + 1e-5;
  if (t == GgmlType::kBF16) return (n_tok == 1 ? 1e-5 : 1e-2) * mag + 1e-5;
  if (n_tok >= 64) return step + 2e-3 * mag + 1e-5;
  return 2e-5 * mag + 1e-5;
}

TEST_F(CudaBackendTest, MatMulMatchesCpuForEachType) {
  const int64_t n_in = 512, n_out = 72;
  for (GgmlType t : CudaTypes()) {
    if (CudaOnly() && !gpu_->CanCompute(t)) continue;
    ASSERT_TRUE(gpu_->CanCompute(t)) << GgmlTypeName(t);
    const std::vector<uint8_t> q = MakeWeights(t, n_in, n_out, 3);
    std::vector<float> deq;
    for (int64_t r = 0; r < n_out; ++r) {
      const std::vector<float> row = testing::DequantizeForTest(t, &q[r * RowBytes(t, n_in)], n_in);
      deq.insert(deq.end(), row.begin(), row.end());
    }
    // Against the CPU backend where it computes the type, else against the
    // exact product (bounded by the activation rounding).
    const bool cpu_computes = cpu_->CanCompute(t);
    auto* dw = Upload(q);
    for (int64_t n_tok : {1, 3, 9, 70}) {
      std::vector<float> x = testing::RandomVec(n_in * n_tok, 17 + uint32_t(n_tok));
      std::vector<float> ref(n_tok * n_out);
      if (cpu_computes) {
        cpu_->MatMul({t, n_in, n_out, q.data()}, x.data(), n_tok, ref.data());
      } else {
        for (int64_t tk = 0; tk < n_tok; ++tk) {
          for (int64_t r = 0; r < n_out; ++r) {
            double acc = 0;
            for (int64_t i = 0; i < n_in; ++i) acc += double(deq[r * n_in + i]) * x[tk * n_in + i];
            ref[tk * n_out + r] = float(acc);
          }
        }
      }
      auto* dx = Upload(x);
      auto dy = gpu_->DeviceAlloc(ref.size() * sizeof(float), "y");
      ASSERT_TRUE(dy.ok());
      gpu_->MatMul({t, n_in, n_out, dw}, dx, n_tok, static_cast<float*>(*dy));
      auto got = Download(static_cast<float*>(*dy), ref.size());
      double worst = 0;
      for (int64_t tk = 0; tk < n_tok; ++tk) {
        for (int64_t r = 0; r < n_out; ++r) {
          const size_t i = size_t(tk * n_out + r);
          const double tol = Tolerance(t, cpu_computes ? n_tok : 64, {&deq[r * n_in], size_t(n_in)},
                                       {&x[tk * n_in], size_t(n_in)});
          ASSERT_NEAR(got[i], ref[i], tol)
              << GgmlTypeName(t) << " n_tok " << n_tok << " token " << tk << " row " << r;
          worst = std::max(worst, std::fabs(double(got[i]) - ref[i]));
        }
      }
      RecordProperty(absl::StrCat("max_abs_diff_", std::string(GgmlTypeName(t)), "_tok", n_tok),
                     absl::StrCat(worst));
      gpu_->DeviceFree(dx);
      gpu_->DeviceFree(*dy);
    }
    gpu_->DeviceFree(dw);
  }
}

// A layer's experts as the engine batches them: gate and up sharing an input,
// down with one input per expert, mixed weight types (as Q4_K_M files mix
// them), more products than one fused launch takes, and a float job.
TEST_F(CudaBackendTest, FusedMatMulBatchMatchesCpu) {
  const int64_t d = 256, f = 512;  // k-quant rows are multiples of 256
  struct Spec {
    GgmlType type;
    int64_t n_in, n_out, n_tok;
    int input;  // jobs with the same input share x
  };
  std::vector<Spec> specs;
  for (int e = 0; e < 20; ++e) {
    const GgmlType t = e % 3 == 0 ? GgmlType::kQ6_K : (e % 3 == 1 ? GgmlType::kQ4_K : GgmlType::kQ5_0);
    const int64_t n_tok = e % 4 == 0 ? 3 : 1;
    specs.push_back({t, d, f, n_tok, e % 4 == 0 ? 1 : 0});  // gate
    specs.push_back({t, d, f, n_tok, e % 4 == 0 ? 1 : 0});  // up
    specs.push_back({t, f, d, n_tok, 2 + e});              // down: own input
  }
  specs.push_back({GgmlType::kF16, d, f, 1, 0});
  specs.push_back({GgmlType::kQ8_0, d, f, 3, 1});  // Q8_0 rounding of an input Q8_K-rounded above
  specs.push_back({GgmlType::kQ4_1, d, f, 3, 1});  // float activations
  std::vector<std::vector<float>> inputs(2 + 20);
  std::vector<float*> dinputs(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int64_t width = i < 2 ? d : f;
    inputs[i] = testing::RandomVec(width * 3, 40 + uint32_t(i));
    dinputs[i] = Upload(inputs[i]);
  }
  std::vector<MatMulJob> jobs;
  std::vector<std::vector<float>> refs;
  std::vector<void*> owned;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Spec& s = specs[i];
    const std::vector<uint8_t> q = MakeWeights(s.type, s.n_in, s.n_out, 100 + uint32_t(i));
    refs.emplace_back(s.n_tok * s.n_out);
    cpu_->MatMul({s.type, s.n_in, s.n_out, q.data()}, inputs[s.input].data(), s.n_tok,
                 refs.back().data());
    auto* dw = Upload(q);
    auto dy = gpu_->DeviceAlloc(refs.back().size() * sizeof(float), "y");
    ASSERT_TRUE(dy.ok());
    owned.push_back(dw);
    owned.push_back(*dy);
    jobs.push_back({{s.type, s.n_in, s.n_out, dw}, dinputs[s.input], s.n_tok, static_cast<float*>(*dy)});
  }
  gpu_->MatMulBatch(jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    auto got = Download(jobs[i].y, refs[i].size());
    for (size_t j = 0; j < got.size(); ++j) {
      ASSERT_NEAR(got[j], refs[i][j], 1e-3 * (1 + std::fabs(refs[i][j])))
          << "job " << i << " (" << GgmlTypeName(specs[i].type) << ") element " << j;
    }
  }
  for (void* p : owned) gpu_->DeviceFree(p);
  for (float* p : dinputs) gpu_->DeviceFree(p);
}

TEST_F(CudaBackendTest, GetRowsDequantizesEveryType) {
  const int64_t n_in = 512, n_rows = 9;
  const std::vector<int32_t> ids = {3, 0, 8, 3};
  auto* dids = Upload(ids);
  for (GgmlType t : CudaTypes()) {
    if (!gpu_->CanCompute(t)) continue;  // only with the cpu backend under test
    const std::vector<uint8_t> q = MakeWeights(t, n_in, n_rows, 5);
    auto* dq = Upload(q);
    auto dout = gpu_->DeviceAlloc(ids.size() * n_in * sizeof(float), "rows");
    ASSERT_TRUE(dout.ok());
    gpu_->GetRows({t, n_in, n_rows, dq}, dids, int64_t(ids.size()), static_cast<float*>(*dout));
    auto got = Download(static_cast<float*>(*dout), ids.size() * n_in);
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::vector<float> want =
          testing::DequantizeForTest(t, &q[ids[i] * RowBytes(t, n_in)], n_in);
      for (int64_t j = 0; j < n_in; ++j) {
        ASSERT_NEAR(got[i * n_in + j], want[j], 1e-6f * (1 + std::fabs(want[j])))
            << GgmlTypeName(t) << " row " << i << " element " << j;
      }
    }
    gpu_->DeviceFree(dq);
    gpu_->DeviceFree(*dout);
  }
  // Activation rows of a width that is no multiple of 32.
  std::vector<float> table = testing::RandomVec(5 * 45, 8);
  auto* dt = Upload(table);
  auto dout = gpu_->DeviceAlloc(ids.size() * 45 * sizeof(float), "rows");
  ASSERT_TRUE(dout.ok());
  const std::vector<int32_t> small_ids = {3, 0, 4, 3};
  auto* dsi = Upload(small_ids);
  gpu_->GetRows({GgmlType::kF32, 45, 5, dt}, dsi, 4, static_cast<float*>(*dout));
  auto got = Download(static_cast<float*>(*dout), 4 * 45);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 45; ++j) ASSERT_EQ(got[i * 45 + j], table[small_ids[i] * 45 + j]);
  }
}

TEST_F(CudaBackendTest, TopKRowsMatchesCpuIncludingTies) {
  for (int64_t n : {8, 64, 256, 1500}) {
    for (int k : {1, 2, 8}) {
      const int64_t rows = 37;
      std::vector<float> x = testing::RandomVec(rows * n, uint32_t(n + k));
      for (int64_t r = 0; r < rows; r += 3) x[r * n + n / 2] = x[r * n + 1];  // ties
      auto* dx = Upload(x);
      auto dids = gpu_->DeviceAlloc(rows * k * sizeof(int32_t), "ids");
      auto dv = gpu_->DeviceAlloc(rows * k * sizeof(float), "v");
      ASSERT_TRUE(dids.ok() && dv.ok());
      for (bool renorm : {false, true}) {
        gpu_->TopKRows(dx, rows, n, k, renorm, static_cast<int32_t*>(*dids), static_cast<float*>(*dv));
        std::vector<int32_t> ids(rows * k);
        ASSERT_TRUE(gpu_->CopyToHost(ids.data(), *dids, ids.size() * sizeof(int32_t)).ok());
        auto vals = Download(static_cast<float*>(*dv), rows * k);
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<int32_t> want_ids(k);
          std::vector<float> want_v(k);
          cpu_->TopK(&x[r * n], n, k, renorm, want_ids.data(), want_v.data());
          for (int j = 0; j < k; ++j) {
            ASSERT_EQ(ids[r * k + j], want_ids[j]) << "n " << n << " k " << k << " row " << r;
            ASSERT_NEAR(vals[r * k + j], want_v[j], 1e-6f * (1 + std::fabs(want_v[j])));
          }
        }
      }
      gpu_->DeviceFree(dx);
      gpu_->DeviceFree(*dids);
      gpu_->DeviceFree(*dv);
    }
  }
}

// One attention call: q, K and V random (F32 or F16 cache), run on the CPU
// backend and on the backend under test (`run`, by default its Attention),
// the outputs compared element by element within 1e-4.
struct AttnCase {
  int64_t n_tok, n_head, n_kv, hd, hd_v, pos0, chunk;
  int64_t window = 0;  // sliding window (gpt-oss)
  bool sinks = false;  // attention sinks (gpt-oss)
};

void CheckAttentionAgainstCpu(Backend& gpu, Backend& cpu, const AttnCase& c, GgmlType kv,
                              uint32_t seed, const std::function<void(const AttentionArgs&)>& run,
                              const std::string& what) {
  const int64_t ctx = c.pos0 + c.n_tok, dv = c.hd_v > 0 ? c.hd_v : c.hd;
  std::vector<float> q = testing::RandomVec(c.n_tok * c.n_head * c.hd, seed);
  std::vector<float> k = testing::RandomVec(ctx * c.n_kv * c.hd, seed + 1);
  std::vector<float> v = testing::RandomVec(ctx * c.n_kv * dv, seed + 2);
  std::vector<float> sinks = testing::RandomVec(c.n_head, seed + 3, 2.0f);
  const size_t es = kv == GgmlType::kF16 ? 2 : 4;
  std::vector<uint8_t> kc(k.size() * es), vc(v.size() * es);
  cpu.StoreKv(k.data(), kc.data(), kv, int64_t(k.size()));
  cpu.StoreKv(v.data(), vc.data(), kv, int64_t(v.size()));
  std::vector<float> ref(c.n_tok * c.n_head * dv);
  AttentionArgs a;
  a.q = q.data();
  a.k_cache = kc.data();
  a.v_cache = vc.data();
  a.kv_type = kv;
  a.n_tok = c.n_tok;
  a.n_head = c.n_head;
  a.n_kv_head = c.n_kv;
  a.head_dim = c.hd;
  a.head_dim_v = c.hd_v;
  a.pos0 = c.pos0;
  a.chunk = c.chunk;
  a.window = c.window;
  a.sinks = c.sinks ? sinks.data() : nullptr;
  a.scale = 1.0f / std::sqrt(float(c.hd));
  a.out = ref.data();
  cpu.Attention(a);
  std::vector<void*> owned;
  auto upload = [&](const void* src, size_t bytes) {
    auto p = gpu.DeviceAlloc(bytes, "test");
    EXPECT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(gpu.CopyToDevice(*p, src, bytes).ok());
    owned.push_back(*p);
    return *p;
  };
  AttentionArgs g = a;
  g.q = static_cast<const float*>(upload(q.data(), q.size() * sizeof(float)));
  g.k_cache = upload(kc.data(), kc.size());
  g.v_cache = upload(vc.data(), vc.size());
  if (c.sinks) g.sinks = static_cast<const float*>(upload(sinks.data(), sinks.size() * sizeof(float)));
  g.out = static_cast<float*>(upload(ref.data(), ref.size() * sizeof(float)));
  if (run) {
    run(g);
  } else {
    gpu.Attention(g);
  }
  std::vector<float> got(ref.size());
  ASSERT_TRUE(gpu.CopyToHost(got.data(), g.out, got.size() * sizeof(float)).ok());
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_NEAR(got[i], ref[i], 1e-4)
        << what << ": pos0 " << c.pos0 << " heads " << c.n_head << " hd " << c.hd << " dv " << dv
        << " window " << c.window << " chunk " << c.chunk << " sinks " << c.sinks << " "
        << GgmlTypeName(kv) << " element " << i;
  }
  for (void* p : owned) gpu.DeviceFree(p);
}

// Flash-style attention against the CPU backend: F32 and F16 caches, several
// KV tiles, GQA, chunked local attention, value heads narrower than keys, and
// value heads too wide for the flash kernel (the reference kernel's path).
TEST_F(CudaBackendTest, AttentionMatchesCpuOverTilesChunksAndKvTypes) {
  const AttnCase cases[] = {{4, 4, 2, 32, 0, 3, 0},          {3, 8, 2, 64, 0, 300, 0},
                            {5, 4, 4, 64, 0, 250, 128},      {2, 4, 1, 96, 64, 140, 0},
                            {1, 2, 1, 576, 512, 200, 0},     {1, 2, 1, 64, 1100, 20, 0},
                            {3, 8, 2, 64, 0, 300, 0, 8, true}, {4, 4, 2, 64, 0, 200, 0, 150, false},
                            {1, 4, 2, 64, 0, 140, 0, 0, true}};
  for (const AttnCase& c : cases) {
    for (GgmlType kv : {GgmlType::kF32, GgmlType::kF16}) {
      CheckAttentionAgainstCpu(*gpu_, *cpu_, c, kv, 1, nullptr, "one pass");
    }
  }
}

// Long contexts with few query blocks take the split-KV path (flash-decoding:
// shares of the KV range per block, then the combine) on a GPU with enough
// SMs; the results must match the CPU backend as the one-pass kernel does:
// F32 and F16 caches, GQA, a sliding window, sinks, a local-attention chunk,
// latent-width value heads, and two query tokens with different ranges.
TEST_F(CudaBackendTest, LongContextAttentionMatchesCpu) {
  const AttnCase cases[] = {{1, 8, 2, 128, 0, 3000, 0},           {1, 32, 8, 64, 0, 4095, 0},
                            {1, 8, 2, 64, 0, 5000, 0, 1500, true}, {1, 4, 4, 64, 0, 5000, 2048},
                            {1, 2, 1, 576, 512, 2000, 0},         {2, 8, 2, 64, 0, 2500, 0, 0, true},
                            {1, 1, 1, 64, 0, 20000, 0}};
  for (const AttnCase& c : cases) {
    for (GgmlType kv : {GgmlType::kF32, GgmlType::kF16}) {
      CheckAttentionAgainstCpu(*gpu_, *cpu_, c, kv, 11, nullptr, "long context");
    }
  }
}

// The split kernel and its combine at every split count, whatever the GPU's
// SM count would choose: shares of one tile, empty trailing shares, and
// query tokens whose ranges differ, against the CPU backend.
TEST_F(CudaBackendTest, SplitAttentionAtEverySplitCountMatchesCpu) {
  if (CudaOnly()) GTEST_SKIP() << "CUDA-only behaviour; the cpu backend is under test";
  const AttnCase c{3, 4, 2, 64, 0, 1500, 0, 0, true};
  for (int splits : {1, 2, 3, 7, 12, cuda::kAttnMaxSplits}) {
    auto run = [&](const AttentionArgs& g) {
      auto part = gpu_->DeviceAlloc(cuda::AttentionSplitBytes(g, splits), "partials");
      ASSERT_TRUE(part.ok()) << part.status();
      ASSERT_EQ(cuda::LaunchAttentionSplit(g, splits, static_cast<float*>(*part), nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
      gpu_->DeviceFree(*part);
    };
    CheckAttentionAgainstCpu(*gpu_, *cpu_, c, GgmlType::kF32, 21, run,
                                  absl::StrCat(splits, " splits"));
  }
}

// A layer's weighted expert outputs in one launch: the same bits as the CPU
// backend (and as the AddScaled calls it replaces), with the choices in the
// kernel's parameters (decode) and past their room, copied to the device
// (prefill).
TEST_F(CudaBackendTest, ScatterAddMatchesCpuBitForBit) {
  struct Case {
    int64_t n_tok, n;
    int k;
  };
  for (const Case& c : {Case{1, 4096, 8}, Case{4, 2880, 4}, Case{40, 2048, 8}, Case{300, 1000, 2}}) {
    const int64_t rows = c.n_tok * c.k;
    const auto src = testing::RandomVec(rows * c.n, 31), out0 = testing::RandomVec(c.n_tok * c.n, 32);
    const auto w = testing::RandomVec(rows, 33);
    std::vector<ScatterChoice> choices(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) choices[size_t(i)] = {int32_t((i * 5 + 1) % rows), w[size_t(i)]};
    auto want = out0;
    cpu_->ScatterAdd(want.data(), src.data(), c.n, choices, c.k);
    auto* dsrc = Upload(src);
    auto* dout = Upload(out0);
    gpu_->ScatterAdd(dout, dsrc, c.n, choices, c.k);
    auto got = Download(dout, want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
        << "n_tok " << c.n_tok << " n " << c.n << " k " << c.k;
    // And the AddScaled calls on the device itself.
    ASSERT_TRUE(gpu_->CopyToDevice(dout, out0.data(), out0.size() * sizeof(float)).ok());
    for (int64_t t = 0; t < c.n_tok; ++t) {
      for (int j = 0; j < c.k; ++j) {
        const ScatterChoice& ch = choices[size_t(t * c.k + j)];
        gpu_->AddScaled(dout + t * c.n, dsrc + int64_t(ch.row) * c.n, ch.weight, c.n);
      }
    }
    got = Download(dout, want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0);
    gpu_->DeviceFree(dsrc);
    gpu_->DeviceFree(dout);
  }
}

TEST_F(CudaBackendTest, ElementwiseOpsAndRopeMatchCpu) {
  const int64_t n_tok = 3, n_head = 4, hd = 64, n = n_tok * n_head * hd;
  std::vector<float> x = testing::RandomVec(n, 9), y = testing::RandomVec(n, 10);
  std::vector<int32_t> pos = {5, 6, 700};
  auto* dpos = Upload(pos);
  for (RopeMode mode : {RopeMode::kNormal, RopeMode::kNeox}) {
    for (RopeScaling sc : {RopeScaling::kNone, RopeScaling::kYarn}) {
      RopeParams p;
      p.mode = mode;
      p.n_rot = 48;
      p.freq_base = 10000.0f;
      p.scaling = sc;
      p.freq_scale = sc == RopeScaling::kYarn ? 0.25f : 1.0f;
      p.ext_factor = sc == RopeScaling::kYarn ? 1.0f : 0.0f;
      p.n_ctx_orig = 4096;
      std::vector<float> ref = x;
      cpu_->Rope(ref.data(), n_tok, n_head, hd, pos.data(), p);
      auto* dx = Upload(x);
      gpu_->Rope(dx, n_tok, n_head, hd, dpos, p);
      auto got = Download(dx, n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], ref[i], 2e-4 * (1 + std::fabs(ref[i]))) << i;
      gpu_->DeviceFree(dx);
    }
  }
  std::vector<float> ref(n);
  auto* dx = Upload(x);
  auto* dy = Upload(y);
  auto dz = gpu_->DeviceAlloc(n * sizeof(float), "z");
  ASSERT_TRUE(dz.ok());
  auto* z = static_cast<float*>(*dz);
  auto check = [&](const char* what, float tol) {
    auto got = Download(z, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], ref[i], tol * (1 + std::fabs(ref[i]))) << what << " " << i;
  };
  cpu_->SiluMul(x.data(), y.data(), ref.data(), n);
  gpu_->SiluMul(dx, dy, z, n);
  check("silu_mul", 1e-6f);
  cpu_->Add(x.data(), y.data(), ref.data(), n);
  gpu_->Add(dx, dy, z, n);
  check("add", 0);
  ref = y;
  cpu_->AddScaled(ref.data(), x.data(), 0.3f, n);
  ASSERT_TRUE(gpu_->CopyToDevice(z, y.data(), n * sizeof(float)).ok());
  gpu_->AddScaled(z, dx, 0.3f, n);
  check("add_scaled", 1e-6f);
  ref = x;
  cpu_->Sigmoid(ref.data(), n);
  ASSERT_TRUE(gpu_->CopyToDevice(z, x.data(), n * sizeof(float)).ok());
  gpu_->Sigmoid(z, n);
  check("sigmoid", 1e-6f);
}

// The ops' scratch is carved from the budgeted arena: it shows in
// device_memory(), and past the budget an op fails loudly (the next call
// that returns a Status reports it) instead of allocating outside it.
TEST_F(CudaBackendTest, OpScratchCountsAgainstTheBudget) {
  if (CudaOnly()) GTEST_SKIP() << "CUDA-only behaviour; the cpu backend is under test";
  const int64_t n_in = 4096, n_out = 8, n_tok = 32;
  const std::vector<uint8_t> q = MakeWeights(GgmlType::kQ4_0, n_in, n_out, 1);
  auto* dw = Upload(q);
  std::vector<float> x = testing::RandomVec(n_in * n_tok, 2);
  auto* dx = Upload(x);
  auto dy = gpu_->DeviceAlloc(n_tok * n_out * sizeof(float), "y");
  ASSERT_TRUE(dy.ok());
  const uint64_t before = gpu_->device_memory().used_bytes;
  gpu_->MatMul({GgmlType::kQ4_0, n_in, n_out, dw}, dx, n_tok, static_cast<float*>(*dy));
  ASSERT_TRUE(gpu_->compute_stream().Synchronize().ok());
  EXPECT_GE(gpu_->device_memory().used_bytes, before + uint64_t(n_in * n_tok));
  // Fill the budget, then ask for more scratch than is left.
  std::vector<float> big = testing::RandomVec(n_in * 4 * n_tok, 3);
  auto* dbig = Upload(big);
  auto dy_big = gpu_->DeviceAlloc(4 * n_tok * n_out * sizeof(float), "y");
  ASSERT_TRUE(dy_big.ok());
  const MemoryStats m = gpu_->device_memory();
  auto rest = gpu_->DeviceAlloc(m.budget_bytes - m.used_bytes - 4096, "fill");
  ASSERT_TRUE(rest.ok()) << rest.status();
  gpu_->MatMul({GgmlType::kQ4_0, n_in, n_out, dw}, dbig, n_tok * 4, static_cast<float*>(*dy_big));
  std::vector<float> back(4);
  const absl::Status s = gpu_->CopyToHost(back.data(), *dy, sizeof(float) * 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_LE(gpu_->device_memory().high_water_bytes, m.budget_bytes);
}

// A type without a CUDA kernel is refused by CanCompute (the loader asks
// first) and fails an op loudly rather than computing zeros.
TEST_F(CudaBackendTest, TypeWithoutKernelFailsLoudly) {
  if (CudaOnly()) GTEST_SKIP() << "CUDA-only behaviour; the cpu backend is under test";
  EXPECT_FALSE(gpu_->CanCompute(GgmlType::kIQ2_XXS));
  std::vector<uint8_t> w(RowBytes(GgmlType::kIQ2_XXS, 256) * 4);
  auto* dw = Upload(w);
  std::vector<float> x(256, 1.0f);
  auto* dx = Upload(x);
  auto dy = gpu_->DeviceAlloc(4 * sizeof(float), "y");
  ASSERT_TRUE(dy.ok());
  gpu_->MatMul({GgmlType::kIQ2_XXS, 256, 4, dw}, dx, 1, static_cast<float*>(*dy));
  std::vector<float> back(4);
  const absl::Status s = gpu_->CopyToHost(back.data(), *dy, sizeof(back[0]) * 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("iq2_xxs"), std::string_view::npos) << s;
}

// The link: pinned host → device through the backend's copy stream, next to
// cudaMemcpy's peak from the same pinned buffer and from pageable memory,
// measured in the same run (reported as test properties; the run script
// collects them). Asserts only what must hold on any GPU: the bytes arrive
// and the backend's async copies reach at least half of cudaMemcpy's rate.
TEST_F(CudaBackendTest, LinkBandwidthPinnedVersusMemcpyPeak) {
  if (CudaOnly()) GTEST_SKIP() << "CUDA-only behaviour; the cpu backend is under test";
  const size_t bytes = 256u << 20;
  gpu_.reset();
  BackendOptions o;
  o.kind = "cuda";
  o.device_budget_bytes = 512ull << 20;
  auto be = CreateCudaBackend(o);
  ASSERT_TRUE(be.ok()) << be.status();
  gpu_ = std::move(*be);
  auto pinned = gpu_->HostPinnedAlloc(bytes, "src");
  ASSERT_TRUE(pinned.ok());
  std::memset(*pinned, 0x5A, bytes);
  auto dst = gpu_->DeviceAlloc(bytes, "dst");
  ASSERT_TRUE(dst.ok());
  auto stream = gpu_->CreateStream(StreamKind::kCopy);
  auto ev = gpu_->CreateEvent();
  ASSERT_TRUE(stream.ok() && ev.ok());
  auto gbps = [&](auto&& fn, int reps) {
    fn();  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) fn();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return double(bytes) * reps / s / 1e9;
  };
  const size_t chunk = 4u << 20;  // expert-sized copies, as the loader issues them
  const double backend_gbps = gbps(
      [&] {
        for (size_t off = 0; off < bytes; off += chunk) {
          ASSERT_TRUE(gpu_->CopyToDeviceAsync(static_cast<uint8_t*>(*dst) + off,
                                              static_cast<uint8_t*>(*pinned) + off, chunk, **stream)
                          .ok());
        }
        ASSERT_TRUE((*stream)->Record(**ev).ok());
        ASSERT_TRUE((*ev)->Synchronize().ok());
      },
      5);
  const double memcpy_gbps = gbps(
      [&] { ASSERT_EQ(cudaMemcpy(*dst, *pinned, bytes, cudaMemcpyHostToDevice), cudaSuccess); }, 5);
  std::vector<uint8_t> pageable(bytes, 0x33);
  const double pageable_gbps = gbps(
      [&] {
        ASSERT_EQ(cudaMemcpy(*dst, pageable.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
      },
      3);
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE(gpu_->CopyToHost(back.data(), *dst, back.size()).ok());
  EXPECT_EQ(back[0], 0x33);
  RecordProperty("pinned_async_h2d_gbps", absl::StrCat(backend_gbps));
  RecordProperty("cudamemcpy_pinned_h2d_gbps", absl::StrCat(memcpy_gbps));
  RecordProperty("cudamemcpy_pageable_h2d_gbps", absl::StrCat(pageable_gbps));
  RecordProperty("pinned_async_to_memcpy_ratio", absl::StrCat(backend_gbps / memcpy_gbps));
  std::printf("link: backend pinned async %.2f GB/s, cudaMemcpy pinned %.2f GB/s, pageable %.2f GB/s\n",
              backend_gbps, memcpy_gbps, pageable_gbps);
  EXPECT_GE(backend_gbps, 0.5 * memcpy_gbps);
  gpu_->HostPinnedFree(*pinned);
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
