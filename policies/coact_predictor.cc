// coact[:k=N,temporal=0|1,weights=0|1,skip=0|1,step=0|1]: co-activation
// history, learned online
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
// Options:
//   weights=1  each conditioning expert just routed (or routed by the
//              previous token) weighs its gate weight over its set's mean.
//   skip=1     a third source for the next layer (first distance): the
//              experts of the layer before the one just routed, through
//              S[L-1][a][b] (a two layers before b, same token), combined
//              as independent evidence like the temporal rows.
//   step=1     as many guesses as the target layer's steps route on average
//              (the union of a batched step's rows), at least top_k.
//
// Memory: 2 * n_layers * n_experts^2 16-bit counts (48 * 128 * 128 * 4 B = 3 MiB),
// a third such matrix with skip=1.
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "policies/policy_registry.h"
#include "policies/predictor_util.h"

namespace moestream::policies {
namespace {

class CoactPredictor final : public PrefetchPredictor {
 public:
  CoactPredictor(const PolicyEnv& env, int k, bool temporal, bool weights, bool step, bool skip)
      : n_layers_(env.n_layers),
        n_experts_(env.n_experts),
        k_(k),
        temporal_(temporal),
        weights_(weights),
        step_(step),
        skip_(skip && env.n_layers > 2),
        skip_option_(skip),
        across_(size_t(env.n_layers) * env.n_experts * env.n_experts, 0),
        across_rows_(size_t(env.n_layers) * env.n_experts, 0.0f),
        along_(temporal ? size_t(env.n_layers) * env.n_experts * env.n_experts : 0, 0),
        along_rows_(temporal ? size_t(env.n_layers) * env.n_experts : 0, 0.0f),
        skip_m_(skip_ ? size_t(env.n_layers) * env.n_experts * env.n_experts : 0, 0),
        skip_rows_(skip_ ? size_t(env.n_layers) * env.n_experts : 0, 0.0f),
        freq_(size_t(env.n_layers) * env.n_experts, 0.0f),
        tokens_(size_t(env.n_layers), 0.0),
        last_(env.n_layers),
        last_w_(env.n_layers),
        last_token_(env.n_layers, ~uint64_t{0}),
        step_token_(env.n_layers, ~uint64_t{0}),
        step_seen_(size_t(env.n_layers) * env.n_experts, 0),
        step_list_(env.n_layers),
        step_sizes_(env.n_layers, 0.0),
        steps_(env.n_layers, 0.0) {}
  std::string name() const override {
    std::string opts;
    if (k_ > 0) absl::StrAppend(&opts, "k=", k_);
    if (!temporal_) absl::StrAppend(&opts, opts.empty() ? "" : ",", "temporal=0");
    if (weights_) absl::StrAppend(&opts, opts.empty() ? "" : ",", "weights=1");
    if (step_) absl::StrAppend(&opts, opts.empty() ? "" : ",", "step=1");
    if (skip_option_) absl::StrAppend(&opts, opts.empty() ? "" : ",", "skip=1");
    return opts.empty() ? "coact" : absl::StrCat("coact:", opts);
  }

  void Observe(const RoutingObservation& o) override {
    if (o.layer < 0 || o.layer >= n_layers_) return;
    int prev = (o.layer + n_layers_ - 1) % n_layers_;
    uint64_t want = o.layer == 0 ? o.token - 1 : o.token;
    if (last_token_[prev] == want && n_layers_ > 1) Count(prev, last_[prev], o.experts, &across_,
                                                          &across_rows_);
    if (skip_) {
      // Two layers back at the same token (across the token boundary for
      // the first two layers): its experts, then this layer's.
      const int back = (o.layer + n_layers_ - 2) % n_layers_;
      const uint64_t want2 = o.layer >= 2 ? o.token : o.token - 1;
      if (last_token_[back] == want2) Count(back, last_[back], o.experts, &skip_m_, &skip_rows_);
    }
    if (temporal_ && last_token_[o.layer] == o.token - 1) {
      Count(o.layer, last_[o.layer], o.experts, &along_, &along_rows_);
    }
    for (int32_t b : o.experts) {
      if (Valid(b)) freq_[size_t(o.layer) * n_experts_ + b] += 1.0f;
    }
    tokens_[o.layer] += 1.0;
    if (step_) CountStep(o.layer, o.token, o.experts);
    last_[o.layer].assign(o.experts.begin(), o.experts.end());
    if (weights_) {
      std::vector<float>& w = last_w_[o.layer];
      w.assign(o.experts.size(), 1.0f);
      if (o.weights.size() == o.experts.size()) {
        double sum = 0;
        for (float x : o.weights) sum += x;
        for (size_t i = 0; sum > 0 && i < w.size(); ++i) {
          w[i] = float(o.weights[i] * double(w.size()) / sum);
        }
      }
    }
    last_token_[o.layer] = o.token;
  }

  void Predict(const PredictContext& ctx, std::vector<ExpertGuess>* out) override {
    if (ctx.layer < 0 || ctx.layer >= n_layers_) return;
    input_.clear();
    for (size_t i = 0; i < ctx.experts.size(); ++i) {
      input_.push_back({ctx.experts[i], InputWeight(ctx.layer, ctx.experts, i)});
    }
    int from = ctx.layer;
    for (int d = 1; d <= ctx.lookahead; ++d) {
      int to = TargetLayer(from, 1, n_layers_);
      const uint64_t token = ctx.token + uint64_t(ctx.layer + d >= n_layers_ ? 1 : 0);
      // Each source's estimate: the average of its rows' P(b | x).
      const bool across = Estimate(from, to, input_, across_, across_rows_, &scores_);
      bool along = false;
      if (temporal_ && last_token_[to] + 1 == token) {
        along_input_.clear();
        for (size_t i = 0; i < last_[to].size(); ++i) {
          along_input_.push_back({last_[to][i], InputWeight(to, last_[to], i)});
        }
        along = Estimate(to, to, along_input_, along_, along_rows_, &along_scores_);
      }
      // Two layers before the target (the layer before ctx.layer), first
      // distance only: a third source, multiplied in as independent evidence.
      bool skip = false;
      if (skip_ && d == 1) {
        const int back = (ctx.layer + n_layers_ - 1) % n_layers_;
        const uint64_t want = ctx.layer >= 1 ? ctx.token : ctx.token - 1;
        if (last_token_[back] == want) {
          skip_input_.clear();
          for (size_t i = 0; i < last_[back].size(); ++i) {
            skip_input_.push_back({last_[back][i], InputWeight(back, last_[back], i)});
          }
          skip = Estimate(back, to, skip_input_, skip_m_, skip_rows_, &skip_scores_);
        }
      }
      if (skip) {
        if (!across) {
          scores_.swap(skip_scores_);
        } else if (along) {
          CombineRows(scores_.data(), skip_scores_.data(), &freq_[size_t(to) * n_experts_],
                      1.0f / float(n_experts_), n_experts_);
        } else {
          along_scores_.swap(skip_scores_);
          along = true;
        }
      }
      const bool primary = across || skip;  // scores_ holds evidence
      if (!primary && !along) {
        Marginal(to, &scores_);
      } else if (!primary) {
        scores_.swap(along_scores_);
      } else if (along) {
        Combine(to, ctx.top_k);
      }
      size_t before = out->size();
      AppendTopK(scores_, to, StepGuesses(to, ctx.top_k), out, /*absolute=*/true);
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

  // The distinct experts of each (layer, token): one observation per token
  // routes top_k, a batched step (several sequences' rows at one position)
  // their union. A step is counted when the layer's next token begins.
  void CountStep(int layer, uint64_t token, std::span<const int32_t> experts) {
    std::vector<int32_t>& list = step_list_[size_t(layer)];
    uint8_t* seen = &step_seen_[size_t(layer) * n_experts_];
    if (step_token_[layer] != token) {
      if (!list.empty()) {
        step_sizes_[layer] += double(list.size());
        steps_[layer] += 1.0;
      }
      for (int32_t e : list) seen[e] = 0;
      list.clear();
      step_token_[layer] = token;
    }
    for (int32_t e : experts) {
      if (Valid(e) && !seen[e]) {
        seen[e] = 1;
        list.push_back(e);
      }
    }
  }
  // Guesses for `layer`: k=, else top_k, or with step=1 as many experts as
  // its steps route on average (top_k for one token a step, more for a
  // batch), at least top_k.
  int StepGuesses(int layer, int top_k) const {
    const int k = GuessCount(k_, top_k);
    if (k_ > 0 || !step_ || steps_[layer] <= 0) return k;
    return std::max(k, int(step_sizes_[layer] / steps_[layer] + 0.5));
  }
  // With weights=1: the i-th expert's gate weight relative to the mean of
  // its set's, when `experts` is the set last observed at `layer`; else 1.
  float InputWeight(int layer, std::span<const int32_t> experts, size_t i) const {
    if (!weights_) return 1.0f;
    const std::vector<float>& w = last_w_[layer];
    if (w.size() != experts.size() || last_[layer].size() != experts.size() ||
        last_[layer][i] != experts[i]) {
      return 1.0f;
    }
    return w[i];
  }

  // Counts are 16-bit (half the memory a predictor streams per guess); a
  // row about to overflow is halved with its row count, which keeps its
  // conditional probabilities.
  void Count(int layer, const std::vector<int32_t>& from, std::span<const int32_t> to,
             std::vector<uint16_t>* matrix, std::vector<float>* rows) {
    uint16_t* m = &(*matrix)[size_t(layer) * n_experts_ * n_experts_];
    for (int32_t a : from) {
      if (!Valid(a)) continue;
      float& n = (*rows)[size_t(layer) * n_experts_ + a];
      uint16_t* row = m + size_t(a) * n_experts_;
      for (int32_t b : to) {
        if (Valid(b) && row[b] == 0xffff) {
          for (int i = 0; i < n_experts_; ++i) row[i] >>= 1;
          n *= 0.5f;
        }
      }
      n += 1.0f;
      for (int32_t b : to) {
        if (Valid(b)) ++row[b];
      }
    }
  }

  // p0 of `layer`: the share of its observed tokens that routed each expert.
  void Marginal(int layer, std::vector<float>* out) const {
    out->assign(n_experts_, 0.0f);
    const double n = tokens_[layer];
    if (n <= 0) return;
    AddScaledRow(out->data(), &freq_[size_t(layer) * n_experts_], float(1.0 / n), n_experts_);
  }

  // The weighted average over the inputs x (experts of `layer`, rows of
  // `matrix`) of P(b | x) for the experts b of `target`; false when no input
  // has a row yet.
  bool Estimate(int layer, int target, const std::vector<Input>& inputs,
                const std::vector<uint16_t>& matrix, const std::vector<float>& rows,
                std::vector<float>* out) const {
    out->assign(n_experts_, 0.0f);
    float* sc = out->data();
    double weight = 0;  // sum of the input weights
    double prior = 0;   // coefficient of p0 in the sum
    for (const Input& in : inputs) {
      if (!Valid(in.expert) || !(in.weight > 0)) continue;
      const float n = rows[size_t(layer) * n_experts_ + in.expert];
      if (n <= 0) continue;
      weight += in.weight;
    }
    if (weight <= 0) return false;
    // Scaled by 1 / weight as the rows are added.
    for (const Input& in : inputs) {
      if (!Valid(in.expert) || !(in.weight > 0)) continue;
      const float n = rows[size_t(layer) * n_experts_ + in.expert];
      if (n <= 0) continue;
      const double s = double(in.weight) / (double(n) + 1.0) / weight;
      AddScaledCounts(sc, &matrix[(size_t(layer) * n_experts_ + in.expert) * n_experts_],
                      float(s), n_experts_);
      prior += s;
    }
    const double tokens = tokens_[target];
    if (tokens > 0) {
      AddScaledRow(sc, &freq_[size_t(target) * n_experts_], float(prior / tokens), n_experts_);
    }
    return true;
  }

  // The two sources together as independent evidence (naive Bayes):
  // P(b | A, C) ~ P(b | A) P(b | C) / p0(b), scaled so that the estimates
  // sum to the experts routed per token (top_k), each at most 1.
  void Combine(int layer, int top_k) {
    const float sum = CombineRows(scores_.data(), along_scores_.data(),
                                  &freq_[size_t(layer) * n_experts_], 1.0f / float(n_experts_),
                                  n_experts_);
    if (!(sum > 0)) return;
    const float scale = float(std::max(1, top_k)) / sum;
    for (float& v : scores_) v = std::min(1.0f, v * scale);
  }
  // a[b] = a[b] * c[b] / p0(b), p0 = freq with 1/n_experts added (so an
  // unseen expert is not 0; the common denominator drops out in the scaling);
  // returns the sum.
  MOESTREAM_VECTOR_CLONES
  static float CombineRows(float* __restrict a, const float* __restrict c,
                           const float* __restrict freq, float floor, int n) {
    float sum = 0;
    for (int b = 0; b < n; ++b) {
      a[b] = a[b] * c[b] / (freq[b] + floor);
      sum += a[b];
    }
    return sum;
  }

  int n_layers_;
  int n_experts_;
  int k_;
  bool temporal_;
  bool weights_;
  bool step_;
  bool skip_;                        // skip=1 on a model of more than two layers
  bool skip_option_;                 // skip=1 given (the name keeps it)
  std::vector<uint16_t> across_;    // [layer][a][b]: a in layer, b in the next layer
  std::vector<float> across_rows_;  // [layer][a]: rows counted
  std::vector<uint16_t> along_;     // [layer][c][b]: c at the previous token, b now
  std::vector<float> along_rows_;   // [layer][c]
  std::vector<uint16_t> skip_m_;    // [layer][a][b]: a in layer, b two layers on (skip=1)
  std::vector<float> skip_rows_;    // [layer][a]
  std::vector<float> freq_;         // [layer][expert]: tokens that routed it
  std::vector<double> tokens_;      // [layer]: tokens observed
  std::vector<std::vector<int32_t>> last_;  // last set seen per layer
  std::vector<std::vector<float>> last_w_;  // its gate weights over their mean (weights=1)
  std::vector<uint64_t> last_token_;        // its token
  // Steps: the token being gathered per layer, its experts so far (a mark
  // per expert and the list), and per layer the sum of finished steps'
  // sizes and their count.
  std::vector<uint64_t> step_token_;
  std::vector<uint8_t> step_seen_;
  std::vector<std::vector<int32_t>> step_list_;
  std::vector<double> step_sizes_, steps_;
  std::vector<float> scores_, along_scores_, skip_scores_;
  std::vector<Input> input_, along_input_, skip_input_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrefetchPredictor>> CreateCoactPredictor(PolicySpec& spec,
                                                                        const PolicyEnv& env) {
  int64_t k = 0;
  bool temporal = true;
  bool weights = false;
  bool step = false;
  bool skip = false;
  MOESTREAM_RETURN_IF_ERROR(spec.Int("k", 0, 4096, &k));
  MOESTREAM_RETURN_IF_ERROR(spec.Bool("temporal", &temporal));
  MOESTREAM_RETURN_IF_ERROR(spec.Bool("weights", &weights));
  MOESTREAM_RETURN_IF_ERROR(spec.Bool("step", &step));
  MOESTREAM_RETURN_IF_ERROR(spec.Bool("skip", &skip));
  MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed("k, temporal, weights, step, skip, conf"));
  if (env.n_layers <= 0 || env.n_experts <= 0) {
    return absl::FailedPreconditionError("predictor 'coact' needs the model shape");
  }
  return std::unique_ptr<PrefetchPredictor>(new CoactPredictor(env, int(k), temporal, weights, step, skip));
}

}  // namespace moestream::policies
