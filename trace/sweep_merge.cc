// Sharded sweeps: parsing "I/N", and joining the shards' CSVs (sweep.h).
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "trace/csv.h"
#include "trace/sweep.h"

namespace moestream::trace {
namespace {

// Column positions in SweepCsvHeader().
enum Column {
  kTrace = 0,
  kPolicy = 1,
  kPredictor = 2,
  kHitRate = 7,
  kMinHitRate = 8,
  kStallMs = 13,
  kCapacityPct = 15,
  kRun = 16,
  kRuns = 17,
  kColumns = 18,
};

// Where a run was found: part index and line number.
struct Place {
  size_t part = 0;
  size_t line = 0;
};

absl::Status RowError(const SweepPart& part, size_t line, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(part.name, " line ", line, ": ", Av(what)));
}

// The lines of `text`, without their line breaks (LF or CRLF); no empty
// last line for a final line break.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

}  // namespace

absl::Status ParseShard(std::string_view text, int* shard, int* shards) {
  const size_t slash = text.find('/');
  int i = -1, n = 0;
  if (slash == std::string_view::npos || !absl::SimpleAtoi(Av(text.substr(0, slash)), &i) ||
      !absl::SimpleAtoi(Av(text.substr(slash + 1)), &n) ||
      n < 1 || n > kMaxShards || i < 0 || i >= n) {
    return absl::InvalidArgumentError(absl::StrCat("--shard '", Av(text),
                                                   "': expected I/N with 0 <= I < N <= ",
                                                   kMaxShards, " (e.g. 0/4)"));
  }
  *shard = i;
  *shards = n;
  return absl::OkStatus();
}

std::vector<SweepPoint> SweepPoints(const std::vector<std::string>& labels,
                                    const std::vector<SweepRun>& runs) {
  std::vector<SweepPoint> points;
  for (const SweepRun& run : runs) {
    points.push_back(SweepPoint{labels[run.trace], run.policy, run.predictor, run.capacity_pct,
                                run.result.hit_rate, run.result.min_hit_rate,
                                run.result.stall_ns / 1e6});
  }
  return points;
}

absl::StatusOr<MergedSweep> MergeSweepCsv(const std::vector<SweepPart>& parts) {
  if (parts.empty()) return absl::InvalidArgumentError("no parts given");
  struct Row {
    size_t run;
    std::string line;
    SweepPoint point;
  };
  std::vector<Row> rows;
  std::vector<Place> seen;         // by run index, valid where has[run]
  std::vector<uint8_t> has;
  size_t grid = 0;                 // runs in the grid, from the first row
  Place grid_from;
  for (size_t p = 0; p < parts.size(); ++p) {
    const SweepPart& part = parts[p];
    const std::vector<std::string_view> lines = Lines(part.csv);
    if (lines.empty() || lines[0] != SweepCsvHeader()) {
      return RowError(part, 1, absl::StrCat("not a sweep CSV (expected the header '",
                                            Av(SweepCsvHeader()), "')"));
    }
    for (size_t l = 1; l < lines.size(); ++l) {
      const size_t line_no = l + 1;
      const std::string_view line = lines[l];
      auto fields = SplitCsvRecord(line);
      if (!fields.ok()) return RowError(part, line_no, std::string(fields.status().message()));
      if (fields->size() != kColumns) {
        return RowError(part, line_no, absl::StrCat(fields->size(), " fields, expected ", int(kColumns)));
      }
      const std::vector<std::string>& f = *fields;
      uint64_t run = 0, runs = 0;
      if (!absl::SimpleAtoi(f[kRun], &run) || !absl::SimpleAtoi(f[kRuns], &runs) || runs == 0 ||
          runs > (uint64_t(1) << 32) || run >= runs) {
        return RowError(part, line_no, absl::StrCat("run '", f[kRun], "' of '", f[kRuns],
                                                    "' is not an index into a grid of that size"));
      }
      if (grid == 0) {
        grid = runs;
        grid_from = {p, line_no};
        has.assign(grid, 0);
        seen.resize(grid);
      } else if (runs != grid) {
        return RowError(part, line_no,
                        absl::StrCat("a grid of ", runs, " runs, but ", parts[grid_from.part].name,
                                     " line ", grid_from.line, " has ", grid,
                                     " (parts of different sweeps)"));
      }
      if (has[run]) {
        const Place& o = seen[run];
        return RowError(part, line_no,
                        absl::StrCat("run ", run, " is also in ", parts[o.part].name, " line ",
                                     o.line, " (the parts overlap)"));
      }
      has[run] = 1;
      seen[run] = {p, line_no};
      SweepPoint pt;
      pt.trace = f[kTrace];
      pt.policy = f[kPolicy];
      pt.predictor = f[kPredictor];
      if (!absl::SimpleAtod(f[kCapacityPct], &pt.capacity_pct) ||
          !absl::SimpleAtod(f[kHitRate], &pt.hit_rate) ||
          !absl::SimpleAtod(f[kMinHitRate], &pt.min_hit_rate) ||
          !absl::SimpleAtod(f[kStallMs], &pt.stall_ms)) {
        return RowError(part, line_no, "a number field (capacity_pct, hit_rate, min_hit_rate, "
                                       "stall_ms) does not parse");
      }
      rows.push_back(Row{size_t(run), std::string(line), std::move(pt)});
    }
  }
  if (grid == 0) return absl::InvalidArgumentError("the parts hold no runs");
  if (rows.size() != grid) {
    size_t first = 0;
    while (first < grid && has[first]) ++first;
    return absl::InvalidArgumentError(
        absl::StrCat(grid - rows.size(), " of the grid's ", grid,
                     " runs are in no part (first missing: run ", first,
                     "); give the CSV of every shard"));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.run < b.run; });
  MergedSweep merged;
  merged.csv = absl::StrCat(Av(SweepCsvHeader()), "\n");
  for (Row& r : rows) {
    absl::StrAppend(&merged.csv, r.line, "\n");
    merged.points.push_back(std::move(r.point));
  }
  return merged;
}

}  // namespace moestream::trace
