// CudaBackend: kernels/backend.h on a CUDA GPU. See cuda_backend.h.
//
// Memory: one cudaMalloc arena of the whole budget, carved by a first-fit
// allocator with 256-byte alignment (so the budget is a hard limit and the
// high-water mark is exact); pinned host memory with cudaHostAlloc, counted
// against the host budget. Streams and events wrap cudaStream_t/cudaEvent_t;
// the link is cudaMemcpyAsync on caller-created copy streams, and its busy
// time is measured with timing events around each copy, collected lazily.
#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "kernels/cuda/cuda_ops.h"

namespace moestream::kernels {
namespace {

absl::Status CudaError(cudaError_t e, std::string_view what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("cuda: ", Av(what), ": ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
}

// Ops have no Status in the interface: a failed launch is a programmer error
// or a lost device, reported loudly once and remembered for the next call
// that can return a Status (Synchronize, copies).
void NoteError(cudaError_t e, const char* op, absl::Status* sticky) {
  if (e == cudaSuccess || !sticky->ok()) return;
  *sticky = CudaError(e, op);
  std::fprintf(stderr, "moestream: %s\n", std::string(sticky->message()).c_str());
}

class CudaEvent : public Event {
 public:
  explicit CudaEvent(cudaEvent_t e) : e_(e) {}
  ~CudaEvent() override { cudaEventDestroy(e_); }
  bool Query() override { return cudaEventQuery(e_) == cudaSuccess; }
  absl::Status Synchronize() override { return CudaError(cudaEventSynchronize(e_), "event sync"); }
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_;
};

class CudaStream : public Stream {
 public:
  explicit CudaStream(cudaStream_t s) : s_(s) {}
  ~CudaStream() override { cudaStreamDestroy(s_); }
  absl::Status Record(Event& e) override {
    return CudaError(cudaEventRecord(static_cast<CudaEvent&>(e).get(), s_), "event record");
  }
  absl::Status Wait(Event& e) override {
    return CudaError(cudaStreamWaitEvent(s_, static_cast<CudaEvent&>(e).get(), 0), "stream wait");
  }
  absl::Status Synchronize() override { return CudaError(cudaStreamSynchronize(s_), "stream sync"); }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_;
};

// First-fit allocator over [0, size) with coalescing on free.
class Arena {
 public:
  explicit Arena(uint64_t size) { free_[0] = size; }
  std::optional<uint64_t> Alloc(uint64_t bytes) {
    bytes = (bytes + 255) / 256 * 256;
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < bytes) continue;
      uint64_t off = it->first, rest = it->second - bytes;
      free_.erase(it);
      if (rest) free_[off + bytes] = rest;
      used_[off] = bytes;
      return off;
    }
    return std::nullopt;
  }
  uint64_t Free(uint64_t off) {
    auto u = used_.find(off);
    if (u == used_.end()) return 0;
    uint64_t bytes = u->second;
    used_.erase(u);
    auto it = free_.emplace(off, bytes).first;
    auto next = std::next(it);
    if (next != free_.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_.erase(it);
      }
    }
    return bytes;
  }
  uint64_t SizeOf(uint64_t off) const {
    auto u = used_.find(off);
    return u == used_.end() ? 0 : u->second;
  }

 private:
  std::map<uint64_t, uint64_t> free_;  // offset -> bytes
  std::map<uint64_t, uint64_t> used_;
};

class CudaBackend : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<Backend>> Create(const BackendOptions& o) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
      return absl::UnavailableError(absl::StrCat(
          "no usable CUDA device: ",
          e == cudaSuccess ? "cudaGetDeviceCount returned 0 devices" : cudaGetErrorString(e)));
    }
    e = cudaSetDevice(0);
    if (e != cudaSuccess) {
      return absl::UnavailableError(absl::StrCat("cudaSetDevice(0): ", cudaGetErrorString(e)));
    }
    size_t free_bytes = 0, total_bytes = 0;
    e = cudaMemGetInfo(&free_bytes, &total_bytes);
    if (e != cudaSuccess) {
      return absl::UnavailableError(absl::StrCat("cudaMemGetInfo: ", cudaGetErrorString(e)));
    }
    // Leave room for the CUDA context, cuBLAS workspace and kernels' stacks.
    const uint64_t reserve = 512ull << 20;
    uint64_t budget = o.device_budget_bytes;
    if (budget == 0) budget = free_bytes > reserve ? free_bytes - reserve : 0;
    if (budget + reserve > free_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "--device-budget %d bytes exceeds the GPU's free memory %d bytes (less %d reserved)",
          budget, free_bytes, reserve));
    }
    auto be = std::unique_ptr<CudaBackend>(new CudaBackend(o, budget));
    absl::Status s = be->Init();
    if (!s.ok()) return s;
    return std::unique_ptr<Backend>(std::move(be));
  }

  ~CudaBackend() override {
    if (compute_) compute_->Synchronize().IgnoreError();
    if (cublas_) cublasDestroy(cublas_);
    if (base_) cudaFree(base_);
    if (scratch_) cudaFree(scratch_);
    for (auto& t : copy_timings_) {
      cudaEventDestroy(t.start);
      cudaEventDestroy(t.stop);
    }
  }

  std::string_view name() const override { return "cuda"; }
  std::string Describe() const override {
    cudaDeviceProp p{};
    cudaGetDeviceProperties(&p, 0);
    return absl::StrFormat("cuda (%s, sm_%d%d, budget %.2f GiB)", p.name, p.major, p.minor,
                           budget_ / 1073741824.0);
  }

  absl::StatusOr<void*> DeviceAlloc(size_t bytes, std::string_view what) override {
    std::lock_guard<std::mutex> l(mu_);
    auto off = arena_.Alloc(bytes);
    if (!off.has_value() || used_ + arena_.SizeOf(*off) > budget_) {
      if (off.has_value()) arena_.Free(*off);
      return absl::ResourceExhaustedError(absl::StrFormat(
          "device budget exceeded allocating %d bytes for %s: %d of %d bytes in use", bytes,
          Av(what), used_, budget_));
    }
    used_ += arena_.SizeOf(*off);
    high_water_ = std::max(high_water_, used_);
    return static_cast<void*>(static_cast<char*>(base_) + *off);
  }

  void DeviceFree(void* p) override {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> l(mu_);
    used_ -= arena_.Free(static_cast<uint64_t>(static_cast<char*>(p) - static_cast<char*>(base_)));
  }

  MemoryStats device_memory() const override {
    std::lock_guard<std::mutex> l(mu_);
    return {budget_, used_, high_water_};
  }

  absl::StatusOr<void*> HostPinnedAlloc(size_t bytes, std::string_view what) override {
    std::lock_guard<std::mutex> l(mu_);
    if (opts_.host_budget_bytes && host_used_ + bytes > opts_.host_budget_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "host budget exceeded allocating %d bytes for %s: %d of %d bytes in use", bytes,
          Av(what), host_used_, opts_.host_budget_bytes));
    }
    void* p = nullptr;
    cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (e != cudaSuccess) {
      return absl::ResourceExhaustedError(absl::StrCat("cudaHostAlloc of ", bytes, " bytes for ",
                                                       Av(what), ": ", cudaGetErrorString(e)));
    }
    host_sizes_[p] = bytes;
    host_used_ += bytes;
    host_high_water_ = std::max(host_high_water_, host_used_);
    return p;
  }

  void HostPinnedFree(void* p) override {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> l(mu_);
    auto it = host_sizes_.find(p);
    if (it == host_sizes_.end()) return;
    host_used_ -= it->second;
    host_sizes_.erase(it);
    cudaFreeHost(p);
  }

  MemoryStats host_pinned_memory() const override {
    std::lock_guard<std::mutex> l(mu_);
    return {opts_.host_budget_bytes, host_used_, host_high_water_};
  }

  // Synchronous copies run on the compute stream, so they are ordered after
  // every op issued before them (the compute stream is non-blocking: a plain
  // cudaMemcpy on the legacy stream would not wait for it).
  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    MOESTREAM_RETURN_IF_ERROR(CudaError(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cs()), "copy to device"));
    return CudaError(cudaStreamSynchronize(cs()), "copy to device");
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (!sticky_.ok()) return sticky_;
    MOESTREAM_RETURN_IF_ERROR(CudaError(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cs()), "copy to host"));
    return CudaError(cudaStreamSynchronize(cs()), "copy to host");
  }

  absl::StatusOr<std::unique_ptr<Stream>> CreateStream(StreamKind kind) override {
    cudaStream_t s;
    absl::Status st = CudaError(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
    if (!st.ok()) return st;
    return std::unique_ptr<Stream>(new CudaStream(s));
  }

  absl::StatusOr<std::unique_ptr<Event>> CreateEvent() override {
    cudaEvent_t e;
    absl::Status st = CudaError(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
    if (!st.ok()) return st;
    return std::unique_ptr<Event>(new CudaEvent(e));
  }

  Stream& compute_stream() override { return *compute_; }

  absl::Status CopyToDeviceAsync(void* dst, const void* src, size_t bytes,
                                 Stream& stream) override {
    cudaStream_t s = static_cast<CudaStream&>(stream).get();
    CopyTiming t{};
    cudaEventCreate(&t.start);
    cudaEventCreate(&t.stop);
    cudaEventRecord(t.start, s);
    absl::Status st =
        CudaError(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "link copy");
    cudaEventRecord(t.stop, s);
    std::lock_guard<std::mutex> l(mu_);
    link_.copies++;
    link_.bytes += bytes;
    copy_timings_.push_back(t);
    CollectTimingsLocked(false);
    return st;
  }

  LinkStats link_stats() const override {
    std::lock_guard<std::mutex> l(mu_);
    const_cast<CudaBackend*>(this)->CollectTimingsLocked(false);
    return link_;
  }

  void MatMul(const WeightView& w, const float* x, int64_t n_tok, float* y) override {
    if (n_tok == 0 || w.n_out == 0) return;
    const bool half = w.type == GgmlType::kF16, bf16 = w.type == GgmlType::kBF16;
    if (w.type == GgmlType::kF32 || ((half || bf16) && n_tok > 1)) {
      // y (n_out x n_tok, column-major) = Wᵀ (W is n_in x n_out column-major) · x.
      const void* b = x;
      cudaDataType bt = CUDA_R_32F, at = CUDA_R_32F;
      if (half || bf16) {
        void* xs = Scratch(static_cast<size_t>(n_tok * w.n_in) * 2);
        NoteError(cuda::LaunchToHalf(x, xs, n_tok * w.n_in, bf16, cs()), "to half", &sticky_);
        b = xs;
        bt = at = half ? CUDA_R_16F : CUDA_R_16BF;
      }
      const float alpha = 1.0f, beta = 0.0f;
      cublasStatus_t st = cublasGemmEx(
          cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.n_out), static_cast<int>(n_tok),
          static_cast<int>(w.n_in), &alpha, w.data, at, static_cast<int>(w.n_in), b, bt,
          static_cast<int>(w.n_in), &beta, y, CUDA_R_32F, static_cast<int>(w.n_out),
          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      if (st != CUBLAS_STATUS_SUCCESS && sticky_.ok()) {
        sticky_ = absl::InternalError(absl::StrCat("cublasGemmEx failed with status ", int(st)));
      }
      return;
    }
    NoteError(cuda::LaunchQuantMatMul(w, x, n_tok, y, cs()), "matmul", &sticky_);
  }

  void MatMulBatch(std::span<const MatMulJob> jobs) override {
    for (const MatMulJob& j : jobs) MatMul(j.w, j.x, j.n_tok, j.y);
  }
  void RmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n,
               float eps) override {
    NoteError(cuda::LaunchRmsNorm(x, w, y, rows, n, eps, cs()), "rmsnorm", &sticky_);
  }
  void Rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, const int32_t* pos,
            const RopeParams& p) override {
    NoteError(cuda::LaunchRope(x, n_tok, n_head, head_dim, pos, p, cs()), "rope", &sticky_);
  }
  void Softmax(float* x, int64_t rows, int64_t n) override {
    NoteError(cuda::LaunchSoftmax(x, rows, n, cs()), "softmax", &sticky_);
  }
  void TopK(const float* x, int64_t n, int k, bool renormalize, int32_t* ids,
            float* values) override {
    NoteError(cuda::LaunchTopK(x, n, k, renormalize, ids, values, cs()), "topk", &sticky_);
  }
  void Sigmoid(float* x, int64_t n) override {
    NoteError(cuda::LaunchSigmoid(x, n, cs()), "sigmoid", &sticky_);
  }
  void SiluMul(const float* gate, const float* up, float* out, int64_t n) override {
    NoteError(cuda::LaunchSiluMul(gate, up, out, n, cs()), "silu_mul", &sticky_);
  }
  void SwigluClamped(const float* gate, const float* up, float* out, int64_t n, float alpha,
                     float limit) override {
    NoteError(cuda::LaunchSwigluClamped(gate, up, out, n, alpha, limit, cs()), "swiglu_clamped",
              &sticky_);
  }
  void AddBias(float* x, const float* bias, int64_t rows, int64_t n) override {
    NoteError(cuda::LaunchAddBias(x, bias, rows, n, cs()), "add_bias", &sticky_);
  }
  void Add(const float* a, const float* b, float* out, int64_t n) override {
    NoteError(cuda::LaunchAdd(a, b, out, n, cs()), "add", &sticky_);
  }
  void Copy2D(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows,
              int64_t cols) override {
    if (rows <= 0 || cols <= 0) return;
    NoteError(cudaMemcpy2DAsync(dst, size_t(dst_stride) * sizeof(float), src,
                                size_t(src_stride) * sizeof(float), size_t(cols) * sizeof(float),
                                size_t(rows), cudaMemcpyDeviceToDevice, cs()),
              "copy2d", &sticky_);
  }
  void Scale(float* x, float s, int64_t n) override {
    NoteError(cuda::LaunchScale(x, s, n, cs()), "scale", &sticky_);
  }
  void AddScaled(float* y, const float* x, float s, int64_t n) override {
    NoteError(cuda::LaunchAddScaled(y, x, s, n, cs()), "add_scaled", &sticky_);
  }
  void GetRows(const WeightView& table, const int32_t* ids, int64_t n, float* out) override {
    NoteError(cuda::LaunchGetRows(table, ids, n, out, cs()), "get_rows", &sticky_);
  }
  void StoreKv(const float* src, void* dst, GgmlType kv_type, int64_t n) override {
    NoteError(cuda::LaunchStoreKv(src, dst, kv_type == GgmlType::kF16, n, cs()), "store_kv",
              &sticky_);
  }
  void Attention(const AttentionArgs& a) override {
    size_t need = static_cast<size_t>(a.n_tok * a.n_head * (a.pos0 + a.n_tok)) * sizeof(float);
    float* scores = static_cast<float*>(Scratch(need));
    NoteError(cuda::LaunchAttention(a, scores, cs()), "attention", &sticky_);
  }

 private:
  struct CopyTiming {
    cudaEvent_t start, stop;
  };

  CudaBackend(const BackendOptions& o, uint64_t budget) : opts_(o), budget_(budget), arena_(budget) {}

  absl::Status Init() {
    if (budget_ > 0) {
      cudaError_t e = cudaMalloc(&base_, budget_);
      if (e != cudaSuccess) {
        return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of the ", budget_,
                                                         "-byte device arena: ", cudaGetErrorString(e)));
      }
    }
    cudaStream_t s;
    absl::Status st = CudaError(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "compute stream");
    if (!st.ok()) return st;
    compute_ = std::make_unique<CudaStream>(s);
    if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) {
      return absl::UnavailableError("cublasCreate failed");
    }
    cublasSetStream(cublas_, s);
    return absl::OkStatus();
  }

  cudaStream_t cs() { return compute_->get(); }

  // Scratch for converted activations and attention scores, outside the
  // arena: it is sized by activations (tokens × width), not by the model, and
  // is reported in the high-water mark's companion log line when it grows.
  void* Scratch(size_t bytes) {
    if (bytes <= scratch_bytes_) return scratch_;
    cudaStreamSynchronize(cs());
    if (scratch_) cudaFree(scratch_);
    scratch_bytes_ = std::max(bytes, scratch_bytes_ * 2);
    if (cudaMalloc(&scratch_, scratch_bytes_) != cudaSuccess) {
      scratch_ = nullptr;
      scratch_bytes_ = 0;
      if (sticky_.ok()) sticky_ = absl::ResourceExhaustedError("cuda scratch allocation failed");
    }
    return scratch_;
  }

  // Folds completed copy timings into link_.busy_ns; `all` waits for them.
  void CollectTimingsLocked(bool all) {
    while (!copy_timings_.empty()) {
      CopyTiming t = copy_timings_.front();
      if (!all && cudaEventQuery(t.stop) != cudaSuccess) break;
      cudaEventSynchronize(t.stop);
      float ms = 0;
      if (cudaEventElapsedTime(&ms, t.start, t.stop) == cudaSuccess) {
        link_.busy_ns += static_cast<uint64_t>(ms * 1e6);
      }
      cudaEventDestroy(t.start);
      cudaEventDestroy(t.stop);
      copy_timings_.pop_front();
    }
  }

  BackendOptions opts_;
  uint64_t budget_;
  mutable std::mutex mu_;
  Arena arena_;
  void* base_ = nullptr;
  uint64_t used_ = 0, high_water_ = 0;
  std::map<void*, size_t> host_sizes_;
  uint64_t host_used_ = 0, host_high_water_ = 0;
  std::unique_ptr<CudaStream> compute_;
  cublasHandle_t cublas_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  LinkStats link_;
  std::deque<CopyTiming> copy_timings_;
  absl::Status sticky_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& o) {
  absl::Status v = o.Validate();
  if (!v.ok()) return v;
  return CudaBackend::Create(o);
}

}  // namespace moestream::kernels
