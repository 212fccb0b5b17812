#include "model/model_info.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace moestream::model {
namespace {

// `<arch>.*` keys worth showing, in display order.
constexpr std::string_view kHparamKeys[] = {
    "block_count",
    "context_length",
    "embedding_length",
    "feed_forward_length",
    "expert_feed_forward_length",
    "expert_shared_feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "rope.dimension_count",
    "rope.freq_base",
    "expert_count",
    "expert_used_count",
    "expert_shared_count",
    "leading_dense_block_count",
};

bool ConsumeDigits(std::string_view& s, int* out) {
  size_t n = 0;
  int v = 0;
  while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n])) && n < 9) {
    v = v * 10 + (s[n] - '0');
    ++n;
  }
  if (n == 0) return false;
  s.remove_prefix(n);
  *out = v;
  return true;
}

bool Consume(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// The expert index of a per-expert tensor `blk.L.ffn_{gate,up,down}.E.*`.
std::optional<int> PerExpertIndex(std::string_view name) {
  int layer, expert;
  if (!Consume(name, "blk.") || !ConsumeDigits(name, &layer) || !Consume(name, ".ffn_")) {
    return std::nullopt;
  }
  if (!Consume(name, "gate.") && !Consume(name, "up.") && !Consume(name, "down.")) {
    return std::nullopt;
  }
  if (!ConsumeDigits(name, &expert) || !Consume(name, ".")) return std::nullopt;
  return expert;
}

}  // namespace

std::optional<int> RoutedExpertLayer(std::string_view name) {
  std::string_view s = name;
  int layer;
  if (!Consume(s, "blk.") || !ConsumeDigits(s, &layer) || !Consume(s, ".ffn_")) {
    return std::nullopt;
  }
  // Stacked: the tensor's base name ends in "_exps" (ffn_gate_exps, ffn_up_exps,
  // ffn_down_exps, fused ffn_gate_up_exps).
  std::string_view base = s.substr(0, s.find('.'));
  if (base.size() > 5 && base.substr(base.size() - 5) == "_exps") return layer;
  if (PerExpertIndex(name).has_value()) return layer;
  return std::nullopt;
}

absl::StatusOr<ModelInfo> SummarizeModel(const io::GgufFile& f) {
  ModelInfo info;
  MOESTREAM_ASSIGN_OR_RETURN(info.arch, f.GetStringOr("general.architecture", ""));
  MOESTREAM_ASSIGN_OR_RETURN(info.name, f.GetStringOr("general.name", ""));
  const std::string prefix = info.arch.empty() ? "" : info.arch + ".";
  if (!info.arch.empty()) {
    for (std::string_view key : kHparamKeys) {
      if (const io::GgufValue* v = f.Find(prefix + std::string(key))) {
        info.hparams.push_back({std::string(key), *v});
      }
    }
  }
  const io::GgufValue* vocab = info.arch.empty() ? nullptr : f.Find(prefix + "vocab_size");
  if (vocab != nullptr) {
    info.hparams.push_back({"vocab_size", *vocab});
  } else if (const io::GgufValue* tokens = f.Find("tokenizer.ggml.tokens");
             tokens != nullptr && tokens->is_array()) {
    info.hparams.push_back(
        {"vocab_size", io::GgufValue::Uint(io::GgufType::kUint64, tokens->items().size())});
  } else if (const io::GgufTensorInfo* emb = f.FindTensor("token_embd.weight");
             emb != nullptr && emb->n_dims >= 2) {
    info.hparams.push_back(
        {"vocab_size", io::GgufValue::Uint(io::GgufType::kUint64, uint64_t(emb->ne[1]))});
  }
  if (!info.arch.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(info.n_expert, f.GetUintOr(prefix + "expert_count", 0));
    MOESTREAM_ASSIGN_OR_RETURN(info.n_expert_used, f.GetUintOr(prefix + "expert_used_count", 0));
  }

  std::map<int, uint64_t> layer_bytes;
  std::set<int> per_expert_ids;
  uint64_t inferred_experts = 0;
  for (const io::GgufTensorInfo& t : f.tensors()) {
    info.params_total += t.elements();
    std::optional<int> layer = RoutedExpertLayer(t.name);
    if (!layer) {
      info.resident_bytes += t.size_bytes;
      continue;
    }
    info.params_routed += t.elements();
    info.expert_bytes += t.size_bytes;
    layer_bytes[*layer] += t.size_bytes;
    if (std::optional<int> e = PerExpertIndex(t.name)) {
      if (info.n_expert != 0 && uint64_t(*e) >= info.n_expert) {
        return absl::DataLossError(absl::StrCat(f.path(), ": tensor '", t.name, "': expert ", *e,
                                                " but ", prefix, "expert_count is ",
                                                info.n_expert));
      }
      per_expert_ids.insert(*e);
    } else {
      // Stacked: experts on the slowest dimension.
      uint64_t n = uint64_t(t.ne[t.n_dims - 1]);
      if (info.n_expert != 0 && n != info.n_expert) {
        return absl::DataLossError(absl::StrCat(f.path(), ": tensor '", t.name, "': shape ",
                                                t.ShapeString(), " holds ", n, " experts but ",
                                                prefix, "expert_count is ", info.n_expert));
      }
      inferred_experts = n;
    }
  }
  if (info.n_expert == 0 && !layer_bytes.empty()) {
    info.n_expert = inferred_experts != 0 ? inferred_experts : per_expert_ids.size();
  }
  info.n_moe_layers = layer_bytes.size();
  for (const auto& [layer, bytes] : layer_bytes) {
    info.expert_bytes_per_layer = std::max(info.expert_bytes_per_layer, bytes);
  }
  if (info.n_expert != 0) info.bytes_per_expert = info.expert_bytes_per_layer / info.n_expert;

  const uint64_t dense = info.params_total - info.params_routed;
  if (info.n_expert != 0 && info.params_routed != 0) {
    uint64_t used = info.n_expert_used != 0 ? std::min(info.n_expert_used, info.n_expert)
                                            : info.n_expert;
    info.params_active = dense + static_cast<uint64_t>(static_cast<long double>(info.params_routed) *
                                                       used / info.n_expert);
  } else {
    info.params_active = info.params_total;
  }
  return info;
}

}  // namespace moestream::model
