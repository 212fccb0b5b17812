// The device interface. Everything on the device side goes through a Backend:
// device memory (one arena with a hard byte budget), pinned host memory for
// the host tier, streams and events, the host→device link, and the ops an MoE
// transformer needs. The CPU backend (kernels/cpu/) and the CUDA backend
// (kernels/cuda/) implement it; callers never see which.
//
//   BackendOptions o;  o.kind = "cpu";  o.device_budget_bytes = 8 << 30;
//   MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<Backend> be, CreateBackend(o));
//   MOESTREAM_ASSIGN_OR_RETURN(void* w, be->DeviceAlloc(bytes, "blk.0.attn_q"));
//   MOESTREAM_RETURN_IF_ERROR(be->CopyToDevice(w, host, bytes));
//   be->MatMul({GgmlType::kQ8_0, n_in, n_out, w}, x, n_tok, y);
//
// Stream model. Ops run on the backend's compute stream, in call order. Copies
// issued with CopyToDeviceAsync run on a copy stream (on CPU: a copy-engine
// thread, optionally throttled to a link profile) and overlap compute. A
// consumer orders itself after a copy by making its stream Wait() on an Event
// recorded after the copy; the CPU backend blocks the compute thread inside
// Wait() until the event completes, which is exactly the order a GPU would
// observe. Releasing memory that a stream may still read follows the same
// protocol: record an event on that stream, reuse after it completes.
//
// Pointers handed to ops are device pointers (from DeviceAlloc). On the CPU
// backend device memory is host memory, so the host-compute path of hybrid
// mode runs the same ops on host-tier pointers.
#ifndef MOESTREAM_KERNELS_BACKEND_H_
#define MOESTREAM_KERNELS_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/ggml_type.h"

namespace moestream::kernels {

// A named host→device link: sustained bandwidth and per-copy latency.
struct LinkProfile {
  std::string name;        // "pcie4x16"
  double gbps = 0;         // GB/s (1e9 bytes/s) sustained; 0 = unthrottled
  double latency_us = 0;   // fixed cost per copy, microseconds
};
// Known profiles: "pcie3x4", "pcie3x16", "pcie4x16", "pcie5x16", "none"
// (unthrottled), and "custom:GBPS:LATENCY_US" (e.g. "custom:0.5:20").
absl::StatusOr<LinkProfile> FindLinkProfile(std::string_view name);

struct MemoryStats {
  uint64_t budget_bytes = 0;      // hard limit; allocations past it fail
  uint64_t used_bytes = 0;        // currently allocated
  uint64_t high_water_bytes = 0;  // max of used_bytes ever
};

struct LinkStats {
  uint64_t copies = 0;
  uint64_t bytes = 0;
  uint64_t busy_ns = 0;  // time the link spent copying (incl. modelled latency)
};

// Time the host spent in matrix products (MatMul and MatMulBatch), for the
// share of a decode step outside them. Backends that compute asynchronously
// report zeros.
struct ComputeStats {
  uint64_t matmul_calls = 0;
  uint64_t matmul_ns = 0;
};

// A point in a stream's work: complete once everything issued before it ran.
class Event {
 public:
  virtual ~Event() = default;
  virtual bool Query() = 0;                 // true once complete
  virtual absl::Status Synchronize() = 0;   // host blocks until complete
};

class Stream {
 public:
  virtual ~Stream() = default;
  virtual absl::Status Record(Event& e) = 0;  // e completes after prior work
  virtual absl::Status Wait(Event& e) = 0;    // later work waits for e
  virtual absl::Status Synchronize() = 0;     // host blocks until idle
};

enum class StreamKind { kCompute, kCopy };

// A quantized (or plain) weight matrix in device memory: n_out rows of n_in
// elements each, rows contiguous in ggml's block layout for `type`.
struct WeightView {
  GgmlType type = GgmlType::kF32;
  int64_t n_in = 0;    // ne0: elements per row (the reduction dimension)
  int64_t n_out = 0;   // ne1: rows
  const void* data = nullptr;
};

// One product of a batched expert matmul: y[n_tok, n_out] = x[n_tok, n_in] · Wᵀ.
struct MatMulJob {
  WeightView w;
  const float* x = nullptr;
  int64_t n_tok = 0;
  float* y = nullptr;
};

enum class RopeMode { kNormal, kNeox };  // adjacent pairs vs halves
enum class RopeScaling { kNone, kLinear, kYarn, kLlama3 };

struct RopeParams {
  RopeMode mode = RopeMode::kNormal;
  int64_t n_rot = 0;            // dims rotated per head (<= head_dim)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;      // 1/scaling factor (linear and yarn)
  RopeScaling scaling = RopeScaling::kNone;
  // YaRN (as llama.cpp reads rope.scaling.*): original context and ramps.
  int64_t n_ctx_orig = 0;
  float ext_factor = 0.0f;
  float attn_factor = 1.0f;
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  // Optional per-dimension frequency divisors (rope_freqs.weight), n_rot/2.
  const float* freq_factors = nullptr;
};

// Causal grouped-query attention of n_tok query tokens at positions
// pos0..pos0+n_tok-1 over a KV cache holding positions 0..pos0+n_tok-1.
struct AttentionArgs {
  const float* q = nullptr;       // [n_tok, n_head, head_dim]
  const void* k_cache = nullptr;  // [n_ctx, n_kv_head, head_dim] of kv_type
  const void* v_cache = nullptr;  // [n_ctx, n_kv_head, head_dim_v] of kv_type
  GgmlType kv_type = GgmlType::kF32;  // kF32 or kF16
  int64_t n_tok = 0;
  int64_t n_head = 0;
  int64_t n_kv_head = 0;
  int64_t head_dim = 0;           // of q and k (and of v and out unless head_dim_v says)
  int64_t pos0 = 0;
  float scale = 0.0f;             // usually 1/sqrt(head_dim)
  float* out = nullptr;           // [n_tok, n_head, head_dim_v]
  // Chunked local attention: > 0 hides from the query at position i every
  // key before floor(i / chunk) * chunk. 0 = plain causal attention.
  int64_t chunk = 0;
  // Width of v and out heads when it differs from head_dim (deepseek2's
  // latent values); 0 = head_dim.
  int64_t head_dim_v = 0;
  // Sliding-window attention: > 0 hides from the query at position i every
  // key at or before i - window. 0 = no window.
  int64_t window = 0;
  // Attention sinks: one extra logit per query head (device, n_head floats)
  // joining each softmax's denominator, with no value. Null = none.
  const float* sinks = nullptr;
};

// One weighted row of a ScatterAdd: row `row` of the source, times `weight`.
struct ScatterChoice {
  int32_t row = 0;
  float weight = 0.0f;
};

// Most compute threads a backend accepts (a flag of 99999999 is a typo, not a
// machine).
inline constexpr int kMaxThreads = 1024;

struct BackendOptions {
  // "cpu", "cuda", or "auto" (cuda when a GPU is usable, else cpu).
  std::string kind = "auto";
  // Hard limit on device memory, bytes. 0 = the whole device (cuda) or
  // unlimited (cpu).
  uint64_t device_budget_bytes = 0;
  // Hard limit on pinned host memory, bytes. 0 = unlimited.
  uint64_t host_budget_bytes = 0;
  // Compute threads (cpu). 0 = one per core; at most kMaxThreads.
  int threads = 0;
  // Link profile name for the cpu backend's copy engine ("none" = unthrottled).
  std::string link = "none";
  // Kernel ISA for the cpu backend: "auto" (CPUID), "scalar", "avx2", "avx512",
  // "avx512vnni" (AVX-512 with VNNI integer dot products).
  std::string isa = "auto";
  // mlock the cpu backend's pinned host memory.
  bool mlock = false;
  absl::Status Validate() const;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;      // "cpu" / "cuda"
  virtual std::string Describe() const = 0;       // "cpu (avx2, 2 threads, link pcie4x16)"

  // ---- memory ----
  // Fails with kResourceExhausted naming `what`, the request, usage and budget.
  virtual absl::StatusOr<void*> DeviceAlloc(size_t bytes, std::string_view what) = 0;
  virtual void DeviceFree(void* p) = 0;
  virtual MemoryStats device_memory() const = 0;
  virtual absl::StatusOr<void*> HostPinnedAlloc(size_t bytes, std::string_view what) = 0;
  virtual void HostPinnedFree(void* p) = 0;
  virtual MemoryStats host_pinned_memory() const = 0;

  // ---- synchronous copies (setup, readback) ----
  virtual absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;

  // ---- streams, events, the link ----
  virtual absl::StatusOr<std::unique_ptr<Stream>> CreateStream(StreamKind kind) = 0;
  virtual absl::StatusOr<std::unique_ptr<Event>> CreateEvent() = 0;
  virtual Stream& compute_stream() = 0;
  // Asynchronous host→device copy on `stream` (a kCopy stream). `src` must be
  // pinned host memory and stay valid until an event recorded after it completes.
  virtual absl::Status CopyToDeviceAsync(void* dst, const void* src, size_t bytes,
                                         Stream& stream) = 0;
  virtual LinkStats link_stats() const = 0;
  virtual ComputeStats compute_stats() const { return {}; }

  // True when this backend's kernels compute with weights of type `t`
  // (MatMul, MatMulBatch, GetRows); the loader refuses a model with a tensor
  // of any other type, naming it. Default: the CPU kernels' types
  // (kernels::CanCompute).
  virtual bool CanCompute(GgmlType t) const;

  // Whether the ops need device scratch (cuda: activations rounded to int8);
  // the engine then plans "engine.op_scratch", so the budget counts it, and
  // lends it with AdoptOpScratch: the backend may use [p, p + bytes) until
  // ReleaseOpScratch(p). Default: no scratch, and both calls are ignored.
  virtual bool WantsOpScratch() const { return false; }
  virtual void AdoptOpScratch(void* p, size_t bytes) {
    (void)p;
    (void)bytes;
  }
  virtual void ReleaseOpScratch(void* p) { (void)p; }

  // ---- ops (compute stream, device pointers, row-major F32 activations) ----
  // y[n_tok, n_out] = x[n_tok, n_in] · Wᵀ
  virtual void MatMul(const WeightView& w, const float* x, int64_t n_tok, float* y) = 0;
  // Several independent products (e.g. one per expert), scheduled together.
  virtual void MatMulBatch(std::span<const MatMulJob> jobs) = 0;
  // y = x / rms(x) * w per row of n; w may be null (no scale).
  virtual void RmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n,
                       float eps) = 0;
  // In place on x[n_tok, n_head, head_dim]; pos[n_tok].
  virtual void Rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim,
                    const int32_t* pos, const RopeParams& p) = 0;
  virtual void Softmax(float* x, int64_t rows, int64_t n) = 0;
  // Top k of x[n] by value (ties to the lower index), descending; optional
  // renormalisation of the k values to sum 1.
  virtual void TopK(const float* x, int64_t n, int k, bool renormalize, int32_t* ids,
                    float* values) = 0;
  // TopK of each of `rows` rows of x[rows, n]: ids[rows, k], values[rows, k].
  // Default: TopK per row; the CUDA backend runs all rows in one launch.
  virtual void TopKRows(const float* x, int64_t rows, int64_t n, int k, bool renormalize,
                        int32_t* ids, float* values);
  virtual void Sigmoid(float* x, int64_t n) = 0;
  // out = silu(gate) * up
  virtual void SiluMul(const float* gate, const float* up, float* out, int64_t n) = 0;
  // gpt-oss's clamped SwiGLU: with g = min(gate, limit) and u = clamp(up,
  // -limit, limit), out = g * sigmoid(alpha * g) * (u + 1).
  virtual void SwigluClamped(const float* gate, const float* up, float* out, int64_t n,
                             float alpha, float limit) = 0;
  // x[r, :] += bias for each of `rows` rows of n floats.
  virtual void AddBias(float* x, const float* bias, int64_t rows, int64_t n) = 0;
  virtual void Add(const float* a, const float* b, float* out, int64_t n) = 0;
  virtual void Scale(float* x, float s, int64_t n) = 0;
  // Strided copy of `rows` rows of `cols` floats in device memory:
  // dst[r * dst_stride + c] = src[r * src_stride + c] (the regions must not
  // overlap). Splits and joins per-head parts of activations.
  virtual void Copy2D(float* dst, int64_t dst_stride, const float* src, int64_t src_stride,
                      int64_t rows, int64_t cols) = 0;
  // y += s * x, rounded after the product and after the sum (no fused
  // multiply-add), so every backend gives the same bits.
  virtual void AddScaled(float* y, const float* x, float s, int64_t n) = 0;
  // The weighted sum of a layer's expert outputs: for each token t <
  // choices.size() / k, out[t, :] += c.weight * src[c.row, :] for its k choices
  // c = choices[t*k + j] in order j = 0, 1, ..., k-1, each added as AddScaled
  // adds: the same bits as those AddScaled calls in that order. out
  // [n_tok, n] and src [rows, n] are device memory; `choices` is host memory,
  // read before the call returns. Default: the AddScaled calls; the CPU
  // backend makes one pass over the elements, the CUDA backend one launch.
  virtual void ScatterAdd(float* out, const float* src, int64_t n,
                          std::span<const ScatterChoice> choices, int k);
  // out[i, :] = dequant(table row ids[i]), table of n_out rows × n_in.
  virtual void GetRows(const WeightView& table, const int32_t* ids, int64_t n,
                       float* out) = 0;
  // dst (kv_type) = src (F32), n elements: writes new K/V into the cache.
  virtual void StoreKv(const float* src, void* dst, GgmlType kv_type, int64_t n) = 0;
  virtual void Attention(const AttentionArgs& a) = 0;
};

// Creates the backend `o.kind` names. "cuda" without a usable GPU fails with
// kUnavailable carrying the CUDA error text; "auto" then falls back to cpu.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& o);

}  // namespace moestream::kernels

#endif  // MOESTREAM_KERNELS_BACKEND_H_
