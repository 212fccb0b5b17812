// `moestream sweep-merge`: joins the CSVs that `moestream sweep --shard I/N`
// wrote (one per part of the grid, e.g. one per Slurm array task or
// Kubernetes Job index) into the whole sweep's CSV, after checking that the
// parts are disjoint and complete (trace::MergeSweepCsv), and draws the
// same plots as `sweep --plot`.
//
//   moestream sweep-merge parts/*.csv -o sweep.csv --plot plots
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/sweep_plot.h"
#include "trace/sweep.h"

namespace moestream::cli {
namespace {

absl::StatusOr<std::string> ReadPart(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return text.str();
}

class SweepMergeCommand : public Command {
 public:
  void Register(CLI::App& app) override {
    app.add_option("parts", parts_, "the CSVs of every shard (sweep --shard I/N -o PART.csv)")
        ->take_all();
    app.add_option("-o,--output", out_, "merged CSV to write; - for standard output");
    app.add_option("--plot", plot_dir_, "write PNG plots per trace with gnuplot into DIR");
  }

  absl::Status Run() override {
    if (parts_.empty()) return absl::InvalidArgumentError("give the parts' CSV files");
    if (out_.empty()) return absl::InvalidArgumentError("-o OUT.csv is required");
    if (absl::Status s = CheckOutputPath(out_, /*stdout_ok=*/true); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("-o: ", s.message()));
    }
    if (!plot_dir_.empty()) MOESTREAM_RETURN_IF_ERROR(PreparePlot(plot_dir_).status());
    std::vector<trace::SweepPart> parts;
    for (const std::string& path : parts_) {
      MOESTREAM_ASSIGN_OR_RETURN(std::string text, ReadPart(path));
      parts.push_back(trace::SweepPart{path, std::move(text)});
    }
    MOESTREAM_ASSIGN_OR_RETURN(trace::MergedSweep merged, trace::MergeSweepCsv(parts));
    MOESTREAM_RETURN_IF_ERROR(WriteOutput(out_, merged.csv));
    std::fprintf(out_ == kStdoutPath ? stderr : stdout,
                 "sweep-merge: %zu runs from %zu parts -> %s\n", merged.points.size(),
                 parts.size(), out_.c_str());
    if (!plot_dir_.empty()) {
      MOESTREAM_RETURN_IF_ERROR(PlotSweep(plot_dir_, merged.points));
      std::printf("sweep-merge: plots in %s\n", plot_dir_.c_str());
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::string> parts_;
  std::string out_, plot_dir_;
};

// Registered by hand: the command's name is not an identifier.
const CommandRegistrar kRegistrar(
    "sweep-merge", "join the CSVs of a sharded sweep (sweep --shard I/N) and plot them",
    []() -> std::unique_ptr<Command> { return std::make_unique<SweepMergeCommand>(); });

}  // namespace
}  // namespace moestream::cli
