#include "server/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moestream::server {
namespace {

constexpr size_t kSamples = 1024;

void Observe(std::deque<double>* samples, double v) {
  samples->push_back(v);
  if (samples->size() > kSamples) samples->pop_front();
}

// "# HELP" and "# TYPE" lines of one metric family.
void Family(std::string* out, const char* name, const char* type, const char* help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void Sample(std::string* out, const std::string& name, double v) {
  absl::StrAppendFormat(out, "%s %.10g\n", name, v);
}

void Summary(std::string* out, const char* name, const char* help, const std::deque<double>& v,
             double sum, uint64_t count) {
  Family(out, name, "summary", help);
  for (double q : {0.5, 0.9, 0.99}) {
    Sample(out, absl::StrFormat("%s{quantile=\"%g\"}", name, q), Quantile(v, q));
  }
  Sample(out, absl::StrCat(name, "_sum"), sum);
  Sample(out, absl::StrCat(name, "_count"), double(count));
}

}  // namespace

double Quantile(std::deque<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = size_t(std::ceil(std::clamp(q, 0.0, 1.0) * double(v.size())));
  return v[rank == 0 ? 0 : rank - 1];
}

uint64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * uint64_t(::sysconf(_SC_PAGESIZE)) : 0;
}

Metrics::Metrics(std::chrono::milliseconds rate_window)
    : rate_window_(rate_window), start_(Clock::now()) {}

void Metrics::OnTokens(int64_t n, Clock::time_point now) {
  MutexLock lock(&mu_);
  recent_.emplace_back(now, n);
  generated_tokens_ += uint64_t(n);
  TokensPerSecondLocked(now);  // drops what left the window
}

void Metrics::OnDecodeStep(int sequences) {
  MutexLock lock(&mu_);
  ++decode_steps_;
  decode_step_sequences_ += uint64_t(sequences);
}

void Metrics::OnFirstToken(double ttft_s) {
  MutexLock lock(&mu_);
  Observe(&ttft_, ttft_s);
  ttft_sum_ += ttft_s;
  ++ttft_count_;
}

void Metrics::OnRequestDone(FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
                            double duration_s) {
  MutexLock lock(&mu_);
  ++requests_[FinishReasonName(reason)];
  prompt_tokens_ += uint64_t(prompt_tokens);
  (void)completion_tokens;  // counted token by token in OnTokens
  Observe(&duration_, duration_s);
  duration_sum_ += duration_s;
  ++duration_count_;
}

void Metrics::OnHttpError(int status) {
  MutexLock lock(&mu_);
  ++http_errors_[status];
}

void Metrics::SetSchedulerState(SchedulerState s) {
  MutexLock lock(&mu_);
  sched_ = s;
}

void Metrics::SetExperts(ExpertSnapshot s) {
  MutexLock lock(&mu_);
  experts_ = std::move(s);
}

double Metrics::TokensPerSecond(Clock::time_point now) const {
  MutexLock lock(&mu_);
  return TokensPerSecondLocked(now);
}

double Metrics::TokensPerSecondLocked(Clock::time_point now) const {
  while (!recent_.empty() && now - recent_.front().first > rate_window_) recent_.pop_front();
  int64_t tokens = 0;
  for (const auto& [t, n] : recent_) tokens += n;
  // The window, or the time since start when the server is younger.
  const double window_s = std::chrono::duration<double>(
                              std::min<Clock::duration>(rate_window_, now - start_))
                              .count();
  return window_s > 0 ? double(tokens) / window_s : 0;
}

std::string Metrics::Prometheus() const {
  MutexLock lock(&mu_);
  std::string out;
  Family(&out, "moestream_requests_total", "counter",
         "Generation requests finished, by finish reason (stop, length, cancelled, error).");
  for (const char* r : {"stop", "length", "cancelled", "error"}) {
    auto it = requests_.find(r);
    Sample(&out, absl::StrCat("moestream_requests_total{reason=\"", r, "\"}"),
           it == requests_.end() ? 0 : double(it->second));
  }
  Family(&out, "moestream_http_errors_total", "counter",
         "Error replies sent before a request reached the queue, by HTTP status.");
  for (const auto& [status, n] : http_errors_) {
    Sample(&out, absl::StrCat("moestream_http_errors_total{status=\"", status, "\"}"), double(n));
  }
  Family(&out, "moestream_prompt_tokens_total", "counter", "Prompt tokens of finished requests.");
  Sample(&out, "moestream_prompt_tokens_total", double(prompt_tokens_));
  Family(&out, "moestream_generated_tokens_total", "counter", "Tokens sampled.");
  Sample(&out, "moestream_generated_tokens_total", double(generated_tokens_));
  Family(&out, "moestream_decode_steps_total", "counter",
         "Decode forwards; slots decoding together share one.");
  Sample(&out, "moestream_decode_steps_total", double(decode_steps_));
  Family(&out, "moestream_decode_step_sequences_total", "counter",
         "Sequences over all decode forwards (divided by the steps: the mean batch).");
  Sample(&out, "moestream_decode_step_sequences_total", double(decode_step_sequences_));
  Family(&out, "moestream_tokens_per_second", "gauge",
         "Tokens sampled per second over the last 10 seconds, all slots together.");
  Sample(&out, "moestream_tokens_per_second", TokensPerSecondLocked(Clock::now()));
  Summary(&out, "moestream_time_to_first_token_seconds",
          "From a request's arrival to its first sampled token (queueing included).", ttft_,
          ttft_sum_, ttft_count_);
  Summary(&out, "moestream_request_duration_seconds",
          "From a request's arrival to its end.", duration_, duration_sum_, duration_count_);
  Family(&out, "moestream_queue_length", "gauge", "Requests waiting for a sequence slot.");
  Sample(&out, "moestream_queue_length", double(sched_.queue_length));
  Family(&out, "moestream_slots", "gauge", "Sequence slots (--parallel).");
  Sample(&out, "moestream_slots", sched_.slots_total);
  Family(&out, "moestream_slots_in_use", "gauge", "Sequence slots decoding a request.");
  Sample(&out, "moestream_slots_in_use", sched_.slots_in_use);
  Family(&out, "process_resident_memory_bytes", "gauge", "Resident memory of the server.");
  Sample(&out, "process_resident_memory_bytes", double(ResidentBytes()));

  const ExpertSnapshot& e = experts_;
  if (e.n_layers > 0) {
    Family(&out, "moestream_expert_routed_total", "counter",
           "Token-to-expert choices made by the routers, by MoE layer.");
    for (int l = 0; l < e.n_layers; ++l) {
      uint64_t n = 0;
      for (int x = 0; x < e.n_experts; ++x) n += e.uses[size_t(l) * e.n_experts + x];
      Sample(&out, absl::StrCat("moestream_expert_routed_total{layer=\"", l, "\"}"), double(n));
    }
  }
  if (e.offload) {
    Family(&out, "moestream_expert_cache_accesses_total", "counter",
           "Demand accesses to the device expert cache, by MoE layer.");
    for (size_t l = 0; l < e.per_layer.size(); ++l) {
      Sample(&out, absl::StrCat("moestream_expert_cache_accesses_total{layer=\"", l, "\"}"),
             double(e.per_layer[l].accesses));
    }
    Family(&out, "moestream_expert_cache_hits_total", "counter",
           "Demand accesses that found the expert on the device, by MoE layer.");
    for (size_t l = 0; l < e.per_layer.size(); ++l) {
      Sample(&out, absl::StrCat("moestream_expert_cache_hits_total{layer=\"", l, "\"}"),
             double(e.per_layer[l].demand_hits));
    }
    Family(&out, "moestream_expert_cache_hit_rate", "gauge",
           "Hits / accesses since start, by MoE layer (0 before any access).");
    for (size_t l = 0; l < e.per_layer.size(); ++l) {
      Sample(&out, absl::StrCat("moestream_expert_cache_hit_rate{layer=\"", l, "\"}"),
             e.per_layer[l].hit_rate());
    }
    Family(&out, "moestream_expert_bytes_read_total", "counter",
           "Expert bytes read from each tier below the device.");
    Sample(&out, "moestream_expert_bytes_read_total{tier=\"host\"}", double(e.total.tier_bytes[0]));
    Sample(&out, "moestream_expert_bytes_read_total{tier=\"nvme\"}", double(e.total.tier_bytes[1]));
    Family(&out, "moestream_expert_link_bytes_total", "counter", "Expert bytes copied to the device.");
    Sample(&out, "moestream_expert_link_bytes_total", double(e.total.link_bytes));
    Family(&out, "moestream_expert_host_cache_bytes_total", "counter",
           "Expert bytes served by the host expert cache (hits) and read from NVMe (misses).");
    Sample(&out, "moestream_expert_host_cache_bytes_total{source=\"host\"}",
           double(e.host_cache.host_bytes));
    Sample(&out, "moestream_expert_host_cache_bytes_total{source=\"nvme\"}",
           double(e.host_cache.nvme_bytes));
    Family(&out, "moestream_expert_stall_seconds_total", "counter",
           "Time the scheduler thread blocked waiting for experts to arrive.");
    Sample(&out, "moestream_expert_stall_seconds_total", double(e.total.stall_ns) / 1e9);
    Family(&out, "moestream_expert_loads_total", "counter", "Expert loads completed.");
    Sample(&out, "moestream_expert_loads_total", double(e.total.loads));
    Family(&out, "moestream_expert_evictions_total", "counter", "Experts evicted from device slots.");
    Sample(&out, "moestream_expert_evictions_total", double(e.total.evictions));
    Family(&out, "moestream_expert_cache_slots", "gauge", "Device expert slots.");
    Sample(&out, "moestream_expert_cache_slots", e.slots_total);
    Family(&out, "moestream_expert_cache_slots_in_use", "gauge",
           "Device expert slots holding an expert (resident or loading).");
    Sample(&out, "moestream_expert_cache_slots_in_use", e.slots_in_use);
  }
  return out;
}

nlohmann::json Metrics::LiveJson() const {
  MutexLock lock(&mu_);
  const ExpertSnapshot& e = experts_;
  uint64_t finished = 0;
  for (const auto& [r, n] : requests_) finished += n;
  nlohmann::json hit_rate = nlohmann::json::array();
  for (const cache::CacheCounters& c : e.per_layer) hit_rate.push_back(c.hit_rate());
  return {{"tok_s", TokensPerSecondLocked(Clock::now())},
          {"queue", sched_.queue_length},
          {"slots", sched_.slots_total},
          {"slots_in_use", sched_.slots_in_use},
          {"requests", finished},
          {"generated_tokens", generated_tokens_},
          {"ttft_p50_ms", Quantile(ttft_, 0.5) * 1e3},
          {"layers", e.n_layers},
          {"experts", e.n_experts},
          {"offload", e.offload},
          {"expert_slots", e.slots_total},
          {"expert_slots_in_use", e.slots_in_use},
          {"resident", e.residency},
          {"uses", e.uses},
          {"hit_rate", hit_rate}};
}

}  // namespace moestream::server
