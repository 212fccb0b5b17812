// The eviction-policy contract (policies/eviction_policy.h), checked for
// every registered policy: a small driver mirrors a cache (residency set,
// random pins, per-layer or global capacity) over a random access stream and
// checks each PickVictim answer.
#include <algorithm>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "policies/eviction_policy.h"

namespace moestream::policies {
namespace {

constexpr int kLayers = 4;
constexpr int kExperts = 8;
constexpr int kTicks = 3000;

struct World {
  std::vector<ExpertKey> future;
  std::vector<double> popularity;
  PolicyEnv env;
};

World MakeWorld(uint32_t seed, int capacity) {
  World w;
  std::mt19937 rng(seed);
  // Skewed experts: low ids are popular, layers cycle as in a forward pass.
  std::geometric_distribution<int> skew(0.35);
  for (int t = 0; t < kTicks; ++t) {
    int layer = (t / 2) % kLayers;
    w.future.push_back({uint16_t(layer), uint16_t(std::min(skew(rng), kExperts - 1))});
  }
  w.popularity.resize(kLayers * kExperts);
  for (auto k : w.future) w.popularity[k.layer * kExperts + k.expert] += 1;
  w.env.n_layers = kLayers;
  w.env.n_experts = kExperts;
  w.env.top_k = 2;
  w.env.capacity = capacity;
  w.env.future = &w.future;
  w.env.popularity = &w.popularity;
  return w;
}

// Drives `p` like a cache and returns the victims it named, checking the
// contract at every step.
// With `steps`, each layer step's two accesses are announced first (OnStep).
std::vector<uint32_t> Drive(EvictionPolicy& p, const World& w, bool per_layer, int capacity,
                            uint32_t pin_seed, bool steps = false) {
  std::mt19937 rng(pin_seed);
  std::set<uint32_t> resident;
  std::vector<uint32_t> victims;
  for (uint64_t t = 0; t < w.future.size(); ++t) {
    ExpertKey k = w.future[t];
    if (steps && t % 2 == 0) {
      std::vector<int32_t> step = {w.future[t].expert};
      if (t + 1 < w.future.size() && w.future[t + 1].expert != k.expert) {
        step.push_back(w.future[t + 1].expert);
      }
      p.OnStep(k.layer, step, t);
    }
    AccessContext ctx{t, false, k.layer};
    if (resident.count(k.packed())) {
      p.OnAccess(k, ctx);
      continue;
    }
    size_t in_scope = 0;
    for (uint32_t r : resident) in_scope += !per_layer || ExpertKey::FromPacked(r).layer == k.layer;
    if (int(in_scope) >= capacity) {
      // Pin a random third of the resident keys (and never the key itself).
      std::set<uint32_t> pinned;
      for (uint32_t r : resident) {
        if (rng() % 3 == 0) pinned.insert(r);
      }
      VictimQuery q;
      q.layer = per_layer ? k.layer : -1;
      q.tick = t;
      q.current_layer = k.layer;
      q.evictable = [&](ExpertKey v) { return !pinned.count(v.packed()); };
      std::optional<ExpertKey> v = p.PickVictim(q);
      // Contract 3: asking again without a change gives the same answer.
      std::optional<ExpertKey> again = p.PickVictim(q);
      EXPECT_EQ(v.has_value(), again.has_value());
      if (v && again) {
        EXPECT_EQ(v->packed(), again->packed());
      }
      bool any_candidate = false;
      for (uint32_t r : resident) {
        ExpertKey rk = ExpertKey::FromPacked(r);
        if (!pinned.count(r) && (!per_layer || rk.layer == k.layer)) any_candidate = true;
      }
      if (!v) {
        EXPECT_FALSE(any_candidate) << p.name() << " refused a victim at tick " << t;
        continue;  // the access bypasses the cache
      }
      EXPECT_TRUE(resident.count(v->packed())) << p.name() << ": victim not resident";
      EXPECT_FALSE(pinned.count(v->packed())) << p.name() << ": pinned victim";
      if (per_layer) {
        EXPECT_EQ(v->layer, k.layer) << p.name() << ": victim from another layer";
      }
      victims.push_back(v->packed());
      resident.erase(v->packed());
      p.OnErase(*v);
    }
    p.OnInsert(k, ctx);
    resident.insert(k.packed());
  }
  return victims;
}

class EvictionContractTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EvictionContractTest, VictimIsResidentEvictableAndInLayer) {
  for (bool per_layer : {true, false}) {
    int capacity = per_layer ? 3 : 10;
    World w = MakeWorld(7, per_layer ? capacity * kLayers : capacity);
    for (bool steps : {false, true}) {
      auto p = CreateEvictionPolicy(GetParam(), w.env);
      ASSERT_TRUE(p.ok()) << p.status();
      std::vector<uint32_t> victims = Drive(**p, w, per_layer, capacity, 11, steps);
      EXPECT_FALSE(victims.empty());
    }
  }
}

TEST_P(EvictionContractTest, PinnedKeyIsNeverVictim) {
  World w = MakeWorld(3, 8);
  auto p = CreateEvictionPolicy(GetParam(), w.env);
  ASSERT_TRUE(p.ok()) << p.status();
  ExpertKey pinned{1, 0};
  AccessContext ctx{0, false, 1};
  (*p)->OnInsert(pinned, ctx);
  for (uint16_t e = 1; e < 5; ++e) (*p)->OnInsert({1, e}, AccessContext{e, false, 1});
  for (int layer : {-1, 1}) {
    VictimQuery q;
    q.layer = layer;
    q.tick = 10;
    q.evictable = [&](ExpertKey k) { return k != pinned; };
    auto v = (*p)->PickVictim(q);
    ASSERT_TRUE(v.has_value());
    EXPECT_NE(v->packed(), pinned.packed());
  }
}

TEST_P(EvictionContractTest, NoVictimWhenNothingEvictable) {
  World w = MakeWorld(5, 8);
  auto p = CreateEvictionPolicy(GetParam(), w.env);
  ASSERT_TRUE(p.ok()) << p.status();
  for (uint16_t e = 0; e < 4; ++e) (*p)->OnInsert({2, e}, AccessContext{e, false, 2});
  VictimQuery q;
  q.evictable = [](ExpertKey) { return false; };
  EXPECT_FALSE((*p)->PickVictim(q).has_value());
  q.evictable = [](ExpertKey) { return true; };
  q.layer = 3;  // nothing resident in layer 3
  EXPECT_FALSE((*p)->PickVictim(q).has_value());
}

TEST_P(EvictionContractTest, LayerConstraintRespected) {
  World w = MakeWorld(9, 8);
  auto p = CreateEvictionPolicy(GetParam(), w.env);
  ASSERT_TRUE(p.ok()) << p.status();
  uint64_t t = 0;
  for (uint16_t l = 0; l < kLayers; ++l) {
    for (uint16_t e = 0; e < 3; ++e) (*p)->OnInsert({l, e}, AccessContext{t++, false, l});
  }
  for (int layer = 0; layer < kLayers; ++layer) {
    VictimQuery q;
    q.layer = layer;
    q.tick = t;
    q.evictable = [](ExpertKey) { return true; };
    auto v = (*p)->PickVictim(q);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->layer, layer);
  }
}

TEST_P(EvictionContractTest, Deterministic) {
  World w = MakeWorld(21, 12);
  auto a = CreateEvictionPolicy(GetParam(), w.env);
  auto b = CreateEvictionPolicy(GetParam(), w.env);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->name(), (*b)->name());
  EXPECT_EQ(Drive(**a, w, false, 12, 4, true), Drive(**b, w, false, 12, 4, true));
}

TEST_P(EvictionContractTest, NameRoundTrips) {
  World w = MakeWorld(1, 8);
  auto p = CreateEvictionPolicy(GetParam(), w.env);
  ASSERT_TRUE(p.ok());
  auto q = CreateEvictionPolicy((*p)->name(), w.env);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->name(), (*p)->name());
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, EvictionContractTest,
                         ::testing::ValuesIn(EvictionPolicyNames()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n == "2q" ? std::string("TwoQ") : n;
                         });

// The predicting policies with their options set, the predictor-driven
// `predict` included.
INSTANTIATE_TEST_SUITE_P(WithOptions, EvictionContractTest,
                         ::testing::Values("predict:horizon=3", "predict:predictor=coact,d=2",
                                           "predict:predictor=prev", "tinylfu:window=0.5,sample=2",
                                           "shift:ghost=3", "shift:ghost=2,move=1",
                                           "markov:prior=0"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace moestream::policies
