#include "trace/sweep.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "trace/csv.h"

namespace moestream::trace {

absl::Status SweepOptions::Validate() const {
  if (policies.empty()) return absl::InvalidArgumentError("sweep: no policy given");
  if (capacities.empty()) return absl::InvalidArgumentError("sweep: no capacity given");
  if (predictors.empty()) return absl::InvalidArgumentError("sweep: no predictor given");
  if (shards < 1 || shards > kMaxShards || shard < 0 || shard >= shards) {
    return absl::InvalidArgumentError(absl::StrCat("sweep: shard ", shard, "/", shards,
                                                   " is not I/N with 0 <= I < N <= ", kMaxShards));
  }
  if (threads < 0 || threads > kMaxSweepThreads) {
    return absl::InvalidArgumentError(absl::StrCat("sweep: --jobs ", threads, " is out of range 0..",
                                                   kMaxSweepThreads, " (0 = one per core)"));
  }
  for (const std::string& p : predictors) {
    if (absl::Status st = CheckReplayablePredictor(p); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("sweep: ", st.message()));
    }
  }
  return absl::OkStatus();
}

int SweepThreads(const SweepOptions& options) {
  return options.threads > 0 ? options.threads
                             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

absl::StatusOr<std::vector<SweepRun>> RunSweep(const std::vector<Trace>& traces,
                                               const SweepOptions& options) {
  MOESTREAM_RETURN_IF_ERROR(options.Validate());
  std::vector<SweepRun> runs;
  for (size_t t = 0; t < traces.size(); ++t) {
    const int n_experts = traces[t].shape.n_experts;
    for (const std::string& c : options.capacities) {
      MOESTREAM_ASSIGN_OR_RETURN(int capacity, ParseCapacity(c, n_experts));
      const double pct = !c.empty() && c.back() == '%' ? std::strtod(c.c_str(), nullptr)
                                                       : 100.0 * capacity / n_experts;
      for (const std::string& policy : options.policies) {
        for (const std::string& predictor : options.predictors) {
          runs.push_back(SweepRun{t, policy, predictor, c, capacity, pct, {}, 0, 0});
        }
      }
    }
  }
  // The whole grid is numbered; this shard keeps every shards-th run.
  const size_t grid_size = runs.size();
  std::vector<SweepRun> mine;
  for (size_t i = 0; i < grid_size; ++i) {
    if (i % size_t(options.shards) != size_t(options.shard)) continue;
    runs[i].index = i;
    runs[i].grid_size = grid_size;
    mine.push_back(std::move(runs[i]));
  }
  runs.swap(mine);
  // Each replay is independent and reads its trace only; results land in
  // their own slots, so the workers share nothing but the next index.
  std::vector<absl::Status> status(runs.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  // No more threads than replays; a failure to start one more is not fatal
  // while at least one runs.
  const int n_threads =
      int(std::min<size_t>(size_t(SweepThreads(options)), std::max<size_t>(runs.size(), 1)));
  for (int i = 0; i < n_threads; ++i) {
    auto work = [&] {
      for (size_t j; (j = next.fetch_add(1)) < runs.size();) {
        ReplayOptions o = options.base;
        o.policy = runs[j].policy;
        o.predictor = runs[j].predictor;
        o.capacity = runs[j].capacity;
        absl::StatusOr<ReplayResult> r = Replay(traces[runs[j].trace], o);
        if (r.ok()) {
          runs[j].result = *std::move(r);
        } else {
          status[j] = r.status();
        }
      }
    };
    try {
      pool.emplace_back(work);
    } catch (const std::system_error& e) {
      if (pool.empty()) {
        return absl::ResourceExhaustedError(absl::StrCat("sweep: cannot start a thread: ", e.what()));
      }
      break;
    }
  }
  for (std::thread& th : pool) th.join();
  for (size_t j = 0; j < runs.size(); ++j) {
    if (!status[j].ok()) {
      const SweepRun& r = runs[j];
      return absl::Status(status[j].code(),
                          absl::StrCat("trace ", r.trace, " policy '", r.policy, "' predictor '",
                                       r.predictor, "' capacity ", r.capacity_text, ": ",
                                       status[j].message()));
    }
  }
  return runs;
}

std::string_view SweepCsvHeader() {
  return "trace,policy,predictor,capacity,capacity_experts,per_layer,accesses,hit_rate,"
         "min_hit_rate,ratio_to_min,prefetch_precision,prefetch_recall,link_bytes,stall_ms,"
         "modelled_tok_s,capacity_pct,run,runs";
}

std::string SweepCsv(const std::vector<std::string>& labels, const std::vector<SweepRun>& runs,
                     bool per_layer) {
  std::string csv = absl::StrCat(Av(SweepCsvHeader()), "\n");
  for (const SweepRun& run : runs) {
    const ReplayResult& r = run.result;
    const double ratio = r.min_hit_rate > 0 ? r.hit_rate / r.min_hit_rate : 0.0;
    csv += CsvRow({labels[run.trace], run.policy, run.predictor, run.capacity_text,
                   absl::StrCat(run.capacity), per_layer ? "1" : "0", absl::StrCat(r.accesses),
                   absl::StrFormat("%.6f", r.hit_rate), absl::StrFormat("%.6f", r.min_hit_rate),
                   absl::StrFormat("%.6f", ratio), absl::StrFormat("%.6f", r.prefetch_precision),
                   absl::StrFormat("%.6f", r.prefetch_recall), absl::StrCat(r.link_bytes),
                   absl::StrFormat("%.3f", r.stall_ns / 1e6),
                   absl::StrFormat("%.3f", r.modelled_tok_s),
                   absl::StrFormat("%.4f", run.capacity_pct), absl::StrCat(run.index),
                   absl::StrCat(run.grid_size)});
  }
  return csv;
}

std::vector<std::string> SplitSpecList(std::string_view list) {
  std::vector<std::string> specs;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    const std::string_view piece = list.substr(start, comma - start);
    const size_t eq = piece.find('='), colon = piece.find(':');
    const bool option = eq != std::string_view::npos && (colon == std::string_view::npos || eq < colon);
    if (option && !specs.empty()) {
      absl::StrAppend(&specs.back(), ",", Av(piece));
    } else if (!piece.empty()) {
      specs.emplace_back(piece);
    }
    start = comma + 1;
  }
  return specs;
}

std::string TraceLabel(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return std::filesystem::path(p).filename().string();
}

}  // namespace moestream::trace
