// Replay and sweeps refuse the gate predictor, which needs the next layer's
// router scores that no trace records (it would silently act as `none`),
// and the commands refuse it before loading any trace.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "trace/replay.h"
#include "trace/sweep.h"
#include "trace/trace.h"
#include "trace/trace_import.h"

namespace moestream::trace {
namespace {

using ::testing::HasSubstr;

// A shipped trace (gpt-oss-120b, 128 experts, top-2).
Trace SmallTrace() {
  auto t = LoadTrace(testing::SharedPath("data/gpt-oss-120b-route-trace"));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : Trace{};
}

TEST(TraceReplayPredictor, GateIsRejectedWithTheReason) {
  const Trace t = SmallTrace();
  ReplayOptions o;
  o.capacity = 16;
  o.link = "none";
  o.predictor = "gate";
  auto r = Replay(t, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("predictor 'gate' cannot be replayed: gate guesses from the next layer's "
                        "router scores, which a routing trace does not record"));
  o.predictor = "gate:k=4";
  EXPECT_EQ(Replay(t, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.predictor = "coact";
  EXPECT_TRUE(Replay(t, o).ok());

  SweepOptions s;
  s.policies = {"lru"};
  s.capacities = {"12.5%"};
  s.predictors = {"none", "gate"};
  EXPECT_THAT(std::string(s.Validate().message()), HasSubstr("predictor 'gate' cannot be replayed"));
  auto runs = RunSweep({t}, s);
  EXPECT_EQ(runs.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TraceReplayPredictor, CommandsRejectGateBeforeLoadingTheTrace) {
  testing::ScratchDir dir;
  const std::string missing = dir.Path("missing.mstrace");
  // The trace does not exist: the predictor is refused first.
  testing::CommandResult r = testing::RunCommand(
      testing::MoestreamBin() + " replay --trace " + missing + " --capacity 2 --predictor gate");
  EXPECT_EQ(r.exit_code, 2);  // a usage error
  EXPECT_THAT(r.err, HasSubstr("predictor 'gate' cannot be replayed"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = testing::RunCommand(testing::MoestreamBin() + " sweep --trace " + missing +
                          " --predictors none,gate -o " + dir.Path("s.csv"));
  EXPECT_EQ(r.exit_code, 2);  // a usage error
  EXPECT_THAT(r.err, HasSubstr("sweep: predictor 'gate' cannot be replayed"));
  EXPECT_FALSE(std::filesystem::exists(dir.Path("s.csv")));
}

}  // namespace
}  // namespace moestream::trace
