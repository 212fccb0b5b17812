// ExpertCache under the SimLoader: the slot state machine, pinning,
// capacity, demand-before-prefetch, cancellation, exact statistics on small
// scripts, and a randomised comparison against an independent reference
// model of an LRU cache.
#include "cache/expert_cache.h"

#include <algorithm>
#include <list>
#include <random>
#include <vector>

#include "cache/sim_loader.h"
#include "gtest/gtest.h"
#include "tests/cache/cache_test_util.h"

namespace moestream::cache {
namespace {

using testing::SimRig;

ExpertCacheOptions Opts(int layers, int experts, int slots, bool per_layer = false) {
  ExpertCacheOptions o;
  o.n_layers = layers;
  o.n_experts = experts;
  o.slots = slots;
  o.per_layer = per_layer;
  return o;
}

std::vector<int32_t> V(std::initializer_list<int32_t> l) { return l; }

TEST(ExpertCacheTest, OptionsValidate) {
  EXPECT_FALSE(Opts(0, 8, 2).Validate().ok());
  EXPECT_FALSE(Opts(2, 0, 2).Validate().ok());
  EXPECT_FALSE(Opts(2, 8, 0).Validate().ok());
  EXPECT_TRUE(Opts(2, 8, 2).Validate().ok());
}

TEST(ExpertCacheTest, SlotStateMachineMissLoadPinReleaseHit) {
  auto rig = SimRig::Make(Opts(2, 8, 2));
  ExpertCache& c = *rig->cache;
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE(c.Acquire(0, V({3}), &hs).ok());
  ASSERT_EQ(hs.size(), 1u);
  const int s = hs[0].slot();
  ASSERT_GE(s, 0);
  EXPECT_EQ(c.slot_state(s), SlotState::kLoading);
  EXPECT_EQ(c.slot_pins(s), 1);
  EXPECT_FALSE(hs[0].ready());
  EXPECT_TRUE(c.Contains({0, 3}));
  EXPECT_FALSE(c.IsReady({0, 3}));
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  EXPECT_TRUE(hs[0].ready());
  EXPECT_EQ(c.slot_state(s), SlotState::kResident);
  EXPECT_GT(c.slot_pins(s), 0);  // pinned: resident with pins
  EXPECT_EQ(rig->clock.NowNs(), 1000u);  // 1000 bytes at 1 GB/s
  hs[0].Release();
  EXPECT_EQ(c.slot_state(s), SlotState::kResident);
  EXPECT_EQ(c.slot_pins(s), 0);
  ASSERT_TRUE(c.Acquire(0, V({3}), &hs).ok());
  EXPECT_TRUE(hs[0].ready());
  EXPECT_EQ(c.slot_state(s), SlotState::kResident);
  EXPECT_GT(c.slot_pins(s), 0);  // pinned: resident with pins
  // Two handles on one slot: pinned until both are gone.
  std::vector<ExpertHandle> hs2;
  ASSERT_TRUE(c.Acquire(0, V({3}), &hs2).ok());
  EXPECT_EQ(c.slot_pins(s), 2);
  hs.clear();
  EXPECT_EQ(c.slot_state(s), SlotState::kResident);
  EXPECT_GT(c.slot_pins(s), 0);  // pinned: resident with pins
  hs2.clear();
  EXPECT_EQ(c.slot_state(s), SlotState::kResident);
  c.CheckInvariants();
  CacheStats st = c.stats();
  EXPECT_EQ(st.total.accesses, 3u);
  EXPECT_EQ(st.total.demand_hits, 2u);
  EXPECT_EQ(st.total.demand_misses, 1u);
  EXPECT_EQ(st.total.link_bytes, 1000u);
  EXPECT_EQ(st.total.tier_bytes[int(Tier::kHost)], 1000u);
  EXPECT_EQ(st.total.stall_ns, 1000u);
  EXPECT_EQ(st.per_layer[0].accesses, 3u);
  EXPECT_EQ(st.per_layer[1].accesses, 0u);
}

TEST(ExpertCacheTest, HandleMoveTransfersThePin) {
  auto rig = SimRig::Make(Opts(1, 4, 1));
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE(rig->cache->Acquire(0, V({1}), &hs).ok());
  ExpertHandle h = std::move(hs[0]);
  EXPECT_FALSE(hs[0].valid());
  EXPECT_EQ(rig->cache->slot_pins(h.slot()), 1);
  ExpertHandle h2;
  h2 = std::move(h);
  EXPECT_EQ(rig->cache->slot_pins(h2.slot()), 1);
  int s = h2.slot();
  h2.Release();
  EXPECT_EQ(rig->cache->slot_pins(s), 0);
  EXPECT_FALSE(h2.valid());
}

TEST(ExpertCacheTest, PinnedIsNeverEvictedAndMissDefersUntilRelease) {
  auto rig = SimRig::Make(Opts(1, 8, 1));
  ExpertCache& c = *rig->cache;
  std::vector<ExpertHandle> a, b;
  ASSERT_TRUE(c.Acquire(0, V({1}), &a).ok());
  ASSERT_TRUE(c.Wait(a[0]).ok());
  ASSERT_TRUE(c.Acquire(0, V({2}), &b).ok());
  EXPECT_TRUE(b[0].deferred());
  EXPECT_TRUE(c.IsReady({0, 1}));
  EXPECT_FALSE(c.Contains({0, 2}));
  // Waiting while the only slot is pinned is an error, not a hang.
  ExpertHandle keep = std::move(b[0]);
  absl::Status s = c.Wait(keep);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(c.IsReady({0, 1}));
  // Retry after release: expert 1 is evicted for 2.
  ASSERT_TRUE(c.Acquire(0, V({2}), &b).ok());
  EXPECT_TRUE(b[0].deferred());
  a.clear();
  ASSERT_TRUE(c.Wait(b[0]).ok());
  EXPECT_TRUE(b[0].ready());
  EXPECT_FALSE(c.Contains({0, 1}));
  c.CheckInvariants();
  EXPECT_EQ(c.stats().total.evictions, 1u);
}

TEST(ExpertCacheTest, BatchMissesNeverEvictExpertsOfTheSameRequest) {
  auto rig = SimRig::Make(Opts(1, 8, 3));
  ExpertCache& c = *rig->cache;
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE(c.Acquire(0, V({0, 1, 2}), &hs).ok());
  for (auto& h : hs) ASSERT_TRUE(c.Wait(h).ok());
  hs.clear();
  // 0 is least recent but requested again: 5 must evict 1 (next LRU), not 0.
  ASSERT_TRUE(c.Acquire(0, V({5, 0}), &hs).ok());
  EXPECT_TRUE(hs[1].ready());
  EXPECT_TRUE(c.Contains({0, 0}));
  EXPECT_FALSE(c.Contains({0, 1}));
  EXPECT_TRUE(c.Contains({0, 2}));
  c.CheckInvariants();
}

TEST(ExpertCacheTest, AnnouncedStepKeepsItsLaterExpertsWhileAnotherVictimExists) {
  auto rig = SimRig::Make(Opts(1, 8, 3));
  ExpertCache& c = *rig->cache;
  std::vector<ExpertHandle> hs;
  for (int32_t e : {0, 1, 2}) {
    ASSERT_TRUE(c.Acquire(0, V({e}), &hs).ok());
    ASSERT_TRUE(c.Wait(hs[0]).ok());
    hs.clear();
  }
  // A step of four experts in three slots, acquired one by one. 0 is the
  // LRU victim, but the step still needs it: 5 evicts 1 instead.
  ASSERT_TRUE(c.BeginStep(0, V({5, 0, 6, 2})).ok());
  ASSERT_TRUE(c.Acquire(0, V({5}), &hs).ok());
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  hs.clear();
  EXPECT_TRUE(c.Contains({0, 0}));
  EXPECT_FALSE(c.Contains({0, 1}));
  ASSERT_TRUE(c.Acquire(0, V({0}), &hs).ok());
  EXPECT_TRUE(hs[0].ready());  // the hit the protection kept
  hs.clear();
  // 6: resident are 2 (still needed), 5 and 0 (both served): LRU order
  // among the served ones evicts 5, never 2.
  ASSERT_TRUE(c.Acquire(0, V({6}), &hs).ok());
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  hs.clear();
  EXPECT_TRUE(c.Contains({0, 2}));
  EXPECT_FALSE(c.Contains({0, 5}));
  ASSERT_TRUE(c.Acquire(0, V({2}), &hs).ok());
  EXPECT_TRUE(hs[0].ready());
  hs.clear();
  // When every evictable key is one the step still needs, the miss is not
  // left without a slot: the policy's victim among them goes (LRU: 0).
  ASSERT_TRUE(c.BeginStep(0, V({7, 0, 6, 2})).ok());
  ASSERT_TRUE(c.Acquire(0, V({7}), &hs).ok());
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  EXPECT_TRUE(c.Contains({0, 7}));
  EXPECT_FALSE(c.Contains({0, 0}));
  hs.clear();
  // A request outside the step ends it: no key is held back any more.
  ASSERT_TRUE(c.Acquire(0, V({1}), &hs).ok());
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  hs.clear();
  c.CheckInvariants();
  EXPECT_FALSE(c.BeginStep(1, V({0})).ok());
  EXPECT_FALSE(c.BeginStep(0, V({8})).ok());
}

TEST(ExpertCacheTest, PerLayerCapacityKeepsLayersApart) {
  auto rig = SimRig::Make(Opts(3, 8, 2, /*per_layer=*/true));
  ExpertCache& c = *rig->cache;
  EXPECT_EQ(c.total_slots(), 6);
  std::vector<ExpertHandle> hs;
  for (int l = 0; l < 3; ++l) {
    for (int e = 0; e < 8; ++e) {
      ASSERT_TRUE(c.Acquire(l, V({e}), &hs).ok());
      ASSERT_TRUE(c.Wait(hs[0]).ok());
      hs.clear();
      c.CheckInvariants();
    }
  }
  // Each layer holds exactly its two most recent experts.
  for (int l = 0; l < 3; ++l) {
    for (int e = 0; e < 8; ++e) {
      EXPECT_EQ(c.Contains({uint16_t(l), uint16_t(e)}), e >= 6) << l << "/" << e;
    }
  }
  EXPECT_EQ(rig->lru.size(), 6u);
}

TEST(ExpertCacheTest, PerLayerQuotasFromThePolicyMoveSlotsBetweenLayers) {
  // Three layers of 2 slots each (6 in all); the policy gives layer 0 four.
  auto rig = SimRig::Make(Opts(3, 8, 2, /*per_layer=*/true), 1.0, 1000, 0, {4, 1, 1});
  ExpertCache& c = *rig->cache;
  EXPECT_EQ(c.total_slots(), 6);
  std::vector<ExpertHandle> hs;
  auto touch = [&](int l, int e) {
    ASSERT_TRUE(c.Acquire(l, V({e}), &hs).ok());
    ASSERT_TRUE(c.Wait(hs[0]).ok());
    hs.clear();
    c.CheckInvariants();
  };
  auto held = [&](int l) {
    int n = 0;
    for (int e = 0; e < 8; ++e) n += c.Contains({uint16_t(l), uint16_t(e)});
    return n;
  };
  for (int e = 0; e < 8; ++e) touch(0, e);
  // Free slots serve any layer, whatever the quotas; then layer 0, over its
  // quota, replaced its own least recent.
  EXPECT_EQ(held(0), 6);
  EXPECT_FALSE(c.Contains({0, 0}));
  EXPECT_FALSE(c.Contains({0, 1}));
  // Layers under their quota with no slot free take from the layer most
  // over its quota (layer 0), its least recent key.
  touch(1, 0);
  EXPECT_FALSE(c.Contains({0, 2}));
  touch(1, 1);  // at its quota of 1: replaces its own
  EXPECT_EQ(held(1), 1);
  EXPECT_FALSE(c.Contains({1, 0}));
  touch(2, 0);
  EXPECT_EQ(held(0), 4);
  EXPECT_FALSE(c.Contains({0, 3}));
  // Equal shares: layers 1 and 2 grow at layer 0's cost.
  rig->lru.quotas = {2, 2, 2};
  touch(2, 1);
  touch(1, 5);
  EXPECT_EQ(held(0), 2);
  EXPECT_FALSE(c.Contains({0, 4}));
  EXPECT_FALSE(c.Contains({0, 5}));
  EXPECT_EQ(held(1), 2);
  EXPECT_EQ(held(2), 2);
  // A request larger than its layer's quota replaces its own first, then
  // takes from the layer most over its quota (layer 2 here).
  rig->lru.quotas = {4, 1, 1};
  ASSERT_TRUE(c.Acquire(1, V({5, 6, 7}), &hs).ok());
  for (auto& h : hs) ASSERT_TRUE(c.Wait(h).ok());
  hs.clear();
  c.CheckInvariants();
  EXPECT_EQ(held(1), 3);
  EXPECT_FALSE(c.Contains({1, 1}));
  EXPECT_EQ(held(2), 1);
  EXPECT_FALSE(c.Contains({2, 0}));
  EXPECT_EQ(held(0) + held(1) + held(2), 6);
}

TEST(ExpertCacheTest, DemandLoadStartsBeforeQueuedPrefetches) {
  auto rig = SimRig::Make(Opts(2, 8, 8));
  ExpertCache& c = *rig->cache;
  std::vector<ExpertKey> pf = {{1, 0}, {1, 1}, {1, 2}};
  ASSERT_TRUE(c.Prefetch(pf).ok());
  // Prefetch {1,0} is on the link now (0..1000); {1,1} and {1,2} queue.
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE(c.Acquire(0, V({4}), &hs).ok());
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  EXPECT_EQ(rig->clock.NowNs(), 2000u);  // right after the prefetch in flight
  EXPECT_TRUE(c.IsReady({1, 0}));
  EXPECT_FALSE(c.IsReady({1, 1}));
  ASSERT_TRUE(c.Drain().ok());
  EXPECT_EQ(rig->clock.NowNs(), 4000u);
  CacheStats st = c.stats();
  EXPECT_EQ(st.total.prefetch_issued, 3u);
  EXPECT_EQ(st.per_layer[1].prefetch_issued, 3u);
  EXPECT_EQ(st.total.loads, 4u);
}

TEST(ExpertCacheTest, DemandOnQueuedPrefetchPromotesIt) {
  auto rig = SimRig::Make(Opts(2, 8, 8));
  ExpertCache& c = *rig->cache;
  c.options();
  std::vector<ExpertKey> pf = {{1, 0}, {1, 1}, {1, 2}, {1, 3}};
  ASSERT_TRUE(c.Prefetch(pf).ok());
  std::vector<ExpertHandle> hs;
  // Layer 1 requests {3}: stale prefetches {1,1},{1,2} (queued) are
  // cancelled, {1,0} is already moving, {1,3} is promoted ahead.
  ASSERT_TRUE(c.Acquire(1, V({3}), &hs).ok());
  EXPECT_FALSE(c.Contains({1, 1}));
  EXPECT_FALSE(c.Contains({1, 2}));
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  EXPECT_EQ(rig->clock.NowNs(), 2000u);
  CacheStats st = c.stats();
  EXPECT_EQ(st.total.prefetch_issued, 4u);
  EXPECT_EQ(st.total.prefetch_cancelled, 2u);
  EXPECT_EQ(st.total.prefetch_unused, 2u);
  EXPECT_EQ(st.total.prefetch_late, 1u);
  EXPECT_EQ(st.total.demand_misses, 1u);
  EXPECT_EQ(st.total.prefetch_hits, 0u);
  c.CheckInvariants();
  hs.clear();
  // {1,0} landed unused; its first demand use is a prefetch hit.
  ASSERT_TRUE(c.Drain().ok());
  ASSERT_TRUE(c.Acquire(1, V({0}), &hs).ok());
  EXPECT_TRUE(hs[0].ready());
  st = c.stats();
  EXPECT_EQ(st.total.prefetch_hits, 1u);
  EXPECT_EQ(st.total.demand_hits, 1u);
  // Only used once as a prefetch hit: a second access is a plain hit.
  hs.clear();
  ASSERT_TRUE(c.Acquire(1, V({0}), &hs).ok());
  EXPECT_EQ(c.stats().total.prefetch_hits, 1u);
  EXPECT_EQ(c.stats().total.link_bytes, 2000u);  // {1,0} and {1,3} only
}

TEST(ExpertCacheTest, ExplicitCancelAndOutstandingLimit) {
  ExpertCacheOptions o = Opts(2, 8, 8);
  o.prefetch_max_outstanding = 2;
  o.cancel_stale_prefetches = false;
  auto rig = SimRig::Make(o);
  ExpertCache& c = *rig->cache;
  std::vector<ExpertKey> pf = {{1, 0}, {1, 1}, {1, 2}};
  ASSERT_TRUE(c.Prefetch(pf).ok());
  EXPECT_EQ(c.stats().total.prefetch_dropped, 1u);
  EXPECT_FALSE(c.Contains({1, 2}));
  int n = c.CancelPrefetches([](ExpertKey k) { return k.layer == 1; });
  EXPECT_EQ(n, 1);  // {1,0} already started moving
  EXPECT_TRUE(c.Contains({1, 0}));
  EXPECT_FALSE(c.Contains({1, 1}));
  c.CheckInvariants();
  ASSERT_TRUE(c.Drain().ok());
  EXPECT_EQ(rig->clock.NowNs(), 1000u);
  // Evicting the never-used prefetch counts it as unused.
  ExpertCacheOptions o1 = Opts(1, 8, 1);
  auto r1 = SimRig::Make(o1);
  std::vector<ExpertKey> one = {{0, 7}};
  ASSERT_TRUE(r1->cache->Prefetch(one).ok());
  ASSERT_TRUE(r1->cache->Drain().ok());
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE(r1->cache->Acquire(0, V({2}), &hs).ok());
  ASSERT_TRUE(r1->cache->Wait(hs[0]).ok());
  CacheStats st = r1->cache->stats();
  EXPECT_EQ(st.total.prefetch_unused, 1u);
  EXPECT_EQ(st.total.prefetch_cancelled, 0u);
  EXPECT_EQ(st.total.evictions, 1u);
}

TEST(ExpertCacheTest, DemandStealsSlotOfQueuedPrefetchWhenFull) {
  ExpertCacheOptions o = Opts(2, 8, 2);
  o.cancel_stale_prefetches = false;
  auto rig = SimRig::Make(o);
  ExpertCache& c = *rig->cache;
  std::vector<ExpertKey> pf = {{1, 0}, {1, 1}};
  ASSERT_TRUE(c.Prefetch(pf).ok());  // both slots loading, {1,1} queued
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE(c.Acquire(0, V({5}), &hs).ok());
  EXPECT_FALSE(hs[0].deferred());
  EXPECT_FALSE(c.Contains({1, 1}));
  ASSERT_TRUE(c.Wait(hs[0]).ok());
  EXPECT_EQ(rig->clock.NowNs(), 2000u);
  EXPECT_EQ(c.stats().total.prefetch_cancelled, 1u);
  c.CheckInvariants();
}

TEST(ExpertCacheTest, NvmeTierAndLatencyTiming) {
  SimClock clock;
  testing::TestLru lru;
  SimLoaderOptions lo;
  lo.link = {"l", 2.0, 1.0};  // 2 GB/s + 1 us
  lo.tier = Tier::kNvme;
  lo.tier_gbps = 1.0;         // 1 GB/s + 0.5 us
  lo.tier_latency_us = 0.5;
  lo.expert_bytes = 4000;
  auto loader = SimLoader::Create(lo, &clock);
  ASSERT_TRUE(loader.ok());
  ExpertCacheOptions o = Opts(1, 8, 4);
  auto cache = ExpertCache::Create(o, loader->get(), &clock, &lru);
  ASSERT_TRUE(cache.ok());
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE((*cache)->Acquire(0, V({0, 1}), &hs).ok());
  // Expert 0: read 0..4500, copy 4500..7500. Expert 1: read 4500..9000,
  // copy 9000..12000 (the link waits for the read).
  ASSERT_TRUE((*cache)->Wait(hs[0]).ok());
  EXPECT_EQ(clock.NowNs(), 7500u);
  ASSERT_TRUE((*cache)->Wait(hs[1]).ok());
  EXPECT_EQ(clock.NowNs(), 12000u);
  CacheStats st = (*cache)->stats();
  EXPECT_EQ(st.total.tier_bytes[int(Tier::kNvme)], 8000u);
  EXPECT_EQ(st.total.link_bytes, 8000u);
  EXPECT_EQ(st.total.stall_ns, 12000u);
  EXPECT_EQ((*loader)->link_busy_ns(), 6000u);
  EXPECT_EQ((*loader)->tier_busy_ns(), 9000u);
}

TEST(ExpertCacheTest, BadRequestsAreErrors) {
  auto rig = SimRig::Make(Opts(2, 8, 2));
  std::vector<ExpertHandle> hs;
  EXPECT_EQ(rig->cache->Acquire(2, V({0}), &hs).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rig->cache->Acquire(0, V({8}), &hs).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rig->cache->Acquire(0, V({1, 1}), &hs).code(), absl::StatusCode::kInvalidArgument);
  std::vector<ExpertKey> bad = {{5, 0}};
  EXPECT_EQ(rig->cache->Prefetch(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExpertCacheTest, SkippedMissesAreNotLoaded) {
  auto rig = SimRig::Make(Opts(1, 8, 4));
  std::vector<ExpertHandle> hs;
  ASSERT_TRUE(rig->cache->Acquire(0, V({1, 2}), &hs, [](ExpertKey k) { return k.expert == 1; })
                  .ok());
  EXPECT_TRUE(hs[0].valid());
  EXPECT_FALSE(hs[1].valid());
  EXPECT_FALSE(rig->cache->Contains({0, 2}));
  EXPECT_EQ(rig->cache->stats().total.demand_misses, 2u);
}

// Exact hit counts on a scripted sequence, worked out by hand for per-layer
// LRU with two slots per layer.
TEST(ExpertCacheTest, ScriptedSequenceStatsExact) {
  auto rig = SimRig::Make(Opts(2, 8, 2, true));
  ExpertCache& c = *rig->cache;
  // (layer, expert) accesses, one at a time; expected hit (1) / miss (0):
  struct A { int l, e, hit; };
  const A script[] = {{0, 1, 0}, {0, 2, 0}, {0, 1, 1}, {0, 3, 0},  // evicts 2
                      {0, 2, 0},                                    // evicts 1
                      {1, 1, 0}, {0, 3, 1}, {1, 1, 1}, {0, 1, 0},  // evicts 2
                      {0, 3, 1}, {0, 2, 0}};                        // evicts 1
  uint64_t hits = 0;
  for (const A& a : script) {
    std::vector<ExpertHandle> hs;
    ASSERT_TRUE(c.Acquire(a.l, V({a.e}), &hs).ok());
    EXPECT_EQ(hs[0].ready(), bool(a.hit)) << a.l << "/" << a.e;
    hits += a.hit;
    ASSERT_TRUE(c.Wait(hs[0]).ok());
  }
  CacheStats st = c.stats();
  EXPECT_EQ(st.total.accesses, 11u);
  EXPECT_EQ(st.total.demand_hits, hits);
  EXPECT_EQ(st.per_layer[0].demand_hits, 3u);
  EXPECT_EQ(st.per_layer[1].demand_hits, 1u);
  EXPECT_EQ(st.per_layer[0].evictions, 4u);
  EXPECT_EQ(st.total.link_bytes, 7u * 1000u);
  EXPECT_EQ(st.total.stall_ns, 7u * 1000u);
}

// Reference model: a textbook LRU cache per pool, with the batch rule that a
// request's own experts are never victims of its misses.
class ReferenceLru {
 public:
  ReferenceLru(int pools, int cap) : lists_(size_t(pools)), cap_(cap) {}
  // Returns hit flags for a batch of keys in one pool.
  std::vector<bool> Access(int pool, const std::vector<uint32_t>& keys) {
    std::list<uint32_t>& l = lists_[size_t(pool)];
    std::vector<bool> hit(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = std::find(l.begin(), l.end(), keys[i]);
      hit[i] = it != l.end();
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = std::find(l.begin(), l.end(), keys[i]);
      if (it != l.end()) {
        l.erase(it);
        l.push_back(keys[i]);
        continue;
      }
      if (int(l.size()) >= cap_) {
        auto v = std::find_if(l.begin(), l.end(), [&](uint32_t k) {
          return std::find(keys.begin(), keys.end(), k) == keys.end();
        });
        l.erase(v);
      }
      l.push_back(keys[i]);
    }
    return hit;
  }
  bool Contains(int pool, uint32_t k) const {
    const auto& l = lists_[size_t(pool)];
    return std::find(l.begin(), l.end(), k) != l.end();
  }

 private:
  std::vector<std::list<uint32_t>> lists_;
  int cap_;
};

TEST(ExpertCacheTest, RandomisedAgainstReferenceLru) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 60; ++round) {
    const int layers = 1 + int(rng() % 4);
    const int experts = 2 + int(rng() % 12);
    const bool per_layer = rng() % 2;
    const int k = 1 + int(rng() % std::min(experts, 4));
    const int min_cap = per_layer ? k : k;
    const int cap = min_cap + int(rng() % (per_layer ? experts : experts * layers));
    auto rig = SimRig::Make(Opts(layers, experts, cap, per_layer), 1.0 + rng() % 4,
                            100 + rng() % 3000, double(rng() % 3));
    ExpertCache& c = *rig->cache;
    ReferenceLru ref(per_layer ? layers : 1, cap);
    uint64_t want_hits = 0, accesses = 0;
    for (int step = 0; step < 400; ++step) {
      const int layer = int(rng() % layers);
      std::vector<int32_t> ids;
      while (int(ids.size()) < k) {
        int32_t e = int32_t(rng() % experts);
        if (std::find(ids.begin(), ids.end(), e) == ids.end()) ids.push_back(e);
      }
      std::vector<uint32_t> keys;
      for (int32_t e : ids) keys.push_back(ExpertKey{uint16_t(layer), uint16_t(e)}.packed());
      std::vector<bool> want = ref.Access(per_layer ? layer : 0, keys);
      std::vector<ExpertHandle> hs;
      ASSERT_TRUE(c.Acquire(layer, ids, &hs).ok());
      for (size_t i = 0; i < ids.size(); ++i) {
        ASSERT_EQ(hs[i].ready(), bool(want[i])) << "round " << round << " step " << step;
        ASSERT_FALSE(hs[i].deferred());
        want_hits += want[i];
        ++accesses;
      }
      if (rng() % 3 == 0) rig->clock.Advance(rng() % 5000);
      for (auto& h : hs) ASSERT_TRUE(c.Wait(h).ok());
      hs.clear();
      if (step % 37 == 0) c.CheckInvariants();
    }
    for (int l = 0; l < layers; ++l) {
      for (int e = 0; e < experts; ++e) {
        ExpertKey key{uint16_t(l), uint16_t(e)};
        ASSERT_EQ(c.Contains(key), ref.Contains(per_layer ? l : 0, key.packed()));
        ASSERT_EQ(c.Contains(key), rig->lru.resident(key));
      }
    }
    CacheStats st = c.stats();
    EXPECT_EQ(st.total.accesses, accesses);
    EXPECT_EQ(st.total.demand_hits, want_hits);
    EXPECT_EQ(st.total.demand_hits + st.total.demand_misses, st.total.accesses);
  }
}

// Random interleavings of acquires (pins held across steps), prefetches,
// cancellations, releases and clock advances: invariants always hold, no
// pinned slot is ever evicted, and the cache never holds more keys than slots.
TEST(ExpertCacheTest, RandomisedInterleavingsKeepInvariants) {
  std::mt19937 rng(99);
  for (int round = 0; round < 40; ++round) {
    const int layers = 1 + int(rng() % 3);
    const int experts = 2 + int(rng() % 10);
    const bool per_layer = rng() % 2;
    const int cap = 1 + int(rng() % 6);
    ExpertCacheOptions o = Opts(layers, experts, cap, per_layer);
    o.prefetch_max_outstanding = 1 + int(rng() % 4);
    o.cancel_stale_prefetches = rng() % 2;
    // Some per-layer rounds with quotas that move (summing to the total).
    const bool moving = per_layer && rng() % 2;
    std::vector<int> quotas;
    if (moving) quotas.assign(size_t(layers), cap);
    auto rig = SimRig::Make(o, 1.0, 500, 0.5, quotas);
    ExpertCache& c = *rig->cache;
    std::vector<ExpertHandle> held;
    for (int step = 0; step < 300; ++step) {
      const int op = int(rng() % 10);
      if (op < 4) {
        const int layer = int(rng() % layers);
        std::vector<int32_t> ids = {int32_t(rng() % experts)};
        if (rng() % 2 && experts > 1) {
          int32_t e2 = int32_t(rng() % experts);
          if (e2 != ids[0]) ids.push_back(e2);
        }
        // Now and then the request is the first part of an announced step
        // (its experts plus one more, acquired later or never).
        if (rng() % 4 == 0) {
          std::vector<int32_t> whole = ids;
          const int32_t more = int32_t(rng() % experts);
          if (std::find(whole.begin(), whole.end(), more) == whole.end()) whole.push_back(more);
          ASSERT_TRUE(c.BeginStep(layer, whole).ok());
        }
        std::vector<ExpertHandle> hs;
        ASSERT_TRUE(c.Acquire(layer, ids, &hs).ok());
        for (auto& h : hs) held.push_back(std::move(h));
      } else if (op < 6) {
        std::vector<ExpertKey> pf;
        for (int i = 0; i < 3; ++i) {
          pf.push_back({uint16_t(rng() % layers), uint16_t(rng() % experts)});
        }
        ASSERT_TRUE(c.Prefetch(pf).ok());
      } else if (op == 6) {
        const int layer = int(rng() % layers);
        c.CancelPrefetches([layer](ExpertKey k) { return k.layer == layer; });
      } else if (op == 7 && !held.empty()) {
        size_t i = rng() % held.size();
        absl::Status s = c.Wait(held[i]);
        if (!s.ok()) {
          ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
          held.erase(held.begin() + long(i));
        }
      } else if (op == 8 && !held.empty()) {
        held.erase(held.begin() + long(rng() % held.size()));
      } else if (op == 9 && moving && layers > 1) {
        const int from = int(rng() % layers), to = int(rng() % layers);
        if (from != to && rig->lru.quotas[from] > 1) {
          --rig->lru.quotas[from];
          ++rig->lru.quotas[to];
        }
      } else {
        rig->clock.Advance(rng() % 2000);
        ASSERT_TRUE(c.Reap().ok());
      }
      if (held.size() > 6) held.erase(held.begin());
      c.CheckInvariants();
      // Every held, placed handle's key is still resident in its slot.
      for (const ExpertHandle& h : held) {
        if (!h.valid() || h.deferred()) continue;
        ASSERT_EQ(c.slot_of(h.key()), h.slot());
        ASSERT_GT(c.slot_pins(h.slot()), 0);
      }
    }
    held.clear();
    ASSERT_TRUE(c.Drain().ok());
    c.CheckInvariants();
    CacheStats st = c.stats();
    EXPECT_EQ(st.total.demand_hits + st.total.demand_misses, st.total.accesses);
    EXPECT_LE(st.total.prefetch_hits + st.total.prefetch_late + st.total.prefetch_unused,
              st.total.prefetch_issued);
  }
}

}  // namespace
}  // namespace moestream::cache
