// markov[:prior=M]: evict the resident expert least likely to be routed by
// its layer's next step — MIN's question (whose next use is farthest?)
// asked one step ahead, with the step being served as the evidence.
//
// The estimate, per layer, learned as the run goes:
//   - a use rate: the steps that routed the expert over the layer's steps;
//   - a transition table T[i][j]: how often expert j was routed in the step
//     after a step that routed expert i, with occ[i] the steps after i seen.
// When a step S is announced (EvictionPolicy::OnStep: the cache sends the
// request before it looks anything up, or the whole step once when it is
// acquired in parts), the policy first learns the pairs (previous step,
// S), then scores every expert j of the layer for the step after S:
//   p(j) = (sum over i in S of T[i][j] + M * rate(j)) / (sum over i in S of occ[i] + M),
// the transition evidence of S's experts shrunk towards the use rate with
// the weight of M steps (`prior`, default 16), so a layer with little
// history ranks by its use rate (LFU) and one with much by what follows S.
// The victim is the evictable key with the lowest p, ties by use count, then
// least recent, then key. A key prefetched and not yet routed ranks last to
// go (a prefetch is a guess that it is about to be). Without OnStep (a cache
// that does not send it) every demand access counts as a use and p is the
// rate alone: LFU.
//
// Cost: OnStep O(|S| x experts) for the scores (one row of T per expert of
// S); PickVictim scans the scope's resident keys. T is n_experts^2 32-bit
// counts per layer, allocated at a layer's first step; above 512 experts per
// layer there is no table and p is the use rate.
//
// Options:
//   prior  [0, 1e6] steps, default 16: the use rate's weight against the
//          transition evidence (0: the evidence alone once there is any).
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

constexpr int kMaxTableExperts = 512;

class MarkovPolicy final : public EvictionPolicy {
 public:
  MarkovPolicy(const PolicyEnv& env, double prior) : index_(env), prior_(prior) {
    if (env.n_layers > 0) Layers(env.n_layers);
  }
  std::string name() const override {
    return prior_ == kDefaultPrior ? "markov" : absl::StrCat("markov:prior=", prior_);
  }
  static constexpr double kDefaultPrior = 16;

  void OnStep(int layer, std::span<const int32_t> experts, uint64_t) override {
    // A layer outside the model's, or experts outside its range, are not
    // the model's routing: ignored.
    if (layer < 0 || layer > 0xffff || (index_.n_layers() > 0 && layer >= index_.n_layers())) {
      return;
    }
    Layers(layer + 1);
    Layer& L = layers_[layer];
    const uint32_t n = index_.stride();
    step_.clear();
    for (int32_t e : experts) {
      if (e >= 0 && uint32_t(e) < n) step_.push_back(e);
    }
    const bool table = n <= kMaxTableExperts;
    if (table && L.t.empty()) {
      L.t.assign(size_t(n) * n, 0);
      L.occ.assign(n, 0);
      L.num.assign(n, 0.0);
    }
    // Learn: each expert of the previous step was followed by this step.
    if (table) {
      for (int32_t i : L.prev) {
        ++L.occ[i];
        uint32_t* row = &L.t[size_t(i) * n];
        for (int32_t j : step_) ++row[j];
      }
    }
    ++L.steps;
    L.prev.clear();
    for (int32_t e : step_) {
      Key& s = Of({uint16_t(layer), uint16_t(e)});
      if (s.step != L.steps) {
        s.step = L.steps;
        ++s.uses;
      }
      L.prev.push_back(e);
    }
    // Score the step after this one: the evidence of this step's experts.
    L.den = 0;
    if (table) {
      std::fill(L.num.begin(), L.num.end(), 0.0);
      for (int32_t i : L.prev) {
        L.den += L.occ[i];
        const uint32_t* row = &L.t[size_t(i) * n];
        for (uint32_t j = 0; j < n; ++j) L.num[j] += row[j];
      }
    }
  }

  void OnInsert(ExpertKey k, const AccessContext& ctx) override {
    Layers(k.layer + 1);
    Key& s = Of(k);
    MOESTREAM_CHECK(s.pos < 0) << "OnInsert of resident key " << k.layer << "/" << k.expert;
    auto& list = layers_[k.layer].resident;
    s.pos = int32_t(list.size());
    list.push_back(k.expert);
    s.unused_prefetch = ctx.prefetch;
    if (!ctx.prefetch) Use(k, s, ctx.tick);
  }
  void OnAccess(ExpertKey k, const AccessContext& ctx) override {
    Key& s = Of(k);
    MOESTREAM_CHECK(s.pos >= 0) << "OnAccess of non-resident key " << k.layer << "/" << k.expert;
    s.unused_prefetch = false;
    Use(k, s, ctx.tick);
  }
  void OnErase(ExpertKey k) override {
    Key& s = Of(k);
    MOESTREAM_CHECK(s.pos >= 0) << "OnErase of non-resident key " << k.layer << "/" << k.expert;
    auto& list = layers_[k.layer].resident;
    const uint16_t moved = list.back();
    list[size_t(s.pos)] = moved;
    Of({k.layer, moved}).pos = s.pos;
    list.pop_back();
    s.pos = -1;
    s.unused_prefetch = false;
  }

  std::optional<ExpertKey> PickVictim(const VictimQuery& q) override {
    Candidate best;
    if (q.layer >= 0) {
      Scan(q.layer, q, &best);
    } else {
      for (size_t l = 0; l < layers_.size(); ++l) Scan(int(l), q, &best);
    }
    if (!best.found) return std::nullopt;
    return best.key;
  }

 private:
  struct Key {
    int32_t pos = -1;       // index in its layer's resident list, -1 when not resident
    uint32_t uses = 0;      // steps (or, without OnStep, demand accesses) that used it
    uint64_t step = 0;      // the layer's step that last counted it
    uint64_t last = 0;      // tick of the last demand use
    bool unused_prefetch = false;
  };
  struct Layer {
    uint64_t steps = 0;             // steps announced
    std::vector<int32_t> prev;      // the last step's experts
    std::vector<uint32_t> t;        // [i * n + j] transitions, empty without a table
    std::vector<uint32_t> occ;      // [i] steps seen after a step that routed i
    std::vector<double> num;        // [j] transition evidence for the next step
    double den = 0;
    std::vector<uint16_t> resident;
  };
  struct Candidate {
    bool found = false;
    ExpertKey key;
    double p = 0;
    uint32_t uses = 0;
    uint64_t last = 0;
    // Evicted first: lower probability, fewer uses, least recent, key.
    bool WorseThan(const Candidate& o) const {
      if (p != o.p) return p < o.p;
      if (uses != o.uses) return uses < o.uses;
      if (last != o.last) return last < o.last;
      return key.packed() < o.key.packed();
    }
  };

  void Layers(size_t n) {
    if (layers_.size() < n) layers_.resize(n);
  }
  Key& Of(ExpertKey k) {
    MOESTREAM_CHECK(k.expert < index_.stride()) << "expert " << k.expert << " >= " << index_.stride();
    const uint32_t i = index_.Of(k);
    if (i >= keys_.size()) keys_.resize(index_.SizeFor(k));
    return keys_[i];
  }
  // A demand use: counted once per announced step; with no step announced
  // for its layer, every access counts.
  void Use(ExpertKey k, Key& s, uint64_t tick) {
    const Layer& L = layers_[k.layer];
    if (L.steps == 0) ++s.uses;
    s.last = tick;
  }

  double Probability(const Layer& L, uint16_t e, const Key& s) const {
    if (L.steps == 0) return 0;  // no steps: the use count alone decides
    const double rate = double(s.uses) / double(L.steps);
    if (L.num.empty() || L.den + prior_ <= 0) return rate;
    return (L.num[e] + prior_ * rate) / (L.den + prior_);
  }

  void Scan(int layer, const VictimQuery& q, Candidate* best) const {
    if (size_t(layer) >= layers_.size()) return;
    const Layer& L = layers_[layer];
    for (uint16_t e : L.resident) {
      const ExpertKey k{uint16_t(layer), e};
      if (q.evictable && !q.evictable(k)) continue;
      const Key& s = keys_[index_.Of(k)];
      Candidate c;
      c.found = true;
      c.key = k;
      c.p = s.unused_prefetch ? 2.0 : Probability(L, e, s);
      c.uses = s.uses;
      c.last = s.last;
      if (!best->found || c.WorseThan(*best)) *best = c;
    }
  }

  KeyIndex index_;
  double prior_;
  std::vector<Layer> layers_;
  std::vector<Key> keys_;  // by key index
  std::vector<int32_t> step_;  // OnStep's valid experts (reused)
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateMarkovPolicy(PolicySpec& spec,
                                                                   const PolicyEnv& env) {
  double prior = MarkovPolicy::kDefaultPrior;
  MOESTREAM_RETURN_IF_ERROR(spec.Double("prior", 0.0, 1e6, &prior));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("prior"));
  return std::unique_ptr<EvictionPolicy>(new MarkovPolicy(env, prior));
}

}  // namespace moestream::policies
