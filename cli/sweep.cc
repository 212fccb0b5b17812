// `moestream sweep`: a grid of policies x capacities x predictors over one or
// more traces, replayed on all cores (trace/replay.h), written as CSV and
// optionally plotted with gnuplot (tools/plot_sweep.gp).
//
//   moestream sweep --trace A --trace B --policies lru,lfu,min
//       --capacities 12.5%,25%,50% --predictors none,coact -o sweep.csv --plot plots -j 2
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "trace/replay.h"
#include "trace/trace_import.h"

namespace moestream::cli {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipEmpty())) out.emplace_back(p);
  return out;
}

struct Job {
  size_t trace;
  std::string policy, predictor, capacity_text;
  int capacity;
  absl::StatusOr<trace::ReplayResult> result = absl::UnknownError("not run");
};

std::string TraceLabel(const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  return std::filesystem::path(p).filename().string();
}

double Pct(const std::string& text, int capacity, int n_experts) {
  return text.back() == '%' ? std::strtod(text.c_str(), nullptr) : 100.0 * capacity / n_experts;
}

absl::Status Plot(const std::string& dir, const std::vector<std::string>& labels,
                  const std::vector<trace::Trace>& traces, const std::vector<Job>& jobs,
                  const std::vector<std::string>& policies, const std::string& predictor) {
  std::filesystem::create_directories(dir);
  // The script ships in the source tree: look in the working directory, then
  // up from the executable (build trees live inside the source tree).
  std::string script;
  std::error_code ec;
  std::filesystem::path at = std::filesystem::current_path(ec);
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  for (std::filesystem::path d : {at, exe.parent_path()}) {
    for (; !d.empty() && script.empty(); d = d.parent_path()) {
      if (std::filesystem::exists(d / "tools/plot_sweep.gp")) script = d / "tools/plot_sweep.gp";
      if (d == d.parent_path()) break;
    }
  }
  if (script.empty()) return absl::NotFoundError("tools/plot_sweep.gp not found for --plot");
  for (size_t t = 0; t < traces.size(); ++t) {
    std::string data;
    int blocks = 0;
    for (const std::string& pol : policies) {
      std::string block = absl::StrCat("\"", pol, "\"\n");
      bool any = false;
      for (const Job& j : jobs) {
        if (j.trace != t || j.policy != pol || j.predictor != predictor || !j.result.ok()) continue;
        absl::StrAppendFormat(&block, "x %.4f %.6f %.6f %.3f\n",
                              Pct(j.capacity_text, j.capacity, traces[t].shape.n_experts),
                              j.result->hit_rate, j.result->min_hit_rate,
                              j.result->stall_ns / 1e6);
        any = true;
      }
      if (any) {
        data += block + "\n\n";
        ++blocks;
      }
    }
    std::string base = absl::StrCat(dir, "/", labels[t]);
    std::ofstream(base + ".dat") << data;
    std::string cmd = absl::StrCat("gnuplot -e \"n=", blocks, "; datafile='", base, ".dat'; title='", labels[t],
                                   " (", predictor, ")'; out_hit='", base, "_hit_rate.png'; out_stall='",
                                   base, "_stall.png'\" ", script);
    if (std::system(cmd.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("gnuplot failed: ", cmd));
    }
  }
  return absl::OkStatus();
}

absl::Status Run(const std::vector<std::string>& args) {
  FlagParser p("sweep");
  std::vector<std::string> trace_paths;
  std::string trace_path, policies_s = "lru,lfu,lfru,2q,static,layer,min",
                          capacities_s = "12.5%,25%,50%", predictors_s = "none", out, plot_dir;
  int64_t jobs_n = 0;
  trace::ReplayOptions base;
  bool global = false;
  p.String("trace", 't', "T", "trace file or directory (repeatable)", &trace_path);
  p.String("policies", 0, "LIST", "comma-separated policy specs", &policies_s);
  p.String("capacities", 0, "LIST", "comma-separated capacities per layer (N or N%)",
           &capacities_s);
  p.String("predictors", 0, "LIST", "comma-separated predictor specs", &predictors_s);
  p.String("output", 'o', "OUT.csv", "CSV to write", &out);
  p.String("plot", 0, "DIR", "write PNG plots per trace with gnuplot", &plot_dir);
  p.Int("jobs", 'j', "N", "parallel replays (default: all cores)", &jobs_n);
  p.Bool("global", "one global pool (default: per-layer pools)", &global);
  p.Bool("sequential", "request a step's experts one at a time", &base.sequential);
  p.String("profile", 0, "LINK", "link profile (default pcie4x16)", &base.link);
  p.String("phase", 0, "PHASE", "decode (default), prefill, all", &base.phase);
  // Repeated --trace: the parser keeps the last; collect them from args.
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--trace" || args[i] == "-t") && i + 1 < args.size()) {
      trace_paths.push_back(args[i + 1]);
    } else if (args[i].rfind("--trace=", 0) == 0) {
      trace_paths.push_back(args[i].substr(8));
    }
  }
  std::vector<std::string> filtered;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--trace" || args[i] == "-t") && i + 1 < args.size()) {
      ++i;
      continue;
    }
    if (args[i].rfind("--trace=", 0) == 0) continue;
    filtered.push_back(args[i]);
  }
  MOESTREAM_RETURN_IF_ERROR(p.Parse(filtered));
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    return absl::OkStatus();
  }
  if (trace_paths.empty()) return absl::InvalidArgumentError("--trace is required");
  if (out.empty()) return absl::InvalidArgumentError("-o OUT.csv is required");
  base.per_layer = !global;
  std::vector<std::string> policies = SplitList(policies_s), capacities = SplitList(capacities_s),
                           predictors = SplitList(predictors_s);
  std::vector<trace::Trace> traces;
  std::vector<std::string> labels;
  for (const auto& tp : trace_paths) {
    MOESTREAM_ASSIGN_OR_RETURN(trace::Trace t, trace::LoadTrace(tp));
    traces.push_back(std::move(t));
    labels.push_back(TraceLabel(tp));
  }
  std::vector<Job> jobs;
  for (size_t t = 0; t < traces.size(); ++t) {
    for (const auto& c : capacities) {
      MOESTREAM_ASSIGN_OR_RETURN(int cap, trace::ParseCapacity(c, traces[t].shape.n_experts));
      for (const auto& pol : policies) {
        for (const auto& pred : predictors) jobs.push_back(Job{t, pol, pred, c, cap});
      }
    }
  }
  int n_threads = jobs_n > 0 ? int(jobs_n) : int(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < n_threads; ++i) {
    pool.emplace_back([&] {
      for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
        trace::ReplayOptions o = base;
        o.policy = jobs[j].policy;
        o.predictor = jobs[j].predictor;
        o.capacity = jobs[j].capacity;
        jobs[j].result = trace::Replay(traces[jobs[j].trace], o);
      }
    });
  }
  for (auto& th : pool) th.join();
  std::string csv =
      "trace,policy,predictor,capacity,capacity_experts,per_layer,accesses,hit_rate,"
      "min_hit_rate,ratio_to_min,prefetch_precision,prefetch_recall,link_bytes,stall_ms,"
      "modelled_tok_s\n";
  for (const Job& j : jobs) {
    if (!j.result.ok()) {
      return absl::Status(j.result.status().code(),
                          absl::StrCat(labels[j.trace], " ", j.policy, " ", j.predictor, " ",
                                       j.capacity_text, ": ", j.result.status().message()));
    }
    const trace::ReplayResult& r = *j.result;
    absl::StrAppendFormat(&csv, "%s,%s,%s,%s,%d,%d,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%d,%.3f,%.3f\n",
                          labels[j.trace], j.policy, j.predictor, j.capacity_text, j.capacity,
                          base.per_layer ? 1 : 0, r.accesses, r.hit_rate, r.min_hit_rate,
                          r.min_hit_rate > 0 ? r.hit_rate / r.min_hit_rate : 0.0,
                          r.prefetch_precision, r.prefetch_recall, r.link_bytes, r.stall_ns / 1e6,
                          r.modelled_tok_s);
  }
  std::string tmp = absl::StrCat(out, ".tmp.", getpid());
  {
    std::ofstream f(tmp);
    f << csv;
    if (!f.good()) return absl::PermissionDeniedError(absl::StrCat("cannot write '", out, "'"));
  }
  std::filesystem::rename(tmp, out);
  std::printf("sweep: %zu replays over %zu traces on %d threads -> %s\n", jobs.size(),
              traces.size(), n_threads, out.c_str());
  if (!plot_dir.empty()) {
    MOESTREAM_RETURN_IF_ERROR(Plot(plot_dir, labels, traces, jobs, policies, predictors[0]));
    std::printf("sweep: plots in %s\n", plot_dir.c_str());
  }
  return absl::OkStatus();
}

int RunSweep(std::vector<std::string> args) {
  absl::Status s = Run(args);
  if (!s.ok()) return ReportError("sweep", s);
  return 0;
}

}  // namespace

MOESTREAM_REGISTER_COMMAND(sweep, "replay a grid of policies, capacities and predictors over traces",
                           RunSweep);

}  // namespace moestream::cli
