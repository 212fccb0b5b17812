// `moestream sweep`: a grid of policies x capacities x predictors over one or
// more traces, replayed on all cores (trace/sweep.h), written as CSV and
// optionally plotted with gnuplot (tools/plot_sweep.gp).
//
//   moestream sweep --trace A --trace B --policy lru --policy lfu:decay=0.9,period=10
//       --capacities 12.5%,25%,50% --predictor none --predictor coact -o sweep.csv --plot plots -j 2
//   moestream sweep ... --shard 3/8 -o part3.csv     (one of 8 disjoint parts; see sweep-merge)
//
// --policy, --predictor and --trace repeat, one whole spec each; the list
// flags --policies and --predictors split with trace::SplitSpecList, so a
// spec's own options may follow commas there too.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/atomic_file.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/sweep_plot.h"
#include "trace/sweep.h"
#include "trace/trace_import.h"

namespace moestream::cli {
namespace {

class SweepCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app_ = &app;
    // The repeatable flags start empty; an empty default says nothing in --help.
    app.add_option("-t,--trace", trace_paths_, "trace file or directory (repeatable)")
        ->take_all()
        ->default_str("");
    app.add_option("--policy", policies_, "eviction policy spec (repeatable; default: --policies)")
        ->take_all()
        ->default_str("");
    app.add_option("--policies", policies_list_,
                   "comma-separated policy specs (options of a spec may follow commas)");
    app.add_option("--capacities", capacities_list_,
                   "comma-separated capacities per layer (N or N%)");
    app.add_option("--predictor", predictors_,
                   "prefetch predictor spec (repeatable; default: --predictors)")
        ->take_all()
        ->default_str("");
    app.add_option("--predictors", predictors_list_, "comma-separated predictor specs");
    app.add_option("-o,--output", out_, "CSV to write; - for standard output");
    app.add_option("--plot", plot_dir_, "write PNG plots per trace with gnuplot into DIR");
    app.add_option("-j,--jobs", jobs_, "parallel replays; 0 = all cores");
    app.add_flag("--global", global_, "one global pool (otherwise per-layer pools)");
    app.add_flag("--sequential", options_.base.sequential, "request a step's experts one at a time");
    app.add_option("--profile", options_.base.link, "link profile");
    app.add_option("--phase", options_.base.phase, "decode, prefill or all");
    app.add_option("--lookahead", options_.base.lookahead,
                   "layers each predictor guesses ahead (default 1)");
    app.add_option("--shard", shard_,
                   "run only part I of N disjoint parts of the grid (I/N, 0 <= I < N); "
                   "join the parts' CSVs with sweep-merge");
  }

  absl::Status Run() override {
    if (trace_paths_.empty()) return absl::InvalidArgumentError("--trace is required");
    if (out_.empty()) return absl::InvalidArgumentError("-o OUT.csv is required");
    if (app_->count("--policy") > 0 && app_->count("--policies") > 0) {
      return absl::InvalidArgumentError("give --policy or --policies, not both");
    }
    if (app_->count("--predictor") > 0 && app_->count("--predictors") > 0) {
      return absl::InvalidArgumentError("give --predictor or --predictors, not both");
    }
    if (jobs_ < 0 || jobs_ > trace::kMaxSweepThreads) {
      return absl::InvalidArgumentError(absl::StrCat("--jobs ", jobs_, " is out of range 0..",
                                                     trace::kMaxSweepThreads, " (0 = one per core)"));
    }
    options_.policies =
        app_->count("--policy") > 0 ? policies_ : trace::SplitSpecList(policies_list_);
    options_.predictors =
        app_->count("--predictor") > 0 ? predictors_ : trace::SplitSpecList(predictors_list_);
    options_.capacities = absl::StrSplit(capacities_list_, ',', absl::SkipEmpty());
    options_.base.per_layer = !global_;
    options_.threads = static_cast<int>(jobs_);
    if (!shard_.empty()) {
      MOESTREAM_RETURN_IF_ERROR(trace::ParseShard(shard_, &options_.shard, &options_.shards));
    }
    MOESTREAM_RETURN_IF_ERROR(options_.Validate());
    // Where the results go is checked before the grid runs.
    if (absl::Status s = CheckOutputPath(out_, /*stdout_ok=*/true); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("-o: ", s.message()));
    }
    if (!plot_dir_.empty()) MOESTREAM_RETURN_IF_ERROR(PreparePlot(plot_dir_).status());

    std::vector<trace::Trace> traces;
    std::vector<std::string> labels;
    for (const std::string& path : trace_paths_) {
      MOESTREAM_ASSIGN_OR_RETURN(trace::Trace t, trace::LoadTrace(path));
      traces.push_back(std::move(t));
      labels.push_back(trace::TraceLabel(path));
    }
    MOESTREAM_ASSIGN_OR_RETURN(std::vector<trace::SweepRun> runs,
                               trace::RunSweep(traces, options_));
    MOESTREAM_RETURN_IF_ERROR(
        WriteOutput(out_, trace::SweepCsv(labels, runs, options_.base.per_layer)));
    std::fprintf(out_ == kStdoutPath ? stderr : stdout,
                 "sweep: %zu replays over %zu traces on %d threads%s -> %s\n", runs.size(),
                 traces.size(), std::min<int>(trace::SweepThreads(options_), int(runs.size())),
                 shard_.empty() ? "" : absl::StrCat(" (shard ", shard_, ")").c_str(),
                 out_.c_str());
    if (!plot_dir_.empty()) {
      MOESTREAM_RETURN_IF_ERROR(PlotSweep(plot_dir_, trace::SweepPoints(labels, runs)));
      std::printf("sweep: plots in %s\n", plot_dir_.c_str());
    }
    return absl::OkStatus();
  }

 private:
  const CLI::App* app_ = nullptr;  // to tell which of the list flags were given
  std::vector<std::string> trace_paths_;
  std::vector<std::string> policies_, predictors_;
  std::string policies_list_ = "lru,lfu,lfru,2q,static,layer,predict,tinylfu,shift,markov,min";
  std::string capacities_list_ = "12.5%,25%,50%";
  std::string predictors_list_ = "none";
  std::string out_, plot_dir_, shard_;
  int64_t jobs_ = 0;
  bool global_ = false;
  trace::SweepOptions options_;
};

}  // namespace

MOESTREAM_REGISTER_COMMAND(sweep,
                           "replay a grid of policies, capacities and predictors over traces",
                           SweepCommand);

}  // namespace moestream::cli
