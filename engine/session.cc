#include "engine/session.h"

#include "engine/recording_expert_provider.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/status_macros.h"

namespace moestream::engine {
namespace {

using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// User + system CPU time of the whole process, milliseconds.
double ProcessCpuMs() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(u.ru_utime) + ms(u.ru_stime);
}

}  // namespace

double GenerationStats::TokenLatencyMs(double q) const {
  if (token_ms.empty()) return 0;
  std::vector<double> v = token_ms;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  const size_t rank = size_t(std::ceil(std::clamp(q, 0.0, 1.0) * double(v.size())));
  return v[rank == 0 ? 0 : rank - 1];
}

absl::StatusOr<GenerationResult> Generate(Engine& engine, Sampler& sampler,
                                          std::span<const int32_t> prompt,
                                          const GenerateOptions& o, const TokenFn& on_token,
                                          const LogitsFn& on_logits) {
  if (prompt.empty()) return absl::InvalidArgumentError("empty prompt: nothing to condition on");
  const LogitsMode mode = o.all_logits ? LogitsMode::kAll : LogitsMode::kLast;
  GenerationResult r;
  r.generated_ids.reserve(o.n_predict);
  GenerationStats& s = r.stats;
  s.prompt_tokens = static_cast<int64_t>(prompt.size());
  for (int32_t id : prompt) sampler.Accept(id);

  const Clock::time_point start = Clock::now();
  double cpu0 = ProcessCpuMs();
  MOESTREAM_RETURN_IF_ERROR(engine.Process(prompt, mode));
  s.prefill_ms = MsSince(start);
  s.prefill_cpu_ms = ProcessCpuMs() - cpu0;
  if (on_logits) MOESTREAM_RETURN_IF_ERROR(on_logits(engine.logits(), engine.logits_rows()));

  for (int64_t i = 0; i < o.n_predict; ++i) {
    Clock::time_point t = Clock::now();
    const int32_t id = sampler.Sample(engine.last_logits());
    s.sample_ms += MsSince(t);
    sampler.Accept(id);
    r.generated_ids.push_back(id);
    ++s.generated_tokens;
    if (i == 0) s.ttft_ms = MsSince(start);
    const bool go_on = on_token ? on_token(id) : true;
    if (o.stop_at_eog && engine.config().IsEog(id)) {
      r.stopped_at_eog = true;
      break;
    }
    if (!go_on || i + 1 == o.n_predict) break;
    t = Clock::now();
    cpu0 = ProcessCpuMs();
    MOESTREAM_RETURN_IF_ERROR(engine.Process({&id, 1}, mode));
    s.token_ms.push_back(MsSince(t));
    s.decode_ms += s.token_ms.back();
    s.decode_cpu_ms += ProcessCpuMs() - cpu0;
    ++s.decoded_tokens;
    if (on_logits) MOESTREAM_RETURN_IF_ERROR(on_logits(engine.logits(), engine.logits_rows()));
  }
  s.total_ms = MsSince(start);
  return r;
}

namespace {

// The most memory this process can hold: physical RAM, or its cgroup's limit
// where that is lower. 0 when unknown.
uint64_t HostMemoryLimit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  uint64_t limit = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
  if (FILE* f = std::fopen("/sys/fs/cgroup/memory.max", "r"); f != nullptr) {
    unsigned long long v = 0;
    if (std::fscanf(f, "%llu", &v) == 1 && v > 0 && (limit == 0 || v < limit)) limit = v;
    std::fclose(f);
  }
  return limit;
}

// On the CPU backend "device" memory is this machine's RAM: a resident part
// larger than the RAM fails here, before any weight is read, instead of at
// an allocation half way through (or in the kernel's OOM killer).
absl::Status CheckFitsInRam(const LoadedModel& m, const EngineOptions& eo, bool upload_experts) {
  if (m.backend->name() != "cpu") return absl::OkStatus();
  const uint64_t have = HostMemoryLimit();
  if (have == 0) return absl::OkStatus();
  MOESTREAM_ASSIGN_OR_RETURN(std::vector<model::PlannedBuffer> weights,
                             model::ModelWeights::PlanBuffers(m.file, m.config, upload_experts));
  const uint64_t w = model::TotalBytes(weights);
  const uint64_t e = model::TotalBytes(Engine::PlanBuffers(m.config, eo));
  if (w + e <= have) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      m.file.path(), ": needs ", FormatBytes(w + e), " of memory (weights ", FormatBytes(w),
      ", KV cache and activations ", FormatBytes(e), ") but this machine has ", FormatBytes(have),
      upload_experts ? ": offload the experts (--device-budget with --experts-on nvme, or "
                       "--experts-on mmap) or lower --ctx"
                     : ": lower --ctx"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path,
                                                       const kernels::BackendOptions& bo,
                                                       const EngineOptions& eo,
                                                       const LoadOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_unique<LoadedModel>();
  MOESTREAM_ASSIGN_OR_RETURN(m->file, io::GgufFile::Open(path));
  MOESTREAM_ASSIGN_OR_RETURN(m->config, model::ReadModelConfig(m->file));
  MOESTREAM_ASSIGN_OR_RETURN(m->backend, kernels::CreateBackend(bo));
  if (o.verbose) {
    std::fprintf(stderr, "model: %s\n%s\nbackend: %s\n", path.c_str(),
                 m->config.Summary().c_str(), std::string(m->backend->Describe()).c_str());
  }
  MOESTREAM_RETURN_IF_ERROR(CheckFitsInRam(*m, eo, o.upload_routed_experts));
  model::WeightsOptions wo;
  wo.upload_routed_experts = o.upload_routed_experts;
  int last_pct = -1;
  if (o.verbose && ::isatty(2)) {
    wo.progress = [&last_pct](uint64_t done, uint64_t total) {
      const int pct = total > 0 ? static_cast<int>(done * 100 / total) : 100;
      if (pct / 10 != last_pct / 10) {
        std::fprintf(stderr, "\rloading weights: %3d%%", pct);
        last_pct = pct;
      }
    };
  }
  MOESTREAM_ASSIGN_OR_RETURN(m->weights,
                             model::ModelWeights::Load(m->file, m->config, *m->backend, wo));
  if (o.verbose && last_pct >= 0) std::fprintf(stderr, "\n");
  // The engine's batch: the providers' workspaces are sized for it.
  const int64_t n_batch = eo.ResolvedBatch(m->config);
  if (m->config.is_moe()) {
    if (o.provider_factory) {
      MOESTREAM_ASSIGN_OR_RETURN(m->provider, o.provider_factory(*m->backend, m->file, m->config,
                                                                 *m->weights, n_batch));
    } else {
      MOESTREAM_ASSIGN_OR_RETURN(m->provider, ResidentExpertProvider::Create(
                                                  *m->backend, m->config, *m->weights, n_batch));
    }
    if (!o.record_trace.empty()) {
      auto rec = std::make_unique<RecordingExpertProvider>(std::move(m->provider), m->config,
                                                           o.record_trace);
      m->recorder = rec.get();
      m->provider = std::move(rec);
    }
  }
  MOESTREAM_ASSIGN_OR_RETURN(m->engine, Engine::Create(*m->backend, m->config, *m->weights,
                                                                m->provider.get(), eo));
  m->load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (o.verbose) {
    std::fprintf(stderr, "loaded in %.0f ms: weights %.1f MiB, KV cache %.1f MiB (%lld positions)\n",
                 m->load_ms, m->weights->device_bytes() / 1048576.0,
                 m->engine->kv_cache().bytes() / 1048576.0,
                 static_cast<long long>(m->engine->n_ctx()));
  }
  return m;
}

}  // namespace moestream::engine
