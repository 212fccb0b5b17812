#include "model/architecture.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"

namespace moestream::model {
namespace {

constexpr const ArchSpec* kArchitectures[] = {&kLlamaArch, &kQwen3MoeArch, &kLlama4Arch,
                                               &kDeepseek2Arch, &kGptOssArch};

// Token texts llama.cpp also treats as end of generation.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<EOT>",      "<|eom_id|>", "<|return|>", "<|end▁of▁sentence|>"};

absl::Status ReadSpecialTokens(const io::GgufFile& f, ModelConfig* c) {
  MOESTREAM_ASSIGN_OR_RETURN(std::string model, f.GetStringOr("tokenizer.ggml.model", "none"));
  const bool spm = model == "llama";
  auto id_or = [&](std::string_view key, int64_t def) -> absl::StatusOr<int32_t> {
    const io::GgufValue* v = f.Find(key);
    if (v == nullptr) return static_cast<int32_t>(def);
    MOESTREAM_ASSIGN_OR_RETURN(uint64_t u, v->AsUint());
    // 0xFFFFFFFF marks "none" in converted files.
    return u >= static_cast<uint64_t>(c->n_vocab) ? -1 : static_cast<int32_t>(u);
  };
  MOESTREAM_ASSIGN_OR_RETURN(c->bos_id, id_or("tokenizer.ggml.bos_token_id", spm ? 1 : -1));
  MOESTREAM_ASSIGN_OR_RETURN(c->eos_id, id_or("tokenizer.ggml.eos_token_id", spm ? 2 : -1));
  MOESTREAM_ASSIGN_OR_RETURN(int32_t eot, id_or("tokenizer.ggml.eot_token_id", -1));
  MOESTREAM_ASSIGN_OR_RETURN(int32_t eom, id_or("tokenizer.ggml.eom_token_id", -1));
  MOESTREAM_ASSIGN_OR_RETURN(c->add_bos, f.GetBoolOr("tokenizer.ggml.add_bos_token", spm));
  if (c->bos_id < 0) c->add_bos = false;
  c->eog_ids.clear();
  for (int32_t id : {c->eos_id, eot, eom}) {
    if (id >= 0) c->eog_ids.push_back(id);
  }
  if (const io::GgufValue* toks = f.Find("tokenizer.ggml.tokens");
      toks != nullptr && toks->is_array()) {
    const auto& items = toks->items();
    for (size_t i = 0; i < items.size() && i < static_cast<size_t>(c->n_vocab); ++i) {
      if (!items[i].is_string()) break;
      const std::string& s = items[i].raw_string();
      if (std::find(std::begin(kEogTexts), std::end(kEogTexts), s) != std::end(kEogTexts)) {
        c->eog_ids.push_back(static_cast<int32_t>(i));
      }
    }
  }
  std::sort(c->eog_ids.begin(), c->eog_ids.end());
  c->eog_ids.erase(std::unique(c->eog_ids.begin(), c->eog_ids.end()), c->eog_ids.end());
  return absl::OkStatus();
}

absl::StatusOr<kernels::RopeScaling> ParseRopeScaling(const HparamReader& r,
                                                      const std::string& s) {
  if (s == "none") return kernels::RopeScaling::kNone;
  if (s == "linear") return kernels::RopeScaling::kLinear;
  if (s == "yarn") return kernels::RopeScaling::kYarn;
  if (s == "llama3") return kernels::RopeScaling::kLlama3;
  return absl::InvalidArgumentError(absl::StrCat(
      r.file().path(), ": ", r.Key("rope.scaling.type"), " = '", s,
      "' is not supported (expected none, linear, yarn or llama3)"));
}

}  // namespace

std::string HparamReader::Key(std::string_view suffix) const {
  return absl::StrCat(arch_, ".", Av(suffix));
}

bool HparamReader::Has(std::string_view suffix) const { return f_.Find(Key(suffix)) != nullptr; }

absl::StatusOr<int64_t> HparamReader::Int(std::string_view suffix) const {
  const std::string key = Key(suffix);
  if (f_.Find(key) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(f_.path(), ": required metadata key '", key, "' is missing"));
  }
  return f_.GetInt(key);
}

absl::StatusOr<int64_t> HparamReader::IntOr(std::string_view suffix, int64_t def) const {
  const std::string key = Key(suffix);
  if (f_.Find(key) == nullptr) return def;
  return f_.GetInt(key);
}

absl::StatusOr<double> HparamReader::FloatOr(std::string_view suffix, double def) const {
  return f_.GetFloatOr(Key(suffix), def);
}

absl::StatusOr<bool> HparamReader::BoolOr(std::string_view suffix, bool def) const {
  return f_.GetBoolOr(Key(suffix), def);
}

absl::StatusOr<std::string> HparamReader::StringOr(std::string_view suffix,
                                                   std::string def) const {
  return f_.GetStringOr(Key(suffix), std::move(def));
}

absl::Status ReadCommonHparams(const HparamReader& r, const CommonHparamDefaults& d,
                               ModelConfig* c) {
  const io::GgufFile& f = r.file();
  c->arch = r.arch();
  MOESTREAM_ASSIGN_OR_RETURN(c->name, f.GetStringOr("general.name", ""));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_embd, r.Int("embedding_length"));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_layer, r.Int("block_count"));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_head, r.Int("attention.head_count"));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_head_kv, r.IntOr("attention.head_count_kv", c->n_head));
  if (c->n_head <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": ", r.Key("attention.head_count"), " must be positive"));
  }
  MOESTREAM_ASSIGN_OR_RETURN(c->head_dim_k, r.IntOr("attention.key_length", c->n_embd / c->n_head));
  MOESTREAM_ASSIGN_OR_RETURN(c->head_dim_v, r.IntOr("attention.value_length", c->head_dim_k));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_ctx_train, r.IntOr("context_length", 2048));
  MOESTREAM_ASSIGN_OR_RETURN(double eps, r.FloatOr("attention.layer_norm_rms_epsilon", d.rms_eps));
  c->rms_eps = static_cast<float>(eps);
  MOESTREAM_ASSIGN_OR_RETURN(c->n_ff, r.IntOr("feed_forward_length", 0));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_expert, r.IntOr("expert_count", 0));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_expert_used, r.IntOr("expert_used_count", 0));
  MOESTREAM_ASSIGN_OR_RETURN(c->n_ff_exp, r.IntOr("expert_feed_forward_length", 0));
  MOESTREAM_ASSIGN_OR_RETURN(bool norm, r.BoolOr("expert_weights_norm", true));
  c->norm_topk = norm;
  MOESTREAM_ASSIGN_OR_RETURN(double scale, r.FloatOr("expert_weights_scale", 1.0));
  c->expert_weights_scale = scale == 0 ? 1.0f : static_cast<float>(scale);
  MOESTREAM_ASSIGN_OR_RETURN(int64_t gating, r.IntOr("expert_gating_func", 1));
  c->gating = gating == 2 ? ExpertGating::kSigmoid : ExpertGating::kSoftmax;

  // Vocabulary: explicit key, else the embedding table, else the token list.
  if (r.Has("vocab_size")) {
    MOESTREAM_ASSIGN_OR_RETURN(c->n_vocab, r.Int("vocab_size"));
  } else if (const io::GgufTensorInfo* t = f.FindTensor("token_embd.weight"); t != nullptr) {
    c->n_vocab = t->ne[1];
  } else if (const io::GgufValue* toks = f.Find("tokenizer.ggml.tokens"); toks != nullptr) {
    c->n_vocab = static_cast<int64_t>(toks->items().size());
  }

  // RoPE, as llama.cpp's llama_model::load_hparams reads it.
  kernels::RopeParams& rope = c->rope;
  rope.mode = d.rope_mode;
  MOESTREAM_ASSIGN_OR_RETURN(rope.n_rot, r.IntOr("rope.dimension_count", c->head_dim_k));
  MOESTREAM_ASSIGN_OR_RETURN(double base, r.FloatOr("rope.freq_base", d.rope_freq_base));
  rope.freq_base = static_cast<float>(base);
  MOESTREAM_ASSIGN_OR_RETURN(std::string scaling, r.StringOr("rope.scaling.type", "linear"));
  MOESTREAM_ASSIGN_OR_RETURN(rope.scaling, ParseRopeScaling(r, scaling));
  double factor = 0;
  if (r.Has("rope.scaling.factor")) {
    MOESTREAM_ASSIGN_OR_RETURN(factor, r.FloatOr("rope.scaling.factor", 0));
  } else {
    MOESTREAM_ASSIGN_OR_RETURN(factor, r.FloatOr("rope.scale_linear", 0));
  }
  rope.freq_scale = factor == 0 ? 1.0f : static_cast<float>(1.0 / factor);
  if (rope.freq_scale == 1.0f && rope.scaling == kernels::RopeScaling::kLinear) {
    rope.scaling = kernels::RopeScaling::kNone;  // linear with factor 1 is no scaling
  }
  MOESTREAM_ASSIGN_OR_RETURN(double attn_factor, r.FloatOr("rope.scaling.attn_factor", 1.0));
  rope.attn_factor = static_cast<float>(attn_factor);
  MOESTREAM_ASSIGN_OR_RETURN(rope.n_ctx_orig,
                             r.IntOr("rope.scaling.original_context_length", c->n_ctx_train));
  MOESTREAM_ASSIGN_OR_RETURN(double beta_fast, r.FloatOr("rope.scaling.yarn_beta_fast", 32.0));
  MOESTREAM_ASSIGN_OR_RETURN(double beta_slow, r.FloatOr("rope.scaling.yarn_beta_slow", 1.0));
  rope.beta_fast = static_cast<float>(beta_fast);
  rope.beta_slow = static_cast<float>(beta_slow);
  // llama.cpp's context default (yarn_ext_factor = -1): 1 for YaRN, else 0.
  rope.ext_factor = rope.scaling == kernels::RopeScaling::kYarn ? 1.0f : 0.0f;

  return ReadSpecialTokens(f, c);
}

absl::Status BindStandardLayer(LayerBinder& b, const ModelConfig& c, int il, LayerWeights* l) {
  const int64_t D = c.n_embd;
  const std::string p = absl::StrCat("blk.", il, ".");
  MOESTREAM_ASSIGN_OR_RETURN(l->attn_norm, b.Vector(p + "attn_norm.weight", D));
  MOESTREAM_ASSIGN_OR_RETURN(l->wq, b.Matrix(p + "attn_q.weight", D, c.q_dim()));
  MOESTREAM_ASSIGN_OR_RETURN(l->wk, b.Matrix(p + "attn_k.weight", D, c.kv_dim()));
  MOESTREAM_ASSIGN_OR_RETURN(l->wv, b.Matrix(p + "attn_v.weight", D, c.n_head_kv * c.head_dim_v));
  MOESTREAM_ASSIGN_OR_RETURN(l->wo,
                             b.Matrix(p + "attn_output.weight", c.n_head * c.head_dim_v, D));
  if (c.qk_norm) {
    MOESTREAM_ASSIGN_OR_RETURN(l->q_norm, b.Vector(p + "attn_q_norm.weight", c.head_dim_k));
    MOESTREAM_ASSIGN_OR_RETURN(l->k_norm, b.Vector(p + "attn_k_norm.weight", c.head_dim_k));
  }
  return BindFfn(b, c, il, l);
}

absl::Status BindFfn(LayerBinder& b, const ModelConfig& c, int il, LayerWeights* l) {
  const int64_t D = c.n_embd;
  const std::string p = absl::StrCat("blk.", il, ".");
  MOESTREAM_ASSIGN_OR_RETURN(l->ffn_norm, b.Vector(p + "ffn_norm.weight", D));
  if (c.IsMoeLayer(il)) {
    MOESTREAM_ASSIGN_OR_RETURN(l->router, b.Matrix(p + "ffn_gate_inp.weight", D, c.n_expert));
    if (b.Has(p + "exp_probs_b.bias")) {
      MOESTREAM_ASSIGN_OR_RETURN(l->exp_probs_b, b.Vector(p + "exp_probs_b.bias", c.n_expert));
    }
    if (c.n_ff_shexp > 0) {
      MOESTREAM_ASSIGN_OR_RETURN(l->shexp_gate, b.Matrix(p + "ffn_gate_shexp.weight", D, c.n_ff_shexp));
      MOESTREAM_ASSIGN_OR_RETURN(l->shexp_up, b.Matrix(p + "ffn_up_shexp.weight", D, c.n_ff_shexp));
      MOESTREAM_ASSIGN_OR_RETURN(l->shexp_down, b.Matrix(p + "ffn_down_shexp.weight", c.n_ff_shexp, D));
    }
    return b.Experts(il, c, l);
  }
  MOESTREAM_ASSIGN_OR_RETURN(l->ffn_gate, b.Matrix(p + "ffn_gate.weight", D, c.n_ff));
  MOESTREAM_ASSIGN_OR_RETURN(l->ffn_up, b.Matrix(p + "ffn_up.weight", D, c.n_ff));
  MOESTREAM_ASSIGN_OR_RETURN(l->ffn_down, b.Matrix(p + "ffn_down.weight", c.n_ff, D));
  return absl::OkStatus();
}

absl::Status BuildStandardLayer(BlockOps& ops, const ModelConfig& c, const LayerWeights& l,
                                int il) {
  ops.NormInput(l.attn_norm);
  MOESTREAM_RETURN_IF_ERROR(ops.Attention(il, l, {.qk_norm = c.qk_norm}));
  ops.NormInput(l.ffn_norm);
  return l.is_moe() ? ops.RoutedExperts(il, l) : ops.DenseFfn(l);
}

kernels::WeightView RowsOf(const kernels::WeightView& w, int64_t first, int64_t count) {
  kernels::WeightView v = w;
  v.n_out = count;
  if (w.data != nullptr) {
    v.data = static_cast<const uint8_t*>(w.data) + uint64_t(first) * RowBytes(w.type, w.n_in);
  }
  return v;
}

kernels::WeightView MatrixOf(const kernels::WeightView& first, uint64_t stride, int64_t i) {
  kernels::WeightView v = first;
  if (first.data != nullptr) v.data = static_cast<const uint8_t*>(first.data) + uint64_t(i) * stride;
  return v;
}

std::span<const ArchSpec* const> Architectures() { return kArchitectures; }

const ArchSpec* FindArchitecture(std::string_view name) {
  for (const ArchSpec* a : kArchitectures) {
    if (a->name == name) return a;
  }
  return nullptr;
}

std::string SupportedArchitectureNames() {
  std::string out;
  for (const ArchSpec* a : kArchitectures) {
    if (!out.empty()) out += ", ";
    out += std::string(a->name);
  }
  return out;
}

}  // namespace moestream::model
