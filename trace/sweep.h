// A sweep: every (trace, capacity, policy, predictor) combination of a grid
// replayed through the expert cache (replay.h), on a pool of threads, and
// the results as a CSV table. `moestream sweep` is its command line.
//
//   SweepOptions o;
//   o.policies = {"lru", "lfu:decay=0.9,period=10"};
//   o.capacities = {"12.5%", "25%"};
//   o.predictors = {"none", "coact"};
//   MOESTREAM_ASSIGN_OR_RETURN(std::vector<SweepRun> runs, RunSweep(traces, o));
//   std::string csv = SweepCsv(labels, runs, o.base.per_layer);
#ifndef MOESTREAM_TRACE_SWEEP_H_
#define MOESTREAM_TRACE_SWEEP_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "trace/replay.h"
#include "trace/trace.h"

namespace moestream::trace {

// Most replays a sweep runs at once.
inline constexpr int kMaxSweepThreads = 1024;
// Most parts a sweep's grid can be cut into.
inline constexpr int kMaxShards = 100000;

struct SweepOptions {
  // The grid. Each entry is one whole spec (a spec may contain commas).
  std::vector<std::string> policies;    // eviction policy specs
  std::vector<std::string> capacities;  // experts per layer, "N" or "N%"
  std::vector<std::string> predictors;  // prefetch predictor specs
  // Everything else of each replay (link, phase, per_layer, sequential, ...);
  // its policy, predictor and capacity are overwritten per run.
  ReplayOptions base;
  int threads = 0;  // replays at once; 0 = one per core; at most kMaxSweepThreads
  // Run only part `shard` of `shards` disjoint parts of the grid: the runs
  // whose grid index i has i % shards == shard (round robin, so every part
  // gets a share of each trace and capacity). 0 of 1 = the whole grid.
  int shard = 0;
  int shards = 1;
  // kInvalidArgument for an empty grid dimension, a thread count outside
  // 0..kMaxSweepThreads, a shard outside 0 <= shard < shards <= kMaxShards,
  // or a predictor a trace cannot drive (CheckReplayablePredictor).
  absl::Status Validate() const;
};

// One replay of the grid.
struct SweepRun {
  size_t trace = 0;           // index into the traces given to RunSweep
  std::string policy;
  std::string predictor;
  std::string capacity_text;  // as given ("12.5%" or "4")
  int capacity = 0;           // experts per layer
  double capacity_pct = 0;    // of a layer's experts
  ReplayResult result;
  size_t index = 0;           // position in the whole grid (all shards)
  size_t grid_size = 0;       // runs in the whole grid
};

// Replays the grid over every trace, ordered trace, capacity, policy,
// predictor (options.shard's part of it). The first failing replay's error
// names its trace index, policy, predictor and capacity.
absl::StatusOr<std::vector<SweepRun>> RunSweep(const std::vector<Trace>& traces,
                                               const SweepOptions& options);

// Replays at once for `options.threads` (0 = one per core).
int SweepThreads(const SweepOptions& options);

// The CSV table, header first, one row per run; `labels[run.trace]` names
// the trace. Columns: trace, policy, predictor, capacity, capacity_experts,
// per_layer, accesses, hit_rate, min_hit_rate, ratio_to_min,
// prefetch_precision, prefetch_recall, link_bytes, stall_ms, modelled_tok_s,
// capacity_pct, run, runs (the run's grid index and the grid's size, which
// let MergeSweepCsv check that shards fit together).
std::string SweepCsv(const std::vector<std::string>& labels, const std::vector<SweepRun>& runs,
                     bool per_layer);
// Its header line, without the line break.
std::string_view SweepCsvHeader();

// "I/N" -> shard I of N (0 <= I < N <= kMaxShards); kInvalidArgument naming
// the text otherwise.
absl::Status ParseShard(std::string_view text, int* shard, int* shards);

// What a plot needs of one run, from a sweep or from a merged CSV.
struct SweepPoint {
  std::string trace;  // label
  std::string policy;
  std::string predictor;
  double capacity_pct = 0;
  double hit_rate = 0;
  double min_hit_rate = 0;
  double stall_ms = 0;
};
std::vector<SweepPoint> SweepPoints(const std::vector<std::string>& labels,
                                    const std::vector<SweepRun>& runs);

// One part of a sharded sweep: the file's name (for errors) and its text.
struct SweepPart {
  std::string name;
  std::string csv;
};
struct MergedSweep {
  std::string csv;                 // header, then every run in grid order
  std::vector<SweepPoint> points;  // the same rows, for plots
};
// Joins the CSVs of a sweep's shards into the whole grid's CSV. Each part
// must be a sweep CSV (this header), every row must agree on the grid size,
// no run may appear twice (kInvalidArgument naming both places) and every
// run of the grid must be present (kInvalidArgument naming how many are
// missing and the first). Parts may come in any order.
absl::StatusOr<MergedSweep> MergeSweepCsv(const std::vector<SweepPart>& parts);

// A comma-separated list of specs split into specs, where a spec's own
// options also follow commas: "lru,lfu:decay=0.9,period=10,2q" -> {"lru",
// "lfu:decay=0.9,period=10", "2q"}. Unambiguous because a spec starts with a
// name, which holds no '=', while each option is key=value: a piece whose
// first '=' comes before any ':' continues the spec before it.
std::vector<std::string> SplitSpecList(std::string_view list);

// A short name for a trace path: its last component ("a/b/trace/" -> "trace").
std::string TraceLabel(const std::string& path);

}  // namespace moestream::trace

#endif  // MOESTREAM_TRACE_SWEEP_H_
