// `moestream replay`: one routing trace through the real expert cache with a
// simulated clock and link (trace/replay.h).
//
//   moestream replay --trace ../shared/data/qwen3-30b-a3b-route-trace
//       --policy lru --capacity 12.5% --per-layer --predictor coact --json
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/atomic_file.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "trace/replay.h"
#include "trace/trace_import.h"

namespace moestream::cli {
namespace {

class ReplayCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    trace::ReplayOptions& o = options_;
    app.add_option("-t,--trace", trace_path_, "trace file or directory (format detected)");
    app.add_option("-p,--policy", o.policy,
                   "eviction policy: lru, lfu[:decay=D], lfru[:recency=R], 2q, static[:frac=F], "
                   "layer, min");
    app.add_option("-c,--capacity", capacity_text_,
                   "experts per layer N, or N% of a layer's experts");
    app.add_flag("--per-layer", o.per_layer,
                 "one pool per layer (otherwise one global pool of N x layers)");
    app.add_option("--predictor", o.predictor,
                   "prefetch predictor: none, coact, prev, popularity, oracle (not gate: a "
                   "trace has no router scores)");
    app.add_option("--lookahead", o.lookahead,
                   "predict layers L+1..L+D and score each distance (default 1)");
    app.add_option("--profile", o.link, "link profile: pcie3x16, pcie4x16, pcie5x16, none");
    AddByteSizeOption(app, "--expert-bytes", &expert_bytes_,
                      "bytes per expert; 0 = from the trace, else 8M");
    app.add_flag("--sequential", o.sequential,
                 "request a step's experts one at a time (otherwise together)");
    app.add_option("--phase", o.phase, "cells to replay: decode, prefill, all");
    app.add_option("--layer-compute-us", o.layer_compute_us, "modelled compute per layer step");
    app.add_option("--popularity", popularity_path_,
                   "expert popularity for static (CSV or trace; empty = counted over the trace)");
    app.add_option("--export-csv", export_csv_, "also write the trace as CSV; - for standard output");
    app.add_flag("--no-min", no_min_, "skip the MIN run (min_hit_rate = 0)");
    app.add_flag("--json", json_, "print the result as one JSON object");
  }

  absl::Status Run() override;

 private:
  std::string trace_path_, capacity_text_, popularity_path_, export_csv_;
  trace::ReplayOptions options_;
  uint64_t expert_bytes_ = 0;
  bool json_ = false, no_min_ = false;
};

absl::Status ReplayCommand::Run() {
  trace::ReplayOptions& o = options_;
  const std::string& trace_path = trace_path_;
  const std::string& capacity_text = capacity_text_;
  const std::string& export_csv = export_csv_;
  const std::string& popularity_path = popularity_path_;
  if (trace_path.empty()) return absl::InvalidArgumentError("--trace is required");
  if (capacity_text.empty()) return absl::InvalidArgumentError("--capacity is required");
  if (!export_csv.empty()) {
    if (absl::Status s = CheckOutputPath(export_csv, /*stdout_ok=*/true); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--export-csv: ", s.message()));
    }
  }
  // Before the trace loads (a large one takes seconds).
  MOESTREAM_RETURN_IF_ERROR(trace::CheckReplayablePredictor(o.predictor));
  MOESTREAM_ASSIGN_OR_RETURN(trace::Trace trace, trace::LoadTrace(trace_path));
  if (!export_csv.empty()) MOESTREAM_RETURN_IF_ERROR(trace::WriteTraceCsv(trace, export_csv));
  MOESTREAM_ASSIGN_OR_RETURN(o.capacity,
                             trace::ParseCapacity(capacity_text, trace.shape.n_experts));
  o.expert_bytes = expert_bytes_;
  o.run_min = !no_min_;
  if (!popularity_path.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(o.popularity,
                               trace::LoadPopularity(popularity_path, trace.shape));
  }
  MOESTREAM_ASSIGN_OR_RETURN(trace::ReplayResult r, trace::Replay(trace, o));
  if (json_) {
    std::printf("%s\n", trace::ReplayResultJson(r).c_str());
    return absl::OkStatus();
  }
  std::printf("trace      %s (%s: %d layers x %d experts, top-%d)\n", trace_path.c_str(),
              trace.shape.source.c_str(), trace.shape.n_layers, trace.shape.n_experts,
              trace.shape.top_k);
  std::printf("cache      %d experts per layer (%s), policy %s, predictor %s, link %s\n",
              o.capacity, o.per_layer ? "per layer" : "global pool", r.policy.c_str(),
              r.predictor.c_str(), o.link.c_str());
  std::printf("accesses   %llu (%s phase)\n", (unsigned long long)r.accesses, o.phase.c_str());
  std::printf("hit rate   %.4f   MIN %.4f   ratio %.3f\n", r.hit_rate, r.min_hit_rate,
              r.min_hit_rate > 0 ? r.hit_rate / r.min_hit_rate : 0.0);
  std::printf("prefetch   precision %.4f  recall %.4f  (%llu issued, %llu used)\n",
              r.prefetch_precision, r.prefetch_recall, (unsigned long long)r.prefetch_issued,
              (unsigned long long)r.prefetch_hits);
  for (size_t d = 1; d < r.precision_by_distance.size(); ++d) {
    std::printf("  +%zu layers precision %.4f  recall %.4f\n", d + 1, r.precision_by_distance[d],
                r.recall_by_distance[d]);
  }
  std::printf("link       %.1f MiB\n", r.link_bytes / 1048576.0);
  std::printf("modelled   stall %.3f ms of %.3f ms, %.1f tokens/s (%llu tokens)\n",
              r.stall_ns / 1e6, r.modelled_ns / 1e6, r.modelled_tok_s,
              (unsigned long long)r.tokens);
  std::printf("replay     %.0f accesses/s\n", r.accesses_per_s);
  return absl::OkStatus();
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(replay, "replay a routing trace through the expert cache and a policy",
                           ReplayCommand);

}  // namespace moestream::cli
