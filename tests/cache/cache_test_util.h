// Test doubles for the cache tests: a reference LRU eviction policy written
// independently of policies/ (so the cache's tests do not depend on the
// policy implementations), and a helper that builds a SimLoader-backed cache.
#ifndef MOESTREAM_TESTS_CACHE_CACHE_TEST_UTIL_H_
#define MOESTREAM_TESTS_CACHE_CACHE_TEST_UTIL_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "cache/expert_cache.h"
#include "cache/sim_loader.h"
#include "gtest/gtest.h"
#include "policies/eviction_policy.h"

namespace moestream::cache::testing {


// Least recently used first; records its resident set so tests can check the
// cache keeps the policy's mirror exact.
class TestLru final : public policies::EvictionPolicy {
 public:
  std::string name() const override { return "test-lru"; }
  void OnInsert(ExpertKey k, const policies::AccessContext&) override {
    EXPECT_FALSE(pos_.contains(k.packed())) << "double insert of " << k.layer << "/" << k.expert;
    order_.push_back(k);
    pos_[k.packed()] = std::prev(order_.end());
  }
  void OnAccess(ExpertKey k, const policies::AccessContext&) override {
    auto it = pos_.find(k.packed());
    ASSERT_NE(it, pos_.end()) << "access of non-resident " << k.layer << "/" << k.expert;
    order_.splice(order_.end(), order_, it->second);
  }
  void OnErase(ExpertKey k) override {
    auto it = pos_.find(k.packed());
    ASSERT_NE(it, pos_.end()) << "erase of non-resident " << k.layer << "/" << k.expert;
    order_.erase(it->second);
    pos_.erase(it);
  }
  std::optional<ExpertKey> PickVictim(const policies::VictimQuery& q) override {
    for (ExpertKey k : order_) {
      if (q.layer >= 0 && k.layer != q.layer) continue;
      if (q.evictable(k)) return k;
    }
    return std::nullopt;
  }
  // Moving per-layer quotas when set (EvictionPolicy::LayerQuota).
  int LayerQuota(int layer) const override {
    return size_t(layer) < quotas.size() ? quotas[layer] : -1;
  }
  std::vector<int> quotas;

  bool resident(ExpertKey k) const { return pos_.contains(k.packed()); }
  size_t size() const { return pos_.size(); }

 private:
  std::list<ExpertKey> order_;
  absl::flat_hash_map<uint32_t, std::list<ExpertKey>::iterator> pos_;
};

// A cache over a SimLoader: link of `gbps` GB/s without latency, experts of
// `expert_bytes`, so one load takes expert_bytes / gbps ns.
struct SimRig {
  SimClock clock;
  TestLru lru;
  std::unique_ptr<SimLoader> loader;
  std::unique_ptr<ExpertCache> cache;

  static std::unique_ptr<SimRig> Make(ExpertCacheOptions o, double gbps = 1.0,
                                      uint64_t expert_bytes = 1000, double latency_us = 0,
                                      std::vector<int> quotas = {}) {
    auto rig = std::make_unique<SimRig>();
    rig->lru.quotas = std::move(quotas);
    SimLoaderOptions lo;
    lo.link = {"test", gbps, latency_us};
    lo.expert_bytes = expert_bytes;
    auto loader = SimLoader::Create(lo, &rig->clock);
    EXPECT_TRUE(loader.ok()) << loader.status();
    rig->loader = std::move(*loader);
    o.slot_bytes = expert_bytes;
    auto cache = ExpertCache::Create(o, rig->loader.get(), &rig->clock, &rig->lru);
    EXPECT_TRUE(cache.ok()) << cache.status();
    rig->cache = std::move(*cache);
    return rig;
  }
};

}  // namespace moestream::cache::testing

#endif  // MOESTREAM_TESTS_CACHE_CACHE_TEST_UTIL_H_
