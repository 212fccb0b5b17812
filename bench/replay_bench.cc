// Replay speed: expert accesses per second through the real expert cache
// (trace/replay.h) on one core, per policy and with a predictor, next to a
// baseline measured in the same run: the policy alone driven by a bare
// residency array (no cache, no loader, no clock). The target is >= 5 M
// accesses/s for `moestream replay`; the ratio shows the cache's share.
//
//   ./build/bench/replay_bench --benchmark_format=json
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "policies/eviction_policy.h"
#include "policies/prefetch_predictor.h"
#include "trace/replay.h"
#include "trace/trace.h"

namespace moestream {
namespace {

constexpr int kLayers = 48, kExperts = 128, kTopK = 8, kTokens = 1000;

const trace::Trace& SyntheticTrace() {
  static trace::Trace t = [] {
    trace::Trace t;
    t.shape = {"synthetic", "bench", kLayers, kExperts, kTopK, {}, {}};
    for (int l = 0; l < kLayers; ++l) t.shape.layer_ids.push_back(l);
    std::mt19937 rng(42);
    std::geometric_distribution<int> skew(0.06);
    std::vector<int32_t> ids;
    for (int tok = 0; tok < kTokens; ++tok) {
      for (int l = 0; l < kLayers; ++l) {
        ids.clear();
        while (int(ids.size()) < kTopK) {
          int e = (skew(rng) + 7 * l) % kExperts;
          if (std::find(ids.begin(), ids.end(), e) == ids.end()) ids.push_back(e);
        }
        trace::TraceCell c;
        c.step = c.pos = uint32_t(tok);
        c.layer = uint16_t(l);
        t.AddCell(c, ids, {});
      }
    }
    return t;
  }();
  return t;
}

void BM_Replay(benchmark::State& state, const char* policy, const char* predictor,
               bool per_layer) {
  const trace::Trace& t = SyntheticTrace();
  trace::ReplayOptions o;
  o.policy = policy;
  o.predictor = predictor;
  o.capacity = 16;
  o.per_layer = per_layer;
  o.run_min = false;
  uint64_t accesses = 0;
  for (auto _ : state) {
    auto r = trace::Replay(t, o);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      return;
    }
    accesses += r->accesses;
    benchmark::DoNotOptimize(r->hits);
  }
  state.SetItemsProcessed(int64_t(accesses));
}

// Baseline: the same access stream through the policy alone.
void BM_PolicyOnly(benchmark::State& state, const char* policy) {
  const trace::Trace& t = SyntheticTrace();
  std::vector<ExpertKey> future;
  for (const auto& c : t.cells) {
    for (uint16_t e : t.Experts(c)) future.push_back({c.layer, e});
  }
  uint64_t accesses = 0;
  for (auto _ : state) {
    policies::PolicyEnv env;
    env.n_layers = kLayers;
    env.n_experts = kExperts;
    env.top_k = kTopK;
    env.capacity = 16 * kLayers;
    env.future = &future;
    auto p = policies::CreateEvictionPolicy(policy, env).value();
    std::vector<uint8_t> resident(kLayers * kExperts, 0);
    std::vector<int> count(kLayers, 0);
    policies::VictimQuery q;
    q.evictable = [](ExpertKey) { return true; };
    uint64_t hits = 0;
    for (uint64_t i = 0; i < future.size(); ++i) {
      ExpertKey k = future[i];
      policies::AccessContext ctx{i, false, k.layer};
      uint8_t& r = resident[k.layer * kExperts + k.expert];
      if (r) {
        ++hits;
        p->OnAccess(k, ctx);
        continue;
      }
      if (count[k.layer] >= 16) {
        q.layer = k.layer;
        q.tick = i;
        auto v = p->PickVictim(q);
        resident[v->layer * kExperts + v->expert] = 0;
        p->OnErase(*v);
        --count[k.layer];
      }
      p->OnInsert(k, ctx);
      r = 1;
      ++count[k.layer];
    }
    accesses += future.size();
    benchmark::DoNotOptimize(hits);
  }
  state.SetItemsProcessed(int64_t(accesses));
}

// The predictor alone over the same stream: Observe and Predict per layer
// step, no cache (its share of a replay with that predictor).
void BM_PredictorOnly(benchmark::State& state, const char* predictor) {
  const trace::Trace& t = SyntheticTrace();
  uint64_t accesses = 0;
  std::vector<policies::ExpertGuess> guesses;
  std::vector<int32_t> ids;
  for (auto _ : state) {
    policies::PolicyEnv env;
    env.n_layers = kLayers;
    env.n_experts = kExperts;
    env.top_k = kTopK;
    auto p = policies::CreatePrefetchPredictor(predictor, env).value();
    for (const auto& c : t.cells) {
      ids.assign(t.Experts(c).begin(), t.Experts(c).end());
      p->Observe({c.pos, c.layer, ids, {}});
      policies::PredictContext ctx;
      ctx.token = c.pos;
      ctx.layer = c.layer;
      ctx.top_k = kTopK;
      ctx.experts = ids;
      guesses.clear();
      p->Predict(ctx, &guesses);
      accesses += ids.size();
    }
    benchmark::DoNotOptimize(guesses.data());
  }
  state.SetItemsProcessed(int64_t(accesses));
}

BENCHMARK_CAPTURE(BM_PredictorOnly, coact, "coact")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_PolicyOnly, lru, "lru")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lru_per_layer, "lru", "none", true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lru_global, "lru", "none", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lfu_per_layer, "lfu", "none", true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, min_per_layer, "min", "none", true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lru_coact, "lru", "coact", true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lru_coact_conf, "lru", "coact:conf=0.5", true)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lru_coact_across, "lru", "coact:temporal=0", true)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lru_coact_skip, "lru", "coact:temporal=0,skip=1,weights=1", true)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, lru_prev, "lru", "prev", true)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moestream

BENCHMARK_MAIN();
