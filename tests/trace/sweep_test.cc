#include "trace/sweep.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

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
  ASSERT_EQ(header->size(), 15u);
  ASSERT_EQ(row->size(), header->size()) << lines[2];
  EXPECT_EQ((*row)[0], "my,trace");
  EXPECT_EQ((*row)[1], "lfu:decay=0.9");
  EXPECT_EQ((*row)[3], "50%");
  EXPECT_EQ((*row)[6], "12");
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
