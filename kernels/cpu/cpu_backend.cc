#include "kernels/cpu/cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/mutex.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/cpu_streams.h"
#include "kernels/cpu/huge_pages.h"
#include "kernels/cpu/matmul_driver.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/ops_scalar.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/quant.h"

namespace moestream::kernels {
namespace {

using cpu::ThreadPool;

// Counted allocations under a hard budget. Usage counts requested bytes (what
// callers plan with); the allocation itself is rounded up to the alignment.
// Thread-safe (the loader allocates while the engine computes): `mu_` guards
// the live-allocation map and the statistics.
class Arena {
 public:
  Arena(std::string_view kind, uint64_t budget, size_t alignment, bool lock)
      : kind_(kind), alignment_(alignment), lock_(lock) {
    stats_.budget_bytes = budget;
  }
  ~Arena() {
    for (auto& [p, size] : live_) Release(reinterpret_cast<void*>(p), size);
  }

  absl::StatusOr<void*> Alloc(size_t bytes, std::string_view what) {
    MutexLock lock(&mu_);
    if (stats_.budget_bytes != 0 && stats_.used_bytes + bytes > stats_.budget_bytes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s budget exceeded allocating '%s': requested %d bytes, %d of %d bytes in use",
          kind_, Av(what), bytes, stats_.used_bytes, stats_.budget_bytes));
    }
    const size_t rounded = (std::max<size_t>(bytes, 1) + alignment_ - 1) / alignment_ * alignment_;
    void* p = OnHugePages(bytes) ? cpu::HugePageAlloc(bytes) : std::aligned_alloc(alignment_, rounded);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s allocation of %d bytes for '%s' failed: out of host memory", kind_, bytes, Av(what)));
    }
    if (lock_ && mlock(p, rounded) != 0) {
      const int err = errno;
      Release(p, bytes);
      return absl::ResourceExhaustedError(absl::StrFormat(
          "mlock of %d bytes for '%s' failed: %s (raise RLIMIT_MEMLOCK or drop --mlock)", rounded,
          Av(what), std::strerror(err)));
    }
    live_[reinterpret_cast<uintptr_t>(p)] = bytes;
    stats_.used_bytes += bytes;
    stats_.high_water_bytes = std::max(stats_.high_water_bytes, stats_.used_bytes);
    return p;
  }

  void Free(void* p) {
    if (p == nullptr) return;
    MutexLock lock(&mu_);
    auto it = live_.find(reinterpret_cast<uintptr_t>(p));
    MOESTREAM_CHECK(it != live_.end()) << kind_ << ": freeing a pointer it did not allocate";
    stats_.used_bytes -= it->second;
    Release(p, it->second);
    live_.erase(it);
  }

  // True when [p, p+bytes) lies inside one live allocation.
  bool Contains(const void* p, size_t bytes) const {
    MutexLock lock(&mu_);
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = live_.upper_bound(a);
    if (it == live_.begin()) return false;
    --it;
    return a + bytes <= it->first + std::max<size_t>(it->second, 1);
  }

  MemoryStats stats() const {
    MutexLock lock(&mu_);
    return stats_;
  }

 private:
  // Weight tensors, expert slots, the host tier and the KV cache are
  // streamed by the kernels: blocks that size go on 2 MiB pages.
  static bool OnHugePages(size_t bytes) { return bytes >= cpu::kHugePageBytes; }

  void Release(void* p, size_t bytes) {
    if (lock_) munlock(p, (std::max<size_t>(bytes, 1) + alignment_ - 1) / alignment_ * alignment_);
    if (OnHugePages(bytes)) {
      cpu::HugePageFree(p, bytes);
    } else {
      std::free(p);
    }
  }

  const std::string kind_;
  const size_t alignment_;
  const bool lock_;
  mutable Mutex mu_;
  std::map<uintptr_t, size_t> live_ ABSL_GUARDED_BY(mu_);  // address -> requested bytes
  MemoryStats stats_ ABSL_GUARDED_BY(mu_);
};

// Splits [0, n) across the pool when it is large enough to pay for it.
void ParallelRange(ThreadPool& pool, int64_t n, int64_t min_grain,
                   const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t parts = std::min<int64_t>(pool.size(), std::max<int64_t>(1, n / min_grain));
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  const int64_t step = (n + parts - 1) / parts;
  pool.ParallelFor(parts, [&](int64_t i) { fn(i * step, std::min(n, (i + 1) * step)); });
}

constexpr int64_t kElementwiseGrain = 1 << 15;

class CpuBackend : public Backend {
 public:
  CpuBackend(const BackendOptions& o, cpu::Isa isa, LinkProfile link, int threads)
      : isa_(isa),
        kernels_(cpu::KernelsFor(isa)),
        pool_(threads),
        link_(std::move(link)),
        device_("device memory", o.device_budget_bytes, 64, false),
        pinned_("pinned host memory", o.host_budget_bytes,
                static_cast<size_t>(sysconf(_SC_PAGESIZE)), o.mlock) {}

  std::string_view name() const override { return "cpu"; }
  std::string Describe() const override {
    return absl::StrCat("cpu (", Av(cpu::IsaName(isa_)), ", ", pool_.size(), " threads, link ",
                        link_.profile().name, ")");
  }

  absl::StatusOr<void*> DeviceAlloc(size_t bytes, std::string_view what) override {
    return device_.Alloc(bytes, what);
  }
  void DeviceFree(void* p) override { device_.Free(p); }
  MemoryStats device_memory() const override { return device_.stats(); }
  absl::StatusOr<void*> HostPinnedAlloc(size_t bytes, std::string_view what) override {
    return pinned_.Alloc(bytes, what);
  }
  void HostPinnedFree(void* p) override { pinned_.Free(p); }
  MemoryStats host_pinned_memory() const override { return pinned_.stats(); }

  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Stream>> CreateStream(StreamKind kind) override {
    if (kind == StreamKind::kCompute) return std::make_unique<cpu::ComputeStream>();
    return std::make_unique<cpu::CopyStream>(&link_);
  }
  absl::StatusOr<std::unique_ptr<Event>> CreateEvent() override {
    return std::make_unique<cpu::CpuEvent>();
  }
  Stream& compute_stream() override { return compute_; }

  absl::Status CopyToDeviceAsync(void* dst, const void* src, size_t bytes,
                                 Stream& stream) override {
    if (!pinned_.Contains(src, bytes)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "async copy of %d bytes: source is not inside one pinned host allocation", bytes));
    }
    if (!device_.Contains(dst, bytes)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "async copy of %d bytes: destination is not inside one device allocation", bytes));
    }
    if (auto* cs = dynamic_cast<cpu::CopyStream*>(&stream)) {
      cs->EnqueueCopy(dst, src, bytes);
      return absl::OkStatus();
    }
    if (dynamic_cast<cpu::ComputeStream*>(&stream) == nullptr) {
      return absl::InvalidArgumentError("stream was not created by the cpu backend");
    }
    link_.Copy(dst, src, bytes);  // compute stream: in order, i.e. now
    return absl::OkStatus();
  }
  LinkStats link_stats() const override { return link_.stats(); }

  void MatMul(const WeightView& w, const float* x, int64_t n_tok, float* y) override {
    MatMulJob job{w, x, n_tok, y};
    MatMulBatch(std::span<const MatMulJob>(&job, 1));
  }
  void MatMulBatch(std::span<const MatMulJob> jobs) override {
    const auto t0 = std::chrono::steady_clock::now();
    driver_.Run(jobs, kernels_, pool_);
    compute_stats_.matmul_ns += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    ++compute_stats_.matmul_calls;
  }
  // Ops run on the calling thread (the compute stream's), so no lock.
  ComputeStats compute_stats() const override { return compute_stats_; }

  void RmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n,
               float eps) override {
    ParallelRange(pool_, rows, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(n, 1)),
                  [&](int64_t b, int64_t e) { cpu::RmsNormRows(x, w, y, b, e, n, eps); });
  }
  void Rope(float* x, int64_t n_tok, int64_t n_head, int64_t head_dim, const int32_t* pos,
            const RopeParams& p) override {
    ParallelRange(pool_, n_tok, 4, [&](int64_t b, int64_t e) {
      cpu::RopeTokens(x, b, e, n_head, head_dim, pos, p);
    });
  }
  void Softmax(float* x, int64_t rows, int64_t n) override {
    ParallelRange(pool_, rows, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(n, 1)),
                  [&](int64_t b, int64_t e) { cpu::SoftmaxRows(x, b, e, n); });
  }
  void TopK(const float* x, int64_t n, int k, bool renormalize, int32_t* ids,
            float* values) override {
    cpu::TopK(x, n, k, renormalize, ids, values);
  }
  void Sigmoid(float* x, int64_t n) override {
    ParallelRange(pool_, n, kElementwiseGrain,
                  [&](int64_t b, int64_t e) { cpu::SigmoidRange(x, b, e); });
  }
  void SiluMul(const float* gate, const float* up, float* out, int64_t n) override {
    ParallelRange(pool_, n, kElementwiseGrain,
                  [&](int64_t b, int64_t e) { cpu::SiluMulRange(gate, up, out, b, e); });
  }
  void SwigluClamped(const float* gate, const float* up, float* out, int64_t n, float alpha,
                     float limit) override {
    ParallelRange(pool_, n, kElementwiseGrain, [&](int64_t b, int64_t e) {
      cpu::SwigluClampedRange(gate, up, out, alpha, limit, b, e);
    });
  }
  void AddBias(float* x, const float* bias, int64_t rows, int64_t n) override {
    ParallelRange(pool_, rows, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(n, 1)),
                  [&](int64_t b, int64_t e) { cpu::AddBiasRows(x, bias, n, b, e); });
  }
  void Add(const float* a, const float* b, float* out, int64_t n) override {
    ParallelRange(pool_, n, kElementwiseGrain,
                  [&](int64_t s, int64_t e) { cpu::AddRange(a, b, out, s, e); });
  }
  void Copy2D(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t rows,
              int64_t cols) override {
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(dst + r * dst_stride, src + r * src_stride, size_t(cols) * sizeof(float));
    }
  }
  void Scale(float* x, float s, int64_t n) override {
    ParallelRange(pool_, n, kElementwiseGrain,
                  [&](int64_t b, int64_t e) { cpu::ScaleRange(x, s, b, e); });
  }
  void AddScaled(float* y, const float* x, float s, int64_t n) override {
    ParallelRange(pool_, n, kElementwiseGrain,
                  [&](int64_t b, int64_t e) { cpu::AddScaledRange(y, x, s, b, e); });
  }
  // One pass (one pool hand-off) over every token's elements instead of
  // n_tok * k AddScaled calls; each element's choices in order j: same bits.
  void ScatterAdd(float* out, const float* src, int64_t n, std::span<const ScatterChoice> choices,
                  int k) override {
    if (k <= 0 || n <= 0) return;
    const int64_t n_tok = int64_t(choices.size()) / k;
    ParallelRange(pool_, n_tok * n, kElementwiseGrain, [&](int64_t b, int64_t e) {
      cpu::ScatterAddRange(out, src, n, choices.data(), k, b, e);
    });
  }
  void GetRows(const WeightView& table, const int32_t* ids, int64_t n, float* out) override {
    const size_t rb = RowBytes(table.type, table.n_in);
    ParallelRange(pool_, n, 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        MOESTREAM_CHECK(ids[i] >= 0 && ids[i] < table.n_out)
            << "GetRows: id " << ids[i] << " outside table of " << table.n_out << " rows";
        const auto* row = static_cast<const uint8_t*>(table.data) + ids[i] * rb;
        MOESTREAM_CHECK(DequantizeRow(table.type, row, table.n_in, out + i * table.n_in).ok());
      }
    });
  }
  void StoreKv(const float* src, void* dst, GgmlType kv_type, int64_t n) override {
    MOESTREAM_CHECK(kv_type == GgmlType::kF32 || kv_type == GgmlType::kF16);
    ParallelRange(pool_, n, kElementwiseGrain,
                  [&](int64_t b, int64_t e) { cpu::StoreKvRange(src, dst, kv_type, b, e); });
  }
  // Attention over this many query tokens or more runs in tiles with a
  // running softmax (prefill); fewer, one pass per query (decode).
  static constexpr int64_t kTiledAttentionMinTokens = 4;
  void Attention(const AttentionArgs& a) override {
    MOESTREAM_CHECK(a.n_kv_head > 0 && a.n_head % a.n_kv_head == 0);
    MOESTREAM_CHECK(a.kv_type == GgmlType::kF32 || a.kv_type == GgmlType::kF16);
    const int64_t n_ctx = a.pos0 + a.n_tok;
    const cpu::KvRowKernels kv =
        isa_ == cpu::Isa::kScalar ? cpu::ScalarKvKernels(a.kv_type) : cpu::Avx2KvKernels(a.kv_type);
    const int64_t group = a.n_head / a.n_kv_head;
    if (a.n_tok >= kTiledAttentionMinTokens) {
      // Prefill: tiles of queries × a KV head's query heads, about
      // kAttentionTileRows rows each, so each key and value row is read once per
      // tile; with at least two tiles per thread while the queries allow.
      int64_t heads = group;
      while (heads > cpu::kMaxAttentionHeads || group % heads != 0) --heads;
      const int64_t sets = a.n_kv_head * (group / heads);
      int64_t n_q = std::max<int64_t>(1, cpu::kAttentionTileRows / heads);
      while (n_q > 1 && sets * ((a.n_tok + n_q - 1) / n_q) < 2 * int64_t(pool_.size())) n_q /= 2;
      const int64_t tiles = (a.n_tok + n_q - 1) / n_q;
      const int64_t dv = a.head_dim_v > 0 ? a.head_dim_v : a.head_dim;
      // The last queries see the most keys: hand those out first.
      pool_.ParallelFor(tiles * sets, [&](int64_t i) {
        thread_local std::vector<float> scratch;
        const int64_t need = cpu::AttentionTileScratch(n_q * heads, a.head_dim, dv);
        if (static_cast<int64_t>(scratch.size()) < need) scratch.resize(need);
        const int64_t t0 = (tiles - 1 - i / sets) * n_q;
        cpu::AttentionTile(a, t0, std::min(n_q, a.n_tok - t0), (i % sets) * heads, heads,
                           scratch.data(), kv);
      });
      return;
    }
    // Decode: query heads sharing a KV head go together, so each key and
    // value row is read once for all of them: as many as leave two tasks
    // per thread.
    int64_t per_task = 1;
    for (int64_t c = std::min(group, cpu::kMaxAttentionHeads); c > 1; --c) {
      if (group % c == 0 && a.n_tok * (a.n_head / c) >= 2 * int64_t(pool_.size())) {
        per_task = c;
        break;
      }
    }
    const int64_t tasks_per_tok = a.n_head / per_task;
    pool_.ParallelFor(a.n_tok * tasks_per_tok, [&](int64_t i) {
      thread_local std::vector<float> scratch;
      if (static_cast<int64_t>(scratch.size()) < per_task * n_ctx) scratch.resize(per_task * n_ctx);
      cpu::AttentionHeads(a, i / tasks_per_tok, (i % tasks_per_tok) * per_task, per_task,
                          scratch.data(), kv);
    });
  }

 private:
  const cpu::Isa isa_;
  const cpu::MatmulKernels& kernels_;
  ThreadPool pool_;
  cpu::CpuLink link_;
  Arena device_;
  Arena pinned_;
  cpu::ComputeStream compute_;
  cpu::MatmulDriver driver_;
  ComputeStats compute_stats_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const BackendOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  MOESTREAM_ASSIGN_OR_RETURN(cpu::Isa isa, cpu::ResolveIsa(o.isa));
  MOESTREAM_ASSIGN_OR_RETURN(LinkProfile link, FindLinkProfile(o.link));
  int threads = o.threads;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  try {
    return std::unique_ptr<Backend>(new CpuBackend(o, isa, std::move(link), threads));
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cpu backend: cannot start ", threads, " compute threads: ", e.what()));
  }
}

}  // namespace moestream::kernels
