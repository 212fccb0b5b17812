// PredictDecode: the arithmetic decode_predictor.h describes.
#include "model/decode_predictor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/ggml_type.h"
#include "base/status_macros.h"
#include "model/model_info.h"

namespace moestream::model {

absl::Status DecodeHardware::Validate() const {
  if (backend != "cpu" && backend != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("decode prediction: backend '", backend, "' is not cpu or cuda"));
  }
  auto positive = [](const char* flag, double v) -> absl::Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(flag, " must be > 0 (got ", v, ")"));
  };
  if (backend == "cuda") MOESTREAM_RETURN_IF_ERROR(positive("--device-gbps", device_gbps));
  MOESTREAM_RETURN_IF_ERROR(positive("--host-gbps", host_gbps));
  MOESTREAM_RETURN_IF_ERROR(positive("--nvme-gbps", nvme_gbps));
  if (link_gbps < 0 || (backend == "cuda" && link_gbps == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--link must be > 0 GB/s", backend == "cuda" ? " for a GPU" : "",
                     " (got ", link_gbps, ")"));
  }
  if (!(efficiency_low > 0 && efficiency_low <= efficiency_high && efficiency_high <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bandwidth efficiency bounds must satisfy 0 < low <= high <= 1 (got ",
                     efficiency_low, ", ", efficiency_high, ")"));
  }
  if (layer_overhead_us < 0 || link_latency_us < 0) {
    return absl::InvalidArgumentError("per-layer overhead and link latency must be >= 0");
  }
  return absl::OkStatus();
}

namespace {

struct Terms {
  double dense_ms = 0, experts_ms = 0, link_ms = 0, nvme_ms = 0, overhead_ms = 0;
  double link_bytes = 0, nvme_bytes = 0;
  double Serial() const { return dense_ms + experts_ms + link_ms + nvme_ms + overhead_ms; }
  double Overlapped() const {
    return std::max(dense_ms + experts_ms, link_ms + nvme_ms) + overhead_ms;
  }
};

// Bytes at GB/s to milliseconds (1 GB/s = 1 byte/ns).
double Ms(double bytes, double gbps) { return bytes / gbps / 1e6; }

Terms Compute(const DecodeWorkload& w, const DecodeHardware& hw, const DecodeHitRates& h,
              double eff) {
  const bool cpu = hw.backend == "cpu";
  const double dev = (cpu ? hw.host_gbps : hw.device_gbps) * eff;
  const double host = hw.host_gbps * eff;
  const double link = hw.link_gbps * eff;
  const double nvme = hw.nvme_gbps * eff;
  const double e = double(w.expert_bytes);
  const double hit = std::clamp(h.device, 0.0, 1.0);
  const double in_ram = std::clamp(std::max(h.device_and_host, hit), 0.0, 1.0);
  double from_host = 0, from_nvme = 0;  // fractions of the expert bytes
  if (w.experts_tier == "host") {
    from_host = 1 - hit;
  } else if (w.experts_tier == "nvme") {
    from_host = in_ram - hit;
    from_nvme = 1 - in_ram;
  }
  Terms t;
  t.dense_ms = Ms(double(w.dense_bytes + w.kv_bytes), dev);
  t.overhead_ms = double(w.n_layers) * hw.layer_overhead_us / 1e3;
  if (w.experts_tier == "mmap") {  // computed where the file is mapped
    t.experts_ms = Ms(e, host);
    return t;
  }
  const double copies = double(w.experts_per_token);
  if (hw.host_compute_misses) {
    t.experts_ms = Ms(e * (1 - from_host), dev) + Ms(e * from_host, host);
  } else {
    t.experts_ms = Ms(e, dev);
    t.link_bytes = e * from_host;
    t.link_ms = link > 0 ? Ms(t.link_bytes, link) + from_host * copies * hw.link_latency_us / 1e3
                         : Ms(2 * t.link_bytes, host);  // memcpy: read and write
  }
  t.nvme_bytes = e * from_nvme;
  t.nvme_ms = Ms(t.nvme_bytes, nvme);
  // Without a modelled link (CPU backend) a read lands in its slot; else it
  // crosses the link after the read.
  if (link > 0 && t.nvme_bytes > 0) {
    t.link_bytes += t.nvme_bytes;
    t.link_ms += Ms(t.nvme_bytes, link) + from_nvme * copies * hw.link_latency_us / 1e3;
  }
  return t;
}

}  // namespace

absl::StatusOr<DecodeWorkload> DecodeWorkloadOf(const io::GgufFile& f, const MemoryPlan& plan,
                                                int64_t kv_position) {
  DecodeWorkload w;
  const io::GgufTensorInfo* embd = f.FindTensor("token_embd.weight");
  const bool tied = f.FindTensor("output.weight") == nullptr;
  for (const io::GgufTensorInfo& t : f.tensors()) {
    if (RoutedExpertLayer(t.name).has_value()) continue;
    if (&t == embd && !tied) {
      w.dense_bytes += RowBytes(t.type, uint64_t(t.ne[0]));  // GetRows reads one row
      continue;
    }
    w.dense_bytes += t.size_bytes;
  }
  if (plan.n_ctx > 0 && kv_position > 0) {
    w.kv_bytes = uint64_t(double(plan.kv_cache_bytes) * double(std::min(kv_position, plan.n_ctx)) /
                          double(plan.n_ctx));
  }
  if (plan.n_expert > 0 && plan.experts_total > 0) {
    w.expert_bytes = uint64_t(double(plan.expert_bytes) / double(plan.n_expert) *
                              double(plan.n_expert_used));
    w.experts_per_token = uint64_t(plan.n_expert_used) * uint64_t(plan.n_moe_layers);
  }
  w.n_layers = plan.n_layers;
  w.experts_tier = plan.all_experts_resident || plan.experts_total == 0 ? "device"
                                                                         : plan.experts_tier;
  return w;
}

absl::StatusOr<DecodePrediction> PredictDecode(const DecodeWorkload& w, const DecodeHardware& hw,
                                               const DecodeHitRates& h) {
  MOESTREAM_RETURN_IF_ERROR(hw.Validate());
  if (w.experts_tier != "device" && w.experts_tier != "host" && w.experts_tier != "nvme" &&
      w.experts_tier != "mmap") {
    return absl::InvalidArgumentError(
        absl::StrCat("decode prediction: experts tier '", w.experts_tier, "' is unknown"));
  }
  const double mid = 0.5 * (hw.efficiency_low + hw.efficiency_high);
  const Terms t = Compute(w, hw, h, mid);
  DecodePrediction p;
  p.dense_ms = t.dense_ms;
  p.experts_ms = t.experts_ms;
  p.link_ms = t.link_ms;
  p.nvme_ms = t.nvme_ms;
  p.overhead_ms = t.overhead_ms;
  p.token_ms = t.Serial();
  p.link_bytes = t.link_bytes;
  p.nvme_bytes = t.nvme_bytes;
  if (p.token_ms <= 0) {
    return absl::InvalidArgumentError("decode prediction: a token reads no bytes");
  }
  p.tok_s = 1e3 / p.token_ms;
  DecodeHitRates cold = h;
  if (h.device_cold >= 0) cold.device = std::min(h.device, h.device_cold);
  if (h.device_and_host_cold >= 0) {
    cold.device_and_host = std::min(h.device_and_host, h.device_and_host_cold);
  }
  p.tok_s_low = 1e3 / Compute(w, hw, cold, hw.efficiency_low).Serial();
  const Terms fast = Compute(w, hw, h, hw.efficiency_high);
  p.tok_s_high = 1e3 / (hw.backend == "cuda" ? fast.Overlapped() : fast.Serial());
  return p;
}

}  // namespace moestream::model
