// What each eviction policy and predictor decides, on hand-made sequences
// whose right answer is known; spec parsing errors; the prediction scorer.
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policies/eviction_policy.h"
#include "policies/prediction_scorer.h"
#include "policies/prefetch_predictor.h"

namespace moestream::policies {
namespace {

PolicyEnv Env(const std::vector<ExpertKey>* future = nullptr,
              const std::vector<double>* pop = nullptr) {
  PolicyEnv env;
  env.n_layers = 2;
  env.n_experts = 8;
  env.top_k = 1;
  env.capacity = 8;
  env.future = future;
  env.popularity = pop;
  return env;
}

std::unique_ptr<EvictionPolicy> Make(const std::string& spec, const PolicyEnv& env) {
  auto p = CreateEvictionPolicy(spec, env);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(p).value();
}

uint16_t Victim(EvictionPolicy& p, int layer = 0, int current_layer = -1) {
  VictimQuery q;
  q.layer = layer;
  q.current_layer = current_layer;
  q.evictable = [](ExpertKey) { return true; };
  auto v = p.PickVictim(q);
  EXPECT_TRUE(v.has_value());
  return v ? v->expert : 0xffff;
}

// Inserts experts 0..n-1 of layer 0 at ticks 0..n-1, then accesses `hits`.
uint64_t Fill(EvictionPolicy& p, int n, const std::vector<uint16_t>& hits) {
  uint64_t t = 0;
  for (uint16_t e = 0; e < n; ++e) p.OnInsert({0, e}, AccessContext{t++, false, 0});
  for (uint16_t e : hits) p.OnAccess({0, e}, AccessContext{t++, false, 0});
  return t;
}

TEST(LruPolicy, EvictsLeastRecent) {
  auto p = Make("lru", Env());
  Fill(*p, 3, {0, 2});
  EXPECT_EQ(Victim(*p), 1);
}

TEST(LfuPolicy, EvictsLeastFrequentTiesByRecency) {
  auto p = Make("lfu", Env());
  Fill(*p, 3, {0, 0, 2, 1, 2});  // counts 3, 2, 3: expert 1 least frequent
  EXPECT_EQ(Victim(*p), 1);
  auto q = Make("lfu", Env());
  Fill(*q, 3, {2, 1});  // counts 1, 2, 2: 0
  EXPECT_EQ(Victim(*q), 0);
}

TEST(LfuPolicy, DecayForgetsOldPopularity) {
  // Expert 0 was hot long ago, expert 1 is used now: with strong decay the
  // old count fades and 0 becomes the victim; without decay 1 is.
  for (auto [spec, want] : {std::pair<std::string, uint16_t>{"lfu", 1},
                            {"lfu:decay=0.1,period=4", 0}}) {
    auto p = Make(spec, Env());
    uint64_t t = 0;
    p->OnInsert({0, 0}, AccessContext{t++, false, 0});
    for (int i = 0; i < 5; ++i) p->OnAccess({0, 0}, AccessContext{t++, false, 0});
    t += 40;
    p->OnInsert({0, 1}, AccessContext{t++, false, 0});
    p->OnAccess({0, 1}, AccessContext{t++, false, 0});
    EXPECT_EQ(Victim(*p), want) << spec;
  }
}

TEST(LfruPolicy, EndpointsAreLruAndLfu) {
  // 0 accessed often long ago, 1 once recently.
  auto run = [](const std::string& spec) {
    auto p = Make(spec, Env());
    uint64_t t = 0;
    p->OnInsert({0, 0}, AccessContext{t++, false, 0});
    p->OnInsert({0, 1}, AccessContext{t++, false, 0});
    for (int i = 0; i < 4; ++i) p->OnAccess({0, 0}, AccessContext{t++, false, 0});
    p->OnAccess({0, 1}, AccessContext{t++, false, 0});
    return Victim(*p);
  };
  EXPECT_EQ(run("lfru:recency=1"), 0);  // LRU
  EXPECT_EQ(run("lfru:recency=0"), 1);  // LFU
}

TEST(TwoQPolicy, GhostHitGoesToProtectedQueue) {
  auto p = Make("2q:kin=0.5,kout=1", Env());
  uint64_t t = 0;
  for (uint16_t e = 0; e < 4; ++e) p->OnInsert({0, e}, AccessContext{t++, false, 0});
  // A1in is all 4 keys: FIFO evicts 0 first, even if it was re-referenced.
  p->OnAccess({0, 0}, AccessContext{t++, false, 0});
  EXPECT_EQ(Victim(*p), 0);
  p->OnErase({0, 0});
  p->OnInsert({0, 0}, AccessContext{t++, false, 0});  // from the ghost list: Am
  // A1in (1, 2, 3) is above its share, so FIFO order continues with 1.
  EXPECT_EQ(Victim(*p), 1);
}

TEST(StaticPolicy, KeepsPopularExperts) {
  std::vector<double> pop(16, 0.0);
  pop[5] = 10;  // layer 0 expert 5 is the most popular
  PolicyEnv env = Env(nullptr, &pop);
  env.capacity = 4;  // frac 0.5 -> 1 pinned expert per layer
  auto p = Make("static", env);
  uint64_t t = 0;
  p->OnInsert({0, 5}, AccessContext{t++, false, 0});
  p->OnInsert({0, 1}, AccessContext{t++, false, 0});
  EXPECT_EQ(Victim(*p), 1);  // LRU would say 5
  auto missing = CreateEvictionPolicy("static", Env());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(LayerPolicy, EvictsJustExecutedLayerFirst) {
  auto p = Make("layer", Env());
  p->OnInsert({1, 3}, AccessContext{0, false, 1});
  p->OnInsert({0, 4}, AccessContext{1, false, 0});
  // Executing layer 1 now... the victim is layer 1's idle expert (used next
  // token, after layer 0's), not the older layer-1 or layer-0 key by LRU.
  EXPECT_EQ(Victim(*p, -1, 1), 3);
  EXPECT_EQ(Victim(*p, -1, 0), 4);
}

TEST(MarkovPolicy, KeepsWhatFollowsTheAnnouncedStep) {
  // Layer 0 routes 0, 1, 2, 3, 0, 1, ... one expert a step: every expert
  // is used equally often and 1 always follows 0. When the step {0} is
  // announced, LFU (equal counts, least recent) evicts 1, the expert the
  // next step will route; markov keeps it and evicts 2, the least recent of
  // the others.
  for (auto [spec, want] : {std::pair<std::string, uint16_t>{"lfu", 1}, {"markov", 2}}) {
    auto p = Make(spec, Env());
    uint64_t t = 0;
    for (int round = 0; round < 10; ++round) {
      for (uint16_t e = 0; e < 4; ++e) {
        const int32_t id = e;
        p->OnStep(0, std::span<const int32_t>(&id, 1), t);
        AccessContext ctx{t++, false, 0};
        if (round == 0) {
          p->OnInsert({0, e}, ctx);
        } else {
          p->OnAccess({0, e}, ctx);
        }
      }
    }
    const int32_t zero = 0;
    p->OnStep(0, std::span<const int32_t>(&zero, 1), t);
    VictimQuery q;
    q.layer = 0;
    q.evictable = [](ExpertKey k) { return k.expert != 0; };  // the request's own
    auto v = p->PickVictim(q);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->expert, want) << spec;
  }
  // Without steps announced it counts accesses: LFU.
  auto p = Make("markov", Env());
  Fill(*p, 3, {0, 0, 2, 1, 2});
  EXPECT_EQ(Victim(*p), 1);
  // A step outside the model (layer 5 of 2, expert ids out of range) is
  // ignored; the valid ids of a step still count.
  const std::vector<int32_t> odd = {100, -1, 1, 1};
  p->OnStep(5, odd, 10);
  p->OnStep(-1, odd, 10);
  p->OnStep(0, odd, 10);
  p->OnStep(0, odd, 11);
  EXPECT_EQ(Victim(*p), 0);  // 1 was in both steps, 0 and 2 in none: 0 is older
}

TEST(MinPolicy, EvictsFarthestNextUse) {
  std::vector<ExpertKey> future = {{0, 0}, {0, 1}, {0, 2}, {0, 1}, {0, 0}, {0, 3}};
  auto p = Make("min", Env(&future));
  for (uint64_t t = 0; t < 3; ++t) p->OnInsert(future[t], AccessContext{t, false, 0});
  EXPECT_EQ(Victim(*p), 2);  // 2 is never used again
  auto missing = CreateEvictionPolicy("min", Env());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CreateEvictionPolicy("belady", Env(&future)).ok());
}

TEST(PolicySpec, ClearErrors) {
  auto bad = CreateEvictionPolicy("lfu:decay=2", Env());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("decay"));
  bad = CreateEvictionPolicy("lru:foo=1", Env());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("unknown option 'foo'"));
  bad = CreateEvictionPolicy("nope", Env());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("known: lru"));
  bad = CreateEvictionPolicy("lfru:recency", Env());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("key=value"));
  bad = CreateEvictionPolicy("lfu:decay=0.5,decay=0.6", Env());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("twice"));
  EXPECT_TRUE(CreateEvictionPolicy("lfru:recency=0.7", Env()).ok());
}

// ---- predictors

std::vector<uint16_t> Guess(PrefetchPredictor& p, uint64_t token, int layer,
                            std::vector<int32_t> chose, uint64_t tick = 0,
                            std::vector<float> gate = {}) {
  PredictContext ctx;
  ctx.token = token;
  ctx.layer = layer;
  ctx.top_k = int(chose.size());
  ctx.experts = chose;
  ctx.tick = tick;
  ctx.next_gate_scores = gate;
  std::vector<ExpertGuess> out;
  p.Predict(ctx, &out);
  std::vector<uint16_t> ids;
  for (auto& g : out) ids.push_back(g.key.expert);
  return ids;
}

void See(PrefetchPredictor& p, uint64_t token, int layer, std::vector<int32_t> chose) {
  p.Observe(RoutingObservation{token, layer, chose, {}});
}

TEST(Predictors, CoactLearnsLayerPairs) {
  auto p = CreatePrefetchPredictor("coact", Env()).value();
  for (uint64_t t = 0; t < 5; ++t) {
    See(*p, t, 0, {2});
    See(*p, t, 1, {6});
  }
  See(*p, 5, 0, {3});
  See(*p, 5, 1, {1});
  EXPECT_THAT(Guess(*p, 6, 0, {2}), ::testing::ElementsAre(6));
  EXPECT_THAT(Guess(*p, 6, 0, {3}), ::testing::ElementsAre(1));
}

TEST(Predictors, CoactGuessesAsManyAsABatchedStepRoutes) {
  // Top-1 routing, but each position is a batch of two rows (two
  // sequences): layer 0 routes {2} and {3}, layer 1 routes {6} and {1}.
  // With step=1 the guess for layer 1 covers the step's two experts, not
  // top_k = 1 (which plain coact guesses).
  auto p = CreatePrefetchPredictor("coact:step=1", Env()).value();
  for (uint64_t t = 0; t < 5; ++t) {
    See(*p, t, 0, {2});
    See(*p, t, 0, {3});
    See(*p, t, 1, {6});
    See(*p, t, 1, {1});
  }
  See(*p, 5, 0, {2});
  See(*p, 5, 0, {3});
  const std::vector<int32_t> step = {2, 3};
  PredictContext ctx;
  ctx.token = 5;
  ctx.layer = 0;
  ctx.top_k = 1;
  ctx.experts = step;
  std::vector<ExpertGuess> out;
  p->Predict(ctx, &out);
  std::vector<uint16_t> ids;
  for (const auto& g : out) ids.push_back(g.key.expert);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre(6, 1));
  auto plain = CreatePrefetchPredictor("coact", Env()).value();
  for (uint64_t t = 0; t < 6; ++t) {
    See(*plain, t, 0, {2});
    See(*plain, t, 0, {3});
    if (t < 5) {
      See(*plain, t, 1, {6});
      See(*plain, t, 1, {1});
    }
  }
  out.clear();
  plain->Predict(ctx, &out);
  EXPECT_EQ(out.size(), 1u);
  // One row a position: top_k guesses.
  auto q = CreatePrefetchPredictor("coact:step=1", Env()).value();
  for (uint64_t t = 0; t < 5; ++t) {
    See(*q, t, 0, {2});
    See(*q, t, 1, {6});
  }
  EXPECT_EQ(Guess(*q, 5, 0, {2}).size(), 1u);
}

TEST(Predictors, CoactWeightsFollowTheHeavierGate) {
  // 2 alone is followed by 6, 3 alone by 1 (the across-layer source alone:
  // temporal=0). From {2, 3}, the plain average ties (the lower id, 1,
  // first); weights=1 follows the heavier gate.
  for (auto [spec, heavy_first, want] :
       {std::tuple<std::string, bool, uint16_t>{"coact:temporal=0", true, 1},
        {"coact:temporal=0", false, 1},
        {"coact:temporal=0,weights=1", true, 6},
        {"coact:temporal=0,weights=1", false, 1}}) {
    auto p = CreatePrefetchPredictor(spec, Env()).value();
    uint64_t t = 0;
    for (int i = 0; i < 4; ++i, ++t) {
      See(*p, t, 0, {2});
      See(*p, t, 1, {6});
    }
    for (int i = 0; i < 4; ++i, ++t) {
      See(*p, t, 0, {3});
      See(*p, t, 1, {1});
    }
    const std::vector<int32_t> chose = {2, 3};
    const std::vector<float> w = heavy_first ? std::vector<float>{0.9f, 0.1f}
                                             : std::vector<float>{0.1f, 0.9f};
    p->Observe(RoutingObservation{t, 0, chose, w});
    PredictContext ctx;
    ctx.token = t;
    ctx.layer = 0;
    ctx.top_k = 1;
    ctx.experts = chose;
    std::vector<ExpertGuess> out;
    p->Predict(ctx, &out);
    ASSERT_FALSE(out.empty()) << spec;
    EXPECT_EQ(out[0].key.expert, want) << spec << " heavy_first=" << heavy_first;
  }
}

TEST(Predictors, PrevPopularityOracleGate) {
  PolicyEnv env = Env();
  auto prev = CreatePrefetchPredictor("prev", env).value();
  See(*prev, 0, 1, {4});
  EXPECT_THAT(Guess(*prev, 1, 0, {0}), ::testing::ElementsAre(4));

  auto pop = CreatePrefetchPredictor("popularity", env).value();
  for (int i = 0; i < 3; ++i) See(*pop, i, 1, {7});
  See(*pop, 3, 1, {2});
  EXPECT_THAT(Guess(*pop, 4, 0, {0}), ::testing::ElementsAre(7));

  std::vector<ExpertKey> future = {{0, 1}, {1, 5}, {0, 2}, {1, 6}};
  env.future = &future;
  auto oracle = CreatePrefetchPredictor("oracle", env).value();
  EXPECT_THAT(Guess(*oracle, 1, 0, {2}, /*tick=*/3), ::testing::ElementsAre(6));
  EXPECT_FALSE(CreatePrefetchPredictor("oracle", Env()).ok());

  auto gate = CreatePrefetchPredictor("gate", env).value();
  EXPECT_TRUE(Guess(*gate, 0, 0, {1}).empty());  // no scores on a trace
  EXPECT_THAT(Guess(*gate, 0, 0, {1}, 0, {-1, 3, 0.5, -2, 0, 0, 0, 0}),
              ::testing::ElementsAre(1));
  EXPECT_FALSE(CreatePrefetchPredictor("psychic", env).ok());
}

TEST(PredictionScorer, PrecisionAndRecall) {
  PredictionScorer s;
  std::vector<ExpertGuess> g = {{{1, 2}, 1}, {{1, 3}, 1}, {{1, 3}, 1}, {{1, 4}, 1}};
  std::vector<ExpertKey> actual = {{1, 2}, {1, 5}};
  s.Add(g, actual);
  EXPECT_EQ(s.guessed(), 3u);  // the duplicate counts once
  EXPECT_DOUBLE_EQ(s.precision(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(s.recall(), 0.5);
}

}  // namespace
}  // namespace moestream::policies
