// Decode speed before a download: predicted tokens per second of a single
// sequence's decode from the bytes each token reads on each tier, the
// bandwidths of the hardware and the expert cache's hit rates. Pure
// arithmetic (no I/O, no clock), so `moestream plan` prints it for any header
// and tests check it to the digit.
//
//   DecodeWorkload w = ...;   // from the model and the memory plan (PredictWorkload)
//   DecodeHardware hw;  hw.backend = "cuda";  hw.device_gbps = 1008;  hw.link_gbps = 25;
//   DecodeHitRates h;  h.device = 0.82;  h.device_and_host = 0.97;
//   MOESTREAM_ASSIGN_OR_RETURN(DecodePrediction p, PredictDecode(w, hw, h));
//   printf("%.1f .. %.1f tok/s\n", p.tok_s_low, p.tok_s_high);
//
// What one decode step costs, as the engine does it (engine/engine.h, the
// cached provider in engine/cached_expert_provider.h, cache/tier_loader.h):
//   - every resident matrix is read once from device memory (the dense path,
//     routers, shared experts, the LM head; one row of token_embd), plus the
//     KV cache up to the current position: `dense_bytes + kv_bytes` at the
//     device's bandwidth (the host's on the CPU backend, whose "device" is
//     host RAM);
//   - each MoE layer computes top-k experts, `expert_bytes` in all, read
//     from their slots (or, for a miss computed on the host, from host RAM);
//   - a fraction `1 - device` of those experts are not in a device slot:
//       experts in host RAM (host tier, or the NVMe tier's host cache:
//       `device_and_host - device` of them) cross the link — a modelled
//       PCIe link, or on the CPU backend with no modelled link a memcpy
//       into the slot, which reads and writes every byte (2 bytes of
//       traffic per byte at host bandwidth);
//       experts only on NVMe (`1 - device_and_host`) are read at NVMe speed
//       (straight into the slot on the CPU backend, then over the link on
//       a GPU);
//     with --miss-policy host (or auto, when cheaper) on the CPU backend a
//     missing host-tier expert is computed in place at host bandwidth
//     instead of copied;
//   - a fixed cost per layer: op dispatch, the thread pool's hand-offs,
//     attention's small ops, the router's top-k (`layer_overhead_us`).
// The engine waits for a demand miss before computing that expert, and the
// two CPU cores that compute also copy, so the CPU backend's time is the sum
// of these terms. On a GPU the copies run on a copy engine while other
// experts compute: the sum is the slow end, max(compute, transfer) the fast
// end (perfect overlap).
//
// Bandwidth is never fully used: the bounds `efficiency_low` and
// `efficiency_high` (fractions of each nominal bandwidth) give the range;
// the point estimate uses their mean. The slow end also takes the cold
// cache's hit rates when they are given.
#ifndef MOESTREAM_MODEL_DECODE_PREDICTOR_H_
#define MOESTREAM_MODEL_DECODE_PREDICTOR_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "io/gguf.h"
#include "model/memory_planner.h"

namespace moestream::model {

// The hardware a prediction is for. Bandwidths in GB/s (1e9 bytes/s).
struct DecodeHardware {
  // "cpu" or "cuda": where the resident weights and expert slots are.
  std::string backend = "cuda";
  // Device memory bandwidth (--device-gbps); unused on the CPU backend.
  // Default 1008 (an RTX 4090's 24 GB of GDDR6X).
  double device_gbps = 1008;
  // Host memory bandwidth for reading (--host-gbps): the memory traffic a
  // weight-streaming matmul can sustain. Default 60 (dual-channel DDR5).
  double host_gbps = 60;
  // Host -> device link (--link), GB/s; 0 = no modelled link (CPU backend:
  // a copy is a memcpy at host bandwidth). Default 25 (PCIe 4.0 x16).
  double link_gbps = 25;
  // Fixed cost per copy over a modelled link, microseconds.
  double link_latency_us = 8;
  // NVMe sequential read (--nvme-gbps). Default 6 (a Gen4 drive in practice).
  double nvme_gbps = 6;
  // Fraction of each bandwidth actually reached: the range's ends.
  double efficiency_low = 0.5;
  double efficiency_high = 0.9;
  // Fixed cost per layer per token, microseconds (op dispatch, hand-offs).
  double layer_overhead_us = 0;
  // A missing host-tier expert is computed on the host (CPU backend,
  // --miss-policy host or auto when cheaper) instead of copied.
  bool host_compute_misses = false;
  absl::Status Validate() const;
};

// What one decode token reads (from the model and the plan).
struct DecodeWorkload {
  uint64_t dense_bytes = 0;   // resident matrices read per token (+ one embedding row)
  uint64_t kv_bytes = 0;      // KV cache read per token at the assumed position
  uint64_t expert_bytes = 0;  // top-k routed experts of every MoE layer
  uint64_t experts_per_token = 0;  // top-k * MoE layers (copies, for the latency)
  int64_t n_layers = 0;
  // Where the routed experts live: "device" (all in slots or resident),
  // "host", "nvme" or "mmap" (the mapped file; computed in place).
  std::string experts_tier = "device";
};

// The workload of `f` under `plan`: dense bytes from the tensor table (every
// tensor but the routed experts, with one row of token_embd unless it is
// also the LM head), the KV cache read at position `kv_position` of the
// plan's n_ctx, top-k experts of the average size per MoE layer, and the
// tier of the plan ("device" when every expert has a slot).
absl::StatusOr<DecodeWorkload> DecodeWorkloadOf(const io::GgufFile& f, const MemoryPlan& plan,
                                                int64_t kv_position);

// Hit rates of a decode step's expert requests (0..1).
struct DecodeHitRates {
  double device = 1;           // found in a device slot
  double device_and_host = 1;  // in a device slot or in host RAM (host tier: 1)
  // The same from an empty cache (a short generation, or a trace too short
  // to show the steady state), for the slow end of the range; < 0 = as above.
  double device_cold = -1;
  double device_and_host_cold = -1;
};

struct DecodePrediction {
  // Per token, milliseconds, at the mean efficiency: the terms above.
  double dense_ms = 0;     // resident weights + KV cache
  double experts_ms = 0;   // computing the routed experts
  double link_ms = 0;      // host-RAM experts over the link (or memcpy, or host compute)
  double nvme_ms = 0;      // NVMe reads
  double overhead_ms = 0;  // per-layer fixed costs
  double token_ms = 0;     // their sum (the engine waits for each miss)
  double tok_s = 0;        // 1000 / token_ms
  double tok_s_low = 0;    // at efficiency_low, serial, with the cold hit rates
  double tok_s_high = 0;   // at efficiency_high (GPU: transfers overlapped)
  // Bytes per token from each place (for the report).
  double link_bytes = 0;
  double nvme_bytes = 0;
};

absl::StatusOr<DecodePrediction> PredictDecode(const DecodeWorkload& w, const DecodeHardware& hw,
                                               const DecodeHitRates& h);

}  // namespace moestream::model

#endif  // MOESTREAM_MODEL_DECODE_PREDICTOR_H_
