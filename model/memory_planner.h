// The memory planner: from a GGUF header alone (no weights read), decides
// what is resident on the device, how many expert slots the cache gets,
// which tier holds the routed experts, and whether the model fits the
// device and host budgets. `moestream plan` prints it; run/bench use it to
// size the cache.
//
//   PlanOptions po;  po.device_budget_bytes = 24ull << 30;  po.host_budget_bytes = 64ull << 30;
//   MOESTREAM_ASSIGN_OR_RETURN(MemoryPlan p, PlanMemory(gguf, po));
//   if (!p.fits) return absl::ResourceExhaustedError(p.message);
//   cache_options.slots = p.slots_global;  cache_options.slot_bytes = p.slot_bytes;
//
// Device = resident tensors (everything but routed experts) + KV cache for
// n_ctx tokens + activation scratch + expert slots. The scratch is an
// estimate: n_batch tokens of activations (residual, norms, q/k/v, expert
// FFN intermediates) plus one row of attention scores and the logits.
// Experts go to the host tier when every expert blob fits the host budget
// (after the NVMe staging buffers are not needed), else to NVMe, whose
// staging buffers must then fit the host budget.
#ifndef MOESTREAM_MODEL_MEMORY_PLANNER_H_
#define MOESTREAM_MODEL_MEMORY_PLANNER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "base/ggml_type.h"
#include "io/gguf.h"

namespace moestream::model {

struct PlanOptions {
  uint64_t device_budget_bytes = 0;  // required, > 0
  uint64_t host_budget_bytes = 0;    // required, > 0
  // Context length the KV cache is sized for; 0 = the model's training
  // context capped at 4096.
  int64_t n_ctx = 0;
  GgmlType kv_type = GgmlType::kF16;  // kF16 or kF32
  int64_t n_batch = 512;              // prefill tokens per step (scratch)
  // "auto" (host when it fits, else nvme), "host" or "nvme".
  std::string experts_on = "auto";
  int staging_buffers = 8;            // NVMe staging buffers (of one slot each)
  absl::Status Validate() const;
};

struct MemoryPlan {
  std::string arch;
  int64_t n_layers = 0;
  int64_t n_moe_layers = 0;
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ctx = 0;

  uint64_t device_budget_bytes = 0;
  uint64_t host_budget_bytes = 0;
  uint64_t resident_bytes = 0;   // every tensor but routed experts
  uint64_t kv_cache_bytes = 0;
  uint64_t scratch_bytes = 0;
  uint64_t device_fixed_bytes = 0;  // resident + kv + scratch
  uint64_t expert_bytes = 0;        // all routed expert blobs
  uint64_t slot_bytes = 0;          // one slot (the largest expert blob)
  uint64_t experts_total = 0;       // n_moe_layers * n_expert

  // Expert slots in the device budget left after the fixed part, capped at
  // experts_total: global count, and the same split evenly per MoE layer.
  uint64_t slots_global = 0;
  uint64_t slots_per_layer = 0;
  uint64_t slot_device_bytes = 0;   // slots_global * slot_bytes
  bool all_experts_resident = false;

  std::string experts_tier;         // "host" or "nvme"
  uint64_t host_bytes = 0;          // host tier bytes, or NVMe staging bytes

  bool fits = false;
  std::string message;              // one line: why it does not fit, or a summary

  std::string Text() const;         // multi-line human summary
  std::string Json() const;         // one JSON object
};

absl::StatusOr<MemoryPlan> PlanMemory(const io::GgufFile& f, const PlanOptions& o);

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_MEMORY_PLANNER_H_
