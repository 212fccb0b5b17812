// The policies that predict (predict, tinylfu, shift) and the predictor
// options (conf=, coact's conditioning on the previous token), on streams
// whose right answer is known: each beats the policy it refines where its
// mechanism should, through a small cache model driven like the contract
// suite's.
#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policies/eviction_policy.h"
#include "policies/prefetch_predictor.h"

namespace moestream::policies {
namespace {

struct Step {
  uint16_t layer;
  std::vector<uint16_t> experts;
};

struct Outcome {
  uint64_t hits = 0;
  uint64_t accesses = 0;
  std::vector<size_t> resident_per_layer;
  std::vector<uint32_t> victims;  // packed keys, in order
};

// Requests each step's experts together (they are protected from each
// other's misses), as the expert cache does; per-layer or one global pool.
Outcome Simulate(const std::string& spec, const std::vector<Step>& steps, int n_layers,
                 int n_experts, int top_k, int capacity_per_layer, bool per_layer) {
  PolicyEnv env;
  env.n_layers = n_layers;
  env.n_experts = n_experts;
  env.top_k = top_k;
  env.capacity = capacity_per_layer * n_layers;
  auto made = CreateEvictionPolicy(spec, env);
  EXPECT_TRUE(made.ok()) << made.status();
  EvictionPolicy& p = **made;
  std::set<uint32_t> resident;
  Outcome out;
  uint64_t tick = 0;
  for (const Step& s : steps) {
    std::set<uint32_t> request;
    for (uint16_t e : s.experts) request.insert(ExpertKey{s.layer, e}.packed());
    std::vector<ExpertKey> misses;
    for (uint16_t e : s.experts) {
      ExpertKey k{s.layer, e};
      ++out.accesses;
      if (resident.count(k.packed())) {
        ++out.hits;
        p.OnAccess(k, AccessContext{tick++, false, s.layer});
      } else {
        misses.push_back(k);
      }
    }
    for (ExpertKey k : misses) {
      size_t in_scope = 0;
      for (uint32_t r : resident) in_scope += !per_layer || ExpertKey::FromPacked(r).layer == k.layer;
      if (int(in_scope) >= (per_layer ? capacity_per_layer : capacity_per_layer * n_layers)) {
        const auto outside_request = [&](ExpertKey v) { return !request.count(v.packed()); };
        std::optional<ExpertKey> v =
            p.PickVictim({.layer = per_layer ? int(k.layer) : -1,
                          .evictable = outside_request,
                          .tick = tick,
                          .current_layer = int(k.layer)});
        EXPECT_TRUE(v.has_value());
        if (!v) continue;
        out.victims.push_back(v->packed());
        resident.erase(v->packed());
        p.OnErase(*v);
      }
      p.OnInsert(k, AccessContext{tick++, false, s.layer});
      resident.insert(k.packed());
    }
  }
  out.resident_per_layer.assign(n_layers, 0);
  for (uint32_t r : resident) ++out.resident_per_layer[ExpertKey::FromPacked(r).layer];
  return out;
}

// One layer, one expert per step, cycling over `period` experts: LRU always
// evicts the expert needed next and never hits once the loop exceeds it.
std::vector<Step> Loop(int period, int rounds) {
  std::vector<Step> steps;
  for (int r = 0; r < rounds; ++r) {
    for (int e = 0; e < period; ++e) steps.push_back({0, {uint16_t(e)}});
  }
  return steps;
}

TEST(PredictPolicy, LearnsTheReuseGapOfALoopThatDefeatsLru) {
  const std::vector<Step> steps = Loop(6, 60);
  Outcome lru = Simulate("lru", steps, 1, 8, 1, 4, true);
  Outcome predict = Simulate("predict", steps, 1, 8, 1, 4, true);
  Outcome min_like = Simulate("lfu", steps, 1, 8, 1, 4, true);
  EXPECT_EQ(lru.hits, 0u);
  // MIN keeps 3 of the 6 for the next round: half the accesses. The learned
  // gap model keeps the experts whose next use is nearest; it should get most of that.
  EXPECT_GT(predict.hits, steps.size() * 4 / 10) << "lfu " << min_like.hits;
}

TEST(PredictPolicy, KeepsFrequentExpertsThroughAScan) {
  // Expert 0 and 1 every other step; each other step brings a new expert.
  std::vector<Step> steps;
  for (int i = 0; i < 200; ++i) {
    steps.push_back({0, {uint16_t(i % 2)}});
    steps.push_back({0, {uint16_t(2 + i % 60)}});
  }
  Outcome lru = Simulate("lru", steps, 1, 64, 1, 3, true);
  Outcome predict = Simulate("predict", steps, 1, 64, 1, 3, true);
  // LRU with 3 slots keeps 0 and 1 too (their gap is 3 steps): the model
  // must not do worse than recency where recency is right.
  EXPECT_GE(predict.hits, lru.hits);
  EXPECT_GE(predict.hits, 190u);
}

TEST(PredictPolicy, AsksAPredictorAboutTheNextLayers) {
  // Four layers, skewed experts, layer l+1's expert tied to layer l's; one
  // global pool, so victims come from the layers about to run, which the
  // predictor guesses. Its guesses must change decisions (else it is not
  // asked) without costing hits.
  std::mt19937 rng(5);
  std::geometric_distribution<int> skew(0.3);
  std::vector<Step> steps;
  for (int t = 0; t < 400; ++t) {
    int e = skew(rng) % 8;
    for (uint16_t l = 0; l < 4; ++l) {
      steps.push_back({l, {uint16_t(e)}});
      e = (e * 3 + (rng() % 4 == 0 ? 1 : 0)) % 8;
    }
  }
  Outcome alone = Simulate("predict", steps, 4, 8, 1, 2, /*per_layer=*/false);
  Outcome asked = Simulate("predict:predictor=coact", steps, 4, 8, 1, 2, /*per_layer=*/false);
  EXPECT_NE(asked.victims, alone.victims);
  EXPECT_GE(double(asked.hits), 0.98 * double(alone.hits));
  PolicyEnv env;
  env.n_layers = 2;
  env.n_experts = 8;
  env.top_k = 1;
  EXPECT_EQ(CreateEvictionPolicy("predict:predictor=coact,d=4", env).value()->name(),
            "predict:predictor=coact,d=1");  // at most n_layers - 1 ahead
  EXPECT_FALSE(CreateEvictionPolicy("predict:predictor=oracle", env).ok());
  EXPECT_FALSE(CreateEvictionPolicy("predict:predictor=gate", env).ok());
  EXPECT_FALSE(CreateEvictionPolicy("predict:predictor=psychic", env).ok());
}

TEST(TinyLfuPolicy, AdmissionKeepsFrequentExpertsThroughAScan) {
  // Four experts used often, then a long scan of one-off experts, then the
  // four again: LRU has forgotten them, TinyLFU never admitted the scan.
  std::vector<Step> steps;
  for (int r = 0; r < 20; ++r) {
    for (uint16_t e = 0; e < 4; ++e) steps.push_back({0, {e}});
  }
  for (uint16_t e = 10; e < 60; ++e) steps.push_back({0, {e}});
  for (uint16_t e = 0; e < 4; ++e) steps.push_back({0, {e}});
  Outcome lru = Simulate("lru", steps, 1, 64, 1, 5, true);
  Outcome tiny = Simulate("tinylfu", steps, 1, 64, 1, 5, true);
  EXPECT_EQ(tiny.hits, lru.hits + 4) << "the frequent four survive the scan";
}

TEST(ShiftPolicy, MovesSlotsToTheLayerThatMissesForWantOfRoom) {
  // Layer 0 loops over 6 experts, layer 1 reuses one: with 4 slots each
  // (8 in one pool), layer 0 should take slots from layer 1.
  std::vector<Step> steps;
  for (int r = 0; r < 100; ++r) {
    steps.push_back({0, {uint16_t(r % 6)}});
    steps.push_back({1, {0}});
  }
  Outcome shift = Simulate("shift", steps, 2, 8, 1, 4, /*per_layer=*/false);
  EXPECT_GT(shift.resident_per_layer[0], 4u);
  // Per-layer pools of 4 never hit layer 0's loop (LFU and LRU alike).
  Outcome fixed = Simulate("shift", steps, 2, 8, 1, 4, /*per_layer=*/true);
  EXPECT_GT(shift.hits, fixed.hits + 50);
}

void See(PrefetchPredictor& p, uint64_t token, int layer, std::vector<int32_t> chose) {
  p.Observe(RoutingObservation{token, layer, chose, {}});
}

std::vector<ExpertGuess> Guesses(PrefetchPredictor& p, uint64_t token, int layer,
                                 std::vector<int32_t> chose, int lookahead = 1) {
  PredictContext ctx;
  ctx.token = token;
  ctx.layer = layer;
  ctx.lookahead = lookahead;
  ctx.top_k = int(chose.size());
  ctx.experts = chose;
  std::vector<ExpertGuess> out;
  p.Predict(ctx, &out);
  return out;
}

PolicyEnv ThreeLayers() {
  PolicyEnv env;
  env.n_layers = 3;
  env.n_experts = 8;
  env.top_k = 1;
  return env;
}

TEST(Predictors, ThresholdDropsWeakGuessesOnEveryPredictor) {
  for (const std::string name : {"coact", "prev", "popularity"}) {
    auto plain = CreatePrefetchPredictor(name, ThreeLayers()).value();
    auto cut = CreatePrefetchPredictor(name + ":conf=0.999", ThreeLayers()).value();
    EXPECT_EQ(cut->name(), name + ":conf=0.999");
    EXPECT_EQ(CreatePrefetchPredictor(cut->name(), ThreeLayers()).value()->name(), cut->name());
    for (uint64_t t = 0; t < 6; ++t) {
      for (int l = 0; l < 3; ++l) {
        See(*plain, t, l, {int32_t(t % 3 == 0 ? 5 : 2)});
        See(*cut, t, l, {int32_t(t % 3 == 0 ? 5 : 2)});
      }
    }
    std::vector<ExpertGuess> all = Guesses(*plain, 6, 0, {2}, 2);
    std::vector<ExpertGuess> kept = Guesses(*cut, 6, 0, {2}, 2);
    size_t strong = 0;
    for (const ExpertGuess& g : all) strong += g.confidence >= 0.999f;
    EXPECT_EQ(kept.size(), strong) << name;
    for (const ExpertGuess& g : kept) EXPECT_GE(g.confidence, 0.999f) << name;
  }
  EXPECT_FALSE(CreatePrefetchPredictor("coact:conf=1.5", ThreeLayers()).ok());
  EXPECT_FALSE(CreatePrefetchPredictor("none:conf=x", ThreeLayers()).ok());
}

TEST(Predictors, CoactUsesThePreviousTokenAtTheSameLayer) {
  // Layer 1 repeats its own previous choice while layer 0 is uninformative
  // (always expert 0): only the temporal rows can tell which of 3, 4 comes.
  auto temporal = CreatePrefetchPredictor("coact", ThreeLayers()).value();
  auto across = CreatePrefetchPredictor("coact:temporal=0", ThreeLayers()).value();
  uint64_t right_temporal = 0, right_across = 0;
  for (uint64_t t = 0; t < 60; ++t) {
    const int32_t l1 = (t / 10) % 2 == 0 ? 3 : 4;  // runs of ten
    for (PrefetchPredictor* p : {temporal.get(), across.get()}) {
      See(*p, t, 0, {0});
      std::vector<ExpertGuess> g = Guesses(*p, t, 0, {0});
      if (!g.empty() && g[0].key.expert == l1) ++(p == temporal.get() ? right_temporal : right_across);
      See(*p, t, 1, {l1});
      See(*p, t, 2, {7});
    }
  }
  EXPECT_GE(right_temporal, 50u);
  EXPECT_LE(right_across, 40u);
  // Its confidences are probabilities: at most 1, and the guesses for a
  // layer sum to no more than the experts routed per token.
  double sum = 0;
  for (const ExpertGuess& g : Guesses(*temporal, 60, 0, {0})) {
    EXPECT_LE(g.confidence, 1.0f);
    sum += g.confidence;
  }
  EXPECT_LE(sum, 1.0 + 1e-6);
}

TEST(Predictors, CoactSkipHearsTheLayerBeforeThePrevious) {
  // Layer 1 always routes 2 (no information); layer 2 routes 5 after layer
  // 0 chose 0 and 6 after it chose 1. Guessing layer 2 from layer 1 alone
  // is a coin toss; skip=1 also asks layer 0 and is right every time.
  auto plain = CreatePrefetchPredictor("coact:temporal=0", ThreeLayers()).value();
  auto skip = CreatePrefetchPredictor("coact:temporal=0,skip=1", ThreeLayers()).value();
  EXPECT_EQ(skip->name(), "coact:temporal=0,skip=1");
  uint64_t right_plain = 0, right_skip = 0;
  for (uint64_t t = 0; t < 40; ++t) {
    const int32_t l0 = int32_t(t % 2);
    const int32_t l2 = l0 == 0 ? 5 : 6;
    for (PrefetchPredictor* p : {plain.get(), skip.get()}) {
      See(*p, t, 0, {l0});
      See(*p, t, 1, {2});
      std::vector<ExpertGuess> g = Guesses(*p, t, 1, {2});
      if (t >= 4 && !g.empty() && g[0].key.expert == l2) ++(p == plain.get() ? right_plain : right_skip);
      See(*p, t, 2, {l2});
    }
  }
  EXPECT_EQ(right_skip, 36u);
  EXPECT_LE(right_plain, 20u);
  // Two layers: no layer before the previous, the same guesses as without.
  PolicyEnv two = ThreeLayers();
  two.n_layers = 2;
  EXPECT_TRUE(CreatePrefetchPredictor("coact:skip=1", two).ok());
}

TEST(Predictors, CoactLooksSeveralLayersAhead) {
  auto p = CreatePrefetchPredictor("coact", ThreeLayers()).value();
  for (uint64_t t = 0; t < 10; ++t) {
    See(*p, t, 0, {1});
    See(*p, t, 1, {2});
    See(*p, t, 2, {3});
  }
  std::vector<ExpertGuess> g = Guesses(*p, 10, 0, {1}, 2);
  ASSERT_GE(g.size(), 2u);
  EXPECT_EQ(g[0].key, (ExpertKey{1, 2}));
  EXPECT_EQ(g[1].key, (ExpertKey{2, 3}));
}

}  // namespace
}  // namespace moestream::policies
