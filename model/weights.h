// The model's weights bound by tensor name, shape-checked against the
// config, and uploaded to the backend's device memory. Matrices keep their
// GGUF type (ggml block layout, used in place by the kernels); 1-D norm
// weights are converted to F32 at load.
//
//   MOESTREAM_ASSIGN_OR_RETURN(auto w, ModelWeights::Load(file, config, backend, {}));
//   backend.MatMul(w->layers[0].wq, x, n_tok, q);
//
// Routed experts: with `upload_routed_experts` (the all-resident engine)
// every expert's gate/up/down is uploaded and viewed in `LayerWeights::experts`;
// without it only their shapes are checked and the expert tier (cache/) is
// responsible for their bytes.
#ifndef MOESTREAM_MODEL_WEIGHTS_H_
#define MOESTREAM_MODEL_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "model/memory_planner.h"
#include "model/model_config.h"

namespace moestream::model {

class WeightBinder;

struct ExpertWeights {
  kernels::WeightView gate;  // n_in n_embd, n_out n_ff_exp
  kernels::WeightView up;    // n_in n_embd, n_out n_ff_exp
  kernels::WeightView down;  // n_in n_ff_exp, n_out n_embd
};

// Per-expert biases of a layer's routed experts (gpt-oss): [n_expert][width]
// F32 in device memory, resident whatever the experts' tier; null = none.
struct ExpertBiases {
  const float* gate = nullptr;  // width n_ff_exp
  const float* up = nullptr;    // width n_ff_exp
  const float* down = nullptr;  // width n_embd
};
struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd] F32
  kernels::WeightView wq, wk, wv, wo;
  // Biases of the attention projections (gpt-oss) [rows] F32, or null.
  const float* bq = nullptr;
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* bo = nullptr;
  // Attention sinks (attn_sinks) [n_head] F32, or null.
  const float* attn_sinks = nullptr;
  const float* q_norm = nullptr;  // [head_dim] F32, qk_norm only
  const float* k_norm = nullptr;
  const float* ffn_norm = nullptr;  // [n_embd] F32
  // Dense FFN (layers without experts).
  kernels::WeightView ffn_gate, ffn_up, ffn_down;
  // Shared experts of a MoE layer (ffn_{gate,up,down}_shexp), when the
  // model has them: computed on every token, unweighted.
  kernels::WeightView shexp_gate, shexp_up, shexp_down;
  // Router (ffn_gate_inp): n_in n_embd, n_out n_expert. MoE layers only.
  kernels::WeightView router;
  // Selection bias of the router (exp_probs_b) [n_expert] F32, or null.
  const float* exp_probs_b = nullptr;
  // Bias added to the router's logits (ffn_gate_inp.bias) [n_expert] F32, or null.
  const float* router_b = nullptr;
  ExpertBiases expert_bias;

  // Multi-head latent attention (ModelConfig::is_mla).
  kernels::WeightView wq_a;           // attn_q_a (q_lora_rank > 0), else unused
  const float* q_a_norm = nullptr;    // attn_q_a_norm
  kernels::WeightView wq_b;           // attn_q_b, or attn_q when q_lora_rank is 0
  kernels::WeightView wkv_a_latent;   // attn_kv_a_mqa's rows of the latent c
  kernels::WeightView wkv_a_rope;     // its rows of the shared k_pe
  const float* kv_a_norm = nullptr;   // attn_kv_a_norm
  // attn_k_b and attn_v_b: one matrix per head, head h at data + h * stride.
  kernels::WeightView wk_b, wv_b;
  uint64_t wk_b_stride = 0, wv_b_stride = 0;
  // One entry per routed expert when uploaded, else empty.
  std::vector<ExpertWeights> experts;
  bool is_moe() const { return router.data != nullptr; }
};

struct WeightsOptions {
  // Upload every routed expert (all-resident). Default true.
  bool upload_routed_experts = true;
  // Called with (bytes uploaded, total bytes) during the upload; may be null.
  io::ProgressFn progress;
};

class ModelWeights {
 public:
  // Binds and uploads every tensor `c` needs from `f`. Errors name the file
  // and the tensor: kInvalidArgument for a missing tensor, a shape that
  // disagrees with the metadata or a type the backend cannot compute with;
  // kResourceExhausted from the device budget; kDataLoss for a short read.
  static absl::StatusOr<std::unique_ptr<ModelWeights>> Load(const io::GgufFile& f,
                                                            const ModelConfig& c,
                                                            kernels::Backend& backend,
                                                            const WeightsOptions& o);
  // Every device buffer Load(f, c, ..., {upload_routed_experts}) allocates,
  // in order, with the same checks (missing tensors, shapes, types) and no
  // data read: the memory plan's weights.
  static absl::StatusOr<std::vector<PlannedBuffer>> PlanBuffers(const io::GgufFile& f,
                                                               const ModelConfig& c,
                                                               bool upload_routed_experts);
  ~ModelWeights();
  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;

  kernels::WeightView token_embd;     // n_in n_embd, n_out n_vocab
  kernels::WeightView output;         // LM head (token_embd when tied)
  const float* output_norm = nullptr;
  const float* rope_freqs = nullptr;  // [n_rot/2] or null
  std::vector<LayerWeights> layers;

  uint64_t device_bytes() const { return device_bytes_; }
  bool experts_resident() const { return experts_resident_; }

 private:
  explicit ModelWeights(kernels::Backend* b) : backend_(b) {}
  friend class WeightBinder;
  // Binds every tensor through `b` (which uploads, or only plans).
  static absl::Status Bind(const io::GgufFile& f, const ModelConfig& c, WeightBinder& b,
                           ModelWeights& w);

  kernels::Backend* backend_;  // null while planning
  std::vector<void*> allocations_;
  uint64_t device_bytes_ = 0;
  bool experts_resident_ = false;
};

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_WEIGHTS_H_
