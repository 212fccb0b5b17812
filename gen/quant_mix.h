// Per-tensor quantization mixes: the storage type each tensor of a model
// gets under a llama.cpp "file type" such as Q4_K_M, where the type is not
// one for all matrices but depends on the tensor's role, its layer and the
// model's shape. `moestream gen --type q4_k_m` writes models (and headers,
// for `plan`) with the types llama.cpp's quantizer would choose, so that the
// bytes on each tier are those of the files people download.
//
//   std::vector<MixTensor> t = ...;   // every tensor: name, shape, planned type
//   MOESTREAM_ASSIGN_OR_RETURN(std::vector<GgmlType> types,
//                              MixTypes(QuantMix::kQ4_K_M, {.n_layer = 48, .n_expert = 128}, t));
//
// Q4_K_M, as llama.cpp assigns it (rules restated, not its code):
//   - only tensors named "*weight" with at least two dimensions (after
//     dropping trailing dimensions of 1) are quantized; norms
//     ("*_norm.weight") and routers ("ffn_gate_inp.weight") keep their type;
//   - the default is Q4_K;
//   - output.weight (or token_embd.weight when there is no output.weight:
//     tied embeddings) is Q6_K, or Q8_0 when its rows are no multiple of 256;
//   - attn_v.weight is Q6_K in the layers where `MoreBits(i, n)` holds, i
//     the index of this attn_v among all attn_v tensors in layer order and
//     n their count; with exactly 8 experts (Mixtral) it is Q8_0 instead;
//     a dense 80-layer llama with grouped KV heads (the 70B) gets Q5_K
//     where it would get Q4_K;
//   - attn_k.weight is Q8_0 with exactly 8 experts;
//   - attn_output.weight is Q5_K with exactly 8 experts;
//   - every tensor whose name contains "ffn_down" (dense, routed and shared
//     experts) is Q6_K in the layers where MoreBits(layer, n_layer) holds;
//   - attn_qkv.weight (fused) is Q5_K;
//   - a tensor whose rows hold no whole block of its type falls back:
//     Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16 if even that
//     block does not divide the row.
//   MoreBits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (integer
//   division): the first and last eighth of the layers and every third
//   layer in between.
// Checked tensor by tensor against files llama.cpp quantized
// (../shared/reference/*-q4_k_m, tests/gen/quant_mix_test.cc).
#ifndef MOESTREAM_GEN_QUANT_MIX_H_
#define MOESTREAM_GEN_QUANT_MIX_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/ggml_type.h"

namespace moestream::gen {

enum class QuantMix {
  kNone,    // every matrix in GenOptions::type
  kQ4_K_M,  // llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M (general.file_type 15)
};
std::string_view QuantMixName(QuantMix m);       // "none", "q4_k_m"
std::optional<QuantMix> ParseQuantMix(std::string_view name);  // "q4_k_m"; else nullopt
// general.file_type of a model written with the mix (LLAMA_FTYPE_*).
uint32_t QuantMixFileType(QuantMix m);
// The type a mix starts from (Q4_K for Q4_K_M).
GgmlType QuantMixBaseType(QuantMix m);

// A `gen --type` value: one type for every matrix, or a mix with its base
// type. kInvalidArgument naming the value and listing the accepted ones.
struct GenType {
  GgmlType type = GgmlType::kF32;
  QuantMix mix = QuantMix::kNone;
};
absl::StatusOr<GenType> ParseGenType(std::string_view name);

// The model facts the rules depend on.
struct MixModel {
  int64_t n_layer = 0;   // block_count
  int64_t n_expert = 0;  // routed experts per MoE layer (0 = dense)
  // Dense llama only: query and KV head counts (the 70B rule).
  std::string arch;      // general.architecture
  int64_t n_head = 0, n_head_kv = 0;
};

struct MixTensor {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the row length
  GgmlType type = GgmlType::kF32;  // the type it has without the mix
};

// The type of each tensor of `tensors` under `mix` (same order). Tensors
// the mix does not quantize keep their type. kInvalidArgument for a tensor
// whose layer number is out of range or a row no type can hold.
absl::StatusOr<std::vector<GgmlType>> MixTypes(QuantMix mix, const MixModel& model,
                                               const std::vector<MixTensor>& tensors);

// The layer-selection rule shared by attn_v and ffn_down (see above).
bool MoreBits(int64_t i, int64_t n);

}  // namespace moestream::gen

#endif  // MOESTREAM_GEN_QUANT_MIX_H_
