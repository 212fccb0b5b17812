// The hyper-parameters of a model as the forward pass needs them, read from a
// GGUF's metadata with llama.cpp's defaults where a key is absent. Which keys
// mean what depends on `general.architecture`; the per-architecture readers
// live in model/arch/*.cc (see model/architecture.h).
//
//   MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open("m.gguf"));
//   MOESTREAM_ASSIGN_OR_RETURN(ModelConfig c, ReadModelConfig(f));
//   if (c.is_moe()) { ... c.n_expert, c.n_expert_used, c.n_ff_exp ... }
#ifndef MOESTREAM_MODEL_MODEL_CONFIG_H_
#define MOESTREAM_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "kernels/backend.h"

namespace moestream::model {

// Bounds Validate() puts on a model's sizes: far above any published model
// (vocabularies reach 262k, widths 16k, 126 blocks, 384 experts), low enough
// that a corrupt header cannot size a buffer past memory.
inline constexpr int64_t kMaxVocab = int64_t(1) << 22;
inline constexpr int64_t kMaxWidth = int64_t(1) << 16;
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxHeads = 1024;
inline constexpr int64_t kMaxHeadDim = 4096;
inline constexpr int64_t kMaxContext = int64_t(1) << 28;
inline constexpr int64_t kMaxExperts = int64_t(1) << 16;
inline constexpr int64_t kMaxFfn = int64_t(1) << 20;

// How router logits become expert probabilities: softmax or sigmoid over
// all experts (then top-k), or softmax over the top-k logits only (gpt-oss).
enum class ExpertGating { kSoftmax, kSigmoid, kSoftmaxSelected };
// The gated activation of the routed experts' FFN: silu(gate) * up, or
// gpt-oss's clamped SwiGLU (Backend::SwigluClamped).
enum class ExpertActivation { kSilu, kSwigluClamped };

struct ModelConfig {
  std::string arch;  // general.architecture, e.g. "qwen3moe"
  std::string name;  // general.name (may be empty)

  int64_t n_vocab = 0;    // rows of token_embd / output
  int64_t n_embd = 0;     // residual width
  int64_t n_layer = 0;    // transformer blocks
  int64_t n_head = 0;     // query heads
  int64_t n_head_kv = 0;  // key/value heads (divides n_head)
  int64_t head_dim_k = 0; // attention.key_length (default n_embd / n_head)
  int64_t head_dim_v = 0; // attention.value_length (default head_dim_k)
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  float attn_scale = 0;   // softmax scale of q·k; 0 = 1/sqrt(head_dim_k)
  bool qk_norm = false;   // per-head RMSNorm of q and k (attn_{q,k}_norm)

  // Dense FFN width (layers without experts).
  int64_t n_ff = 0;
  // Routed experts: 0 for a dense model.
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ff_exp = 0;  // rows of each expert's gate/up matrix
  // Which layers route: layer il is MoE when il >= n_dense_lead and
  // (il + 1) % moe_every == 0 (IsMoeLayer); the others have a dense FFN of
  // n_ff. 0 and 1: every layer.
  int64_t n_dense_lead = 0;  // leading_dense_block_count
  int64_t moe_every = 1;     // interleave_moe_layer_step
  // Shared experts' total FFN width on MoE layers (ffn_*_shexp); 0 = none.
  int64_t n_ff_shexp = 0;
  // Group-limited routing: the experts form n_expert_groups groups of
  // consecutive ids; a token picks its experts from its n_group_used best
  // groups (a group's score: the sum of its two best selection scores).
  int64_t n_expert_groups = 1;
  int64_t n_group_used = 1;

  // Multi-head latent attention (deepseek2); kv_lora_rank 0 = none. The KV
  // cache then holds, per position, one key row [roped k_pe | latent c]
  // (head_dim_k = n_rot + kv_lora_rank, n_head_kv 1) and the latent c as the
  // value (head_dim_v = kv_lora_rank); q and k heads decompress to
  // head_dim_k_mla = nope + n_rot, v heads to head_dim_v_mla.
  int64_t q_lora_rank = 0;  // 0 = a plain attn_q projection
  int64_t kv_lora_rank = 0;
  int64_t head_dim_k_mla = 0;
  int64_t head_dim_v_mla = 0;
  bool is_mla() const { return kv_lora_rank > 0; }
  ExpertGating gating = ExpertGating::kSoftmax;
  ExpertActivation expert_act = ExpertActivation::kSilu;
  float swiglu_alpha = 1.702f;  // kSwigluClamped's sigmoid slope and clamp
  float swiglu_limit = 7.0f;
  // Sliding-window attention (gpt-oss's even layers): the window; 0 = none.
  int64_t n_swa = 0;
  bool norm_topk = true;            // renormalise the k selected weights to sum 1
  float expert_weights_scale = 1;   // applied after renormalisation

  // RoPE as the backend applies it (freq_factors is bound with the weights).
  kernels::RopeParams rope;

  // Special tokens (-1 when absent) and the end-of-generation set.
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  bool add_bos = false;
  std::vector<int32_t> eog_ids;

  bool is_moe() const { return n_expert > 0; }
  bool IsMoeLayer(int64_t il) const {
    return is_moe() && il >= n_dense_lead && (moe_every <= 1 || (il + 1) % moe_every == 0);
  }
  // Some layer has a dense FFN of n_ff.
  bool has_dense_layers() const {
    for (int64_t il = 0; il < n_layer; ++il) {
      if (!IsMoeLayer(il)) return true;
    }
    return false;
  }
  int64_t q_dim() const { return n_head * head_dim_k; }
  int64_t kv_dim() const { return n_head_kv * head_dim_k; }    // a position's keys
  int64_t kv_dim_v() const { return n_head_kv * head_dim_v; }  // a position's values
  bool IsEog(int32_t id) const;
  // One line: "qwen3moe: 8 layers, hidden 1024, heads 8/4x128, 32 experts top-4 ffn 512, vocab 4096".
  std::string Summary() const;
  // Range and cross-field checks (sizes within the kMax* bounds, finite
  // positive epsilon, RoPE base and scales, divisibility); kInvalidArgument
  // naming `file`, the metadata key, the value and the allowed range.
  absl::Status Validate(const std::string& file) const;
};

// Reads `f`'s architecture and hyper-parameters. kInvalidArgument for an
// unsupported architecture (naming it and the supported ones) or a bad value.
absl::StatusOr<ModelConfig> ReadModelConfig(const io::GgufFile& f);

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_MODEL_CONFIG_H_
