// predict[:horizon=H]: evict the resident expert least likely to be routed
// again soon — MIN's question (whose next use is farthest?) answered with a
// prediction instead of the trace.
//
// The prediction is a reuse model learned online from the access stream.
// Time is counted per layer in visits (the layer's demand accesses over
// top_k: one visit per decoded token). Each time an expert is routed again
// we record the event (f, g): its use rate so far (uses per visit of its
// layer, in half-octave buckets f) and the gap g in visits since its last
// use. From these events, for an expert idle for g visits in bucket f,
//   P(reuse within H more visits) = events(f, g < g' <= g + H) / events(f, g' > g),
// shrunk towards the same ratio over all buckets where bucket f has few
// events (the weight of 4 events). H is how long an expert typically stays
// resident, the layer's slots over the experts routed per visit
// (env.capacity / n_layers / top_k, at least 1), unless given: a reuse
// later than that is one the cache would likely have lost anyway. (A
// horizon of 1 does better on some traces, but cannot see a loop longer
// than the cache, which MIN and this model with its residency horizon
// serve.) Candidates are ranked by that
// probability; ties (and the cold start, before any reuse has been seen)
// by use count, then recency, then key — so with no reuse learned yet it is
// LFU. Prefetched experts not yet routed rank first to stay (p = 1 until
// used: a prefetch is a guess that they are about to be).
//
// With predictor=NAME (coact, prev or popularity; default none) the policy
// also asks a prefetch predictor: it feeds the predictor its own demand
// accesses, one layer step at a time, and after each step asks it for the
// next d layers; an expert it guesses keeps, until its layer has run, at
// least the guess's confidence as its probability. (The policy contract
// hands a policy only its access stream, so the predictor is the policy's
// own instance, not the one the cache prefetches with.) Within a layer's
// own pool the guesses for that layer are the request being served, which
// the cache protects anyway; they count where victims come from other
// layers (a global pool).
//
// Options:
//   horizon    visits, 0 (default) = env.capacity / n_layers / top_k.
//   predictor  none (default), coact, prev, popularity: the predictor asked.
//   d          layers it guesses ahead, default 1 (at most n_layers - 1).
// Cost: O(1) per access (amortised table rebuilds, O(buckets) each when the
// event count has grown by an eighth); PickVictim scans the scope's resident
// keys (a layer's pool, or every layer for a global pool).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "policies/policy_registry.h"
#include "policies/prefetch_predictor.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

constexpr int kGaps = 256;     // gaps >= kGaps - 1 share the last bucket
constexpr int kFreqs = 16;     // use-rate buckets: half octaves of uses per visit

class PredictPolicy final : public EvictionPolicy {
 public:
  PredictPolicy(const PolicyEnv& env, int horizon_option, std::string predictor_name,
                std::unique_ptr<PrefetchPredictor> predictor, int ahead)
      : index_(env),
        horizon_option_(horizon_option),
        predictor_name_(std::move(predictor_name)),
        predictor_(std::move(predictor)),
        ahead_(ahead),
        n_layers_(env.n_layers) {
    top_k_ = uint64_t(std::max(1, env.top_k));
    const int per_layer = env.n_layers > 0 && env.capacity > 0 ? env.capacity / env.n_layers : 0;
    horizon_ = horizon_option > 0 ? horizon_option : std::max(1, per_layer / int(top_k_));
    events_.assign(size_t(kFreqs + 1) * kGaps, 0.0);
    prob_.assign(size_t(kFreqs + 1) * kGaps, 0.0);
    if (predictor_) {
      guess_.assign(size_t(std::max(1, n_layers_)) * index_.stride(), 0.0f);
      guessed_.resize(std::max(1, n_layers_));
    }
  }
  std::string name() const override {
    std::string opts;
    if (horizon_option_ > 0) absl::StrAppend(&opts, "horizon=", horizon_option_);
    if (predictor_) {
      absl::StrAppend(&opts, opts.empty() ? "" : ",", "predictor=", predictor_name_, ",d=", ahead_);
    }
    return opts.empty() ? "predict" : absl::StrCat("predict:", opts);
  }

  void OnInsert(ExpertKey k, const AccessContext& ctx) override {
    Grow(k);
    Key& s = keys_[index_.Of(k)];
    MOESTREAM_CHECK(s.pos < 0) << "OnInsert of resident key " << k.layer << "/" << k.expert;
    auto& list = resident_[k.layer];
    s.pos = int32_t(list.size());
    list.push_back(k.expert);
    if (!ctx.prefetch) {
      Use(k, s);
      Route(k);
    }
  }
  void OnAccess(ExpertKey k, const AccessContext&) override {
    Key& s = keys_[index_.Of(k)];
    MOESTREAM_CHECK(s.pos >= 0) << "OnAccess of non-resident key " << k.layer << "/" << k.expert;
    Use(k, s);
    Route(k);
  }
  void OnErase(ExpertKey k) override {
    Key& s = keys_[index_.Of(k)];
    MOESTREAM_CHECK(s.pos >= 0) << "OnErase of non-resident key " << k.layer << "/" << k.expert;
    auto& list = resident_[k.layer];
    uint16_t moved = list.back();
    list[size_t(s.pos)] = moved;
    keys_[index_.Of({k.layer, moved})].pos = s.pos;
    list.pop_back();
    s.pos = -1;
  }

  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override {
    // The step that asks is another layer's: the last one's routing is whole.
    if (q.current_layer != step_layer_) Flush();
    Candidate best;
    if (q.layer >= 0) {
      Scan(q.layer, q, &best);
    } else {
      for (size_t l = 0; l < resident_.size(); ++l) Scan(int(l), q, &best);
    }
    if (!best.found) return std::nullopt;
    return best.key;
  }

 private:
  struct Key {
    int32_t pos = -1;        // index in resident_[layer], -1 when not resident
    uint32_t uses = 0;       // demand uses so far
    uint32_t last_visit = 0; // visit of its layer at the last use
  };
  struct Candidate {
    bool found = false;
    ExpertKey key;
    double p = 0;
    uint32_t idle = 0, uses = 0;
    // Evicted first: lower probability, then fewer uses, longer idle, key.
    bool WorseThan(const Candidate& o) const {
      if (p != o.p) return p < o.p;
      if (uses != o.uses) return uses < o.uses;
      if (idle != o.idle) return idle > o.idle;
      return key.packed() < o.key.packed();
    }
  };

  // Half octaves of the use rate uses / visits (1 -> 0, 1/2 -> 2, ...).
  static int FreqBucket(uint32_t uses, uint32_t visits) {
    if (uses == 0) return kFreqs - 1;
    const double rate = std::min(1.0, double(uses) / double(std::max<uint32_t>(visits, 1)));
    return std::min(kFreqs - 1, int(-2.0 * std::log2(rate)));
  }

  void Grow(ExpertKey k) {
    MOESTREAM_CHECK(k.expert < index_.stride()) << "expert " << k.expert << " >= " << index_.stride();
    if (index_.SizeFor(k) > keys_.size()) keys_.resize(index_.SizeFor(k));
    if (k.layer >= resident_.size()) {
      resident_.resize(k.layer + 1);
      accesses_.resize(k.layer + 1, 0);
    }
  }

  // With a predictor: the demand accesses of one layer step are that layer's
  // routing. A step ends when another layer is accessed or asks for a
  // victim; then the predictor observes it and guesses the next `ahead_`
  // layers, and those guesses' confidences protect resident experts until
  // their layer has run.
  void Route(ExpertKey k) {
    if (!predictor_) return;
    if (int(k.layer) != step_layer_) {
      Flush();
      if (step_layer_ >= 0 && int(k.layer) <= step_layer_) ++token_;
      step_layer_ = k.layer;
    }
    step_.push_back(k.expert);
  }
  void Flush() {
    if (!predictor_ || step_.empty()) return;
    const int layer = step_layer_;
    // This layer has run: its guesses are spent.
    for (int32_t e : guessed_[layer]) guess_[size_t(layer) * index_.stride() + e] = 0;
    guessed_[layer].clear();
    predictor_->Observe({token_, layer, step_, {}});
    guesses_.clear();
    predictor_->Predict({.token = token_, .layer = layer, .lookahead = ahead_,
                         .top_k = int(top_k_), .experts = step_, .next_gate_scores = {},
                         .tick = 0},
                        &guesses_);
    for (const ExpertGuess& g : guesses_) {
      if (g.key.layer >= guessed_.size() || g.key.expert >= index_.stride()) continue;
      float& c = guess_[size_t(g.key.layer) * index_.stride() + g.key.expert];
      if (c == 0) guessed_[g.key.layer].push_back(g.key.expert);
      c = std::max(c, g.confidence);
    }
    step_.clear();
  }

  // A demand use of k, and a reuse event when k had been used before. A
  // layer's visits are its demand accesses over top_k (so a layer that runs
  // alone, or a batch of several tokens, still moves the clock).
  void Use(ExpertKey k, Key& s) {
    ++accesses_[k.layer];
    const uint32_t now = Now(k.layer);
    if (s.uses > 0 && now > s.last_visit) {
      int g = int(std::min<uint32_t>(now - s.last_visit, kGaps - 1));
      events_[size_t(FreqBucket(s.uses, now)) * kGaps + g] += 1;
      events_[size_t(kFreqs) * kGaps + g] += 1;  // all buckets
      if (++new_events_ * 8 >= total_events_ + 64) Rebuild();
    }
    if (now != s.last_visit || s.uses == 0) ++s.uses;
    s.last_visit = now;
  }

  // prob_[f][g] = P(reuse within horizon_ | idle g), from the events; rows
  // with little data lean on the all-bucket row.
  void Rebuild() {
    total_events_ += new_events_;
    new_events_ = 0;
    std::vector<double> tail(kGaps + 1);
    for (int f = kFreqs; f >= 0; --f) {
      const double* ev = &events_[size_t(f) * kGaps];
      tail[kGaps] = 0;
      for (int g = kGaps - 1; g >= 0; --g) tail[g] = tail[g + 1] + ev[g];
      for (int g = 0; g < kGaps; ++g) {
        const double later = tail[std::min(kGaps, g + 1)];
        const double within = later - tail[std::min(kGaps, g + 1 + horizon_)];
        double p = later > 0 ? within / later : 0.0;
        if (f < kFreqs) {
          // Shrink towards the pooled estimate with the weight of 4 events.
          const double pooled = prob_[size_t(kFreqs) * kGaps + g];
          p = (within + 4.0 * pooled) / (later + 4.0);
        }
        prob_[size_t(f) * kGaps + g] = p;
      }
    }
  }

  void Scan(int layer, const VictimQuery& q, Candidate* best) const {
    if (size_t(layer) >= resident_.size()) return;
    const uint32_t now = Now(layer);
    for (uint16_t e : resident_[layer]) {
      ExpertKey k{uint16_t(layer), e};
      if (q.evictable && !q.evictable(k)) continue;
      const Key& s = keys_[index_.Of(k)];
      Candidate c;
      c.found = true;
      c.key = k;
      c.uses = s.uses;
      c.idle = s.uses > 0 ? now - s.last_visit : 0;
      // Idle for `idle` visits: the gap to its next use exceeds that, and
      // for the layer now routing (whose request protects its own experts)
      // by one more.
      int g = int(std::min<uint32_t>(c.idle + (layer == q.current_layer ? 1 : 0), kGaps - 1));
      c.p = s.uses > 0 ? prob_[size_t(FreqBucket(s.uses, now)) * kGaps + g] : 1.0;
      // The predictor's guess that it is routed within the next layers.
      if (predictor_) c.p = std::max(c.p, double(guess_[size_t(layer) * index_.stride() + e]));
      if (!best->found || c.WorseThan(*best)) *best = c;
    }
  }

  KeyIndex index_;
  int horizon_option_;
  std::string predictor_name_;
  std::unique_ptr<PrefetchPredictor> predictor_;  // null: the reuse model alone
  int ahead_;
  int n_layers_;
  int horizon_ = 1;
  // The predictor's side: the step being gathered, and the live guesses.
  int step_layer_ = -1;
  uint64_t token_ = 0;
  std::vector<int32_t> step_;
  std::vector<ExpertGuess> guesses_;
  std::vector<float> guess_;                  // by key index: confidence, 0 = none
  std::vector<std::vector<int32_t>> guessed_; // per layer: experts with a guess
  std::vector<Key> keys_;                       // by key index
  std::vector<std::vector<uint16_t>> resident_; // per layer: resident experts
  uint32_t Now(int layer) const { return uint32_t(accesses_[layer] / top_k_) + 1; }

  std::vector<uint64_t> accesses_;              // per layer: demand accesses so far
  uint64_t top_k_ = 1;
  std::vector<double> events_;  // [f][g] reuse events; row kFreqs pools all f
  std::vector<double> prob_;    // [f][g] P(reuse within horizon_ | idle g)
  uint64_t new_events_ = 0, total_events_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreatePredictPolicy(PolicySpec& spec,
                                                                    const PolicyEnv& env) {
  int64_t horizon = 0;
  std::string predictor_name = "none";
  int64_t ahead = 1;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("horizon", 0, kGaps - 1, &horizon));
  MOESTREAM_RETURN_IF_ERROR(spec.String("predictor", &predictor_name));
  MOESTREAM_RETURN_IF_ERROR(spec.Int("d", 1, 64, &ahead));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("horizon, predictor, d"));
  std::unique_ptr<PrefetchPredictor> predictor;
  if (predictor_name != "none") {
    if (predictor_name == "gate" || predictor_name == "oracle") {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy '", spec.text(), "': predictor '", predictor_name,
          "' cannot be driven by the policy's own access stream (coact, prev, popularity can)"));
    }
    if (env.n_layers <= 0 || env.n_experts <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("policy '", spec.text(), "' needs the model shape for its predictor"));
    }
    auto made = CreatePrefetchPredictor(predictor_name, env);
    if (!made.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("policy '", spec.text(), "': ", made.status().message()));
    }
    predictor = *std::move(made);
    ahead = std::min<int64_t>(ahead, std::max(1, env.n_layers - 1));
  }
  return std::unique_ptr<EvictionPolicy>(
      new PredictPolicy(env, int(horizon), predictor_name, std::move(predictor), int(ahead)));
}

}  // namespace moestream::policies
