// Trace replay: runs a routing trace through the real expert cache
// (cache/expert_cache.h) with a simulated clock and link (cache/sim_loader.h),
// an eviction policy and a prefetch predictor from policies/, and reports hit
// rate, prefetch precision/recall, link bytes, modelled stall and tokens/s,
// and the hit rate of Belady's MIN on the same trace and capacity.
//
// Conventions (they match the reference figures in ../shared/data/*/SOURCE.md):
//   - Each sequence of the trace starts with an empty cache (cold start).
//   - Cells of one (seq, step, layer) batch are one Acquire of the union of
//     their experts: one access per distinct expert. For decode at batch size
//     one that is the token's top-k at that layer, requested together, so a
//     request is a hit iff the expert is resident when the step starts and no
//     requested expert evicts another ("step-batched").
//     With `sequential` (or when a step's experts exceed a per-layer pool),
//     each expert is its own Acquire, in gate order. A step split because it
//     exceeds its pool is first announced whole (ExpertCache::BeginStep): its
//     experts still to come are evicted only when nothing else is, and the
//     policy sees the step's routing, as an engine knows it once the router
//     has run; `sequential` announces nothing (each access on its own).
//   - Capacity is in experts per layer: per-layer mode gives each layer that
//     many slots, global mode gives capacity * n_layers slots shared by all.
//   - Only cells of the selected phase are replayed (default decode).
//   - Time: per layer step, the cache waits for missing experts (stall),
//     then the layer computes for `layer_compute_us` while the prefetches for
//     the next layer (issued before the compute) move over the link.
//   - Prediction is scored per distance d = 1 .. lookahead: guesses made
//     after layer L of a step for layer L+d (wrapping to the next token's
//     first layers) against the experts layer L+d then requests; the
//     headline precision and recall are d = 1's.
//
//   ReplayOptions o;  o.policy = "lru";  o.capacity = 16;  o.per_layer = true;
//   MOESTREAM_ASSIGN_OR_RETURN(ReplayResult r, Replay(trace, o));
#ifndef MOESTREAM_TRACE_REPLAY_H_
#define MOESTREAM_TRACE_REPLAY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trace/trace.h"

namespace moestream::trace {

struct ReplayOptions {
  std::string policy = "lru";      // eviction policy spec (policies/)
  std::string predictor = "none";  // prefetch predictor spec
  int capacity = 0;                // experts per layer (>= 1)
  bool per_layer = false;          // per-layer pools instead of one global pool
  std::string phase = "decode";    // "decode", "prefill" or "all"
  std::string link = "pcie4x16";   // link profile (kernels/backend.h), or "none"
  uint64_t expert_bytes = 0;       // 0: the trace's per-layer sizes, else 8 MiB
  double layer_compute_us = 100;   // modelled compute per layer step, microseconds
  int lookahead = 1;               // layers predicted ahead
  // Request a step's experts one at a time (in gate order) instead of
  // together: the textbook per-access cache simulation, where one miss of a
  // step may evict another expert of the same step.
  bool sequential = false;
  bool run_min = true;             // also replay MIN for min_hit_rate
  // Popularity per (layer, expert) for `static`; empty = counted over the trace.
  std::vector<double> popularity;
  absl::Status Validate() const;
};

struct ReplayResult {
  uint64_t accesses = 0;
  uint64_t hits = 0;
  double hit_rate = 0;
  double min_hit_rate = 0;     // MIN on the same trace and capacity (run_min)
  double prefetch_precision = 0;  // predictor guesses that were then routed
  double prefetch_recall = 0;     // routed experts that had been guessed
  // The same per lookahead distance: [d - 1] scores the guesses made d
  // layers ahead (d = 1 .. lookahead, at most n_layers - 1); [0] is the pair above.
  std::vector<double> precision_by_distance;
  std::vector<double> recall_by_distance;
  uint64_t prefetch_issued = 0;   // prefetch loads the cache started
  uint64_t prefetch_hits = 0;     // demand hits served by a prefetch
  uint64_t link_bytes = 0;
  uint64_t stall_ns = 0;
  uint64_t modelled_ns = 0;       // simulated time: compute + stalls
  uint64_t tokens = 0;            // token-steps replayed (cells / layers)
  double modelled_tok_s = 0;
  double wall_s = 0;              // host time of the replay itself (without MIN)
  double accesses_per_s = 0;
  std::vector<double> layer_hit_rate;  // per dense layer
  std::string policy;             // canonical names
  std::string predictor;
};

absl::StatusOr<ReplayResult> Replay(const Trace& trace, const ReplayOptions& options);

// kInvalidArgument when `predictor_spec` cannot be replayed from a trace:
// `gate` guesses from the next layer's router scores
// (policies::PredictContext::next_gate_scores), which no trace format
// records (a trace holds routed experts and their weights, and what a live
// predictor guessed), so it would silently act as `none`; also a malformed
// spec. Replay and sweeps check their predictors with it before any replay.
absl::Status CheckReplayablePredictor(const std::string& predictor_spec);

// "16" -> 16 experts, "12.5%" -> 12.5 % of n_experts (rounded, at least 1).
absl::StatusOr<int> ParseCapacity(const std::string& text, int n_experts);

// The result as one JSON object (the keys `moestream replay --json` prints).
std::string ReplayResultJson(const ReplayResult& r);

}  // namespace moestream::trace

#endif  // MOESTREAM_TRACE_REPLAY_H_
