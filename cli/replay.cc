// `moestream replay`: one routing trace through the real expert cache with a
// simulated clock and link (trace/replay.h).
//
//   moestream replay --trace ../shared/data/qwen3-30b-a3b-route-trace
//       --policy lru --capacity 12.5% --per-layer --predictor coact --json
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "trace/replay.h"
#include "trace/trace_import.h"

namespace moestream::cli {
namespace {

absl::Status Run(const std::vector<std::string>& args, bool* help) {
  FlagParser p("replay");
  std::string trace_path, capacity_text, popularity_path, export_csv;
  trace::ReplayOptions o;
  double compute_us = o.layer_compute_us;
  bool json = false, no_min = false;
  uint64_t expert_bytes = 0;
  p.String("trace", 't', "T", "trace file or directory (format detected)", &trace_path);
  p.String("policy", 'p', "SPEC", "eviction policy: lru, lfu[:decay=D], lfru[:recency=R], 2q, "
           "static[:frac=F], layer, min", &o.policy);
  p.String("capacity", 'c', "N[%]", "experts per layer (or % of a layer's experts)",
           &capacity_text);
  p.Bool("per-layer", "one pool per layer (default: one global pool of N x layers)",
         &o.per_layer);
  p.String("predictor", 0, "SPEC", "prefetch predictor: none, gate, coact, prev, popularity, "
           "oracle", &o.predictor);
  p.String("profile", 0, "LINK", "link profile: pcie3x16, pcie4x16, pcie5x16, none", &o.link);
  p.Bytes("expert-bytes", "B", "bytes per expert (default: from the trace, else 8M)",
          &expert_bytes);
  p.Bool("sequential", "request a step's experts one at a time (default: together)",
         &o.sequential);
  p.String("phase", 0, "PHASE", "cells to replay: decode (default), prefill, all", &o.phase);
  p.Double("layer-compute-us", 0, "US", "modelled compute per layer step (default 100)",
           &compute_us);
  p.String("popularity", 0, "FILE", "expert popularity for static (CSV or trace; default: "
           "counted over the trace)", &popularity_path);
  p.String("export-csv", 0, "FILE", "also write the trace as CSV", &export_csv);
  p.Bool("no-min", "skip the MIN run (min_hit_rate = 0)", &no_min);
  p.Bool("json", "print the result as one JSON object", &json);
  MOESTREAM_RETURN_IF_ERROR(p.Parse(args));
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    *help = true;
    return absl::OkStatus();
  }
  if (trace_path.empty()) return absl::InvalidArgumentError("--trace is required");
  if (capacity_text.empty()) return absl::InvalidArgumentError("--capacity is required");
  MOESTREAM_ASSIGN_OR_RETURN(trace::Trace trace, trace::LoadTrace(trace_path));
  if (!export_csv.empty()) MOESTREAM_RETURN_IF_ERROR(trace::WriteTraceCsv(trace, export_csv));
  MOESTREAM_ASSIGN_OR_RETURN(o.capacity,
                             trace::ParseCapacity(capacity_text, trace.shape.n_experts));
  o.expert_bytes = expert_bytes;
  o.layer_compute_us = compute_us;
  o.run_min = !no_min;
  if (!popularity_path.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(o.popularity,
                               trace::LoadPopularity(popularity_path, trace.shape));
  }
  MOESTREAM_ASSIGN_OR_RETURN(trace::ReplayResult r, trace::Replay(trace, o));
  if (json) {
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
  std::printf("link       %.1f MiB\n", r.link_bytes / 1048576.0);
  std::printf("modelled   stall %.3f ms of %.3f ms, %.1f tokens/s (%llu tokens)\n",
              r.stall_ns / 1e6, r.modelled_ns / 1e6, r.modelled_tok_s,
              (unsigned long long)r.tokens);
  std::printf("replay     %.0f accesses/s\n", r.accesses_per_s);
  return absl::OkStatus();
}

int RunReplay(std::vector<std::string> args) {
  bool help = false;
  absl::Status s = Run(args, &help);
  if (!s.ok()) return ReportError("replay", s);
  return 0;
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(replay, "replay a routing trace through the expert cache and a policy",
                           RunReplay);

}  // namespace moestream::cli
