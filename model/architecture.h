// The registry of model architectures. An architecture is one file
// (model/arch/<name>.cc) defining an ArchSpec, plus its line in
// kArchitectures (model/architecture.cc: the library is static, so a
// self-registering object file would be dropped by the linker).
//
// An ArchSpec holds the three things that differ between architectures:
//   read_config  the hyper-parameters its GGUFs carry, into a ModelConfig
//                (with llama.cpp's defaults);
//   bind_layer   the tensors of one layer, through a LayerBinder
//                (model/block.h; the weight loader calls it per layer);
//   build_layer  the layer's forward pass, composed from the engine's
//                shared pieces (BlockOps, model/block.h; the engine owns the
//                loop, the KV cache, the expert provider and the head).
// Adding an architecture is one file, one line in kArchitectures and its
// tests.
//
//   const ArchSpec* a = FindArchitecture("qwen3moe");   // nullptr if unknown
//   MOESTREAM_RETURN_IF_ERROR(a->read_config(HparamReader(file, "qwen3moe"), &config));
#ifndef MOESTREAM_MODEL_ARCHITECTURE_H_
#define MOESTREAM_MODEL_ARCHITECTURE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "model/block.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace moestream::model {

// Reads `<arch>.<suffix>` metadata keys, errors naming the file and key.
class HparamReader {
 public:
  HparamReader(const io::GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}

  std::string Key(std::string_view suffix) const;
  bool Has(std::string_view suffix) const;
  absl::StatusOr<int64_t> Int(std::string_view suffix) const;  // required
  absl::StatusOr<int64_t> IntOr(std::string_view suffix, int64_t def) const;
  absl::StatusOr<double> FloatOr(std::string_view suffix, double def) const;
  absl::StatusOr<bool> BoolOr(std::string_view suffix, bool def) const;
  absl::StatusOr<std::string> StringOr(std::string_view suffix, std::string def) const;
  const io::GgufFile& file() const { return f_; }
  const std::string& arch() const { return arch_; }

 private:
  const io::GgufFile& f_;
  std::string arch_;
};

// Defaults of the keys every llama-family architecture reads.
struct CommonHparamDefaults {
  double rms_eps = 1e-5;           // attention.layer_norm_rms_epsilon
  double rope_freq_base = 10000;   // rope.freq_base
  kernels::RopeMode rope_mode = kernels::RopeMode::kNormal;
};

// Reads what llama, mixtral and qwen3moe share: sizes, heads, key/value
// lengths, context, rms eps, rope (base, dimension_count, scaling keys as
// llama.cpp reads them), expert counts, vocab size (`<arch>.vocab_size`,
// else the token_embd shape, else the tokenizer's token list) and the
// special tokens.
absl::Status ReadCommonHparams(const HparamReader& r, const CommonHparamDefaults& d,
                               ModelConfig* c);

// The llama-family layer the shared pieces make: attn_norm, attn_{q,k,v,
// output} (with attn_{q,k}_norm when `c.qk_norm`), ffn_norm, then either the
// dense ffn_{gate,up,down} or, in a MoE model, the router ffn_gate_inp and
// the routed experts. llama, mixtral and qwen3moe are exactly this.
absl::Status BindStandardLayer(LayerBinder& b, const ModelConfig& c, int il, LayerWeights* l);
absl::Status BuildStandardLayer(BlockOps& ops, const ModelConfig& c, const LayerWeights& l, int il);

// The FFN half of the standard layer: ffn_norm, then the dense FFN, or the
// router (with exp_probs_b when the file has it), the shared experts (when
// n_ff_shexp > 0) and the routed experts.
absl::Status BindFfn(LayerBinder& b, const ModelConfig& c, int il, LayerWeights* l);

struct ArchSpec {
  std::string_view name;  // general.architecture value
  absl::Status (*read_config)(const HparamReader& r, ModelConfig* c);
  absl::Status (*bind_layer)(LayerBinder& b, const ModelConfig& c, int il, LayerWeights* l);
  absl::Status (*build_layer)(BlockOps& ops, const ModelConfig& c, const LayerWeights& l, int il);
  // Floats per token of each scratch buffer build_layer uses
  // (BlockOps::Scratch); null = none. The engine plans and allocates them.
  std::vector<int64_t> (*scratch)(const ModelConfig& c) = nullptr;
  // build_layer calls BlockOps::Attention (the engine then keeps q/k/v
  // workspaces for it); false for an attention of the architecture's own.
  bool standard_attention = true;
};

extern const ArchSpec kLlamaArch;     // model/arch/llama.cc
extern const ArchSpec kQwen3MoeArch;  // model/arch/qwen3moe.cc
extern const ArchSpec kLlama4Arch;    // model/arch/llama4.cc
extern const ArchSpec kDeepseek2Arch; // model/arch/deepseek2.cc
extern const ArchSpec kGptOssArch;    // model/arch/gpt_oss.cc

std::span<const ArchSpec* const> Architectures();
const ArchSpec* FindArchitecture(std::string_view name);
std::string SupportedArchitectureNames();  // "llama, qwen3moe"

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_ARCHITECTURE_H_
