// The memory planner: from a GGUF header and the run's options (no weights
// read), every buffer the run will allocate on the device and in pinned host
// memory, how many expert slots the rest of the device budget holds, which
// tier keeps the routed experts, and whether it all fits. `moestream plan`
// prints it; `run`, `bench` and `serve` allocate exactly it.
//
//   PlanOptions po;  po.device_budget_bytes = 24ull << 30;  po.host_budget_bytes = 64ull << 30;
//   po.device_fixed = ...;   // weights, KV cache, scratch: engine::PlanRun fills these
//   MOESTREAM_ASSIGN_OR_RETURN(MemoryPlan p, PlanMemory(gguf, po));
//   if (!p.fits) return absl::ResourceExhaustedError(p.message);
//   cache_options.slots = p.slots_global;  cache_options.slot_bytes = p.slot_bytes;
//
// The plan is the allocation. Each allocating component (ModelWeights,
// KvCache, Engine, ExpertFfnRunner, the cached provider's prefetch buffers,
// the expert cache's slots, the loader's staging buffers, the reader's ring,
// the host tier) derives its sizes from one function that the planner calls
// too, and allocates under the names the plan lists. The budgets count
// requested bytes, so a run's high-water mark equals the plan's total and a
// budget the planner accepts always runs. Tests check both over hundreds of
// random shapes, budgets and tiers.
//
// Hybrid mode's host compute allocates plain host RAM (its workspaces): the
// plan lists it apart (host_ram), outside both budgets.
//
// Device = fixed buffers (resident weights as uploaded, KV cache, scratch)
// + expert slots, each `slot_bytes` (the largest expert blob rounded up to
// 256 bytes) until the budget or the number of experts is reached.
//
// Tiers of the routed experts:
//   host  every expert blob in pinned host memory (one region per layer);
//   nvme  read from the file on demand through pinned staging buffers and
//         the reader's ring; with a host budget that holds more than the
//         staging, the rest becomes a host cache of experts between NVMe
//         and the device (its own slots and policy);
//   mmap  the GGUF mapped read-only and left to the kernel's page cache;
//         experts are computed where they are mapped (cpu backend): no
//         slots, no pinned memory.
//   auto  host when every expert fits the host budget, else nvme; nvme
//         also when the device holds every expert (nothing is pinned but
//         the reader's buffers).
#ifndef MOESTREAM_MODEL_MEMORY_PLANNER_H_
#define MOESTREAM_MODEL_MEMORY_PLANNER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "io/gguf.h"

namespace moestream::model {

// What a buffer is for (the plan's grouping).
enum class MemoryUse : uint8_t {
  kWeights,      // resident tensors (device)
  kKvCache,      // keys and values (device)
  kScratch,      // activations and workspaces (device)
  kExpertSlots,  // the device expert cache (device)
  kStaging,      // pinned buffers between a tier read and the link (host)
  kReaderRing,   // the NVMe reader's registered buffers (host)
  kHostTier,     // routed experts held in pinned host memory (host)
  kHostCache,    // slots of the host expert cache between NVMe and device (host)
  kHostWorkspace,  // host compute's workspaces in plain host RAM (hybrid mode)
};
std::string_view MemoryUseName(MemoryUse u);

// `count` allocations of `bytes` each, named `name` (with the index
// appended when count > 1), as passed to DeviceAlloc / HostPinnedAlloc.
struct PlannedBuffer {
  std::string name;
  uint64_t bytes = 0;
  uint64_t count = 1;
  MemoryUse use = MemoryUse::kScratch;
  uint64_t total() const { return bytes * count; }
};
uint64_t TotalBytes(const std::vector<PlannedBuffer>& buffers);
uint64_t TotalBytes(const std::vector<PlannedBuffer>& buffers, MemoryUse use);

// A slot holds the largest expert blob, rounded up to 256 bytes (the
// expert cache allocates slots of exactly this size).
uint64_t SlotBytesFor(uint64_t max_blob_bytes);

struct PlanOptions {
  uint64_t device_budget_bytes = 0;  // required, > 0
  uint64_t host_budget_bytes = 0;    // required, > 0 (pinned host memory)
  // "auto", "host", "nvme" or "mmap" (see the tiers above).
  std::string experts_on = "auto";
  // Every device buffer of the run except the expert slots: resident
  // weights, KV cache and scratch, as the engine allocates them
  // (engine::PlanRun fills it).
  std::vector<PlannedBuffer> device_fixed;
  // NVMe tier: pinned staging buffers of one expert blob each (the
  // loader's; 0 when reads land in the slots), and the reader's ring (queue depth x block size) when the
  // reader stages through pinned memory.
  int staging_buffers = 8;
  uint64_t reader_ring_bytes = 0;
  // NVMe tier: turn the host budget left after staging into a host expert
  // cache (three tiers). Default true.
  bool host_cache = true;
  // At most this many device slots (0 = as many as the budget holds).
  uint64_t max_slots = 0;
  // For the summary only.
  int64_t n_ctx = 0;
  int64_t n_batch = 0;
  absl::Status Validate() const;
};

struct MemoryPlan {
  std::string arch;
  int64_t n_layers = 0;
  int64_t n_moe_layers = 0;
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ctx = 0;
  int64_t n_batch = 0;

  uint64_t device_budget_bytes = 0;
  uint64_t host_budget_bytes = 0;
  uint64_t resident_bytes = 0;      // device weights as uploaded
  uint64_t kv_cache_bytes = 0;
  uint64_t scratch_bytes = 0;       // the engine's and providers' real buffers
  uint64_t device_fixed_bytes = 0;  // resident + kv + scratch
  uint64_t expert_bytes = 0;        // all routed expert blobs
  uint64_t slot_bytes = 0;          // one slot (SlotBytesFor the largest blob)
  uint64_t max_blob_bytes = 0;      // the largest expert blob
  uint64_t experts_total = 0;       // n_moe_layers * n_expert

  // Expert slots in the device budget left after the fixed part, capped at
  // experts_total: global count, and the same split evenly per MoE layer.
  uint64_t slots_global = 0;
  uint64_t slots_per_layer = 0;
  uint64_t slot_device_bytes = 0;   // slots_global * slot_bytes
  bool all_experts_resident = false;

  std::string experts_tier;         // "host", "nvme" or "mmap"
  uint64_t host_bytes = 0;          // pinned host bytes of the plan
  uint64_t host_cache_slots = 0;    // nvme tier: experts the host cache holds
  uint64_t host_cache_bytes = 0;

  // Every allocation, in the order the run makes them.
  std::vector<PlannedBuffer> device;
  std::vector<PlannedBuffer> host;
  // Plain (unpinned) host RAM the run allocates besides the pinned plan:
  // hybrid mode's host compute workspaces, which engine::PlanOffload lists
  // (CachedExpertProvider::HybridHostBuffers). Counted against neither budget.
  std::vector<PlannedBuffer> host_ram;
  uint64_t device_total() const { return TotalBytes(device); }
  uint64_t host_total() const { return TotalBytes(host); }
  uint64_t host_ram_total() const { return TotalBytes(host_ram); }

  bool fits = false;
  std::string message;              // one line: why it does not fit, or a summary

  std::string Text() const;         // multi-line human summary
  std::string Json() const;         // one JSON object
};

absl::StatusOr<MemoryPlan> PlanMemory(const io::GgufFile& f, const PlanOptions& o);

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_MEMORY_PLANNER_H_
