// Matrix-vector bandwidth of the CPU backend's kernels, next to a memcpy
// baseline measured in the same run.
//
//   matvec_bench [--benchmark_min_time=0.2] [--benchmark_format=json]
//   matvec_bench --benchmark_filter='Memcpy|Matvec/.*threads:0'   # all threads
//   matvec_bench --isa=avx2 ...    # another kernel set (scalar, avx2, avx512, avx512vnni)
//
// Counters: weight_GBps (weight bytes read per second), memcpy_GBps (bytes
// copied per second by memcpy with the same thread count, the fastest pass
// measured right before and after each product's timing), ratio = weight_GBps / (2 × memcpy_GBps): the share of memcpy's
// memory traffic (each byte copied is read once and written once) that the
// kernel turns into weight reads; read_GBps (a pass that only sums the
// words of a 128 MiB buffer, same threads, measured the same way) and
// read_ratio = weight_GBps / read_GBps, the share of plain streaming reads
// the kernel reaches. Each weight matrix is
// replicated until the set is >= 256 MiB and the copies are used in turn, so
// every product streams its weights from DRAM, as a decode step does; the
// copies are allocated by the backend, as the engine's weights are. Also:
// matrix-matrix GFLOP/s at prefill (128 tokens), decode attention at
// 512/4096 context, and each kernel's speed on one thread with its weights
// in L2 (BM_MatvecCompute); a decode step's batch of 8 experts' gate and up
// products at the one-expert shapes (BM_ExpertBatch).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/backend.h"
#include "kernels/cpu/memcpy_probe.h"
#include "kernels/quant.h"

namespace moestream::kernels {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kStreamBytes = size_t{256} << 20;

// The kernel set, as `--isa=NAME` names it (default auto: the widest the CPU runs).
std::string& IsaFlag() {
  static std::string isa = "auto";
  return isa;
}

int AllThreads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

double MemcpyGbpsNow(int threads, int reps) { return cpu::MeasureMemcpyGbps(threads, reps); }

std::unique_ptr<Backend> MakeBackend(int threads) {
  BackendOptions o;
  o.kind = "cpu";
  o.threads = threads;
  o.isa = IsaFlag();
  auto be = CreateBackend(o);
  if (!be.ok()) {
    std::fprintf(stderr, "matvec_bench: %s\n", std::string(be.status().message()).c_str());
    std::exit(2);
  }
  return std::move(be).value();
}

void BM_Memcpy(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double gbps = 0;
  for (auto _ : state) gbps = MemcpyGbpsNow(threads, 1);
  state.counters["memcpy_GBps"] = gbps;
  state.counters["threads"] = threads;
}

// Weight rows with realistic contents: a few distinct quantized rows repeated.
std::vector<uint8_t> MakeWeight(GgmlType t, int64_t n_in, int64_t n_out) {
  const size_t rb = RowBytes(t, n_in);
  constexpr int kDistinct = 8;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> row(n_in);
  std::vector<uint8_t> distinct(rb * kDistinct);
  for (int r = 0; r < kDistinct; ++r) {
    for (auto& v : row) v = nd(rng);
    if (!QuantizeRow(t, row.data(), n_in, distinct.data() + r * rb).ok()) std::abort();
  }
  std::vector<uint8_t> w(rb * n_out);
  for (int64_t r = 0; r < n_out; ++r) std::memcpy(w.data() + r * rb, distinct.data() + (r % kDistinct) * rb, rb);
  return w;
}

// `count` copies of one weight matrix where and as the engine keeps an
// expert's matrices: side by side in one block of the backend's memory, like
// a stacked expert tensor.
class WeightCopies {
 public:
  WeightCopies(Backend& be, const std::vector<uint8_t>& w, size_t count)
      : be_(be), bytes_(w.size()), count_(count) {
    block_ = static_cast<uint8_t*>(be.DeviceAlloc(count * bytes_, "weights").value());
    for (size_t c = 0; c < count; ++c) std::memcpy(block_ + c * bytes_, w.data(), bytes_);
  }
  ~WeightCopies() { be_.DeviceFree(block_); }
  WeightCopies(const WeightCopies&) = delete;
  WeightCopies& operator=(const WeightCopies&) = delete;
  const uint8_t* at(size_t i) const { return block_ + (i % count_) * bytes_; }
  size_t count() const { return count_; }

 private:
  Backend& be_;
  const size_t bytes_, count_;
  uint8_t* block_ = nullptr;
};

// The timing of a streaming benchmark and its baselines: memcpy and the
// streaming read are measured right before (construction) and after
// (Report) the products and the faster is kept, so a pass slowed by other
// work on the machine does not flatter the ratios.
class BandwidthCounters {
 public:
  explicit BandwidthCounters(int threads)
      : threads_(threads),
        memcpy_before_(MemcpyGbpsNow(threads, 2)),
        read_before_(cpu::MeasureReadGbps(threads, 2)),
        t0_(Clock::now()) {}

  // Sets weight_GBps (`bytes` read since construction per second),
  // memcpy_GBps, ratio, read_GBps, read_ratio and threads.
  void Report(benchmark::State& state, uint64_t bytes) const {
    const double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double memcpy_gbps = std::max(memcpy_before_, MemcpyGbpsNow(threads_, 2));
    const double read_gbps = std::max(read_before_, cpu::MeasureReadGbps(threads_, 2));
    const double gbps = bytes / secs / 1e9;
    state.counters["weight_GBps"] = gbps;
    state.counters["memcpy_GBps"] = memcpy_gbps;
    state.counters["ratio"] = gbps / (2 * memcpy_gbps);
    state.counters["read_GBps"] = read_gbps;
    state.counters["read_ratio"] = gbps / read_gbps;
    state.counters["threads"] = threads_;
  }

 private:
  const int threads_;
  const double memcpy_before_, read_before_;
  const Clock::time_point t0_;
};

void BM_Matvec(benchmark::State& state, GgmlType t) {
  const int64_t n_in = state.range(0), n_out = state.range(1);
  const int threads = state.range(2) == 0 ? AllThreads() : static_cast<int>(state.range(2));
  auto be = MakeBackend(threads);
  const std::vector<uint8_t> w0 = MakeWeight(t, n_in, n_out);
  const WeightCopies ws(*be, w0, std::max<size_t>(1, kStreamBytes / w0.size()));
  std::vector<float> x(n_in), y(n_out);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  size_t k = 0;
  uint64_t bytes = 0;
  const BandwidthCounters counters(threads);
  for (auto _ : state) {
    be->MatMul({t, n_in, n_out, ws.at(k++)}, x.data(), 1, y.data());
    benchmark::DoNotOptimize(y.data());
    bytes += w0.size();
  }
  counters.Report(state, bytes);
  state.SetLabel(std::string(GgmlTypeName(t)));
}

// A decode step's expert phase as the engine runs it: the gate and up
// products of k = 8 experts (n_in → n_out each, one shared activation row)
// in one MatMulBatch, the experts taken in turn from a stacked set of at
// least 256 MiB so every step streams from DRAM. Same counters as
// BM_Matvec, all threads.
void BM_ExpertBatch(benchmark::State& state, GgmlType t) {
  const int64_t n_in = state.range(0), n_out = state.range(1);
  constexpr int kExperts = 8;
  const int threads = AllThreads();
  auto be = MakeBackend(threads);
  const std::vector<uint8_t> w0 = MakeWeight(t, n_in, n_out);
  const WeightCopies ws(*be, w0, std::max<size_t>(2 * kExperts, kStreamBytes / w0.size()));
  std::vector<float> x(n_in, 0.5f), y(2 * kExperts * n_out);
  std::vector<MatMulJob> jobs(2 * kExperts);
  size_t next = 0;
  uint64_t bytes = 0;
  const BandwidthCounters counters(threads);
  for (auto _ : state) {
    for (int j = 0; j < 2 * kExperts; ++j) {
      jobs[j] = {{t, n_in, n_out, ws.at(next++)}, x.data(), 1, y.data() + j * n_out};
    }
    be->MatMulBatch(jobs);
    benchmark::DoNotOptimize(y.data());
    bytes += 2 * kExperts * w0.size();
  }
  counters.Report(state, bytes);
  state.SetLabel(std::string(GgmlTypeName(t)));
}

// The kernel's own speed, memory aside: one thread, a 4096-wide matrix of 64
// rows (at most 544 KiB: in L2) multiplied again and again. Where this is
// near the DRAM figure of BM_Matvec/threads:1, decode is bound by the
// kernel's arithmetic, not by memory.
void BM_MatvecCompute(benchmark::State& state, GgmlType t) {
  constexpr int64_t kIn = 4096, kOut = 64;
  auto be = MakeBackend(1);
  const std::vector<uint8_t> w = MakeWeight(t, kIn, kOut);
  std::vector<float> x(kIn, 0.25f), y(kOut);
  for (auto _ : state) {
    be->MatMul({t, kIn, kOut, w.data()}, x.data(), 1, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_GBps"] = benchmark::Counter(static_cast<double>(w.size()) * state.iterations() / 1e9,
                                                     benchmark::Counter::kIsRate);
  state.SetLabel(std::string(GgmlTypeName(t)));
}

void BM_Prefill(benchmark::State& state, GgmlType t) {
  const int64_t n_in = state.range(0), n_out = state.range(1), n_tok = state.range(2);
  auto be = MakeBackend(AllThreads());
  const std::vector<uint8_t> w = MakeWeight(t, n_in, n_out);
  std::vector<float> x(n_in * n_tok, 0.5f), y(n_out * n_tok);
  uint64_t flops = 0;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    be->MatMul({t, n_in, n_out, w.data()}, x.data(), n_tok, y.data());
    benchmark::DoNotOptimize(y.data());
    flops += 2ull * n_in * n_out * n_tok;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  state.counters["GFLOPs"] = flops / secs / 1e9;
  state.SetLabel(std::string(GgmlTypeName(t)));
}

void BM_Attention(benchmark::State& state) {
  const int64_t n_ctx = state.range(0), n_tok = state.range(1);
  const int64_t n_head = 32, n_kv = 8, hd = 128;
  auto be = MakeBackend(AllThreads());
  std::vector<uint16_t> k(n_ctx * n_kv * hd), v(n_ctx * n_kv * hd);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = FloatToHalf(static_cast<float>(i % 97) / 97.0f - 0.5f);
    v[i] = FloatToHalf(static_cast<float>(i % 89) / 89.0f - 0.5f);
  }
  std::vector<float> q(n_tok * n_head * hd, 0.1f), out(q.size());
  AttentionArgs a;
  a.q = q.data();
  a.k_cache = k.data();
  a.v_cache = v.data();
  a.kv_type = GgmlType::kF16;
  a.n_tok = n_tok;
  a.n_head = n_head;
  a.n_kv_head = n_kv;
  a.head_dim = hd;
  a.pos0 = n_ctx - n_tok;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.out = out.data();
  for (auto _ : state) {
    be->Attention(a);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["kv_GBps"] = benchmark::Counter(
      static_cast<double>(2 * k.size() * sizeof(uint16_t)) * state.iterations() / 1e9,
      benchmark::Counter::kIsRate);
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (auto [n_in, n_out] : {std::pair<int64_t, int64_t>{4096, 14336}, {2048, 768}, {7168, 2048}, {5120, 8192}, {768, 2048}}) {
    for (int64_t threads : {1, 0}) b->Args({n_in, n_out, threads});
  }
  b->ArgNames({"n_in", "n_out", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void Register() {
  benchmark::RegisterBenchmark("BM_Memcpy", BM_Memcpy)
      ->Arg(1)
      ->Arg(AllThreads())
      ->Iterations(4)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  const GgmlType types[] = {GgmlType::kQ4_K, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ5_K,
                            GgmlType::kQ6_K, GgmlType::kMXFP4, GgmlType::kF16, GgmlType::kBF16,
                            GgmlType::kF32};
  for (GgmlType t : types) {
    benchmark::RegisterBenchmark(("BM_Matvec/" + std::string(GgmlTypeName(t))).c_str(), BM_Matvec, t)
        ->Apply(Shapes);
  }
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_0, GgmlType::kMXFP4}) {
    benchmark::RegisterBenchmark(("BM_ExpertBatch/" + std::string(GgmlTypeName(t))).c_str(), BM_ExpertBatch, t)
        ->Args({2048, 768})
        ->Args({768, 2048})
        ->ArgNames({"n_in", "n_out"})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (GgmlType t : types) {
    benchmark::RegisterBenchmark(("BM_MatvecCompute/" + std::string(GgmlTypeName(t))).c_str(), BM_MatvecCompute, t)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_0, GgmlType::kMXFP4,
                     GgmlType::kF16}) {
    benchmark::RegisterBenchmark(("BM_Prefill/" + std::string(GgmlTypeName(t))).c_str(), BM_Prefill, t)
        ->Args({2048, 768, 128})
        ->Args({7168, 2048, 128})
        ->ArgNames({"n_in", "n_out", "n_tok"})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("BM_Attention", BM_Attention)
      ->Args({512, 1})
      ->Args({4096, 1})
      ->Args({32768, 1})  // 128 MiB of F16 keys and values: past the caches
      ->Args({512, 64})
      ->ArgNames({"n_ctx", "n_tok"})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace
}  // namespace moestream::kernels

int main(int argc, char** argv) {
  // --isa=NAME is ours; everything else goes to Google Benchmark.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--isa=", 0) == 0) {
      moestream::kernels::IsaFlag() = a.substr(6);
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  moestream::kernels::Register();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
