#include "trace/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "cache/expert_cache.h"
#include "cache/sim_loader.h"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"
#include "policies/eviction_policy.h"
#include "policies/prediction_scorer.h"
#include "policies/policy_spec.h"
#include "policies/prefetch_predictor.h"
#include "trace/trace_import.h"

namespace moestream::trace {
namespace {


constexpr uint64_t kDefaultExpertBytes = 8ull << 20;

// One Acquire: the union of the experts of consecutive cells with equal
// (seq, step, layer).
struct Group {
  uint32_t seq;
  uint16_t layer;
  uint32_t first_cell, end_cell;
  uint32_t offset, n;  // into Plan::experts
  uint32_t pos;        // position of the first cell (the token for predictors)
};

struct Plan {
  std::vector<Group> groups;
  std::vector<int32_t> experts;
  std::vector<std::pair<size_t, size_t>> seqs;  // [first, end) group ranges
  uint64_t cells = 0;
};

bool Selected(const TraceCell& c, const std::string& phase) {
  if (phase == "all") return true;
  return phase == "prefill" ? c.phase == Phase::kPrefill : c.phase == Phase::kDecode;
}

Plan MakePlan(const Trace& t, const std::string& phase) {
  Plan p;
  const TraceCell* prev = nullptr;
  for (uint32_t i = 0; i < t.cells.size(); ++i) {
    const TraceCell& c = t.cells[i];
    if (!Selected(c, phase)) continue;
    ++p.cells;
    if (prev == nullptr || prev->seq != c.seq || prev->step != c.step ||
        prev->layer != c.layer || prev->phase != c.phase) {
      if (p.seqs.empty() || (prev != nullptr && prev->seq != c.seq)) {
        if (!p.seqs.empty()) p.seqs.back().second = p.groups.size();
        p.seqs.push_back({p.groups.size(), 0});
      }
      p.groups.push_back(Group{c.seq, c.layer, i, i, uint32_t(p.experts.size()), 0, c.pos});
    }
    Group& g = p.groups.back();
    g.end_cell = i + 1;
    for (uint16_t e : t.Experts(c)) {
      auto begin = p.experts.begin() + g.offset;
      if (std::find(begin, p.experts.end(), int32_t(e)) == p.experts.end()) {
        p.experts.push_back(e);
        ++g.n;
      }
    }
    prev = &c;
  }
  if (!p.seqs.empty()) p.seqs.back().second = p.groups.size();
  return p;
}

struct RunTotals {
  cache::CacheCounters counters;
  std::vector<cache::CacheCounters> per_layer;
  std::vector<policies::PredictionScorer> by_distance;  // [d - 1]: guesses d layers ahead
  uint64_t modelled_ns = 0;
  std::string policy_name, predictor_name;
};

absl::Status RunOne(const Trace& t, const Plan& plan, const ReplayOptions& o,
                    const std::string& policy_spec, const std::string& predictor_spec,
                    const std::vector<double>& popularity, RunTotals* out) {
  const int n_layers = t.shape.n_layers;
  MOESTREAM_ASSIGN_OR_RETURN(kernels::LinkProfile link, kernels::FindLinkProfile(o.link));
  cache::SimLoaderOptions lo;
  lo.link = link;
  if (o.expert_bytes > 0) {
    lo.expert_bytes = o.expert_bytes;
  } else {
    bool known = int(t.shape.expert_bytes.size()) == n_layers;
    for (uint64_t b : t.shape.expert_bytes) known = known && b > 0;
    if (known) {
      lo.expert_bytes_per_layer = t.shape.expert_bytes;
    } else {
      lo.expert_bytes = kDefaultExpertBytes;
    }
  }
  const uint64_t compute_ns = uint64_t(std::llround(o.layer_compute_us * 1e3));
  out->per_layer.resize(n_layers);
  std::vector<ExpertKey> future;
  std::vector<policies::ExpertGuess> guesses;
  std::vector<ExpertKey> prefetch_keys;
  std::vector<ExpertKey> actual;
  // Guesses made d layers ahead, per distance d (1..lookahead) and target
  // layer, scored when the target layer routes.
  const int lookahead = n_layers > 1 ? std::min(o.lookahead, n_layers - 1) : 1;
  out->by_distance.resize(lookahead);
  std::vector<std::vector<std::vector<policies::ExpertGuess>>> pending(
      lookahead, std::vector<std::vector<policies::ExpertGuess>>(n_layers));
  std::vector<std::vector<uint8_t>> has_pending(lookahead, std::vector<uint8_t>(n_layers, 0));

  for (auto [gbegin, gend] : plan.seqs) {
    future.clear();
    for (size_t gi = gbegin; gi < gend; ++gi) {
      const Group& g = plan.groups[gi];
      for (uint32_t j = 0; j < g.n; ++j) {
        future.push_back({g.layer, uint16_t(plan.experts[g.offset + j])});
      }
    }
    policies::PolicyEnv env;
    env.n_layers = n_layers;
    env.n_experts = t.shape.n_experts;
    env.top_k = t.shape.top_k;
    env.capacity = o.capacity * n_layers;
    env.future = &future;
    env.popularity = &popularity;
    MOESTREAM_ASSIGN_OR_RETURN(auto policy, policies::CreateEvictionPolicy(policy_spec, env));
    MOESTREAM_ASSIGN_OR_RETURN(auto predictor,
                               policies::CreatePrefetchPredictor(predictor_spec, env));
    out->policy_name = policy->name();
    out->predictor_name = predictor->name();
    const bool predicting = predictor->name() != "none";
    cache::SimClock clock;
    MOESTREAM_ASSIGN_OR_RETURN(auto loader, cache::SimLoader::Create(lo, &clock));
    cache::ExpertCacheOptions co;
    co.n_layers = n_layers;
    co.n_experts = t.shape.n_experts;
    co.per_layer = o.per_layer;
    co.slots = o.per_layer ? o.capacity : o.capacity * n_layers;
    MOESTREAM_ASSIGN_OR_RETURN(
        auto cache, cache::ExpertCache::Create(co, loader.get(), &clock, policy.get()));
    // After the cache: an error return releases the handles still held
    // before the cache that they pin goes away.
    std::vector<cache::ExpertHandle> handles;
    for (auto& h : has_pending) std::fill(h.begin(), h.end(), 0);

    for (size_t gi = gbegin; gi < gend; ++gi) {
      const Group& g = plan.groups[gi];
      std::span<const int32_t> ids(plan.experts.data() + g.offset, g.n);
      if (predicting) {
        actual.clear();
        for (int32_t e : ids) actual.push_back({g.layer, uint16_t(e)});
        for (int d = 0; d < lookahead; ++d) {
          if (has_pending[d][g.layer]) {
            out->by_distance[d].Add(pending[d][g.layer], actual);
            has_pending[d][g.layer] = 0;
          } else {
            out->by_distance[d].AddUnpredicted(actual.size());
          }
        }
      }
      // A step that cannot fit its pool is requested expert by expert.
      const bool seq = o.sequential || (o.per_layer && int(ids.size()) > o.capacity);
      // Split for want of room (not by --sequential, which replays each
      // access on its own): the cache and policy know the step whole, as an
      // engine does once the router has run.
      if (seq && !o.sequential) MOESTREAM_RETURN_IF_ERROR(cache->BeginStep(g.layer, ids));
      for (size_t part = 0; part < (seq ? ids.size() : 1); ++part) {
        std::span<const int32_t> req = seq ? ids.subspan(part, 1) : ids;
        handles.clear();
        MOESTREAM_RETURN_IF_ERROR(cache->Acquire(g.layer, req, &handles));
        for (auto& h : handles) {
          if (h.valid() && h.ready()) h.Release();
        }
        // Handles are waited in request order, each released once ready. A
        // deferred handle (no slot yet) followed by handles that pin every
        // slot of its pool would wait forever: only then are the handles
        // with slots waited first (any other order would change results).
        const int64_t pool_slots = co.slots;  // per layer, or all layers for a global pool
        int64_t pinned_after = 0;
        bool stuck = false;
        for (auto it = handles.rbegin(); it != handles.rend(); ++it) {
          if (!it->valid()) continue;
          if (!it->deferred()) {
            ++pinned_after;
          } else if (pinned_after >= pool_slots) {
            stuck = true;
          }
        }
        for (int pass = stuck ? 0 : 1; pass < 2; ++pass) {
          for (auto& h : handles) {
            if (!h.valid() || (pass == 0 && h.deferred())) continue;
            MOESTREAM_RETURN_IF_ERROR(cache->Wait(h));
            h.Release();
          }
        }
      }
      if (predicting) {
        for (uint32_t c = g.first_cell; c < g.end_cell; ++c) {
          const TraceCell& cell = t.cells[c];
          if (!Selected(cell, o.phase)) continue;
          std::span<const uint16_t> ex = t.Experts(cell);
          int32_t buf[256];
          size_t n = std::min<size_t>(ex.size(), 256);
          for (size_t i = 0; i < n; ++i) buf[i] = ex[i];
          predictor->Observe(policies::RoutingObservation{
              cell.pos, cell.layer, std::span<const int32_t>(buf, n), t.Weights(cell)});
        }
        policies::PredictContext ctx;
        ctx.token = g.pos;
        ctx.layer = g.layer;
        ctx.lookahead = lookahead;
        ctx.top_k = t.shape.top_k;
        ctx.experts = ids;
        ctx.tick = cache->tick();
        guesses.clear();
        predictor->Predict(ctx, &guesses);
        for (int d = 0; d < lookahead; ++d) {
          const int target = (g.layer + 1 + d) % n_layers;
          pending[d][target].clear();
          has_pending[d][target] = 1;
        }
        prefetch_keys.clear();
        for (const auto& gs : guesses) {
          if (gs.key.layer >= n_layers || gs.key.expert >= t.shape.n_experts) continue;
          const int d = (int(gs.key.layer) - int(g.layer) - 1 + n_layers) % n_layers;
          if (d < lookahead) pending[d][gs.key.layer].push_back(gs);
          prefetch_keys.push_back(gs.key);
        }
        MOESTREAM_RETURN_IF_ERROR(cache->Prefetch(prefetch_keys));
      }
      clock.Advance(compute_ns);
    }
    handles.clear();
    MOESTREAM_RETURN_IF_ERROR(cache->Drain());
    cache::CacheStats st = cache->stats();
    out->counters.Add(st.total);
    for (int l = 0; l < n_layers; ++l) out->per_layer[l].Add(st.per_layer[l]);
    out->modelled_ns += clock.NowNs();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReplayOptions::Validate() const {
  if (capacity < 1) {
    return absl::InvalidArgumentError(absl::StrCat("capacity must be >= 1 expert per layer, got ",
                                                   capacity));
  }
  if (phase != "decode" && phase != "prefill" && phase != "all") {
    return absl::InvalidArgumentError(
        absl::StrCat("phase '", phase, "' is not one of decode, prefill, all"));
  }
  if (!(layer_compute_us >= 0)) return absl::InvalidArgumentError("layer compute time must be >= 0");
  if (lookahead < 1) return absl::InvalidArgumentError("lookahead must be >= 1");
  MOESTREAM_RETURN_IF_ERROR(CheckReplayablePredictor(predictor));
  return kernels::FindLinkProfile(link).status();
}

absl::Status CheckReplayablePredictor(const std::string& predictor_spec) {
  MOESTREAM_ASSIGN_OR_RETURN(policies::PolicySpec spec, policies::ParsePolicySpec(predictor_spec));
  if (spec.name() == "gate") {
    return absl::InvalidArgumentError(absl::StrCat(
        "predictor '", predictor_spec,
        "' cannot be replayed: gate guesses from the next layer's router scores, which a routing "
        "trace does not record (replayable: none, coact, prev, popularity, oracle)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplayResult> Replay(const Trace& trace, const ReplayOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  MOESTREAM_RETURN_IF_ERROR(trace.Validate());
  Plan plan = MakePlan(trace, o.phase);
  if (plan.groups.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the trace has no ", o.phase, " cells to replay"));
  }
  std::vector<double> popularity = o.popularity;
  if (popularity.empty()) popularity = TracePopularity(trace);

  RunTotals run;
  auto t0 = std::chrono::steady_clock::now();
  MOESTREAM_RETURN_IF_ERROR(RunOne(trace, plan, o, o.policy, o.predictor, popularity, &run));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  ReplayResult r;
  r.policy = run.policy_name;
  r.predictor = run.predictor_name;
  r.accesses = run.counters.accesses;
  r.hits = run.counters.demand_hits;
  r.hit_rate = run.counters.hit_rate();
  if (!run.by_distance.empty()) {
    r.prefetch_precision = run.by_distance[0].precision();
    r.prefetch_recall = run.by_distance[0].recall();
  }
  for (const policies::PredictionScorer& s : run.by_distance) {
    r.precision_by_distance.push_back(s.precision());
    r.recall_by_distance.push_back(s.recall());
  }
  r.prefetch_issued = run.counters.prefetch_issued;
  r.prefetch_hits = run.counters.prefetch_hits;
  r.link_bytes = run.counters.link_bytes;
  r.stall_ns = run.counters.stall_ns;
  r.modelled_ns = run.modelled_ns;
  r.tokens = plan.cells / uint64_t(std::max(1, trace.shape.n_layers));
  r.modelled_tok_s = r.modelled_ns ? double(r.tokens) * 1e9 / double(r.modelled_ns) : 0.0;
  r.wall_s = wall;
  r.accesses_per_s = wall > 0 ? double(r.accesses) / wall : 0.0;
  for (const auto& c : run.per_layer) r.layer_hit_rate.push_back(c.hit_rate());
  if (o.run_min) {
    if (r.policy == "min" && o.predictor == "none") {
      r.min_hit_rate = r.hit_rate;
    } else {
      RunTotals m;
      MOESTREAM_RETURN_IF_ERROR(RunOne(trace, plan, o, "min", "none", popularity, &m));
      r.min_hit_rate = m.counters.hit_rate();
    }
  }
  return r;
}

std::string ReplayResultJson(const ReplayResult& r) {
  nlohmann::ordered_json j;
  j["policy"] = r.policy;
  j["predictor"] = r.predictor;
  j["accesses"] = r.accesses;
  j["hits"] = r.hits;
  j["hit_rate"] = r.hit_rate;
  j["min_hit_rate"] = r.min_hit_rate;
  j["ratio_to_min"] = r.min_hit_rate > 0 ? r.hit_rate / r.min_hit_rate : 0.0;
  j["prefetch_precision"] = r.prefetch_precision;
  j["prefetch_recall"] = r.prefetch_recall;
  j["prefetch_precision_by_distance"] = r.precision_by_distance;
  j["prefetch_recall_by_distance"] = r.recall_by_distance;
  j["prefetch_issued"] = r.prefetch_issued;
  j["prefetch_hits"] = r.prefetch_hits;
  j["link_bytes"] = r.link_bytes;
  j["stall_ms"] = r.stall_ns / 1e6;
  j["modelled_ms"] = r.modelled_ns / 1e6;
  j["tokens"] = r.tokens;
  j["modelled_tok_s"] = r.modelled_tok_s;
  j["wall_s"] = r.wall_s;
  j["accesses_per_s"] = r.accesses_per_s;
  return j.dump();
}

}  // namespace moestream::trace
