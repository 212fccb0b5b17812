#include "model/model_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "model/architecture.h"

namespace moestream::model {

bool ModelConfig::IsEog(int32_t id) const {
  return std::find(eog_ids.begin(), eog_ids.end(), id) != eog_ids.end();
}

std::string ModelConfig::Summary() const {
  std::string s = absl::StrFormat("%s: %d layers, hidden %d, heads %d/%dx%d", arch, n_layer,
                                  n_embd, n_head, n_head_kv, head_dim_k);
  if (is_moe()) {
    absl::StrAppendFormat(&s, ", %d experts top-%d ffn %d", n_expert, n_expert_used, n_ff_exp);
  } else {
    absl::StrAppendFormat(&s, ", ffn %d", n_ff);
  }
  absl::StrAppendFormat(&s, ", vocab %d", n_vocab);
  return s;
}

absl::Status ModelConfig::Validate(const std::string& file) const {
  auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", arch, ": ", Av(what)));
  };
  // Each size in a range no real model leaves, so a corrupt or hostile header
  // is refused here rather than sizing buffers from it.
  auto in_range = [&](std::string_view key, int64_t v, int64_t lo, int64_t hi) -> absl::Status {
    if (v >= lo && v <= hi) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", arch, ".", Av(key), " = ", v,
                                                   " is out of range ", lo, "..", hi));
  };
  // Floats must be finite and in (lo, hi).
  auto positive = [&](std::string_view key, double v, double hi) -> absl::Status {
    if (std::isfinite(v) && v > 0 && v < hi) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", arch, ".", Av(key), " = ",
                                                   absl::StrFormat("%g", v),
                                                   " must be finite and in (0, ",
                                                   absl::StrFormat("%g", hi), ")"));
  };
  if (n_vocab <= 0) return bad("vocabulary size unknown (no vocab_size key, no token_embd)");
  MOESTREAM_RETURN_IF_ERROR(in_range("vocab_size", n_vocab, 1, kMaxVocab));
  MOESTREAM_RETURN_IF_ERROR(in_range("embedding_length", n_embd, 1, kMaxWidth));
  MOESTREAM_RETURN_IF_ERROR(in_range("block_count", n_layer, 1, kMaxLayers));
  MOESTREAM_RETURN_IF_ERROR(in_range("attention.head_count", n_head, 1, kMaxHeads));
  MOESTREAM_RETURN_IF_ERROR(in_range("attention.head_count_kv", n_head_kv, 1, n_head));
  MOESTREAM_RETURN_IF_ERROR(in_range("attention.key_length", head_dim_k, 1, kMaxHeadDim));
  MOESTREAM_RETURN_IF_ERROR(in_range("context_length", n_ctx_train, 1, kMaxContext));
  MOESTREAM_RETURN_IF_ERROR(in_range("attention.sliding_window", n_swa, 0, kMaxContext));
  if (n_head % n_head_kv != 0) {
    return bad(absl::StrFormat("head_count %d is not a multiple of head_count_kv %d", n_head,
                               n_head_kv));
  }
  if (head_dim_v != head_dim_k && !is_mla()) {
    return bad(absl::StrFormat("value_length %d != key_length %d is not supported", head_dim_v,
                               head_dim_k));
  }
  if (rope.n_rot <= 0 || rope.n_rot > head_dim_k || rope.n_rot % 2 != 0) {
    return bad(absl::StrFormat("rope.dimension_count %d must be even and in 1..%d", rope.n_rot,
                               head_dim_k));
  }
  MOESTREAM_RETURN_IF_ERROR(positive("attention.layer_norm_rms_epsilon", rms_eps, 1));
  MOESTREAM_RETURN_IF_ERROR(positive("rope.freq_base", rope.freq_base, 1e12));
  MOESTREAM_RETURN_IF_ERROR(positive("rope.scaling.factor (as 1/factor)", rope.freq_scale, 1e6));
  MOESTREAM_RETURN_IF_ERROR(positive("rope.scaling.attn_factor", rope.attn_factor, 1e6));
  MOESTREAM_RETURN_IF_ERROR(in_range("rope.scaling.original_context_length", rope.n_ctx_orig, 1,
                                     kMaxContext));
  if (!std::isfinite(rope.beta_fast) || !std::isfinite(rope.beta_slow)) {
    return bad("rope.scaling.yarn_beta_fast/slow must be finite");
  }
  if (is_moe()) {
    MOESTREAM_RETURN_IF_ERROR(in_range("expert_count", n_expert, 1, kMaxExperts));
    if (n_expert_used <= 0 || n_expert_used > n_expert) {
      return bad(absl::StrFormat("expert_used_count %d must be in 1..expert_count %d",
                                 n_expert_used, n_expert));
    }
    if (n_ff_exp <= 0) return bad("expert feed-forward length unknown");
    MOESTREAM_RETURN_IF_ERROR(in_range("leading_dense_block_count", n_dense_lead, 0, n_layer - 1));
    MOESTREAM_RETURN_IF_ERROR(in_range("interleave_moe_layer_step", moe_every, 0, n_layer));
    MOESTREAM_RETURN_IF_ERROR(in_range("shared expert width", n_ff_shexp, 0, kMaxFfn));
    MOESTREAM_RETURN_IF_ERROR(in_range("expert_group_count", n_expert_groups, 1, n_expert));
    MOESTREAM_RETURN_IF_ERROR(in_range("expert_group_used_count", n_group_used, 1, n_expert_groups));
    if (n_expert % n_expert_groups != 0) {
      return bad(absl::StrFormat("expert_count %d is not a multiple of expert_group_count %d",
                                 n_expert, n_expert_groups));
    }
    MOESTREAM_RETURN_IF_ERROR(in_range("expert_feed_forward_length", n_ff_exp, 1, kMaxFfn));
    MOESTREAM_RETURN_IF_ERROR(positive("expert_weights_scale", expert_weights_scale, 1e6));
  }
  if (has_dense_layers() && n_ff <= 0) {
    return bad("feed_forward_length missing or non-positive");
  }
  if (n_ff > 0) MOESTREAM_RETURN_IF_ERROR(in_range("feed_forward_length", n_ff, 1, kMaxFfn));
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ReadModelConfig(const io::GgufFile& f) {
  MOESTREAM_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  const ArchSpec* spec = FindArchitecture(arch);
  if (spec == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": unsupported architecture '", arch,
                                                   "' (supported: ",
                                                   SupportedArchitectureNames(), ")"));
  }
  ModelConfig c;
  MOESTREAM_RETURN_IF_ERROR(spec->read_config(HparamReader(f, arch), &c));
  MOESTREAM_RETURN_IF_ERROR(c.Validate(f.path()));
  return c;
}

}  // namespace moestream::model
