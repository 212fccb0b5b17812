// A test backend that forwards every call to another backend (see the class
// comment); header-only, for the model and engine tests.
#ifndef MOESTREAM_TESTS_KERNELS_FORWARDING_BACKEND_H_
#define MOESTREAM_TESTS_KERNELS_FORWARDING_BACKEND_H_

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kernels/backend.h"

namespace moestream::kernels::testing {

// Another backend (the CPU backend) under another name, optionally unable to
// compute with one type: stands for a device backend in tests that run
// without one (a backend that covers fewer types than the CPU kernels; the
// hybrid path, which only a backend other than "cpu" takes).
class RefusingBackend final : public Backend {
 public:
  RefusingBackend(std::unique_ptr<Backend> inner, std::string name,
                  std::optional<GgmlType> refused = std::nullopt)
      : b_(std::move(inner)), name_(std::move(name)), refused_(refused) {}
  bool CanCompute(GgmlType t) const override { return t != refused_ && b_->CanCompute(t); }
  std::string_view name() const override { return name_; }
  std::string Describe() const override { return name_; }
  absl::StatusOr<void*> DeviceAlloc(size_t n, std::string_view w) override { return b_->DeviceAlloc(n, w); }
  void DeviceFree(void* p) override { b_->DeviceFree(p); }
  MemoryStats device_memory() const override { return b_->device_memory(); }
  absl::StatusOr<void*> HostPinnedAlloc(size_t n, std::string_view w) override {
    return b_->HostPinnedAlloc(n, w);
  }
  void HostPinnedFree(void* p) override { b_->HostPinnedFree(p); }
  MemoryStats host_pinned_memory() const override { return b_->host_pinned_memory(); }
  absl::Status CopyToDevice(void* d, const void* s, size_t n) override { return b_->CopyToDevice(d, s, n); }
  absl::Status CopyToHost(void* d, const void* s, size_t n) override { return b_->CopyToHost(d, s, n); }
  absl::StatusOr<std::unique_ptr<Stream>> CreateStream(StreamKind k) override {
    return b_->CreateStream(k);
  }
  absl::StatusOr<std::unique_ptr<Event>> CreateEvent() override { return b_->CreateEvent(); }
  Stream& compute_stream() override { return b_->compute_stream(); }
  absl::Status CopyToDeviceAsync(void* d, const void* s, size_t n, Stream& st) override {
    return b_->CopyToDeviceAsync(d, s, n, st);
  }
  LinkStats link_stats() const override { return b_->link_stats(); }
  void MatMul(const WeightView& w, const float* x, int64_t n, float* y) override {
    b_->MatMul(w, x, n, y);
  }
  void MatMulBatch(std::span<const MatMulJob> j) override { b_->MatMulBatch(j); }
  void RmsNorm(const float* x, const float* w, float* y, int64_t r, int64_t n, float e) override {
    b_->RmsNorm(x, w, y, r, n, e);
  }
  void Rope(float* x, int64_t t, int64_t h, int64_t d, const int32_t* p,
            const RopeParams& r) override {
    b_->Rope(x, t, h, d, p, r);
  }
  void Softmax(float* x, int64_t r, int64_t n) override { b_->Softmax(x, r, n); }
  void TopK(const float* x, int64_t n, int k, bool r, int32_t* i, float* v) override {
    b_->TopK(x, n, k, r, i, v);
  }
  void Sigmoid(float* x, int64_t n) override { b_->Sigmoid(x, n); }
  void SiluMul(const float* g, const float* u, float* o, int64_t n) override { b_->SiluMul(g, u, o, n); }
  void SwigluClamped(const float* g, const float* u, float* o, int64_t n, float alpha,
                     float limit) override {
    b_->SwigluClamped(g, u, o, n, alpha, limit);
  }
  void AddBias(float* x, const float* bias, int64_t rows, int64_t n) override {
    b_->AddBias(x, bias, rows, n);
  }
  void Add(const float* a, const float* b, float* o, int64_t n) override { b_->Add(a, b, o, n); }
  void Scale(float* x, float s, int64_t n) override { b_->Scale(x, s, n); }
  void Copy2D(float* d, int64_t ds, const float* s, int64_t ss, int64_t r, int64_t c) override {
    b_->Copy2D(d, ds, s, ss, r, c);
  }
  void AddScaled(float* y, const float* x, float s, int64_t n) override { b_->AddScaled(y, x, s, n); }
  void ScatterAdd(float* out, const float* src, int64_t n, std::span<const ScatterChoice> choices,
                  int k) override {
    b_->ScatterAdd(out, src, n, choices, k);
  }
  void GetRows(const WeightView& t, const int32_t* i, int64_t n, float* o) override {
    b_->GetRows(t, i, n, o);
  }
  void StoreKv(const float* s, void* d, GgmlType t, int64_t n) override { b_->StoreKv(s, d, t, n); }
  void Attention(const AttentionArgs& a) override { b_->Attention(a); }

 private:
  std::unique_ptr<Backend> b_;
  std::string name_;
  std::optional<GgmlType> refused_;
};

}  // namespace moestream::kernels::testing

#endif  // MOESTREAM_TESTS_KERNELS_FORWARDING_BACKEND_H_
