// The flags every model-running command shares (backend, threads, KV cache,
// context, batch, and expert offloading), turned into the options of
// engine::LoadModel. `run` and `bench` use them. Offloading is on when
// --device-budget or --experts-on is given: the routed experts are then not
// uploaded, and a engine::CachedExpertProvider streams them through the
// device expert cache (engine::LoadOptions::provider_factory).
//
//   EngineFlags ef;                      // in a Command's Register(CLI::App& app):
//   ef.Register(app);                    // -m, --backend, -t, ..., --device-budget, ...
//   ...                                  // and once parsed, in its Run():
//   engine::CachedExpertProvider* offload = nullptr;   // set when offloading
//   MOESTREAM_ASSIGN_OR_RETURN(auto m, LoadModel(ef, engine::LoadOptions{}, &offload));
//   engine::OffloadStats before = offload->stats();
//   m->engine->Process(...);
//   OffloadReport r = MakeOffloadReport(*m, ef, offload->stats().Minus(before), step_ms);
#ifndef MOESTREAM_CLI_ENGINE_FLAGS_H_
#define MOESTREAM_CLI_ENGINE_FLAGS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "engine/cached_expert_provider.h"
#include "engine/engine.h"
#include "engine/expert_provider.h"
#include "engine/session.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"

namespace moestream::cli {

// One field per flag; Register() binds each to its flag, and the field's
// initial value is the default --help shows.
struct EngineFlags {
  std::string model;             // -m: GGUF path (required)
  std::string backend = "auto";  // --backend cpu|cuda|auto
  int64_t threads = 0;           // -t: compute threads (cpu); 0 = one per core
  std::string kv_type = "f32";   // --kv-type f32|f16
  int64_t ctx = 0;               // --ctx: KV positions; 0 = model context capped at 4096
  int64_t batch = 512;           // --batch: most tokens per forward chunk
  std::string isa = "auto";      // --isa auto|scalar|avx2|avx512 (cpu kernels)
  // Offloading.
  uint64_t device_budget = 0;    // --device-budget: device bytes (0 = none; resident run)
  bool device_budget_given = false;  // the flag was on the command line (0 is then an error)
  std::string offload_flag_given;    // the first offloading-only flag given (an error without offloading)
  uint64_t host_budget = 0;      // --host-budget: pinned host bytes (0 = unlimited)
  std::string experts_on;        // --experts-on host|nvme|auto ("" = auto when offloading)
  std::string store;             // --store: packed expert store of the model
  std::string link = "none";     // --link: the cpu backend's link profile
  std::string cache_policy = "lru";  // --cache-policy SPEC
  std::string host_cache_policy = "lru";  // --host-cache-policy SPEC
  std::string prefetch = "gate";     // --prefetch none|gate
  int prefetch_lookahead = 1;        // --prefetch-lookahead N (layers ahead)
  std::string lookahead_predictor = "coact";  // --lookahead-predictor SPEC
  double prefetch_min_confidence = 0.5;       // --prefetch-min-confidence X
  int staging_buffers = 0;           // --staging-buffers N (0 = 2 x top-k, 4..32)
  int reads_in_flight = 0;           // --reads-in-flight N (0 = as staging)
  int copies_in_flight = 0;          // --copies-in-flight N (0 = as staging, at most 16)
  std::string miss_policy = "copy";  // --miss-policy copy|host|auto
  // Not a flag: the command keeps every token's logits (run --dump-logits).
  bool all_logits = false;

  void Register(CLI::App& app);
  // kInvalidArgument naming the flag.
  absl::StatusOr<kernels::BackendOptions> BackendOptions() const;
  absl::StatusOr<engine::EngineOptions> EngineOptions() const;
  bool offload() const { return device_budget > 0 || !experts_on.empty(); }
  absl::StatusOr<engine::OffloadOptions> OffloadOptions() const;
};

// engine::LoadModel with the flags' options. When the flags ask for
// offloading, `offload` (if given) receives the provider (owned by the
// returned model); otherwise it is set to null.
absl::StatusOr<std::unique_ptr<engine::LoadedModel>> LoadModel(
    const EngineFlags& f, const engine::LoadOptions& o,
    engine::CachedExpertProvider** offload = nullptr);

// LoadModel for `sequences` engines decoding together (the server's slots,
// bench --sequences): with offloading and a device budget, the expert cache
// is planned for what the budget keeps after the other engines' KV caches
// and activations and the first engine's logits row per sequence (the
// model's own engine is in the plan already). kResourceExhausted naming
// `flag` when those leave nothing.
absl::StatusOr<std::unique_ptr<engine::LoadedModel>> LoadModelForSequences(
    const EngineFlags& f, const model::ModelConfig& config, int sequences, std::string_view flag,
    bool verbose, engine::CachedExpertProvider** offload);

// What offloading did over a measured window (a run, or bench's decode
// phase), as the run summary and the JSON of `run` and `bench` report it.
//
//   step time      = wall time of the window (step_ms)
//   stall time     = time the engine thread blocked waiting for experts
//                    (ExpertCache stall_ns: Wait and waiting for a slot)
//   compute time   = step time - stall time (everything the engine thread
//                    did: dense path, expert FFNs, host-computed experts)
//   transfer time  = the wall time during which the loader was moving bytes:
//                    reading from the tier (NVMe) or copying over the link
//                    (modelled latency included); a read and a copy that
//                    overlap count once (OffloadStats::transfer_ns). The
//                    link's own busy time is reported beside it.
//   overlap_efficiency = step time / max(compute time, transfer time)
//                    (1.0 = transfers fully hidden behind compute or vice
//                    versa; 2.0 = they ran back to back)
struct OffloadReport {
  engine::OffloadStats stats;
  double step_ms = 0;
  uint64_t device_budget_bytes = 0;
  uint64_t device_high_water_bytes = 0;
  uint64_t host_budget_bytes = 0;  // 0 = unlimited
  uint64_t host_high_water_bytes = 0;
  std::string describe;  // the provider's one-line description
  int64_t tokens = 0;    // tokens processed in the window (bytes per token)

  double stall_ms() const { return stats.cache.stall_ns / 1e6; }
  double transfer_ms() const { return stats.transfer_ns / 1e6; }
  double link_busy_ms() const { return stats.link.busy_ns / 1e6; }
  // Bytes per token of the window from tier t, or over the link (t = -1).
  double BytesPerToken(int t) const;
  double compute_ms() const { return step_ms - stall_ms(); }
  double overlap_efficiency() const;
  // Adds "hit_rate", ..., "host_high_water_bytes" to the JSON object `out`.
  void AddJsonFields(nlohmann::ordered_json& out) const;
  std::string Text() const;  // multi-line summary for stderr
};

OffloadReport MakeOffloadReport(const engine::LoadedModel& m, const EngineFlags& f,
                                const engine::CachedExpertProvider& p,
                                const engine::OffloadStats& window, double step_ms,
                                int64_t tokens);

}  // namespace moestream::cli

#endif  // MOESTREAM_CLI_ENGINE_FLAGS_H_
