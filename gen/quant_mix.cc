// MixTypes: the rules quant_mix.h lists, applied to a model's tensor table.
#include "gen/quant_mix.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "gen/model_gen.h"

namespace moestream::gen {
namespace {

bool Contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// Dimensions after dropping trailing ones (ggml_n_dims).
int Dims(const std::vector<int64_t>& ne) {
  int n = static_cast<int>(ne.size());
  while (n > 1 && ne[size_t(n - 1)] == 1) --n;
  return std::max(n, 1);
}

// The N of "blk.N.", or -1.
int64_t LayerOf(const std::string& name) {
  long long l = -1;
  if (std::sscanf(name.c_str(), "blk.%lld.", &l) != 1) return -1;
  return l;
}

bool Quantized(const MixTensor& t) {
  return t.name.size() >= 6 && t.name.compare(t.name.size() - 6, 6, "weight") == 0 && Dims(t.ne) >= 2 &&
         !Contains(t.name, "_norm.weight") && !Contains(t.name, "ffn_gate_inp.weight");
}

int64_t BlockOf(GgmlType t) { return int64_t(GgmlTypeTraitsOf(t)->block_elems); }

}  // namespace

std::string_view QuantMixName(QuantMix m) {
  return m == QuantMix::kQ4_K_M ? "q4_k_m" : "none";
}

std::optional<QuantMix> ParseQuantMix(std::string_view name) {
  if (name == "q4_k_m" || name == "Q4_K_M") return QuantMix::kQ4_K_M;
  return std::nullopt;
}

uint32_t QuantMixFileType(QuantMix m) { return m == QuantMix::kQ4_K_M ? 15 : 0; }

GgmlType QuantMixBaseType(QuantMix m) {
  return m == QuantMix::kQ4_K_M ? GgmlType::kQ4_K : GgmlType::kF32;
}

absl::StatusOr<GenType> ParseGenType(std::string_view name) {
  if (std::optional<QuantMix> mix = ParseQuantMix(name)) return GenType{QuantMixBaseType(*mix), *mix};
  if (std::optional<GgmlType> t = ParseGgmlType(name)) return GenType{*t, QuantMix::kNone};
  return absl::InvalidArgumentError(absl::StrCat("--type: unknown type '", Av(name), "' (expected ",
                                                 GgmlTypeNames(GenTypes()), ", or the mix q4_k_m)"));
}

bool MoreBits(int64_t i, int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

absl::StatusOr<std::vector<GgmlType>> MixTypes(QuantMix mix, const MixModel& model,
                                               const std::vector<MixTensor>& tensors) {
  std::vector<GgmlType> out(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) out[i] = tensors[i].type;
  if (mix == QuantMix::kNone) return out;

  const bool eight_experts = model.n_expert == 8;
  const bool llama_70b = model.arch == "llama" && model.n_expert <= 1 && model.n_layer == 80 &&
                         model.n_head != model.n_head_kv;
  bool has_output = false;
  int64_t n_attn_v = 0;
  for (const MixTensor& t : tensors) {
    if (t.name == "output.weight") has_output = true;
    if (Contains(t.name, "attn_v.weight") || Contains(t.name, "attn_qkv.weight") ||
        Contains(t.name, "attn_kv_b.weight")) {
      ++n_attn_v;
    }
  }
  // The attn_v rule counts attn_v tensors in layer order (then by name).
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t la = LayerOf(tensors[a].name), lb = LayerOf(tensors[b].name);
    if (la != lb) return la < lb;
    return tensors[a].name < tensors[b].name;
  });

  int64_t i_attn_v = 0;
  for (size_t idx : order) {
    const MixTensor& t = tensors[idx];
    // Float tensors stay; so do MXFP4 experts (gpt-oss files keep them).
    if (!Quantized(t) || t.type == GgmlType::kMXFP4) continue;
    const std::string& name = t.name;
    const int64_t nx = t.ne.empty() ? 0 : t.ne[0];
    GgmlType ty = QuantMixBaseType(mix);
    if (name == "output.weight" || (!has_output && name == "token_embd.weight")) {
      ty = nx % BlockOf(ty) != 0 ? GgmlType::kQ8_0 : GgmlType::kQ6_K;
    } else if (name == "token_embd.weight") {
      // the base type
    } else if (Contains(name, "attn_v.weight")) {
      if (MoreBits(i_attn_v, n_attn_v)) ty = GgmlType::kQ6_K;
      if (llama_70b && ty == GgmlType::kQ4_K) ty = GgmlType::kQ5_K;
      if (eight_experts) ty = GgmlType::kQ8_0;
      ++i_attn_v;
    } else if (Contains(name, "attn_k.weight")) {
      if (eight_experts) ty = GgmlType::kQ8_0;
    } else if (Contains(name, "attn_q.weight")) {
      // the base type
    } else if (Contains(name, "ffn_down")) {
      int64_t layer = LayerOf(name);
      if (model.n_expert <= 1 && layer < 0) layer = 0;
      if (layer < 0 || layer >= model.n_layer) {
        return absl::InvalidArgumentError(absl::StrCat(
            "q4_k_m: tensor ", name, " has no layer in [0, ", model.n_layer, ")"));
      }
      if (MoreBits(layer, model.n_layer)) ty = GgmlType::kQ6_K;
    } else if (Contains(name, "attn_output.weight")) {
      if (eight_experts) ty = GgmlType::kQ5_K;
    } else if (Contains(name, "attn_qkv.weight")) {
      ty = GgmlType::kQ5_K;
    }
    if (nx % BlockOf(ty) != 0) {
      switch (ty) {
        case GgmlType::kQ4_K: ty = GgmlType::kQ5_0; break;
        case GgmlType::kQ5_K: ty = GgmlType::kQ5_1; break;
        case GgmlType::kQ6_K: ty = GgmlType::kQ8_0; break;
        default:
          return absl::InvalidArgumentError(absl::StrCat(
              "q4_k_m: tensor ", name, " rows of ", nx, " hold no whole block of ",
              Av(GgmlTypeName(ty))));
      }
      if (nx % BlockOf(ty) != 0) ty = GgmlType::kF16;
    }
    out[idx] = ty;
  }
  return out;
}

}  // namespace moestream::gen
