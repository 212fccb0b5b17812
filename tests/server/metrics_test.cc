// Metrics as Prometheus text and as the page's live JSON.
#include "server/metrics.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace moestream::server {
namespace {

// The value of the sample line `name` (with labels) in `text`; NaN if absent.
double Value(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, name + " ")) {
      double v = 0;
      if (absl::SimpleAtod(line.substr(name.size() + 1), &v)) return v;
    }
  }
  return std::nan("");
}

TEST(MetricsTest, RequestsTokensAndLatency) {
  Metrics m;
  m.OnFirstToken(0.010);
  m.OnFirstToken(0.030);
  m.OnTokens(5);
  m.OnRequestDone(FinishReason::kStop, 7, 5, 0.5);
  m.OnRequestDone(FinishReason::kCancelled, 3, 0, 0.1);
  m.OnHttpError(400);
  m.OnHttpError(400);
  m.OnHttpError(413);
  m.SetSchedulerState({.slots_total = 4, .slots_in_use = 3, .queue_length = 2});
  const std::string t = m.Prometheus();
  EXPECT_EQ(Value(t, "moestream_requests_total{reason=\"stop\"}"), 1);
  EXPECT_EQ(Value(t, "moestream_requests_total{reason=\"cancelled\"}"), 1);
  EXPECT_EQ(Value(t, "moestream_requests_total{reason=\"error\"}"), 0);
  EXPECT_EQ(Value(t, "moestream_http_errors_total{status=\"400\"}"), 2);
  EXPECT_EQ(Value(t, "moestream_http_errors_total{status=\"413\"}"), 1);
  EXPECT_EQ(Value(t, "moestream_prompt_tokens_total"), 10);
  EXPECT_EQ(Value(t, "moestream_generated_tokens_total"), 5);
  EXPECT_DOUBLE_EQ(Value(t, "moestream_time_to_first_token_seconds{quantile=\"0.5\"}"), 0.010);
  EXPECT_DOUBLE_EQ(Value(t, "moestream_time_to_first_token_seconds{quantile=\"0.99\"}"), 0.030);
  EXPECT_DOUBLE_EQ(Value(t, "moestream_time_to_first_token_seconds_sum"), 0.040);
  EXPECT_EQ(Value(t, "moestream_time_to_first_token_seconds_count"), 2);
  EXPECT_EQ(Value(t, "moestream_queue_length"), 2);
  EXPECT_EQ(Value(t, "moestream_slots"), 4);
  EXPECT_EQ(Value(t, "moestream_slots_in_use"), 3);
  EXPECT_GT(Value(t, "process_resident_memory_bytes"), 0);
  // Every family is typed once.
  EXPECT_TRUE(absl::StrContains(t, "# TYPE moestream_requests_total counter\n"));
  EXPECT_TRUE(absl::StrContains(t, "# TYPE moestream_time_to_first_token_seconds summary\n"));
  // No expert families for a dense model.
  EXPECT_FALSE(absl::StrContains(t, "moestream_expert"));
}

TEST(MetricsTest, TokensPerSecondOverTheWindow) {
  Metrics m(std::chrono::milliseconds(1000));
  const auto t0 = Metrics::Clock::now() + std::chrono::seconds(5);  // the server is 5 s old
  m.OnTokens(30, t0);
  m.OnTokens(20, t0 + std::chrono::milliseconds(500));
  EXPECT_DOUBLE_EQ(m.TokensPerSecond(t0 + std::chrono::milliseconds(900)), 50.0);
  // The first 30 left the window.
  EXPECT_DOUBLE_EQ(m.TokensPerSecond(t0 + std::chrono::milliseconds(1200)), 20.0);
  EXPECT_DOUBLE_EQ(m.TokensPerSecond(t0 + std::chrono::seconds(3)), 0.0);
}

TEST(MetricsTest, ExpertCacheByLayerAndTier) {
  Metrics m;
  ExpertSnapshot x;
  x.n_layers = 2;
  x.n_experts = 3;
  x.uses = {1, 2, 3, 0, 0, 4};
  x.offload = true;
  x.residency = {2, 1, 0, 0, 0, 2};
  x.per_layer.resize(2);
  x.per_layer[0].accesses = 4;
  x.per_layer[0].demand_hits = 1;
  x.per_layer[1].accesses = 0;
  x.total.tier_bytes[0] = 1000;
  x.total.tier_bytes[1] = 2000;
  x.total.link_bytes = 3000;
  x.total.stall_ns = 2'500'000'000;
  x.slots_total = 4;
  x.slots_in_use = 3;
  m.SetExperts(x);
  const std::string t = m.Prometheus();
  EXPECT_EQ(Value(t, "moestream_expert_routed_total{layer=\"0\"}"), 6);
  EXPECT_EQ(Value(t, "moestream_expert_routed_total{layer=\"1\"}"), 4);
  EXPECT_EQ(Value(t, "moestream_expert_cache_hit_rate{layer=\"0\"}"), 0.25);
  EXPECT_EQ(Value(t, "moestream_expert_cache_hit_rate{layer=\"1\"}"), 0);
  EXPECT_EQ(Value(t, "moestream_expert_cache_accesses_total{layer=\"0\"}"), 4);
  EXPECT_EQ(Value(t, "moestream_expert_bytes_read_total{tier=\"host\"}"), 1000);
  EXPECT_EQ(Value(t, "moestream_expert_bytes_read_total{tier=\"nvme\"}"), 2000);
  EXPECT_EQ(Value(t, "moestream_expert_link_bytes_total"), 3000);
  EXPECT_EQ(Value(t, "moestream_expert_stall_seconds_total"), 2.5);
  EXPECT_EQ(Value(t, "moestream_expert_cache_slots_in_use"), 3);
  const nlohmann::json j = m.LiveJson();
  EXPECT_EQ(j["layers"], 2);
  EXPECT_EQ(j["experts"], 3);
  EXPECT_EQ(j["resident"], nlohmann::json({2, 1, 0, 0, 0, 2}));
  EXPECT_EQ(j["uses"], nlohmann::json({1, 2, 3, 0, 0, 4}));
  EXPECT_EQ(j["hit_rate"][0], 0.25);
}

TEST(MetricsTest, QuantileIsNearestRank) {
  EXPECT_EQ(Quantile({}, 0.5), 0);
  EXPECT_EQ(Quantile({3, 1, 2, 4}, 0.5), 2);
  EXPECT_EQ(Quantile({3, 1, 2, 4}, 0.99), 4);
  EXPECT_EQ(Quantile({3, 1, 2, 4}, 0.0), 1);
}

}  // namespace
}  // namespace moestream::server
