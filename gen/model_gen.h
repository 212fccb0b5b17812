// Synthetic model generator behind `moestream gen`: writes a GGUF whose
// metadata keys, tensor names and shapes are exactly those llama.cpp uses for
// `qwen3moe`, Mixtral (`llama` with experts, stacked `_exps` or per-expert
// tensors) and dense `llama`, filled with seeded pseudo-random weights.
//
//   MOESTREAM_ASSIGN_OR_RETURN(GenOptions o, PresetOptions("qwen3-30b-a3b", GenArch::kQwen3Moe));
//   MOESTREAM_RETURN_IF_ERROR(ScaleOptions(8, /*scale_layers=*/false, &o));
//   o.type = GgmlType::kQ8_0;
//   MOESTREAM_RETURN_IF_ERROR(GenerateModel(o, "m.gguf", progress_fn));
//
// Weights (all drawn from a xoshiro256+ stream per row, keyed by the seed,
// the tensor's role and the row, so the values do not depend on --type, the
// thread count or the expert layout):
//   - norms (attn/ffn/output/q/k): 1 + 0.05 n, n ~ N(0, 1) (approximate normal);
//   - token_embd rows: sqrt(1 - c^2) n + c sqrt(hidden) u, with u one unit
//     "common direction" per model and c = kCommonDirectionWeight: real
//     hidden states are anisotropic, and this is what the routers key on;
//   - every other matrix: n / sqrt(fan_in), fan_in = ne0, so activations
//     stay O(1) through the layers;
//   - router ffn_gate_inp row e of layer L: a popularity bias along u plus a
//     token-dependent part, so that softmax routing of the hidden states is
//     Zipf-skewed (popularity of the expert of rank r in layer L is about
//     (1 + r)^-router_skew, with a per-layer random ranking) instead of
//     uniform; the token-dependent part's scale also decays slowly with rank,
//     so even isotropic inputs see a skew.
// Norms and the router stay F32 whatever the type (as llama.cpp does);
// token_embd and output follow the type.
#ifndef MOESTREAM_GEN_MODEL_GEN_H_
#define MOESTREAM_GEN_MODEL_GEN_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/ggml_type.h"
#include "gen/quant_mix.h"
#include "io/gguf.h"

namespace moestream::gen {

enum class GenArch {
  kQwen3Moe,   // general.architecture "qwen3moe"
  kMixtral,    // general.architecture "llama" with llama.expert_count
  kLlama,      // general.architecture "llama", dense SwiGLU FFN
  kLlama4,     // general.architecture "llama4"
  kDeepseek2,  // general.architecture "deepseek2" (multi-head latent attention)
  kGptOss,     // general.architecture "gpt-oss" (MXFP4 experts, biases, sinks, sliding window)
};
// "qwen3moe", "mixtral", "llama", "llama4", "deepseek2", "gpt-oss"
std::string_view GenArchName(GenArch a);
absl::StatusOr<GenArch> ParseGenArch(std::string_view name);

enum class ExpertLayout {
  kStacked,  // blk.N.ffn_{gate,up,down}_exps.weight, experts on ne[2]
  kSplit,    // blk.N.ffn_{gate,up,down}.E.weight (older Mixtral files); mixtral only
};
std::string_view ExpertLayoutName(ExpertLayout l);  // "stacked", "split"
absl::StatusOr<ExpertLayout> ParseExpertLayout(std::string_view name);

// Weight of the common direction in the token embeddings (see above).
inline constexpr double kCommonDirectionWeight = 0.5;

struct GenOptions {
  GenArch arch = GenArch::kQwen3Moe;
  // Transformer blocks (--layers). Default 2.
  int64_t layers = 2;
  // Residual width, embedding_length (--hidden). Default 256.
  int64_t hidden = 256;
  // Query heads (--heads) and key/value heads (--kv-heads, divides heads).
  int64_t heads = 4;
  int64_t kv_heads = 2;
  // Per-head width, key_length = value_length = rope.dimension_count
  // (--head-dim). Even for the llama rope. Default 64.
  int64_t head_dim = 64;
  // Routed experts per layer (--experts) and experts used per token (--top-k).
  // Ignored (written as none) for dense llama.
  int64_t experts = 8;
  int64_t top_k = 2;
  // Rows of each expert's gate/up matrix (--expert-ffn). For mixtral this is
  // llama.feed_forward_length; for qwen3moe expert_feed_forward_length.
  int64_t expert_ffn = 256;
  // Dense FFN width (--ffn): the FFN of dense llama; written as
  // qwen3moe.feed_forward_length (unused by qwen3moe); unused by mixtral.
  int64_t ffn = 512;
  // Token ids: rows of token_embd and output (--vocab). Default 512.
  int64_t vocab = 512;
  // context_length metadata, in tokens (--context). Default 512.
  int64_t context = 512;
  // rope.freq_base (--rope-theta); 0 = the architecture's default (1e6 for
  // qwen3moe and mixtral, 1e4 for llama).
  double rope_theta = 0;
  // attention.layer_norm_rms_epsilon; 0 = the architecture's default (1e-6
  // for qwen3moe, 1e-5 for llama and mixtral).
  double rms_eps = 0;
  // Storage type of the matrices (--type): one of GenTypes(). Norms and
  // routers stay F32. Default F32.
  GgmlType type = GgmlType::kF32;
  // A per-tensor mix instead of one type (--type q4_k_m): `type` must then
  // be QuantMixBaseType(mix); each matrix gets the mix's type (quant_mix.h).
  QuantMix mix = QuantMix::kNone;
  // PRNG seed (--seed). Same seed and shapes -> same weights. Default 1.
  uint64_t seed = 1;
  // Expert tensor layout (--expert-layout); kSplit only for mixtral.
  ExpertLayout expert_layout = ExpertLayout::kStacked;
  // Zipf exponent of the expert popularity in each layer (--router-skew);
  // 0 = no popularity bias (routing then depends on the token only).
  double router_skew = 1.0;
  // general.name; empty = "synthetic-<arch>-<type>".
  std::string name;
  // Worker threads generating and quantizing rows; 0 = hardware threads.
  int threads = 0;
  // Write the metadata and tensor table only (--header-only): a file of a
  // few MB that `plan` and `inspect` read as the real model (io::GgufWriter::
  // SetHeaderOnly).
  bool header_only = false;

  // llama4 and deepseek2 (model/arch/*.cc says what each means):
  // MoE on every moe_every-th layer (llama4's interleave_moe_layer_step;
  // 1 = all), after dense_lead dense layers (deepseek2's
  // leading_dense_block_count); shared_experts of expert_ffn each.
  int64_t moe_every = 1;     // --moe-every
  int64_t dense_lead = 0;    // --dense-lead
  int64_t shared_experts = 0;  // --shared-experts
  // deepseek2: head_dim is the no-RoPE part of a q/k head (qk_nope), rope_dim
  // the RoPE part, v_head_dim the value head; q_lora_rank 0 = a plain q.
  int64_t q_lora_rank = 0;   // --q-lora-rank
  int64_t kv_lora_rank = 512;  // --kv-lora-rank
  int64_t rope_dim = 64;
  int64_t v_head_dim = 128;
  // deepseek2 routing: sigmoid gating with the exp_probs_b selection bias,
  // groups, weight norm and scale (DeepSeek-V3); else softmax, no groups.
  bool sigmoid_gating = false;
  int64_t expert_groups = 1, group_used = 1;
  double weights_scale = 1.0;
  // gpt-oss: the sliding window of its even layers (--sliding-window). Its
  // routed experts are always MXFP4, as in every released gpt-oss file (the
  // other matrices take --type); YaRN factor 32 over 4096 positions.
  int64_t sliding_window = 128;

  // kInvalidArgument naming the flag: non-positive dims, heads not a
  // multiple of kv_heads, odd head_dim, top_k > experts, a matrix row
  // (ne0: hidden, heads*head_dim, expert_ffn, ffn) not a multiple of the
  // type's block size, an unsupported type, split layout off mixtral.
  absl::Status Validate() const;

  // Effective values after the architecture defaults.
  double RopeTheta() const;
  double RmsEps() const;
  std::string Name() const;
};

// Named shapes: "tiny" (a few MB, for tests), "small" (tens of MB, fast on
// two cores), and the real shapes "mixtral-8x7b", "mixtral-8x22b",
// "qwen3-30b-a3b", "qwen3-235b-a22b", "llama4-scout", "llama4-maverick",
// "deepseek-v2-lite", "deepseek-v3". The architecture is set to `arch`; the preset's own
// rope theta is kept. kInvalidArgument listing the names for an unknown one.
absl::StatusOr<GenOptions> PresetOptions(std::string_view preset, GenArch arch);
std::vector<std::string> PresetNames();
// The architecture a preset is naturally used with (qwen3moe for tiny/small).
GenArch PresetDefaultArch(std::string_view preset);

// Shrinks a shape by `scale` >= 1: hidden, ffn, expert_ffn and vocab are
// divided by `scale` and rounded to a multiple of 256 (the largest block size,
// so every --type stays valid; at least 256); head_dim is kept; the heads are
// divided too (for llama/mixtral shapes with heads*head_dim == hidden, heads =
// hidden/head_dim), kv_heads keep the query/kv group size where possible and
// always divide heads. Layers are divided (rounded, at least 1) only with
// `scale_layers`. deepseek2's q and kv LoRA ranks are divided (multiples of
// 64). Experts, top-k, context, rope and the other head dims are kept.
absl::Status ScaleOptions(double scale, bool scale_layers, GenOptions* o);

// Parameters (elements) the model will hold, and its tensor data bytes.
struct GenSummary {
  uint64_t parameters = 0;
  uint64_t data_bytes = 0;
  int tensors = 0;
};

// The matrix types `--type` accepts, the one list: F32, F16, BF16, Q8_0,
// Q4_0, Q4_K, Q6_K (for messages and help: GgmlTypeNames(GenTypes())).
std::span<const GgmlType> GenTypes();

// Validates `o` and writes the model to `path` (via a temporary renamed into
// place: `path` is only written on success). `progress` and `summary` may be
// null.
absl::Status GenerateModel(const GenOptions& o, const std::string& path,
                           const io::ProgressFn& progress = nullptr,
                           GenSummary* summary = nullptr);

// Adds the model's metadata and tensors to `w` without writing (for callers
// that add their own keys); GenerateModel = this + w.Write().
absl::StatusOr<GenSummary> BuildModel(const GenOptions& o, io::GgufWriter* w);

// The llama.cpp general.file_type (LLAMA_FTYPE_*) of an all-`t` model.
uint32_t FileTypeOf(GgmlType t);

}  // namespace moestream::gen

#endif  // MOESTREAM_GEN_MODEL_GEN_H_
