// coact[:k=N]: co-activation history, learned online (MoE-Infinity's
// activation matrix, per consecutive layer pair). For each token, when layer
// L chose set A and the next layer chose set B, M[L][a][b] += 1 for every
// a in A, b in B. The guess for the next layer is the top k (default top_k)
// of score[b] = sum over a in A of M[L][a][b], with per-layer frequency as a
// small tie-breaker (and the cold-start answer). Further layers are predicted
// by chaining the previous guess as the input set.
//
// Memory: n_layers * n_experts^2 floats (48 * 128 * 128 * 4 B = 3 MiB).
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/predictor_util.h"

namespace moestream::policies {
namespace {

class CoactPredictor final : public PrefetchPredictor {
 public:
  CoactPredictor(const PolicyEnv& env, int k)
      : n_layers_(env.n_layers),
        n_experts_(env.n_experts),
        k_(k),
        matrix_(size_t(env.n_layers) * env.n_experts * env.n_experts, 0.0f),
        freq_(size_t(env.n_layers) * env.n_experts, 0.0),
        freq_total_(size_t(env.n_layers), 0.0),
        last_(env.n_layers),
        last_token_(env.n_layers, ~uint64_t{0}) {}
  std::string name() const override { return k_ > 0 ? absl::StrCat("coact:k=", k_) : "coact"; }

  void Observe(const RoutingObservation& o) override {
    if (o.layer < 0 || o.layer >= n_layers_) return;
    int prev = (o.layer + n_layers_ - 1) % n_layers_;
    uint64_t want = o.layer == 0 ? o.token - 1 : o.token;
    if (last_token_[prev] == want && n_layers_ > 1) {
      float* m = &matrix_[size_t(prev) * n_experts_ * n_experts_];
      for (int32_t a : last_[prev]) {
        for (int32_t b : o.experts) {
          if (Valid(a) && Valid(b)) m[size_t(a) * n_experts_ + b] += 1.0f;
        }
      }
    }
    for (int32_t b : o.experts) {
      if (Valid(b)) {
        freq_[size_t(o.layer) * n_experts_ + b] += 1.0;
        freq_total_[o.layer] += 1.0;
      }
    }
    last_[o.layer].assign(o.experts.begin(), o.experts.end());
    last_token_[o.layer] = o.token;
  }

  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    if (ctx.layer < 0 || ctx.layer >= n_layers_) return;
    int k = GuessCount(k_, ctx.top_k);
    input_.assign(ctx.experts.begin(), ctx.experts.end());
    int from = ctx.layer;
    for (int d = 1; d <= ctx.lookahead; ++d) {
      int to = TargetLayer(from, 1, n_layers_);
      scores_.assign(n_experts_, 0.0);
      double* __restrict sc = scores_.data();
      const float* m = &matrix_[size_t(from) * n_experts_ * n_experts_];
      for (int32_t a : input_) {
        if (!Valid(a)) continue;
        const float* __restrict row = m + size_t(a) * n_experts_;
        for (int b = 0; b < n_experts_; ++b) sc[b] += row[b];
      }
      const double* __restrict f = &freq_[size_t(to) * n_experts_];
      // Counts are whole numbers, so the running total equals the sum.
      const double total = freq_total_[to];
      if (total > 0) {
        for (int b = 0; b < n_experts_; ++b) sc[b] += 1e-3 * f[b] / total;
      }
      size_t before = out->size();
      AppendTopK(scores_, to, k, out);
      input_.clear();
      for (size_t i = before; i < out->size(); ++i) input_.push_back((*out)[i].key.expert);
      from = to;
    }
  }

 private:
  bool Valid(int32_t e) const { return e >= 0 && e < n_experts_; }

  int n_layers_;
  int n_experts_;
  int k_;
  std::vector<float> matrix_;   // [layer][a][b]: a in layer, b in the next layer
  std::vector<double> freq_;    // [layer][expert]
  std::vector<double> freq_total_;  // [layer]: sum of freq_ over experts
  std::vector<std::vector<int32_t>> last_;  // last set seen per layer
  std::vector<uint64_t> last_token_;        // its token
  std::vector<double> scores_;
  std::vector<int32_t> input_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateCoactPredictor(PolicySpec& spec,
                                                                        const PolicyEnv& env) {
  int64_t k = 0;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("k", 0, 4096, &k));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("k"));
  if (env.n_layers <= 0 || env.n_experts <= 0) {
    return absl::FailedPreconditionError("predictor 'coact' needs the model shape");
  }
  return std::unique_ptr<PrefetchPredictor>(new CoactPredictor(env, int(k)));
}

}  // namespace moestream::policies
