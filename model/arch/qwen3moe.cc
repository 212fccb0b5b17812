// Architecture `qwen3moe`: per-head RMSNorm of q and k (attn_{q,k}_norm),
// NEOX RoPE (halves), every layer routed: softmax over the experts, top k,
// renormalised to sum 1 (norm_topk_prob; llama.cpp always renormalises for
// this architecture), experts sized by expert_feed_forward_length.
#include "base/status_macros.h"
#include "model/architecture.h"

namespace moestream::model {
namespace {

absl::Status ReadQwen3MoeConfig(const HparamReader& r, ModelConfig* c) {
  CommonHparamDefaults d;
  d.rms_eps = 1e-6;
  d.rope_freq_base = 10000;
  d.rope_mode = kernels::RopeMode::kNeox;
  MOESTREAM_RETURN_IF_ERROR(ReadCommonHparams(r, d, c));
  c->qk_norm = true;
  if (c->n_ff_exp == 0) c->n_ff_exp = c->n_ff;
  c->gating = ExpertGating::kSoftmax;
  c->norm_topk = true;
  c->expert_weights_scale = 1.0f;
  if (c->n_expert <= 0) {
    return absl::InvalidArgumentError(r.file().path() + ": " + r.Key("expert_count") +
                                      " must be positive for qwen3moe");
  }
  return absl::OkStatus();
}

}  // namespace

// The layer is the standard one (model/architecture.h).
const ArchSpec kQwen3MoeArch = {"qwen3moe", &ReadQwen3MoeConfig, &BindStandardLayer, &BuildStandardLayer};

}  // namespace moestream::model
