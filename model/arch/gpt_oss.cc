// Architecture `gpt-oss` (gpt-oss-20b and gpt-oss-120b), as llama.cpp's
// graph for it computes:
// - attention with biases on the q, k, v and output projections, GQA,
//   NEOX RoPE with YaRN on the whole head (the YaRN magnitude 1 + 0.1 ln
//   factor on cos and sin, the plain 1/sqrt(head_dim) softmax scale), and
//   per-head attention sinks: one extra logit in each softmax, no value;
// - sliding-window attention (attention.sliding_window) on the even
//   layers, full causal attention on the odd ones (llama.cpp's SWA
//   pattern 2);
// - post_attention_norm before the FFN (there is no ffn_norm), every layer
//   MoE: router logits plus ffn_gate_inp.bias, the top k by logit, their
//   weights a softmax over those k logits only;
// - experts with per-expert biases on gate, up and down, and the clamped
//   SwiGLU: g = min(gate, 7), u = clamp(up, -7, 7), g * sigmoid(1.702 g) *
//   (u + 1). llama.cpp fixes alpha (1.702) and the limit (7) in code.
// The routed experts are MXFP4 in released files; the rest is F32, F16,
// BF16 or Q8_0.
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/architecture.h"

namespace moestream::model {
namespace {

constexpr float kSwigluAlpha = 1.702f;
constexpr float kSwigluLimit = 7.0f;

// Layer il uses the sliding window (llama.cpp's pattern 2: every layer but
// the last of each pair of two).
bool IsSlidingLayer(int il) { return il % 2 == 0; }

absl::Status ReadGptOssConfig(const HparamReader& r, ModelConfig* c) {
  CommonHparamDefaults d;
  d.rms_eps = 1e-5;
  d.rope_freq_base = 150000;
  d.rope_mode = kernels::RopeMode::kNeox;
  MOESTREAM_RETURN_IF_ERROR(ReadCommonHparams(r, d, c));
  if (c->n_expert <= 0) {
    return absl::InvalidArgumentError(r.file().path() + ": " + r.Key("expert_count") +
                                      " must be positive for gpt-oss");
  }
  // Validate() bounds the window; 0 would mean no window at all.
  MOESTREAM_ASSIGN_OR_RETURN(c->n_swa, r.Int("attention.sliding_window"));
  if (c->n_swa == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.file().path(), ": ", r.Key("attention.sliding_window"), " must not be 0"));
  }
  c->qk_norm = false;
  c->gating = ExpertGating::kSoftmaxSelected;
  c->norm_topk = false;
  c->expert_weights_scale = 1.0f;
  c->expert_act = ExpertActivation::kSwigluClamped;
  c->swiglu_alpha = kSwigluAlpha;
  c->swiglu_limit = kSwigluLimit;
  return absl::OkStatus();
}

absl::Status BindGptOssLayer(LayerBinder& b, const ModelConfig& c, int il, LayerWeights* l) {
  const int64_t D = c.n_embd, E = c.n_expert, F = c.n_ff_exp;
  const std::string p = absl::StrCat("blk.", il, ".");
  MOESTREAM_ASSIGN_OR_RETURN(l->attn_norm, b.Vector(p + "attn_norm.weight", D));
  MOESTREAM_ASSIGN_OR_RETURN(l->wq, b.Matrix(p + "attn_q.weight", D, c.q_dim()));
  MOESTREAM_ASSIGN_OR_RETURN(l->bq, b.Vector(p + "attn_q.bias", c.q_dim()));
  MOESTREAM_ASSIGN_OR_RETURN(l->wk, b.Matrix(p + "attn_k.weight", D, c.kv_dim()));
  MOESTREAM_ASSIGN_OR_RETURN(l->bk, b.Vector(p + "attn_k.bias", c.kv_dim()));
  MOESTREAM_ASSIGN_OR_RETURN(l->wv, b.Matrix(p + "attn_v.weight", D, c.kv_dim_v()));
  MOESTREAM_ASSIGN_OR_RETURN(l->bv, b.Vector(p + "attn_v.bias", c.kv_dim_v()));
  MOESTREAM_ASSIGN_OR_RETURN(l->wo,
                             b.Matrix(p + "attn_output.weight", c.n_head * c.head_dim_v, D));
  MOESTREAM_ASSIGN_OR_RETURN(l->bo, b.Vector(p + "attn_output.bias", D));
  MOESTREAM_ASSIGN_OR_RETURN(l->attn_sinks, b.Vector(p + "attn_sinks.weight", c.n_head));
  MOESTREAM_ASSIGN_OR_RETURN(l->ffn_norm, b.Vector(p + "post_attention_norm.weight", D));
  MOESTREAM_ASSIGN_OR_RETURN(l->router, b.Matrix(p + "ffn_gate_inp.weight", D, E));
  MOESTREAM_ASSIGN_OR_RETURN(l->router_b, b.Vector(p + "ffn_gate_inp.bias", E));
  MOESTREAM_ASSIGN_OR_RETURN(l->expert_bias.gate, b.Table(p + "ffn_gate_exps.bias", F, E));
  MOESTREAM_ASSIGN_OR_RETURN(l->expert_bias.up, b.Table(p + "ffn_up_exps.bias", F, E));
  MOESTREAM_ASSIGN_OR_RETURN(l->expert_bias.down, b.Table(p + "ffn_down_exps.bias", D, E));
  return b.Experts(il, c, l);
}

absl::Status BuildGptOssLayer(BlockOps& ops, const ModelConfig& c, const LayerWeights& l, int il) {
  ops.NormInput(l.attn_norm);
  AttentionOptions ao;
  ao.window = IsSlidingLayer(il) ? c.n_swa : 0;
  MOESTREAM_RETURN_IF_ERROR(ops.Attention(il, l, ao));
  ops.NormInput(l.ffn_norm);
  return ops.RoutedExperts(il, l);
}

}  // namespace

const ArchSpec kGptOssArch = {"gpt-oss", &ReadGptOssConfig, &BindGptOssLayer, &BuildGptOssLayer};

}  // namespace moestream::model
