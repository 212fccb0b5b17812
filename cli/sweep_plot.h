// Plots of sweep results with gnuplot (tools/plot_sweep.gp), shared by
// `moestream sweep --plot` and `moestream sweep-merge --plot`: per trace,
// hit rate and modelled stall against capacity, one line per policy, MIN as
// the ceiling.
//
//   MOESTREAM_RETURN_IF_ERROR(PreparePlot(dir).status());   // before the long work
//   MOESTREAM_RETURN_IF_ERROR(PlotSweep(dir, points));
#ifndef MOESTREAM_CLI_SWEEP_PLOT_H_
#define MOESTREAM_CLI_SWEEP_PLOT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trace/sweep.h"

namespace moestream::cli {

// Makes the plot directory and finds the gnuplot script: the script's path,
// or an error naming what is missing.
absl::StatusOr<std::string> PreparePlot(const std::string& dir);

// Writes DIR/<trace>.dat, DIR/<trace>_hit_rate.png and DIR/<trace>_stall.png
// for every trace among `points`, in order of first appearance; each plot
// draws the policies (in order of first appearance) with the first point's
// predictor.
absl::Status PlotSweep(const std::string& dir, const std::vector<trace::SweepPoint>& points);

}  // namespace moestream::cli

#endif  // MOESTREAM_CLI_SWEEP_PLOT_H_
