// ExpertCache throughput under the SimLoader (the replay path): expert
// accesses per second for a Qwen3-30B-A3B-shaped stream (48 layers, 128
// experts, top-8) at 25% per-layer capacity with LRU, next to a baseline in
// the same run: the same access stream through a bare array-based LRU that
// does no slot, load or statistics work. Report the ratio, not the absolute.
//
//   build/bench/cache_bench --benchmark_format=json
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "cache/expert_cache.h"
#include "cache/sim_loader.h"
#include "policies/eviction_policy.h"

namespace moestream::cache {
namespace {

constexpr int kLayers = 48, kExperts = 128, kTopK = 8;

// Skewed routing: each layer prefers a random quarter of its experts.
std::vector<int32_t> MakeStream(size_t tokens) {
  std::mt19937 rng(42);
  std::vector<int32_t> ids;
  ids.reserve(tokens * kLayers * kTopK);
  for (size_t t = 0; t < tokens; ++t) {
    for (int l = 0; l < kLayers; ++l) {
      int32_t chosen[kTopK];
      int n = 0;
      while (n < kTopK) {
        int32_t e = (rng() % 4 != 0) ? int32_t((l * 7 + rng() % 32) % kExperts)
                                     : int32_t(rng() % kExperts);
        if (std::find(chosen, chosen + n, e) == chosen + n) chosen[n++] = e;
      }
      ids.insert(ids.end(), chosen, chosen + kTopK);
    }
  }
  return ids;
}

void BM_SimCacheAccesses(benchmark::State& state) {
  const std::vector<int32_t> stream = MakeStream(256);
  SimClock clock;
  SimLoaderOptions lo;
  lo.link = {"pcie4x16", 25.0, 8.0};
  lo.expert_bytes = 3 << 20;
  auto loader = SimLoader::Create(lo, &clock).value();
  policies::PolicyEnv env;
  env.n_layers = kLayers;
  env.n_experts = kExperts;
  env.capacity = kLayers * kExperts / 4;
  auto policy = policies::CreateEvictionPolicy("lru", env).value();
  ExpertCacheOptions o;
  o.n_layers = kLayers;
  o.n_experts = kExperts;
  o.slots = kExperts / 4;
  o.per_layer = true;
  auto cache = ExpertCache::Create(o, loader.get(), &clock, policy.get()).value();
  std::vector<ExpertHandle> hs;
  size_t pos = 0;
  int64_t accesses = 0;
  for (auto _ : state) {
    const int layer = int((pos / kTopK) % kLayers);
    std::span<const int32_t> ids(stream.data() + pos, kTopK);
    if (!cache->Acquire(layer, ids, &hs).ok()) state.SkipWithError("acquire failed");
    for (ExpertHandle& h : hs) {
      if (!h.ready() && !cache->Wait(h).ok()) state.SkipWithError("wait failed");
    }
    hs.clear();
    clock.Advance(20000);
    pos = (pos + kTopK) % stream.size();
    accesses += kTopK;
  }
  state.SetItemsProcessed(accesses);
  state.counters["hit_rate"] = cache->stats().total.hit_rate();
}
BENCHMARK(BM_SimCacheAccesses);

// Baseline: per-layer LRU over arrays of last-use ticks, hit/miss only.
void BM_BareLruAccesses(benchmark::State& state) {
  const std::vector<int32_t> stream = MakeStream(256);
  const int cap = kExperts / 4;
  std::vector<std::vector<int32_t>> resident(kLayers);
  std::vector<uint64_t> last(size_t(kLayers) * kExperts, 0);
  size_t pos = 0;
  uint64_t tick = 1, hits = 0;
  int64_t accesses = 0;
  for (auto _ : state) {
    const int layer = int((pos / kTopK) % kLayers);
    std::vector<int32_t>& r = resident[size_t(layer)];
    for (int i = 0; i < kTopK; ++i) {
      int32_t e = stream[pos + size_t(i)];
      uint64_t& t = last[size_t(layer) * kExperts + size_t(e)];
      if (std::find(r.begin(), r.end(), e) != r.end()) {
        ++hits;
      } else if (int(r.size()) < cap) {
        r.push_back(e);
      } else {
        auto v = std::min_element(r.begin(), r.end(), [&](int32_t a, int32_t b) {
          return last[size_t(layer) * kExperts + size_t(a)] <
                 last[size_t(layer) * kExperts + size_t(b)];
        });
        *v = e;
      }
      t = tick++;
    }
    pos = (pos + kTopK) % stream.size();
    accesses += kTopK;
  }
  benchmark::DoNotOptimize(hits);
  state.SetItemsProcessed(accesses);
}
BENCHMARK(BM_BareLruAccesses);

}  // namespace
}  // namespace moestream::cache

BENCHMARK_MAIN();
