// The sampler: greedy ties, penalties, the truncation filters and seeding,
// checked against distributions computed by hand.
#include "engine/sampler.h"

#include <cmath>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace moestream::engine {
namespace {

SamplerOptions Greedy() {
  SamplerOptions o;
  o.temperature = 0;
  return o;
}

TEST(Sampler, GreedyPicksArgmaxWithTiesToLowestId) {
  Sampler s(Greedy());
  EXPECT_EQ(s.Sample(std::vector<float>{0.1f, 3.0f, -2.0f, 3.0f}), 1);
  EXPECT_EQ(s.Sample(std::vector<float>{5.0f, 5.0f}), 0);
  EXPECT_EQ(s.Sample(std::vector<float>{-1.0f, -0.5f, -3.0f}), 1);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerOptions o = Greedy();
  o.repeat_penalty = 2.0;
  o.repeat_last_n = 2;
  Sampler s(o);
  // Token 0 (3.0) is penalised to 1.5 < 2.0: token 1 wins.
  s.Accept(0);
  EXPECT_EQ(s.Sample(std::vector<float>{3.0f, 2.0f}), 1);
  // Negative logits get more negative: -1 -> -2 loses to -1.5.
  Sampler n(o);
  n.Accept(0);
  EXPECT_EQ(n.Sample(std::vector<float>{-1.0f, -1.5f}), 1);
  // Only the last 2 accepted tokens count.
  Sampler w(o);
  w.Accept(0);
  w.Accept(5);
  w.Accept(6);
  EXPECT_EQ(w.Sample(std::vector<float>{3.0f, 2.0f}), 0);
}

std::map<int32_t, double> Frequencies(const SamplerOptions& o, const std::vector<float>& logits,
                                      int draws) {
  Sampler s(o);
  std::map<int32_t, double> f;
  for (int i = 0; i < draws; ++i) f[s.Sample(logits)] += 1.0 / draws;
  return f;
}

TEST(Sampler, TemperatureSamplingFollowsSoftmax) {
  SamplerOptions o;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.min_p = 0;
  o.seed = 42;
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  auto f = Frequencies(o, logits, 20000);
  EXPECT_NEAR(f[0], 0.5, 0.02);
  EXPECT_NEAR(f[1], 0.3, 0.02);
  EXPECT_NEAR(f[2], 0.2, 0.02);
  // Temperature 0.5 squares the probabilities: 25:9:4.
  o.temperature = 0.5;
  f = Frequencies(o, logits, 20000);
  EXPECT_NEAR(f[0], 25.0 / 38, 0.02);
  EXPECT_NEAR(f[2], 4.0 / 38, 0.02);
}

TEST(Sampler, TopKTopPAndMinPTruncate) {
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f),
                                     std::log(0.1f)};
  SamplerOptions o;
  o.temperature = 1.0;
  o.top_k = 2;
  o.top_p = 1.0;
  o.min_p = 0;
  o.seed = 1;
  auto f = Frequencies(o, logits, 20000);
  EXPECT_EQ(f.count(2) + f.count(3), 0u);
  EXPECT_NEAR(f[0], 4.0 / 7, 0.02);

  o.top_k = 0;
  o.top_p = 0.65;  // 0.4 + 0.3 reaches it: keep two
  f = Frequencies(o, logits, 5000);
  EXPECT_EQ(f.count(2) + f.count(3), 0u);

  o.top_p = 1.0;
  o.min_p = 0.4;  // keep p >= 0.16: ids 0, 1, 2
  f = Frequencies(o, logits, 20000);
  EXPECT_EQ(f.count(3), 0u);
  EXPECT_NEAR(f[2], 0.2 / 0.9, 0.02);
}

TEST(Sampler, SameSeedSameSequence) {
  SamplerOptions o;
  o.seed = 99;
  o.top_k = 0;
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 0.7f);
  Sampler a(o), b(o);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.Sample(logits), b.Sample(logits));
  EXPECT_EQ(a.seed(), 99u);
}

TEST(Sampler, ValidateNamesTheFlag) {
  SamplerOptions o;
  o.top_p = 0;
  EXPECT_NE(o.Validate().message().find("--top-p"), std::string::npos);
  o = SamplerOptions{};
  o.repeat_penalty = -1;
  EXPECT_NE(o.Validate().message().find("--repeat-penalty"), std::string::npos);
  EXPECT_TRUE(SamplerOptions{}.Validate().ok());
}

}  // namespace
}  // namespace moestream::engine
