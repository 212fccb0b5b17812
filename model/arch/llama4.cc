// Architecture `llama4` (Llama 4 Scout and Maverick), as llama.cpp's llama4
// graph computes it:
// - MoE on every interleave_moe_layer_step-th layer ((il + 1) % step == 0),
//   a dense SwiGLU FFN of feed_forward_length on the others;
// - MoE layers: one shared expert (ffn_*_shexp, width
//   expert_feed_forward_length, unweighted) plus top-k routed experts picked
//   by the raw router logit, weighted by sigmoid(logit) applied to the
//   expert's INPUT (no renormalisation, no scale);
// - every 4th layer ((il + 1) % 4 == 0) is NoPE: no RoPE, full causal
//   attention, and the attention temperature 1 + 0.1 ln(floor((pos + 1) /
//   8192) + 1) on q; the other layers use NORMAL RoPE with rope_freqs
//   factors, chunked local attention over 8192-token chunks, and — unless
//   the model has 128 experts (Maverick) — q and k RMS-normalised per head
//   without a weight after RoPE (the "L2 norm").
// llama.cpp fixes the NoPE step (4), the chunk (8192) and the temperature
// parameters (0.1, 8192) in code; no GGUF key carries them.
#include "base/status_macros.h"
#include "model/architecture.h"

namespace moestream::model {
namespace {

constexpr int64_t kNoRopeLayerStep = 4;
constexpr int64_t kAttentionChunk = 8192;
constexpr float kTemperatureScale = 0.1f;
constexpr int64_t kTemperatureFloor = 8192;

absl::Status ReadLlama4Config(const HparamReader& r, ModelConfig* c) {
  CommonHparamDefaults d;
  d.rms_eps = 1e-5;
  d.rope_freq_base = 500000;
  d.rope_mode = kernels::RopeMode::kNormal;
  MOESTREAM_RETURN_IF_ERROR(ReadCommonHparams(r, d, c));
  c->qk_norm = false;
  if (c->n_expert <= 0) {
    return absl::InvalidArgumentError(r.file().path() + ": " + r.Key("expert_count") +
                                      " must be positive for llama4");
  }
  MOESTREAM_ASSIGN_OR_RETURN(c->moe_every, r.IntOr("interleave_moe_layer_step", 1));
  c->n_ff_shexp = c->n_ff_exp;  // one shared expert as wide as a routed one
  c->gating = ExpertGating::kSigmoid;
  c->norm_topk = false;
  c->expert_weights_scale = 1.0f;
  return absl::OkStatus();
}

absl::Status BuildLlama4Layer(BlockOps& ops, const ModelConfig& c, const LayerWeights& l, int il) {
  const bool nope = (il + 1) % kNoRopeLayerStep == 0;
  AttentionOptions ao;
  ao.rope = !nope;
  ao.qk_unit_norm_after_rope = !nope && c.n_expert != 128;
  ao.chunk = nope ? 0 : kAttentionChunk;
  if (nope) {
    ao.temp_scale = kTemperatureScale;
    ao.temp_floor = kTemperatureFloor;
  }
  ops.NormInput(l.attn_norm);
  MOESTREAM_RETURN_IF_ERROR(ops.Attention(il, l, ao));
  ops.NormInput(l.ffn_norm);
  if (!l.is_moe()) return ops.DenseFfn(l);
  MOESTREAM_RETURN_IF_ERROR(ops.SharedExperts(l));
  return ops.RoutedExperts(il, l, {.weight_input = true});
}

}  // namespace

const ArchSpec kLlama4Arch = {"llama4", &ReadLlama4Config, &BindStandardLayer, &BuildLlama4Layer};

}  // namespace moestream::model
