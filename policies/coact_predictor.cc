// coact[:k=N,temporal=0|1]: co-activation history, learned online
// (MoE-Infinity's activation matrix, per consecutive layer pair), conditioned
// on two sets at once:
//   - across layers: when token t's layer L chose A and its next layer chose
//     B, M[L][a][b] += 1 for a in A, b in B;
//   - across tokens (temporal=1, default): when token t-1's layer L chose C
//     and token t's layer L chose B, T[L][c][b] += 1.
// Each row is a conditional inclusion probability, smoothed towards the
// target layer's marginal p0[b] (share of tokens that routed b there) with
// the weight of one observation:
//   P(b | a) = (M[a][b] + p0[b]) / (n[a] + 1),
// where n[a] counts a's rows. The guess for a layer is the top k (default
// top_k) of the average of P(b | x) over the conditioning experts x: the
// experts just routed (or, further ahead, the previous layer's guesses,
// weighted by their confidence) and the experts the previous token routed at
// the target layer. Each guess's confidence is that average, an estimate of
// the probability that b is routed (so a threshold `conf=` means the same
// for every layer). With no history, the guess is p0's top k.
//
// Memory: 2 * n_layers * n_experts^2 floats (48 * 128 * 128 * 8 B = 6 MiB).
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/predictor_util.h"

namespace moestream::policies {
namespace {

class CoactPredictor final : public PrefetchPredictor {
 public:
  CoactPredictor(const PolicyEnv& env, int k, bool temporal)
      : n_layers_(env.n_layers),
        n_experts_(env.n_experts),
        k_(k),
        temporal_(temporal),
        across_(size_t(env.n_layers) * env.n_experts * env.n_experts, 0.0f),
        across_rows_(size_t(env.n_layers) * env.n_experts, 0.0f),
        along_(temporal ? size_t(env.n_layers) * env.n_experts * env.n_experts : 0, 0.0f),
        along_rows_(temporal ? size_t(env.n_layers) * env.n_experts : 0, 0.0f),
        freq_(size_t(env.n_layers) * env.n_experts, 0.0f),
        tokens_(size_t(env.n_layers), 0.0),
        last_(env.n_layers),
        last_token_(env.n_layers, ~uint64_t{0}) {}
  std::string name() const override {
    std::string opts;
    if (k_ > 0) absl::StrAppend(&opts, "k=", k_);
    if (!temporal_) absl::StrAppend(&opts, opts.empty() ? "" : ",", "temporal=0");
    return opts.empty() ? "coact" : absl::StrCat("coact:", opts);
  }

  void Observe(const RoutingObservation& o) override {
    if (o.layer < 0 || o.layer >= n_layers_) return;
    int prev = (o.layer + n_layers_ - 1) % n_layers_;
    uint64_t want = o.layer == 0 ? o.token - 1 : o.token;
    if (last_token_[prev] == want && n_layers_ > 1) Count(prev, last_[prev], o.experts, &across_,
                                                          &across_rows_);
    if (temporal_ && last_token_[o.layer] == o.token - 1) {
      Count(o.layer, last_[o.layer], o.experts, &along_, &along_rows_);
    }
    for (int32_t b : o.experts) {
      if (Valid(b)) freq_[size_t(o.layer) * n_experts_ + b] += 1.0f;
    }
    tokens_[o.layer] += 1.0;
    last_[o.layer].assign(o.experts.begin(), o.experts.end());
    last_token_[o.layer] = o.token;
  }

  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    if (ctx.layer < 0 || ctx.layer >= n_layers_) return;
    int k = GuessCount(k_, ctx.top_k);
    input_.clear();
    for (int32_t a : ctx.experts) input_.push_back({a, 1.0f});
    int from = ctx.layer;
    for (int d = 1; d <= ctx.lookahead; ++d) {
      int to = TargetLayer(from, 1, n_layers_);
      const uint64_t token = ctx.token + uint64_t(ctx.layer + d >= n_layers_ ? 1 : 0);
      scores_.assign(n_experts_, 0.0);
      double* __restrict sc = scores_.data();
      double weight = 0;  // sum of the conditioning weights
      double prior = 0;   // coefficient of p0 in the sum
      for (const Input& in : input_) {
        Accumulate(from, in.expert, in.weight, across_, across_rows_, sc, &weight, &prior);
      }
      if (temporal_ && last_token_[to] + 1 == token) {
        for (int32_t c : last_[to]) Accumulate(to, c, 1.0f, along_, along_rows_, sc, &weight, &prior);
      }
      // p0 of the target layer: the prior of every row, and the whole guess
      // when no conditioning expert has a row yet.
      const double n = tokens_[to];
      if (n > 0) {
        const float* __restrict f = &freq_[size_t(to) * n_experts_];
        const double c = (weight > 0 ? prior : 1.0) / n;
        for (int b = 0; b < n_experts_; ++b) sc[b] += c * f[b];
      }
      if (weight > 0) {
        const double inv = 1.0 / weight;
        for (int b = 0; b < n_experts_; ++b) sc[b] *= inv;
      }
      size_t before = out->size();
      AppendTopK(scores_, to, k, out, /*absolute=*/true);
      input_.clear();
      for (size_t i = before; i < out->size(); ++i) {
        input_.push_back({(*out)[i].key.expert, (*out)[i].confidence});
      }
      from = to;
    }
  }

 private:
  struct Input {
    int32_t expert;
    float weight;
  };
  bool Valid(int32_t e) const { return e >= 0 && e < n_experts_; }

  void Count(int layer, const std::vector<int32_t>& from, std::span<const int32_t> to,
             std::vector<float>* matrix, std::vector<float>* rows) {
    float* m = &(*matrix)[size_t(layer) * n_experts_ * n_experts_];
    for (int32_t a : from) {
      if (!Valid(a)) continue;
      (*rows)[size_t(layer) * n_experts_ + a] += 1.0f;
      for (int32_t b : to) {
        if (Valid(b)) m[size_t(a) * n_experts_ + b] += 1.0f;
      }
    }
  }

  // Adds weight * P(. | x) of one row, without its prior share (collected in
  // *prior, added once with p0).
  void Accumulate(int layer, int32_t x, float w, const std::vector<float>& matrix,
                  const std::vector<float>& rows, double* __restrict sc, double* weight,
                  double* prior) const {
    if (!Valid(x) || !(w > 0)) return;
    const float n = rows[size_t(layer) * n_experts_ + x];
    if (n <= 0) return;
    const float* __restrict row = &matrix[(size_t(layer) * n_experts_ + x) * n_experts_];
    const double s = double(w) / (double(n) + 1.0);
    for (int b = 0; b < n_experts_; ++b) sc[b] += s * row[b];
    *prior += s;
    *weight += w;
  }

  int n_layers_;
  int n_experts_;
  int k_;
  bool temporal_;
  std::vector<float> across_;       // [layer][a][b]: a in layer, b in the next layer
  std::vector<float> across_rows_;  // [layer][a]: rows counted
  std::vector<float> along_;        // [layer][c][b]: c at the previous token, b now
  std::vector<float> along_rows_;   // [layer][c]
  std::vector<float> freq_;         // [layer][expert]: tokens that routed it
  std::vector<double> tokens_;      // [layer]: tokens observed
  std::vector<std::vector<int32_t>> last_;  // last set seen per layer
  std::vector<uint64_t> last_token_;        // its token
  std::vector<double> scores_;
  std::vector<Input> input_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateCoactPredictor(PolicySpec& spec,
                                                                        const PolicyEnv& env) {
  int64_t k = 0;
  bool temporal = true;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("k", 0, 4096, &k));
  MOESTREAM_RETURN_IF_ERROR(spec.Bool("temporal", &temporal));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("k, temporal, conf"));
  if (env.n_layers <= 0 || env.n_experts <= 0) {
    return absl::FailedPreconditionError("predictor 'coact' needs the model shape");
  }
  return std::unique_ptr<PrefetchPredictor>(new CoactPredictor(env, int(k), temporal));
}

}  // namespace moestream::policies
