#include "trace/sweep.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "trace/csv.h"

namespace moestream::trace {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Two layers of four experts, top-2, one decode step per token.
Trace SmallTrace() {
  Trace t;
  t.shape.source = "test";
  t.shape.n_layers = 2;
  t.shape.n_experts = 4;
  t.shape.top_k = 2;
  t.shape.layer_ids = {0, 1};
  const int32_t routes[][2] = {{0, 1}, {2, 3}, {0, 2}, {1, 3}, {0, 1}, {2, 3}};
  for (uint32_t tok = 0; tok < 3; ++tok) {
    for (uint16_t layer = 0; layer < 2; ++layer) {
      TraceCell c;
      c.seq = 0;
      c.step = tok;
      c.pos = tok;
      c.layer = layer;
      c.phase = Phase::kDecode;
      const int32_t* ids = routes[tok * 2 + layer];
      const std::vector<int32_t> e = {ids[0], ids[1]};
      const std::vector<float> w = {0.6f, 0.4f};
      t.AddCell(c, e, w);
    }
  }
  return t;
}

TEST(SplitSpecListTest, KeepsOptionsWithTheirSpec) {
  EXPECT_THAT(SplitSpecList("lru,lfu:decay=0.9,period=10,2q"),
              ElementsAre("lru", "lfu:decay=0.9,period=10", "2q"));
  EXPECT_THAT(SplitSpecList("static:frac=0.5,lfru:recency=0.2"),
              ElementsAre("static:frac=0.5", "lfru:recency=0.2"));
  EXPECT_THAT(SplitSpecList("none"), ElementsAre("none"));
  EXPECT_THAT(SplitSpecList(",lru,,min,"), ElementsAre("lru", "min"));
  EXPECT_TRUE(SplitSpecList("").empty());
}

TEST(SweepTest, GridOrderAndCsvQuotesSpecs) {
  const std::vector<Trace> traces = {SmallTrace()};
  SweepOptions o;
  o.policies = {"lru", "lfu:decay=0.9"};
  o.capacities = {"50%", "1"};
  o.predictors = {"none"};
  o.base.per_layer = true;
  o.threads = 2;
  auto runs = RunSweep(traces, o);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 4u);
  EXPECT_EQ((*runs)[0].capacity_text, "50%");
  EXPECT_EQ((*runs)[0].capacity, 2);
  EXPECT_DOUBLE_EQ((*runs)[0].capacity_pct, 50.0);
  EXPECT_EQ((*runs)[1].policy, "lfu:decay=0.9");
  EXPECT_EQ((*runs)[2].capacity, 1);
  EXPECT_DOUBLE_EQ((*runs)[2].capacity_pct, 25.0);
  for (const SweepRun& r : *runs) EXPECT_EQ(r.result.accesses, 12u) << r.policy;
  // A capacity of one expert per layer for a top-2 trace misses every access.
  EXPECT_EQ((*runs)[2].result.hits, 0u);

  const std::string csv = SweepCsv({"my,trace"}, *runs, true);
  const std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u);
  auto header = SplitCsvRecord(lines[0]);
  auto row = SplitCsvRecord(lines[2]);
  ASSERT_TRUE(header.ok() && row.ok());
  ASSERT_EQ(header->size(), 18u);
  ASSERT_EQ(row->size(), header->size()) << lines[2];
  EXPECT_EQ((*row)[0], "my,trace");
  EXPECT_EQ((*row)[1], "lfu:decay=0.9");
  EXPECT_EQ((*row)[3], "50%");
  EXPECT_EQ((*row)[6], "12");
  EXPECT_EQ((*row)[15], "50.0000");  // capacity_pct
  EXPECT_EQ((*row)[16], "1");        // run: its grid index
  EXPECT_EQ((*row)[17], "4");        // runs in the grid
}

SweepOptions ShardGrid() {
  SweepOptions o;
  o.policies = {"lru", "lfu:decay=0.9,period=10", "min"};
  o.capacities = {"1", "2", "3"};
  o.predictors = {"none", "prev"};
  o.threads = 1;
  return o;
}

TEST(SweepShardTest, PartsAreDisjointCompleteAndMatchTheWholeGrid) {
  const std::vector<Trace> traces = {SmallTrace()};
  SweepOptions o = ShardGrid();
  auto whole = RunSweep(traces, o);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(whole->size(), 18u);
  for (int shards : {1, 4, 7, 25}) {
    std::vector<SweepPart> parts;
    std::vector<int> seen(whole->size(), 0);
    for (int i = shards - 1; i >= 0; --i) {  // any order
      o.shard = i;
      o.shards = shards;
      auto part = RunSweep(traces, o);
      ASSERT_TRUE(part.ok()) << part.status();
      for (const SweepRun& r : *part) {
        ASSERT_LT(r.index, seen.size());
        EXPECT_EQ(r.grid_size, whole->size());
        EXPECT_EQ(r.index % size_t(shards), size_t(i));
        ++seen[r.index];
        const SweepRun& w = (*whole)[r.index];
        EXPECT_EQ(r.policy, w.policy);
        EXPECT_EQ(r.predictor, w.predictor);
        EXPECT_EQ(r.capacity, w.capacity);
        EXPECT_EQ(r.result.hits, w.result.hits) << r.index;
      }
      parts.push_back({"part" + std::to_string(i) + ".csv", SweepCsv({"t"}, *part, true)});
    }
    for (size_t j = 0; j < seen.size(); ++j) EXPECT_EQ(seen[j], 1) << "run " << j;
    auto merged = MergeSweepCsv(parts);
    ASSERT_TRUE(merged.ok()) << merged.status();
    // The merged CSV is the whole sweep's but for wall-clock-free columns:
    // every column is deterministic, so it is byte for byte the same.
    EXPECT_EQ(merged->csv, SweepCsv({"t"}, *whole, true)) << shards << " shards";
    ASSERT_EQ(merged->points.size(), whole->size());
    EXPECT_EQ(merged->points[3].policy, (*whole)[3].policy);
    EXPECT_DOUBLE_EQ(merged->points[3].hit_rate,
                     std::stod(absl::StrFormat("%.6f", (*whole)[3].result.hit_rate)));
  }
}

TEST(SweepShardTest, ParseShard) {
  int i = -1, n = -1;
  ASSERT_TRUE(ParseShard("3/8", &i, &n).ok());
  EXPECT_EQ(i, 3);
  EXPECT_EQ(n, 8);
  for (const char* bad : {"8/8", "-1/4", "1", "1/0", "a/b", "1/2/3", "", "1/100001"}) {
    absl::Status st = ParseShard(bad, &i, &n);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(st.message()), HasSubstr(std::string("'") + bad + "'"));
  }
  SweepOptions o = ShardGrid();
  o.shard = 2;
  o.shards = 2;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SweepShardTest, MergeRefusesOverlapGapsForeignGridsAndOtherFiles) {
  const std::vector<Trace> traces = {SmallTrace()};
  SweepOptions o = ShardGrid();
  std::vector<SweepPart> parts;
  for (int i = 0; i < 3; ++i) {
    o.shard = i;
    o.shards = 3;
    parts.push_back({"p" + std::to_string(i) + ".csv", SweepCsv({"t"}, *RunSweep(traces, o), true)});
  }
  auto message = [](const absl::StatusOr<MergedSweep>& m) {
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    std::string s(m.status().message());
    EXPECT_EQ(s.find('\n'), std::string::npos) << s;
    return s;
  };
  // A part missing.
  EXPECT_THAT(message(MergeSweepCsv({parts[0], parts[2]})),
              HasSubstr("6 of the grid's 18 runs are in no part (first missing: run 1)"));
  // A part twice: the overlap names both places.
  EXPECT_THAT(message(MergeSweepCsv({parts[0], parts[1], parts[1], parts[2]})),
              HasSubstr("p1.csv line 2: run 1 is also in p1.csv line 2"));
  // A part of another grid.
  o.capacities = {"1"};
  o.shard = 0;
  o.shards = 1;
  SweepPart other{"other.csv", SweepCsv({"t"}, *RunSweep(traces, o), true)};
  EXPECT_THAT(message(MergeSweepCsv({parts[0], other})), HasSubstr("other.csv line 2: a grid of 6"));
  // Not a sweep CSV, a cut row, a bad number, no parts, no runs.
  EXPECT_THAT(message(MergeSweepCsv({{"x.csv", "a,b\n1,2\n"}})),
              HasSubstr("x.csv line 1: not a sweep CSV"));
  std::string cut = parts[0].csv.substr(0, parts[0].csv.rfind(','));
  EXPECT_THAT(message(MergeSweepCsv({{"cut.csv", cut}})), HasSubstr("cut.csv line"));
  EXPECT_THAT(message(MergeSweepCsv({})), HasSubstr("no parts"));
  EXPECT_THAT(message(MergeSweepCsv({{"h.csv", std::string(SweepCsvHeader()) + "\n"}})),
              HasSubstr("no runs"));
}

TEST(SweepShardCli, ShardsThenMergeEqualsTheWholeSweep) {
  testing::ScratchDir dir;
  ASSERT_TRUE(WriteTrace(SmallTrace(), dir.Path("t.mstrace")).ok());
  const std::string base = testing::MoestreamBin() + " sweep --trace " + dir.Path("t.mstrace") +
                           " --policies lru,lfu,min --capacities 1,2 --predictors none,coact -j 1";
  testing::CommandResult r = testing::RunCommand(base + " -o " + dir.Path("whole.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string part_paths;
  for (int i = 0; i < 3; ++i) {
    const std::string part = dir.Path("part" + std::to_string(i) + ".csv");
    r = testing::RunCommand(base + " --shard " + std::to_string(i) + "/3 -o " + part);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    part_paths += " " + part;
  }
  r = testing::RunCommand(testing::MoestreamBin() + " sweep-merge" + part_paths + " -o " +
                          dir.Path("merged.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::ReadFileOrDie(dir.Path("merged.csv")),
            testing::ReadFileOrDie(dir.Path("whole.csv")));
  // A missing part: one line naming what is missing, nothing written.
  r = testing::RunCommand(testing::MoestreamBin() + " sweep-merge " + dir.Path("part0.csv") +
                          " " + dir.Path("part2.csv") + " -o " + dir.Path("bad.csv"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("runs are in no part"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.Path("bad.csv")));
  // A bad shard and an unreadable part.
  r = testing::RunCommand(base + " --shard 3/3 -o " + dir.Path("x.csv"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--shard '3/3'"));
  r = testing::RunCommand(testing::MoestreamBin() + " sweep-merge " + dir.Path("nope.csv") +
                          " -o " + dir.Path("x.csv"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(dir.Path("nope.csv")));
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(SweepTest, ErrorsNameTheRun) {
  const std::vector<Trace> traces = {SmallTrace()};
  SweepOptions o;
  o.policies = {"lru", "nosuch"};
  o.capacities = {"2"};
  o.predictors = {"none"};
  auto runs = RunSweep(traces, o);
  ASSERT_FALSE(runs.ok());
  EXPECT_THAT(std::string(runs.status().message()), HasSubstr("'nosuch'"));
  o.policies.clear();
  EXPECT_EQ(RunSweep(traces, o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SweepCli, RepeatablePolicyWithCommasAndListFlags) {
  testing::ScratchDir dir;
  ASSERT_TRUE(WriteTrace(SmallTrace(), dir.Path("t.mstrace")).ok());
  const std::string out = dir.Path("s.csv");
  testing::CommandResult r = testing::RunCommand(
      testing::MoestreamBin() + " sweep --trace " + dir.Path("t.mstrace") +
      " --policy lru --policy lfu:decay=0.9,period=10 --capacities 2 -o " + out + " -j 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string csv = testing::ReadFileOrDie(out);
  EXPECT_THAT(csv, HasSubstr("\nt.mstrace,lru,none,2,"));
  EXPECT_THAT(csv, HasSubstr("\nt.mstrace,\"lfu:decay=0.9,period=10\",none,2,"));
  // The list flag splits the same spec out unambiguously.
  r = testing::RunCommand(testing::MoestreamBin() + " sweep --trace " + dir.Path("t.mstrace") +
                          " --policies lru,lfu:decay=0.9,period=10 --capacities 2 -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::ReadFileOrDie(out), csv);
  r = testing::RunCommand(testing::MoestreamBin() + " sweep --trace " + dir.Path("t.mstrace") +
                          " --policy lru --policies lfu -o " + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--policies"));
  // The CSV goes through an atomic writer: a directory in the way is refused
  // and nothing is left beside it.
  const std::string in_the_way = dir.Path("taken");
  std::filesystem::create_directory(in_the_way);
  r = testing::RunCommand(testing::MoestreamBin() + " sweep --trace " + dir.Path("t.mstrace") +
                          " --policy lru --capacities 2 -o " + in_the_way);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(in_the_way));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace moestream::trace
