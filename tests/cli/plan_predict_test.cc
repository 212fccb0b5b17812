// `moestream plan`'s decode prediction through the command line: the JSON
// fields, which hit-rate source it says it used (a shared trace that matches
// the model's expert count, a given trace, or Zipf), the assumptions in the
// text, and bad prediction flags as one-line errors. Also the Zipf/Che hit
// rates of engine/hit_rate_model.h on cases with known answers.
#include <algorithm>
#include <string>
#include <utility>

#include "engine/hit_rate_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "trace/trace.h"

namespace moestream::cli {
namespace {

using ::moestream::testing::CommandResult;
using ::moestream::testing::MoestreamBin;
using ::moestream::testing::RunCommand;
using ::moestream::testing::ScratchDir;
using ::moestream::testing::SharedPath;
using ::testing::HasSubstr;

class PlanPredictTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    // A Mixtral-shaped header (8 experts, top-2: the shared Mixtral trace
    // matches) and a 16-expert one (no shared trace of 16 experts).
    for (const auto& [name, args] :
         {std::pair<std::string, std::string>{"mixtral", "--preset mixtral-8x7b --scale 16"},
          {"small", "--preset small"}}) {
      CommandResult g = RunCommand(MoestreamBin() + " gen " + args +
                                   " --type q4_k_m --header-only --quiet -o " +
                                   dir_->Path(name + ".gguf"));
      ASSERT_EQ(g.exit_code, 0) << g.err;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static nlohmann::json PlanJson(const std::string& args) {
    CommandResult r = RunCommand(MoestreamBin() + " plan --json " + args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }

  static ScratchDir* dir_;
};
ScratchDir* PlanPredictTest::dir_ = nullptr;

TEST_F(PlanPredictTest, SharedTraceOfTheSameExpertCountIsReplayed) {
  const std::string m = dir_->Path("mixtral.gguf");
  // A budget that holds part of the experts.
  nlohmann::json j = PlanJson("-m " + m + " --backend cuda --device-budget 250M --experts-on host " +
                              "--trace-dir " + SharedPath("data"));
  ASSERT_TRUE(j.contains("decode")) << j.dump();
  const nlohmann::json& d = j["decode"];
  EXPECT_EQ(d["hit_rate_source"], "trace");
  EXPECT_THAT(d["hit_rate_detail"].get<std::string>(), HasSubstr("mixtral-8x7b-routing"));
  EXPECT_GT(d["hit_rate_device"].get<double>(), 0.0);
  EXPECT_LT(d["hit_rate_device"].get<double>(), 1.0);
  EXPECT_GE(d["hit_rate_device_high"].get<double>(), d["hit_rate_device"].get<double>());
  EXPECT_LT(d["tok_s_low"].get<double>(), d["tok_s"].get<double>());
  EXPECT_LT(d["tok_s"].get<double>(), d["tok_s_high"].get<double>());
  EXPECT_EQ(d["backend"], "cuda");
  EXPECT_EQ(d["link_gbps"], 25.0);  // pcie4x16 assumed
  EXPECT_GT(d["link_bytes"].get<double>(), 0.0);

  // Forcing Zipf says so, and a faster link predicts more tokens.
  nlohmann::json z = PlanJson("-m " + m + " --backend cuda --device-budget 250M --experts-on host " +
                              "--trace zipf --link 50");
  EXPECT_EQ(z["decode"]["hit_rate_source"], "zipf");
  EXPECT_EQ(z["decode"]["link_gbps"], 50.0);
  nlohmann::json z2 = PlanJson("-m " + m + " --backend cuda --device-budget 250M --experts-on host " +
                               "--trace zipf --link 25");
  EXPECT_GT(z["decode"]["tok_s"].get<double>(), z2["decode"]["tok_s"].get<double>());
}

TEST_F(PlanPredictTest, NoMatchingTraceFallsBackToZipfAndTheTextSaysSo) {
  const std::string m = dir_->Path("small.gguf");
  CommandResult r = RunCommand(MoestreamBin() + " plan -m " + m +
                               " --device-budget 40M --experts-on host --host-gbps 20 " +
                               "--trace-dir " + SharedPath("data"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("decode          predicted"));
  EXPECT_THAT(r.out, HasSubstr("source: zipf s=1.00"));
  EXPECT_THAT(r.out, HasSubstr("no routing trace of a 16-expert model found"));
  EXPECT_THAT(r.out, HasSubstr("host 20 GB/s"));
  EXPECT_THAT(r.out, HasSubstr("link none"));
  // Everything resident: no misses, no trace needed.
  nlohmann::json j = PlanJson("-m " + m + " --device-budget 2G --host-gbps 20");
  EXPECT_EQ(j["decode"]["hit_rate_source"], "resident");
  EXPECT_EQ(j["decode"]["link_bytes"], 0.0);
}

TEST_F(PlanPredictTest, BadPredictionFlagsAreOneLineErrors) {
  const std::string m = dir_->Path("small.gguf");
  for (const std::string& bad :
       {std::string("--efficiency 0.9"), std::string("--efficiency 0.9:0.5"),
        std::string("--host-gbps 0"), std::string("--link 0"), std::string("--nvme-gbps -1"),
        std::string("--zipf -2"), std::string("--trace /nonexistent.mstrace --experts-on host")}) {
    CommandResult r =
        RunCommand(MoestreamBin() + " plan -m " + m + " --device-budget 40M " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << bad << ": " << r.err;
  }
}

TEST_F(PlanPredictTest, PresetPlansLikeItsHeader) {
  const std::string flags = " --backend cuda --device-budget 24G --host-budget 64G --experts-on nvme "
                            "--trace-dir " + SharedPath("data");
  CommandResult g = RunCommand(MoestreamBin() + " gen --preset mixtral-8x7b --type q4_k_m " +
                               "--header-only --quiet -o " + dir_->Path("m8x7b.gguf"));
  ASSERT_EQ(g.exit_code, 0) << g.err;
  nlohmann::json from_file = PlanJson("-m " + dir_->Path("m8x7b.gguf") + flags);
  nlohmann::json from_preset = PlanJson("--preset mixtral-8x7b --type q4_k_m" + flags);
  EXPECT_EQ(from_file["device_total_bytes"], from_preset["device_total_bytes"]);
  EXPECT_EQ(from_file["expert_bytes"], from_preset["expert_bytes"]);
  EXPECT_EQ(from_file["decode"]["tok_s"], from_preset["decode"]["tok_s"]);
  EXPECT_EQ(from_preset["decode"]["hit_rate_source"], "trace");
  // Q4_K_M is smaller than Q8_0 and larger than Q4_K.
  nlohmann::json q8 = PlanJson("--preset mixtral-8x7b --type q8_0" + flags);
  nlohmann::json q4 = PlanJson("--preset mixtral-8x7b --type q4_k" + flags);
  EXPECT_LT(from_preset["expert_bytes"].get<double>(), q8["expert_bytes"].get<double>());
  EXPECT_GT(from_preset["expert_bytes"].get<double>(), q4["expert_bytes"].get<double>());
  for (const std::string& bad : {std::string("--preset mixtral-8x7b -m x.gguf"),
                                 std::string("--preset nosuch"), std::string("--type q4_k_m"),
                                 std::string("--preset tiny --type q3")}) {
    CommandResult r = RunCommand(MoestreamBin() + " plan --device-budget 1G " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << bad << ": " << r.err;
  }
}

// A trace whose decode cycles through 4 of 8 experts, one per token: LRU
// with 4 slots misses only the first 4 (warm: none), with 3 slots misses
// every time; 3.5 slots lies halfway.
TEST(TraceHitRatesTest, ColdWarmAndBetweenWholeSlotCounts) {
  ScratchDir dir;
  trace::Trace t;
  t.shape.model = "cycle";
  t.shape.n_layers = 1;
  t.shape.n_experts = 8;
  t.shape.top_k = 1;
  t.shape.layer_ids = {0};
  for (uint32_t step = 0; step < 40; ++step) {
    trace::TraceCell c;
    c.step = step;
    c.pos = step;
    c.phase = trace::Phase::kDecode;
    const int32_t id = int32_t(step % 4);
    t.AddCell(c, {&id, 1}, {});
  }
  const std::string path = dir.Path("cycle.mstrace");
  ASSERT_TRUE(trace::WriteTrace(t, path).ok());
  engine::HitRateOptions o;
  o.trace = path;
  auto at = [&](double slots) {
    absl::StatusOr<engine::HitRateEstimate> e =
        engine::EstimateHitRates({8, 1, "cycle"}, slots, slots, o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.value_or(engine::HitRateEstimate());
  };
  engine::HitRateEstimate four = at(4);
  EXPECT_EQ(four.kind, "trace");
  EXPECT_NEAR(four.device_cold, 36.0 / 40, 1e-12);
  EXPECT_NEAR(four.device, 1.0, 1e-12);
  engine::HitRateEstimate three = at(3);
  EXPECT_NEAR(three.device_cold, 0.0, 1e-12);
  EXPECT_NEAR(three.device, 0.0, 1e-12);
  EXPECT_GT(three.device_high, 0.0);  // MIN does better than LRU on a cycle
  engine::HitRateEstimate half = at(3.5);
  EXPECT_NEAR(half.device, 0.5, 1e-12);
  EXPECT_NEAR(half.device_cold, 0.45, 1e-12);
  EXPECT_THAT(half.source, HasSubstr("3.5 slots per layer"));
  // Every expert has a slot: no replay needed.
  EXPECT_EQ(at(8).kind, "resident");
}

TEST(ZipfHitRatesTest, KnownCases) {
  // Uniform popularity: an LRU of C of n experts hits C/n under Che.
  engine::ZipfHitRates u = engine::ZipfLayerHitRates(64, 8, 16, 0.0);
  EXPECT_NEAR(u.lru, 16.0 / 64, 1e-6);
  EXPECT_NEAR(u.top_c, 16.0 / 64, 1e-12);
  // Every expert cached: all hits.
  EXPECT_EQ(engine::ZipfLayerHitRates(64, 8, 64, 1.0).lru, 1.0);
  // Skew helps, capacity helps, and the static top-C bound is above LRU.
  double last = 0;
  for (double c : {8.0, 16.0, 32.0, 48.0}) {
    engine::ZipfHitRates z = engine::ZipfLayerHitRates(64, 8, c, 1.0);
    EXPECT_GT(z.lru, c / 64);
    EXPECT_GE(z.top_c, z.lru);
    EXPECT_GT(z.lru, last);
    last = z.lru;
  }
}

}  // namespace
}  // namespace moestream::cli
