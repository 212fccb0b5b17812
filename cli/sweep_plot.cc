#include "cli/sweep_plot.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/atomic_file.h"
#include "base/status_macros.h"

namespace moestream::cli {
namespace {

// `values` in order of first appearance, each once.
std::vector<std::string> FirstSeen(const std::vector<trace::SweepPoint>& points,
                                   std::string trace::SweepPoint::*field) {
  std::vector<std::string> out;
  for (const trace::SweepPoint& p : points) {
    if (std::find(out.begin(), out.end(), p.*field) == out.end()) out.push_back(p.*field);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> PreparePlot(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--plot ", dir, ": cannot make a directory there: ",
        ec ? ec.message() : std::string("a file of that name exists")));
  }
  // The script ships in the source tree: look in the working directory, then
  // up from the executable (build trees live inside the source tree).
  std::string script;
  std::filesystem::path at = std::filesystem::current_path(ec);
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  for (std::filesystem::path d : {at, exe.parent_path()}) {
    for (; !d.empty() && script.empty(); d = d.parent_path()) {
      if (std::filesystem::exists(d / "tools/plot_sweep.gp", ec)) script = d / "tools/plot_sweep.gp";
      if (d == d.parent_path()) break;
    }
  }
  if (script.empty()) return absl::NotFoundError("tools/plot_sweep.gp not found for --plot");
  MOESTREAM_RETURN_IF_ERROR(CheckOutputPath(absl::StrCat(dir, "/plot.dat")));
  return script;
}

absl::Status PlotSweep(const std::string& dir, const std::vector<trace::SweepPoint>& points) {
  MOESTREAM_ASSIGN_OR_RETURN(std::string script, PreparePlot(dir));
  if (points.empty()) return absl::OkStatus();
  const std::string& predictor = points[0].predictor;
  const std::vector<std::string> policies = FirstSeen(points, &trace::SweepPoint::policy);
  for (const std::string& label : FirstSeen(points, &trace::SweepPoint::trace)) {
    std::string data;
    int blocks = 0;
    for (const std::string& pol : policies) {
      std::string block = absl::StrCat("\"", pol, "\"\n");
      bool any = false;
      for (const trace::SweepPoint& p : points) {
        if (p.trace != label || p.policy != pol || p.predictor != predictor) continue;
        absl::StrAppendFormat(&block, "x %.4f %.6f %.6f %.3f\n", p.capacity_pct, p.hit_rate,
                              p.min_hit_rate, p.stall_ms);
        any = true;
      }
      if (any) {
        data += block + "\n\n";
        ++blocks;
      }
    }
    const std::string base = absl::StrCat(dir, "/", label);
    MOESTREAM_RETURN_IF_ERROR(WriteFileAtomically(base + ".dat", data));
    const std::string cmd = absl::StrCat(
        "gnuplot -e \"n=", blocks, "; datafile='", base, ".dat'; title='", label, " (",
        predictor, ")'; out_hit='", base, "_hit_rate.png'; out_stall='", base, "_stall.png'\" ",
        script);
    if (std::system(cmd.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("gnuplot failed: ", cmd));
    }
  }
  return absl::OkStatus();
}

}  // namespace moestream::cli
