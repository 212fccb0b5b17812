// The server's figures: request outcomes, tokens per second, time to first
// token, the queue and slots, and the expert cache as the scheduler last
// saw it. Rendered as Prometheus text for /metrics and as one JSON object
// for the page's live view (/events).
//
//   Metrics m;
//   m.OnFirstToken(0.012);  m.OnTokens(1);  m.OnRequestDone(FinishReason::kStop, 9, 16, 0.4);
//   m.SetSchedulerState({.slots_total = 2, .slots_in_use = 1, .queue_length = 0});
//   m.SetExperts(snapshot);                 // scheduler thread, after a step
//   std::string text = m.Prometheus();      // any thread
//
// Thread-safe: one mutex guards everything; the scheduler publishes after a
// step and HTTP threads read.
#ifndef MOESTREAM_SERVER_METRICS_H_
#define MOESTREAM_SERVER_METRICS_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "cache/expert_cache.h"
#include "cache/host_expert_cache.h"
#include "nlohmann/json.hpp"
#include "server/request_queue.h"

namespace moestream::server {

// The expert cache and routing as of the scheduler's last step.
struct ExpertSnapshot {
  int n_layers = 0;   // MoE layers (0: a dense model, nothing below applies)
  int n_experts = 0;  // routed experts per layer
  // Routing counts since start: uses[layer * n_experts + expert] tokens
  // that chose the expert (every model with routed experts).
  std::vector<uint64_t> uses;
  // The device expert cache (offloading only; offload false otherwise).
  bool offload = false;
  // 0 = not on the device, 1 = loading, 2 = resident; per layer and expert.
  std::vector<uint8_t> residency;
  std::vector<cache::CacheCounters> per_layer;
  cache::CacheCounters total;
  cache::HostCacheStats host_cache;
  int slots_total = 0;   // device expert slots
  int slots_in_use = 0;  // holding an expert (loading or resident)
};

struct SchedulerState {
  int slots_total = 0;   // sequence slots (--parallel)
  int slots_in_use = 0;  // decoding a request now
  int64_t queue_length = 0;
};

class Metrics {
 public:
  using Clock = std::chrono::steady_clock;

  // Tokens per second are averaged over this window. Default 10 s.
  explicit Metrics(std::chrono::milliseconds rate_window = std::chrono::seconds(10));

  void OnTokens(int64_t n, Clock::time_point now = Clock::now());
  void OnFirstToken(double ttft_s);
  // One decode forward over `sequences` slots (1 when they step alone).
  void OnDecodeStep(int sequences);
  void OnRequestDone(FinishReason reason, int64_t prompt_tokens, int64_t completion_tokens,
                     double duration_s);
  // An error reply sent by the HTTP layer (400, 401, 413, ...).
  void OnHttpError(int status);
  void SetSchedulerState(SchedulerState s);
  void SetExperts(ExpertSnapshot s);

  double TokensPerSecond(Clock::time_point now = Clock::now()) const;
  std::string Prometheus() const;
  // {"tok_s", "queue", "slots", "slots_in_use", "requests", "ttft_p50_ms",
  //  "layers", "experts", "offload", "resident": [...], "uses": [...],
  //  "hit_rate": [...per layer]} for the page.
  nlohmann::json LiveJson() const;

 private:
  double TokensPerSecondLocked(Clock::time_point now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::chrono::milliseconds rate_window_;
  const Clock::time_point start_;
  mutable Mutex mu_;
  // (time, tokens) of recent steps, oldest first, within rate_window_.
  mutable std::deque<std::pair<Clock::time_point, int64_t>> recent_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> requests_ ABSL_GUARDED_BY(mu_);  // by finish reason
  std::map<int, uint64_t> http_errors_ ABSL_GUARDED_BY(mu_);       // by status
  uint64_t prompt_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generated_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t decode_steps_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t decode_step_sequences_ ABSL_GUARDED_BY(mu_) = 0;
  // The last kSamples observations of each summary, and their totals.
  std::deque<double> ttft_ ABSL_GUARDED_BY(mu_);
  double ttft_sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t ttft_count_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<double> duration_ ABSL_GUARDED_BY(mu_);
  double duration_sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t duration_count_ ABSL_GUARDED_BY(mu_) = 0;
  SchedulerState sched_ ABSL_GUARDED_BY(mu_);
  ExpertSnapshot experts_ ABSL_GUARDED_BY(mu_);
};

// The q-quantile (0..1) of `v`, nearest rank; 0 when empty.
double Quantile(std::deque<double> v, double q);
// Resident set size of this process, bytes (0 when unknown).
uint64_t ResidentBytes();

}  // namespace moestream::server

#endif  // MOESTREAM_SERVER_METRICS_H_
