// The expert cache's hit rate at a planned capacity, before the model has
// ever run: from a replay of a routing trace through the real cache and
// policy (trace/replay.h), or, when no trace fits the model, from a Zipf
// model of expert popularity. `moestream plan` feeds it to the decode
// predictor (model/decode_predictor.h) and prints which source it used.
//
//   HitRateOptions o;  o.trace_dir = "../shared/data";     // or o.trace = "run.mstrace"
//   MOESTREAM_ASSIGN_OR_RETURN(HitRateEstimate e,
//       EstimateHitRates({.n_expert = 128, .top_k = 8, .arch = "qwen3moe"},
//                        /*device_slots_per_layer=*/18.5, /*ram_slots_per_layer=*/68, o));
//   e.device            // fraction of a decode token's experts found in a device slot
//   e.source            // "trace ../shared/data/qwen3-30b-a3b-route-trace/... (...)" or "zipf s=1.00 ..."
//
// Trace choice (`trace` empty): among the shared traces in `trace_dir`,
// those recorded from a model with the same number of experts per layer;
// of those, the one with the same top-k, else the same architecture, else
// the nearest top-k. None: Zipf. `trace` = "zipf" forces the Zipf model.
//
// Replay conventions are replay.h's: decode cells only, each sequence from a
// cold cache (and, for the warm figure, each sequence's decode played twice), one global pool of capacity x the trace's layers (the engine's
// slots are one pool too), LRU unless `policy` says otherwise; a token's
// top-k requested together. The capacity is the plan's slots per MoE layer,
// rounded down (at least 1).
//
// Zipf model: expert r (0-based rank) of a layer is chosen with probability
// proportional to (1 + r)^-s per choice, k choices per token; an LRU cache of
// C experts per layer under independent requests has, by Che's
// approximation, hit probability 1 - exp(-q_r T) for expert r (q_r its
// requests per token, T the cache's characteristic time: sum_r 1 -
// exp(-q_r T) = C); the hit rate weighs those by q_r. The upper bound
// `device_high` is a static cache of the C most popular experts.
#ifndef MOESTREAM_ENGINE_HIT_RATE_MODEL_H_
#define MOESTREAM_ENGINE_HIT_RATE_MODEL_H_

#include <string>

#include "absl/status/statusor.h"

namespace moestream::engine {

struct HitRateModelShape {
  int n_expert = 0;  // routed experts per MoE layer
  int top_k = 0;     // experts per token
  std::string arch;  // general.architecture, to prefer a trace of the same family
};

struct HitRateOptions {
  // A routing trace (any format replay reads), "zipf", or empty (choose a
  // shared trace from trace_dir, else Zipf).
  std::string trace;
  // Where the shared traces are (../shared/data); empty = do not look.
  std::string trace_dir;
  // Zipf exponent of the popularity when the Zipf model is used. Default 1
  // (what `moestream gen` gives its routers by default).
  double zipf_s = 1.0;
  // Eviction policy replayed (policies/ spec). Default "lru", the engine's.
  std::string policy = "lru";
  absl::Status Validate() const;
};

struct HitRateEstimate {
  std::string kind;    // "trace", "zipf" or "resident" (everything fits: no misses)
  std::string source;  // one line: file and shape of the trace, or the Zipf parameters
  // Device slots: the estimate, and the upper bound (MIN on the trace; a
  // static cache of the most popular experts under Zipf).
  // `device` is the warm cache's: the trace's decode replayed twice in a
  // row, the hit rate of the second pass (a long generation's steady
  // state); `device_cold` the first pass's, from an empty cache.
  double device = 1, device_high = 1, device_cold = 1;
  // Device slots plus the host RAM tier (host cache of the NVMe tier), as
  // one cache of both capacities; 1 when every expert is in RAM.
  double device_and_host = 1;
  double device_and_host_cold = 1;  // from an empty cache
};

// `device_slots_per_layer` and `ram_slots_per_layer` count experts per MoE
// layer: the device slots, and device slots plus host-cache slots (n_expert
// or more when every expert is in host RAM).
absl::StatusOr<HitRateEstimate> EstimateHitRates(const HitRateModelShape& shape,
                                                 double device_slots_per_layer,
                                                 double ram_slots_per_layer,
                                                 const HitRateOptions& o);

// The Zipf/Che LRU hit rate and the static (most popular C) bound for one
// layer of n experts, k per token, C slots. Exposed for tests.
struct ZipfHitRates {
  double lru = 0;
  double top_c = 0;
};
ZipfHitRates ZipfLayerHitRates(int n_expert, int top_k, double capacity, double s);

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_HIT_RATE_MODEL_H_
