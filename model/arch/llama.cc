// Architecture `llama`: dense llama (SwiGLU FFN) and, with
// `llama.expert_count`, Mixtral (routed experts as stacked `ffn_*_exps`
// tensors or per-expert `ffn_*.E` tensors, sized by feed_forward_length).
// NORMAL RoPE (adjacent pairs), no q/k norm. llama.cpp's llama graph takes
// the softmax over all experts, the top k, renormalises them to sum 1 and
// applies no scale, whatever the expert_weights_* keys say.
#include "base/status_macros.h"
#include "model/architecture.h"

namespace moestream::model {
namespace {

absl::Status ReadLlamaConfig(const HparamReader& r, ModelConfig* c) {
  CommonHparamDefaults d;
  d.rms_eps = 1e-5;
  d.rope_freq_base = 10000;
  d.rope_mode = kernels::RopeMode::kNormal;
  MOESTREAM_RETURN_IF_ERROR(ReadCommonHparams(r, d, c));
  c->qk_norm = false;
  if (c->n_expert > 0) {
    if (c->n_ff_exp == 0) c->n_ff_exp = c->n_ff;
    c->gating = ExpertGating::kSoftmax;
    c->norm_topk = true;
    c->expert_weights_scale = 1.0f;
  }
  return absl::OkStatus();
}

}  // namespace

// The layer is the standard one (model/architecture.h).
const ArchSpec kLlamaArch = {"llama", &ReadLlamaConfig, &BindStandardLayer, &BuildStandardLayer};

}  // namespace moestream::model
