// lfru[:recency=R]: a blend of recency and frequency (LRFU, Lee et al. 2001).
// Each key's score is its combined recency-frequency value
//   CRF(k) = sum over past accesses i of 2^(-lambda * (now - t_i)),
// evict the smallest. lambda = 0 is LFU, lambda >= 1 per tick is exactly LRU
// (the newest access outweighs all older ones together).
//
// Options:
//   recency  [0, 1], default 0.5: the weight of recency. An access's weight
//            halves every (1 - R) / R tokens, a token being
//            n_layers * top_k ticks (env); R = 0 is LFU, R = 1 is LRU.
// Every key's CRF decays by the same factor as time passes, so the order is
// kept without touching idle keys; values are stored relative to a moving
// base and renormalised when they grow large.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class LfruPolicy final : public ScoredPolicy {
 public:
  LfruPolicy(const PolicyEnv& env, double recency) : ScoredPolicy(env), recency_(recency) {
    double ticks_per_token = double(std::max(1, env.n_layers) * std::max(1, env.top_k));
    if (recency >= 1.0) {
      lambda_ = 1.0;
    } else if (recency > 0.0) {
      double halflife_tokens = (1.0 - recency) / recency;
      lambda_ = std::min(1.0, 1.0 / (halflife_tokens * ticks_per_token));
    }
  }
  std::string name() const override { return absl::StrCat("lfru:recency=", recency_); }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool) override {
    double exponent = lambda_ * double(ctx.tick - std::min(ctx.tick, base_tick_));
    if (exponent > 900.0) {
      Renormalise(ctx.tick, exponent);
      exponent = 0.0;
    }
    uint32_t i = index_.Of(k);
    if (i >= crf_.size()) crf_.resize(index_.SizeFor(k), 0.0);
    crf_[i] += std::exp2(exponent);
    return {crf_[i], ctx.tick};
  }

 private:
  void Renormalise(uint64_t tick, double exponent) {
    double scale = std::exp2(-exponent);
    for (double& c : crf_) c *= scale;
    base_tick_ = tick;
    RescoreAll([&](ExpertKey k, Score s) { return Score{crf_[index_.Of(k)], s.secondary}; });
  }

  double recency_;
  double lambda_ = 0.0;  // per tick
  uint64_t base_tick_ = 0;
  std::vector<double> crf_;  // scaled by 2^(lambda * base_tick)
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLfruPolicy(PolicySpec& spec,
                                                                 const PolicyEnv& env) {
  double recency = 0.5;
  MOESTREAM_RETURN_IF_ERROR(spec.Double("recency", 0.0, 1.0, &recency));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("recency"));
  return std::unique_ptr<EvictionPolicy>(new LfruPolicy(env, recency));
}

}  // namespace moestream::policies
