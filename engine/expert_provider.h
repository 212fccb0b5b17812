// The one door through which the engine computes routed experts.
//
// For each MoE layer the engine routes the tokens (router matmul, softmax,
// top-k) and hands the provider the ffn-normed hidden states, the chosen
// expert ids and their weights; the provider adds the weighted expert
// outputs to the residual stream. Where the experts live is the provider's
// business: ResidentExpertProvider has them all in device memory; the
// expert cache (cache/) puts a tiered, streamed provider behind the same
// interface. The engine takes its provider from outside (see
// engine/engine.h), so any provider runs with the unchanged forward pass.
//
//   ExpertFfnRunner r = ...;                 // grouping and batched FFN
//   r.Group(ids, weights, n_tok, k);         // rows sorted by expert
//   for (const ExpertGroup& g : r.groups())  // e.g. resident ones first
//     r.RunGroup(x, n_tok, g, weights_of(g.expert));
//   r.Scatter(out);                          // out[t] += Σ_j w·y, fixed order
//
// Pointer spaces: `x` and `out` are device pointers (backend memory), `ids`
// and `weights` are host arrays of n_tok*k entries (token-major, j-th choice
// of token t at t*k+j, in the router's order: descending weight).
#ifndef MOESTREAM_ENGINE_EXPERT_PROVIDER_H_
#define MOESTREAM_ENGINE_EXPERT_PROVIDER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace moestream::engine {

class ExpertProvider {
 public:
  virtual ~ExpertProvider();

  // Called after layer `layer`'s attention with x = its ffn-normed hidden
  // state (n_tok rows of n_embd, device memory), before the layer's router.
  // Predictors may apply layer+1's router here (Engine::router()).
  virtual void OnFfnInput(int layer, const float* x, int64_t n_tok);

  // out[t,:] += sum_j weights[t*k+j] * Expert_{ids[t*k+j]}(x[t,:]) for every
  // token t < n_tok, where Expert_e(h) = down_e(silu(gate_e h) * up_e h)
  // (with the model's expert activation and per-expert biases, if any).
  virtual absl::Status Compute(int layer, const float* x, int64_t n_tok, const int32_t* ids,
                               const float* weights, int k, float* out) = 0;
};

// The experts one layer's tokens selected, grouped: rows [first_row,
// first_row + rows) of the runner's sorted order belong to `expert`.
struct ExpertGroup {
  int32_t expert = 0;
  int64_t first_row = 0;
  int64_t rows = 0;
};

// Grouped expert FFN on one backend with preallocated workspaces: tokens
// are sorted by expert so each expert's matrices are read once per layer
// (prefill), and all selected experts' products are issued as one
// MatMulBatch. Scatter adds the outputs in token-major, choice order (one
// ScatterAdd), so the result does not depend on the order in which groups
// were run.
class ExpertFfnRunner {
 public:
  // Workspaces for up to `max_tokens` tokens of `c.n_expert_used` choices,
  // named "<name_prefix>experts.x" and so on.
  static absl::StatusOr<std::unique_ptr<ExpertFfnRunner>> Create(
      kernels::Backend& backend, const model::ModelConfig& c, int64_t max_tokens,
      std::string_view name_prefix = "");
  // The device workspaces Create() allocates, in order.
  static std::vector<model::PlannedBuffer> PlanBuffers(const model::ModelConfig& c,
                                                       int64_t max_tokens,
                                                       std::string_view name_prefix = "");
  ~ExpertFfnRunner();
  ExpertFfnRunner(const ExpertFfnRunner&) = delete;
  ExpertFfnRunner& operator=(const ExpertFfnRunner&) = delete;

  // Sorts the n_tok*k choices by expert (stable: by token within an expert).
  // kInvalidArgument for an id outside 0..n_expert-1 or too many tokens.
  // `biases` (the layer's per-expert biases, if any) apply to the Run calls
  // that follow.
  absl::Status Group(const int32_t* ids, const float* weights, int64_t n_tok, int k,
                     const model::ExpertBiases& biases = {});
  std::span<const ExpertGroup> groups() const { return groups_; }

  // Computes the rows of the given groups with the given weights
  // (w[i] for groups[i]). Gathers the rows of x first when n_tok > 1.
  void Run(const float* x, int64_t n_tok, std::span<const ExpertGroup> groups,
           std::span<const model::ExpertWeights* const> w);
  // out[t] += weight * y for every choice, t-major then j (one
  // Backend::ScatterAdd): call once every group has been Run.
  void Scatter(float* out);
  // The output rows [rows, n_embd] (row = ExpertGroup::first_row + i), in
  // this runner's backend memory: hybrid mode copies rows computed by a host
  // runner into a device runner's before Scatter.
  float* output_rows() const { return ys_; }

 private:
  ExpertFfnRunner(kernels::Backend& b) : backend_(b) {}
  kernels::Backend& backend_;
  int64_t n_embd_ = 0, n_ff_ = 0, n_expert_ = 0, max_rows_ = 0;
  int64_t n_tok_ = 0;
  int k_ = 0;
  model::ExpertActivation act_ = model::ExpertActivation::kSilu;
  float alpha_ = 0, limit_ = 0;
  model::ExpertBiases biases_;
  // Device workspaces, max_rows_ rows each.
  float* xs_ = nullptr;   // gathered inputs [rows, n_embd]
  float* gate_ = nullptr; // [rows, n_ff]
  float* up_ = nullptr;   // [rows, n_ff]
  float* ys_ = nullptr;   // [rows, n_embd]
  int32_t* rows_dev_ = nullptr;  // token of each sorted row
  void* owned_[5] = {};          // the five workspaces, freed at destruction
  // Host: token and weight of each sorted row, row of each (t, j) choice.
  std::vector<int32_t> row_token_;
  std::vector<float> row_weight_;
  std::vector<int64_t> choice_row_;
  std::vector<kernels::ScatterChoice> scatter_;  // Scatter's (row, weight) per choice
  std::vector<int64_t> counts_;
  std::vector<ExpertGroup> groups_;
  std::vector<kernels::MatMulJob> jobs_;
};

// Every routed expert resident in device memory (ModelWeights loaded with
// upload_routed_experts).
class ResidentExpertProvider : public ExpertProvider {
 public:
  // kFailedPrecondition when `w` holds no resident experts.
  static absl::StatusOr<std::unique_ptr<ResidentExpertProvider>> Create(
      kernels::Backend& backend, const model::ModelConfig& c, const model::ModelWeights& w, int64_t max_tokens);

  absl::Status Compute(int layer, const float* x, int64_t n_tok, const int32_t* ids,
                       const float* weights, int k, float* out) override;

 private:
  ResidentExpertProvider(const model::ModelWeights& w, std::unique_ptr<ExpertFfnRunner> r)
      : weights_(w), runner_(std::move(r)) {}
  const model::ModelWeights& weights_;
  std::unique_ptr<ExpertFfnRunner> runner_;
  std::vector<const model::ExpertWeights*> group_weights_;
};

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_EXPERT_PROVIDER_H_
