// The weight loader refuses a model whose tensors include a type the
// backend cannot compute with (Backend::CanCompute), naming the tensor, the
// type and the backend, whether the routed experts are uploaded or stay
// offloaded; a backend covering fewer types than the CPU kernels (as a CUDA
// build could) is modelled by a CPU backend that refuses one type.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/weights.h"
#include "tests/test_util.h"

namespace moestream::model {
namespace {

using kernels::Backend;

// The CPU backend, except that it cannot compute with `refused`.
class RefusingBackend final : public Backend {
 public:
  RefusingBackend(std::unique_ptr<Backend> cpu, GgmlType refused)
      : b_(std::move(cpu)), refused_(refused) {}
  bool CanCompute(GgmlType t) const override { return t != refused_ && b_->CanCompute(t); }
  std::string_view name() const override { return "narrow"; }
  std::string Describe() const override { return "narrow"; }
  absl::StatusOr<void*> DeviceAlloc(size_t n, std::string_view w) override { return b_->DeviceAlloc(n, w); }
  void DeviceFree(void* p) override { b_->DeviceFree(p); }
  kernels::MemoryStats device_memory() const override { return b_->device_memory(); }
  absl::StatusOr<void*> HostPinnedAlloc(size_t n, std::string_view w) override {
    return b_->HostPinnedAlloc(n, w);
  }
  void HostPinnedFree(void* p) override { b_->HostPinnedFree(p); }
  kernels::MemoryStats host_pinned_memory() const override { return b_->host_pinned_memory(); }
  absl::Status CopyToDevice(void* d, const void* s, size_t n) override { return b_->CopyToDevice(d, s, n); }
  absl::Status CopyToHost(void* d, const void* s, size_t n) override { return b_->CopyToHost(d, s, n); }
  absl::StatusOr<std::unique_ptr<kernels::Stream>> CreateStream(kernels::StreamKind k) override {
    return b_->CreateStream(k);
  }
  absl::StatusOr<std::unique_ptr<kernels::Event>> CreateEvent() override { return b_->CreateEvent(); }
  kernels::Stream& compute_stream() override { return b_->compute_stream(); }
  absl::Status CopyToDeviceAsync(void* d, const void* s, size_t n, kernels::Stream& st) override {
    return b_->CopyToDeviceAsync(d, s, n, st);
  }
  kernels::LinkStats link_stats() const override { return b_->link_stats(); }
  void MatMul(const kernels::WeightView& w, const float* x, int64_t n, float* y) override {
    b_->MatMul(w, x, n, y);
  }
  void MatMulBatch(std::span<const kernels::MatMulJob> j) override { b_->MatMulBatch(j); }
  void RmsNorm(const float* x, const float* w, float* y, int64_t r, int64_t n, float e) override {
    b_->RmsNorm(x, w, y, r, n, e);
  }
  void Rope(float* x, int64_t t, int64_t h, int64_t d, const int32_t* p,
            const kernels::RopeParams& r) override {
    b_->Rope(x, t, h, d, p, r);
  }
  void Softmax(float* x, int64_t r, int64_t n) override { b_->Softmax(x, r, n); }
  void TopK(const float* x, int64_t n, int k, bool r, int32_t* i, float* v) override {
    b_->TopK(x, n, k, r, i, v);
  }
  void Sigmoid(float* x, int64_t n) override { b_->Sigmoid(x, n); }
  void SiluMul(const float* g, const float* u, float* o, int64_t n) override { b_->SiluMul(g, u, o, n); }
  void Add(const float* a, const float* b, float* o, int64_t n) override { b_->Add(a, b, o, n); }
  void Scale(float* x, float s, int64_t n) override { b_->Scale(x, s, n); }
  void Copy2D(float* d, int64_t ds, const float* s, int64_t ss, int64_t r, int64_t c) override {
    b_->Copy2D(d, ds, s, ss, r, c);
  }
  void AddScaled(float* y, const float* x, float s, int64_t n) override { b_->AddScaled(y, x, s, n); }
  void GetRows(const kernels::WeightView& t, const int32_t* i, int64_t n, float* o) override {
    b_->GetRows(t, i, n, o);
  }
  void StoreKv(const float* s, void* d, GgmlType t, int64_t n) override { b_->StoreKv(s, d, t, n); }
  void Attention(const kernels::AttentionArgs& a) override { b_->Attention(a); }

 private:
  std::unique_ptr<Backend> b_;
  GgmlType refused_;
};

// mixtral-tiny-a-q4_k_m: llama.cpp's Q4_K_M, whose only Q5_0 tensors are the
// 128-wide routed ffn_down_exps.
TEST(WeightsRefusalTest, ATypeTheBackendCannotComputeRefusesTheModelNamingTensorAndType) {
  const std::string path = testing::SharedPath(
      "reference/mixtral-tiny-a-q4_k_m/mixtral-tiny-a-q4_k_m.gguf");
  auto f = io::GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  auto c = ReadModelConfig(*f);
  ASSERT_TRUE(c.ok()) << c.status();
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 1;
  for (bool upload : {true, false}) {
    auto cpu = kernels::CreateBackend(bo);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    RefusingBackend narrow(std::move(*cpu), GgmlType::kQ5_0);
    WeightsOptions wo;
    wo.upload_routed_experts = upload;
    auto w = ModelWeights::Load(*f, *c, narrow, wo);
    ASSERT_FALSE(w.ok()) << "upload " << upload;
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string msg(w.status().message());
    EXPECT_NE(msg.find("tensor 'blk.0.ffn_down_exps.weight' has type q5_0, which the narrow "
                       "backend cannot compute with (the cpu backend can)"),
              std::string::npos)
        << msg;
    // Nothing stays allocated.
    EXPECT_EQ(narrow.device_memory().used_bytes, 0u) << msg;
  }
  // The same file loads on the CPU backend itself.
  auto cpu = kernels::CreateBackend(bo);
  ASSERT_TRUE(cpu.ok());
  EXPECT_TRUE(ModelWeights::Load(*f, *c, **cpu, WeightsOptions{}).ok());
}

}  // namespace
}  // namespace moestream::model
