// lfu[:decay=D,period=P,history=H]: evict the least frequently used evictable
// key, ties by least recent.
//
// Options:
//   decay   (0, 1], default 1: every `period` ticks all counts are multiplied
//           by `decay`, so old popularity fades (1 = plain LFU).
//   period  ticks, default 1024.
//   history 0/1, default 1: keep a key's count after it is evicted (perfect
//           LFU); 0 resets it on eviction (in-cache LFU).
// Decay is applied lazily: an access adds decay^-epoch instead of 1, which
// scales every count alike and so keeps the order; counts are renormalised
// when the increment grows large.
#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/scored_policy.h"

namespace moestream::policies {
namespace {

class LfuPolicy final : public ScoredPolicy {
 public:
  LfuPolicy(const PolicyEnv& env, double decay, int64_t period, bool history)
      : ScoredPolicy(env), decay_(decay), period_(period), history_(history) {}
  std::string name() const override {
    return absl::StrCat("lfu:decay=", decay_, ",period=", period_, ",history=", history_ ? 1 : 0);
  }

 protected:
  Score Rescore(ExpertKey k, const AccessContext& ctx, bool) override {
    uint64_t epoch = ctx.tick / uint64_t(period_);
    if (decay_ < 1.0 && epoch != epoch_) {
      epoch_ = epoch;
      double inc = std::pow(1.0 / decay_, double(epoch_ - base_epoch_));
      if (inc > 1e100) {
        Renormalise(inc);
        inc = 1.0;
      }
      inc_ = inc;
    }
    uint32_t i = index_.Of(k);
    if (i >= counts_.size()) counts_.resize(index_.SizeFor(k), 0.0);
    counts_[i] += inc_;
    return {counts_[i], ctx.tick};
  }
  void Erased(ExpertKey k) override {
    if (!history_) counts_[index_.Of(k)] = 0;
  }

 private:
  void Renormalise(double inc) {
    for (double& c : counts_) c /= inc;
    RescoreAll([&](ExpertKey k, Score s) { return Score{counts_[index_.Of(k)], s.secondary}; });
    base_epoch_ = epoch_;
  }

  double decay_;
  int64_t period_;
  bool history_;
  uint64_t epoch_ = 0;
  uint64_t base_epoch_ = 0;
  double inc_ = 1.0;
  std::vector<double> counts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> CreateLfuPolicy(PolicySpec& spec,
                                                                const PolicyEnv& env) {
  double decay = 1.0;
  int64_t period = 1024;
  bool history = true;
  MOESTREAM_RETURN_IF_ERROR(spec.Double("decay", 1e-6, 1.0, &decay));
  MOESTREAM_RETURN_IF_ERROR(spec.Int("period", 1, int64_t(1) << 40, &period));
  MOESTREAM_RETURN_IF_ERROR(spec.Bool("history", &history));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("decay, period, history"));
  return std::unique_ptr<EvictionPolicy>(new LfuPolicy(env, decay, period, history));
}

}  // namespace moestream::policies
