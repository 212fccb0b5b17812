#include "model/model_config.h"

#include <algorithm>

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
  if (n_vocab <= 0) return bad("vocabulary size unknown (no vocab_size key, no token_embd)");
  if (n_embd <= 0 || n_layer <= 0 || n_head <= 0 || n_head_kv <= 0 || head_dim_k <= 0) {
    return bad(absl::StrFormat("non-positive size (embedding %d, blocks %d, heads %d/%d, head dim %d)",
                               n_embd, n_layer, n_head, n_head_kv, head_dim_k));
  }
  if (n_head % n_head_kv != 0) {
    return bad(absl::StrFormat("head_count %d is not a multiple of head_count_kv %d", n_head,
                               n_head_kv));
  }
  if (head_dim_v != head_dim_k) {
    return bad(absl::StrFormat("value_length %d != key_length %d is not supported", head_dim_v,
                               head_dim_k));
  }
  if (rope.n_rot <= 0 || rope.n_rot > head_dim_k || rope.n_rot % 2 != 0) {
    return bad(absl::StrFormat("rope.dimension_count %d must be even and in 1..%d", rope.n_rot,
                               head_dim_k));
  }
  if (is_moe()) {
    if (n_expert_used <= 0 || n_expert_used > n_expert) {
      return bad(absl::StrFormat("expert_used_count %d must be in 1..expert_count %d",
                                 n_expert_used, n_expert));
    }
    if (n_ff_exp <= 0) return bad("expert feed-forward length unknown");
  } else if (n_ff <= 0) {
    return bad("feed_forward_length missing or non-positive");
  }
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
