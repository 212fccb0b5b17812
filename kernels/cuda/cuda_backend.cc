// CudaBackend: kernels/backend.h on a CUDA GPU. See cuda_backend.h.
//
// Memory: one cudaMalloc arena of the whole budget, carved by a first-fit
// allocator with 256-byte alignment (so the budget is a hard limit and the
// high-water mark is exact); pinned host memory with cudaHostAlloc, counted
// against the host budget. The ops' scratch (activations rounded to int8 or
// F16, weight slabs for prefill GEMMs) is the engine's planned
// "engine.op_scratch" (AdoptOpScratch), or else carved from the same arena as
// "cuda.scratch" and grown on demand: either way inside the budget. Past the
// budget an op fails loudly (kResourceExhausted at the next Status).
//
// Products: F32 weights and F16/BF16 batches through cuBLAS; F16/BF16 single
// tokens through the float matrix-vector kernel; quantized weights through the
// int8 (dp4a) kernels, one fused launch per weight type for MatMulBatch (a
// layer's selected experts), or for prompts of kGemmMinTokens or more tokens
// weight slabs dequantized to F16 and cuBLAS when the scratch fits the budget.
// A weight type without a kernel is refused by CanCompute (so the loader
// refuses the model) and, should one reach an op anyway, fails the op loudly.
// Attention splits a long context's KV range across blocks when its
// (token, head) blocks alone would leave SMs idle (the SM count is read at
// Init), its partial results in the op scratch. ScatterAdd is one launch.
// Streams and events wrap cudaStream_t/cudaEvent_t;
// the link is cudaMemcpyAsync on caller-created copy streams, and its busy
// time is measured with timing events around each copy, collected lazily.
#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <vector>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "kernels/cuda/cuda_attention_split.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_quant.h"

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

// Prompts at least this long take the dequantize-to-F16 + cuBLAS path.
constexpr int64_t kGemmMinTokens = 64;
// Largest F16 weight slab of that path.
constexpr size_t kSlabBytes = 16u << 20;
// Widest value head of the flash attention kernel (wider: reference kernel).
constexpr int64_t kFlashMaxHeadDimV = 1024;

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
    if (base_) cudaFree(base_);  // the scratch lives inside it
    for (const std::deque<CopyTiming>* q : {&copy_timings_, &free_timings_}) {
      for (const CopyTiming& t : *q) {
        cudaEventDestroy(t.start);
        cudaEventDestroy(t.stop);
      }
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
    {
      // Timing events are reused once their copy was counted (no event
      // creation per copy on the loader's path after the first few).
      std::lock_guard<std::mutex> l(mu_);
      if (!free_timings_.empty()) {
        t = free_timings_.back();
        free_timings_.pop_back();
      }
    }
    if (t.start == nullptr) {
      MOESTREAM_RETURN_IF_ERROR(CudaError(cudaEventCreate(&t.start), "timing event"));
      absl::Status e = CudaError(cudaEventCreate(&t.stop), "timing event");
      if (!e.ok()) {
        cudaEventDestroy(t.start);
        return e;
      }
    }
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

  bool CanCompute(GgmlType t) const override { return cuda::CudaCanCompute(t); }

  // The engine's planned scratch: used before growing our own from the arena.
  bool WantsOpScratch() const override { return true; }
  void AdoptOpScratch(void* p, size_t bytes) override {
    if (p == nullptr || bytes <= adopted_bytes_) return;
    cudaStreamSynchronize(cs());
    adopted_ = p;
    adopted_bytes_ = bytes;
  }
  void ReleaseOpScratch(void* p) override {
    if (p == nullptr || p != adopted_) return;
    cudaStreamSynchronize(cs());  // queued kernels may still read it
    adopted_ = nullptr;
    adopted_bytes_ = 0;
  }

  void MatMul(const WeightView& w, const float* x, int64_t n_tok, float* y) override {
    if (n_tok == 0 || w.n_out == 0) return;
    if (!RequireKernel(w.type, "matmul")) return;
    if (cuda::CudaIsFloatType(w.type)) {
      FloatMatMul(w, x, n_tok, y);
      return;
    }
    if (n_tok >= kGemmMinTokens && GemmQuant(w, x, n_tok, y)) return;
    cuda::QuantJob job{w, nullptr, x, n_tok, y};
    if (cuda::ActIsInt8(w.type)) {
      void* act = Scratch(cuda::ActQ8Bytes(n_tok, w.n_in));
      if (act == nullptr) return;
      NoteError(cuda::LaunchQuantizeAct(w.type, x, n_tok, w.n_in, act, cs()),
                "quantize activations", &sticky_);
      job.act_q8 = act;
    }
    NoteError(cuda::LaunchQuantMatMulFused(w.type, &job, 1, cs()), "matmul", &sticky_);
  }

  // Float-typed and long-prompt products one by one; the rest quantize each
  // distinct input once and run as one launch per weight type.
  void MatMulBatch(std::span<const MatMulJob> jobs) override {
    batch_inputs_.clear();
    batch_jobs_.clear();
    size_t total = 0;
    for (const MatMulJob& j : jobs) {
      if (j.n_tok == 0 || j.w.n_out == 0) continue;
      if (!RequireKernel(j.w.type, "matmul")) return;
      if (cuda::CudaIsFloatType(j.w.type) || j.n_tok >= kGemmMinTokens) {
        MatMul(j.w, j.x, j.n_tok, j.y);
        continue;
      }
      // Each distinct (input, rounding) is rounded once.
      const cuda::ActMode mode = cuda::ActModeOf(j.w.type);
      size_t input = batch_inputs_.size();
      if (mode != cuda::ActMode::kF32) {
        for (size_t i = 0; i < batch_inputs_.size(); ++i) {
          const BatchInput& b = batch_inputs_[i];
          if (b.x == j.x && b.n_tok == j.n_tok && b.n_in == j.w.n_in && b.type_mode == mode) {
            input = i;
          }
        }
        if (input == batch_inputs_.size()) {
          batch_inputs_.push_back({j.x, j.n_tok, j.w.n_in, j.w.type, mode, total});
          total += cuda::ActQ8Bytes(j.n_tok, j.w.n_in);
        }
      }
      batch_jobs_.push_back({j, input});
    }
    if (batch_jobs_.empty()) return;
    uint8_t* act = nullptr;
    if (total > 0) {
      act = static_cast<uint8_t*>(Scratch(total));
      if (act == nullptr) return;
    }
    for (const BatchInput& b : batch_inputs_) {
      NoteError(cuda::LaunchQuantizeAct(b.type, b.x, b.n_tok, b.n_in, act + b.offset, cs()),
                "quantize activations", &sticky_);
    }
    // One launch per weight type (Q4_K_M files mix Q4_K and Q6_K experts).
    for (size_t first = 0; first < batch_jobs_.size(); ++first) {
      const GgmlType type = batch_jobs_[first].job.w.type;
      bool seen = false;
      for (size_t i = 0; i < first; ++i) seen |= batch_jobs_[i].job.w.type == type;
      if (seen) continue;
      fused_.clear();
      for (size_t i = first; i < batch_jobs_.size(); ++i) {
        const MatMulJob& j = batch_jobs_[i].job;
        if (j.w.type != type) continue;
        const size_t in = batch_jobs_[i].input;
        const void* q8 = in < batch_inputs_.size() ? act + batch_inputs_[in].offset : nullptr;
        fused_.push_back({j.w, q8, j.x, j.n_tok, j.y});
        if (fused_.size() == cuda::kMaxFusedJobs) {
          NoteError(cuda::LaunchQuantMatMulFused(type, fused_.data(), int(fused_.size()), cs()),
                    "fused matmul", &sticky_);
          fused_.clear();
        }
      }
      NoteError(cuda::LaunchQuantMatMulFused(type, fused_.data(), int(fused_.size()), cs()),
                "fused matmul", &sticky_);
    }
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
    NoteError(cuda::LaunchTopKRows(x, 1, n, k, renormalize, ids, values, cs()), "topk", &sticky_);
  }
  void TopKRows(const float* x, int64_t rows, int64_t n, int k, bool renormalize, int32_t* ids,
                float* values) override {
    NoteError(cuda::LaunchTopKRows(x, rows, n, k, renormalize, ids, values, cs()), "topk",
              &sticky_);
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
    if (!RequireKernel(table.type, "get_rows")) return;
    NoteError(cuda::LaunchGetRows(table, ids, n, out, cs()), "get_rows", &sticky_);
  }
  void StoreKv(const float* src, void* dst, GgmlType kv_type, int64_t n) override {
    NoteError(cuda::LaunchStoreKv(src, dst, kv_type == GgmlType::kF16, n, cs()), "store_kv",
              &sticky_);
  }
  // One weighted sum of a layer's expert outputs, one launch: the choices in
  // the kernel's parameters, or (prefill) copied once into the op scratch.
  void ScatterAdd(float* out, const float* src, int64_t n, std::span<const ScatterChoice> choices,
                  int k) override {
    const ScatterChoice* table = nullptr;
    if (choices.size() > size_t(cuda::kScatterInlineChoices)) {
      const size_t bytes = choices.size_bytes();
      void* t = Scratch(bytes);
      if (t == nullptr) return;
      // Pageable source: copied out before the call returns; stream-ordered
      // before the kernel, and after any earlier op that used the scratch.
      NoteError(cudaMemcpyAsync(t, choices.data(), bytes, cudaMemcpyHostToDevice, cs()),
                "scatter choices", &sticky_);
      table = static_cast<const ScatterChoice*>(t);
    }
    NoteError(cuda::LaunchScatterAdd(out, src, n, choices.data(), int64_t(choices.size()), k,
                                     table, cs()),
              "scatter_add", &sticky_);
  }
  void Attention(const AttentionArgs& a) override {
    const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
    if (dv <= kFlashMaxHeadDimV) {
      // A long context with few (token, head) blocks: the KV range split
      // across blocks (flash-decoding); else one pass.
      int splits = cuda::AttentionSplits(
          a.n_tok, a.n_head, cuda::AttentionKvSpan(a.pos0, a.n_tok, a.window, a.chunk), sm_count_);
      if (splits > 1 && adopted_ != nullptr) {
        // Within the engine's planned scratch: fewer splits rather than more memory.
        splits = int(std::min<size_t>(size_t(splits),
                                      adopted_bytes_ / cuda::AttentionSplitBytes(a, 1)));
      }
      if (splits > 1) {
        auto* partials = static_cast<float*>(TryScratch(cuda::AttentionSplitBytes(a, splits)));
        if (partials != nullptr) {
          NoteError(cuda::LaunchAttentionSplit(a, splits, partials, cs()), "attention", &sticky_);
          return;
        }
      }
      NoteError(cuda::LaunchAttention(a, cs()), "attention", &sticky_);
      return;
    }
    // Value heads wider than the flash kernel keeps in registers.
    size_t need = static_cast<size_t>(a.n_tok * a.n_head * (a.pos0 + a.n_tok)) * sizeof(float);
    auto* scores = static_cast<float*>(Scratch(need));
    if (scores == nullptr) return;
    NoteError(cuda::LaunchAttentionReference(a, scores, cs()), "attention", &sticky_);
  }

 private:
  struct CopyTiming {
    cudaEvent_t start = nullptr, stop = nullptr;
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
    if (cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) {
      sm_count_ = 0;  // unknown: attention stays one pass
    }
    return absl::OkStatus();
  }

  cudaStream_t cs() { return compute_->get(); }

  // A type without a kernel reaching an op is a loader bug (the loader asks
  // CanCompute first): fail loudly instead of computing garbage.
  bool RequireKernel(GgmlType t, const char* op) {
    if (cuda::CudaCanCompute(t)) return true;
    if (sticky_.ok()) {
      sticky_ = absl::InvalidArgumentError(
          absl::StrCat("cuda: ", op, ": no kernel for weight type ", Av(GgmlTypeName(t))));
      std::fprintf(stderr, "moestream: %s\n", std::string(sticky_.message()).c_str());
    }
    return false;
  }

  void FloatMatMul(const WeightView& w, const float* x, int64_t n_tok, float* y) {
    const bool half = w.type == GgmlType::kF16, bf16 = w.type == GgmlType::kBF16;
    if ((half || bf16) && n_tok == 1 && w.n_in % 32 == 0) {
      NoteError(cuda::LaunchFloatMatVec(w, x, n_tok, y, cs()), "matvec", &sticky_);
      return;
    }
    // y (n_out x n_tok, column-major) = Wᵀ (W is n_in x n_out column-major) · x.
    const void* b = x;
    cudaDataType bt = CUDA_R_32F, at = CUDA_R_32F;
    if (half || bf16) {
      void* xs = Scratch(static_cast<size_t>(n_tok * w.n_in) * 2);
      if (xs == nullptr) return;
      NoteError(cuda::LaunchToHalf(x, xs, n_tok * w.n_in, bf16, cs()), "to half", &sticky_);
      b = xs;
      bt = at = half ? CUDA_R_16F : CUDA_R_16BF;
    }
    Gemm(w.data, at, b, bt, w.n_in, w.n_out, n_tok, y, w.n_out);
  }

  // y[:, rows] (column-major, leading dimension ldc) = A(rows x n_in)ᵀ-stored · B.
  void Gemm(const void* a, cudaDataType at, const void* b, cudaDataType bt, int64_t n_in,
            int64_t rows, int64_t n_tok, float* y, int64_t ldc) {
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st = cublasGemmEx(
        cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(n_tok),
        static_cast<int>(n_in), &alpha, a, at, static_cast<int>(n_in), b, bt,
        static_cast<int>(n_in), &beta, y, CUDA_R_32F, static_cast<int>(ldc), CUBLAS_COMPUTE_32F,
        CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS && sticky_.ok()) {
      sticky_ = absl::InternalError(absl::StrCat("cublasGemmEx failed with status ", int(st)));
    }
  }

  // Long prompts: slabs of weight rows dequantized to F16, activations
  // converted once, cuBLAS per slab. False (nothing issued) when the scratch
  // does not fit the budget; the caller then uses the int8 kernel.
  bool GemmQuant(const WeightView& w, const float* x, int64_t n_tok, float* y) {
    const size_t x16 = (static_cast<size_t>(n_tok * w.n_in) * 2 + 255) / 256 * 256;
    const int64_t slab_rows = std::clamp<int64_t>(
        static_cast<int64_t>(kSlabBytes / (static_cast<size_t>(w.n_in) * 2)), 1, w.n_out);
    const size_t slab = static_cast<size_t>(slab_rows * w.n_in) * 2;
    auto* buf = static_cast<uint8_t*>(TryScratch(x16 + slab));
    if (buf == nullptr) return false;
    NoteError(cuda::LaunchToHalf(x, buf, n_tok * w.n_in, false, cs()), "to half", &sticky_);
    for (int64_t r0 = 0; r0 < w.n_out; r0 += slab_rows) {
      const int64_t rows = std::min(slab_rows, w.n_out - r0);
      NoteError(cuda::LaunchDequantToHalf(w, r0, rows, buf + x16, cs()), "dequantize", &sticky_);
      Gemm(buf + x16, CUDA_R_16F, buf, CUDA_R_16F, w.n_in, rows, n_tok, y + r0, w.n_out);
    }
    return true;
  }

  // The ops' scratch, carved from the budgeted arena and grown on demand
  // (growth waits for the compute stream, whose queued kernels may still read
  // the old block). TryScratch returns nullptr past the budget; Scratch also
  // records the error for the next Status-returning call.
  void* TryScratch(size_t bytes) {
    if (bytes <= adopted_bytes_) return adopted_;
    if (bytes <= scratch_bytes_) return scratch_;
    if (device_memory().used_bytes - scratch_bytes_ + bytes > budget_) return nullptr;
    cudaStreamSynchronize(cs());
    if (scratch_ != nullptr) DeviceFree(scratch_);
    scratch_ = nullptr;
    const size_t grown = std::max(bytes, scratch_bytes_ + scratch_bytes_ / 2);
    scratch_bytes_ = 0;
    for (size_t want : {grown, bytes}) {
      auto p = DeviceAlloc(want, "cuda.scratch");
      if (p.ok()) {
        scratch_ = *p;
        scratch_bytes_ = want;
        return scratch_;
      }
    }
    return nullptr;
  }
  void* Scratch(size_t bytes) {
    void* p = TryScratch(bytes);
    if (p == nullptr && sticky_.ok()) {
      sticky_ = absl::ResourceExhaustedError(absl::StrFormat(
          "cuda: device budget exceeded allocating %d bytes of op scratch (cuda.scratch): %d of "
          "%d bytes in use",
          bytes, device_memory().used_bytes, budget_));
      std::fprintf(stderr, "moestream: %s\n", std::string(sticky_.message()).c_str());
    }
    return p;
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
      free_timings_.push_back(t);
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
  int sm_count_ = 0;  // streaming multiprocessors (attention's split choice)
  void* scratch_ = nullptr;  // ours, from the arena
  size_t scratch_bytes_ = 0;
  void* adopted_ = nullptr;  // the engine's (AdoptOpScratch)
  size_t adopted_bytes_ = 0;
  // MatMulBatch's working lists (kept to avoid allocating per call).
  struct BatchInput {
    const float* x;
    int64_t n_tok, n_in;
    GgmlType type;           // a weight type that rounds it this way
    cuda::ActMode type_mode;
    size_t offset;  // of its int8 form in the scratch
  };
  struct BatchJob {
    MatMulJob job;
    size_t input;  // index into batch_inputs_, or past its end for float activations
  };
  std::vector<BatchInput> batch_inputs_;
  std::vector<BatchJob> batch_jobs_;
  std::vector<cuda::QuantJob> fused_;
  LinkStats link_;
  std::deque<CopyTiming> copy_timings_;  // recorded, not yet counted
  std::deque<CopyTiming> free_timings_;  // counted, ready for reuse
  absl::Status sticky_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& o) {
  absl::Status v = o.Validate();
  if (!v.ok()) return v;
  return CudaBackend::Create(o);
}

}  // namespace moestream::kernels
