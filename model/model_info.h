// What a user needs to decide whether a GGUF model fits: its architecture and
// hyper-parameters, total vs per-token active parameters, and the bytes of the
// resident part (everything but routed experts) vs the routed experts, per
// layer and per expert. Works from the header alone, for any architecture
// (unknown ones just have fewer hyper-parameters), so `moestream inspect`
// and the planner can describe a 400 GB file in milliseconds.
//
//   MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile f, io::GgufFile::Open("m.gguf"));
//   MOESTREAM_ASSIGN_OR_RETURN(ModelInfo info, SummarizeModel(f));
//   printf("%llu of %llu params active\n", info.params_active, info.params_total);
//
// Routed experts are the stacked `blk.L.ffn_{gate,up,down}_exps.*` tensors and
// the per-expert `blk.L.ffn_{gate,up,down}.E.*` tensors of older Mixtral
// files; shared experts (`*_shexp`) and routers (`ffn_gate_inp`) are resident.
#ifndef MOESTREAM_MODEL_MODEL_INFO_H_
#define MOESTREAM_MODEL_MODEL_INFO_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "io/gguf.h"

namespace moestream::model {

// A routed-expert tensor's layer, or nullopt for any other tensor.
std::optional<int> RoutedExpertLayer(std::string_view tensor_name);

struct ModelHparam {
  std::string key;  // without the "<arch>." prefix, e.g. "attention.head_count"
  io::GgufValue value;
};

struct ModelInfo {
  std::string arch;  // general.architecture ("" when absent, e.g. vocab-only files)
  std::string name;  // general.name ("" when absent)
  // The `<arch>.*` hyper-parameters present in the file, in a fixed order,
  // plus "vocab_size" (from the key, the token list or token_embd).
  std::vector<ModelHparam> hparams;

  uint64_t n_expert = 0;       // routed experts per MoE layer (0 for dense)
  uint64_t n_expert_used = 0;  // experts chosen per token
  uint64_t n_moe_layers = 0;   // layers holding routed experts

  uint64_t params_total = 0;   // elements of every tensor
  uint64_t params_routed = 0;  // elements of routed-expert tensors
  // params_total - params_routed + params_routed * n_expert_used / n_expert.
  uint64_t params_active = 0;

  uint64_t resident_bytes = 0;          // every tensor but routed experts
  uint64_t expert_bytes = 0;            // all routed experts, all layers
  uint64_t expert_bytes_per_layer = 0;  // routed experts of the largest MoE layer
  uint64_t bytes_per_expert = 0;        // one expert's gate+up+down in that layer
};

// Summarises `f`. kDataLoss (naming the file and tensor) when expert tensors
// disagree with the expert count.
absl::StatusOr<ModelInfo> SummarizeModel(const io::GgufFile& f);

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_MODEL_INFO_H_
