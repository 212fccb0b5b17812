// PlanMemory: the arithmetic of memory_planner.h, from ModelInfo (resident
// and expert bytes), the expert layout (slot size) and the attention
// hyper-parameters (KV cache).
#include "model/memory_planner.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "io/expert_layout.h"
#include "model/model_info.h"

namespace moestream::model {

absl::Status PlanOptions::Validate() const {
  if (device_budget_bytes == 0) {
    return absl::InvalidArgumentError("--device-budget must be given and > 0");
  }
  if (host_budget_bytes == 0) {
    return absl::InvalidArgumentError("--host-budget must be given and > 0");
  }
  if (n_ctx < 0) return absl::InvalidArgumentError("--ctx must be >= 0");
  if (kv_type != GgmlType::kF16 && kv_type != GgmlType::kF32) {
    return absl::InvalidArgumentError("--kv-type must be f16 or f32");
  }
  if (n_batch < 1) return absl::InvalidArgumentError("n_batch must be >= 1");
  if (experts_on != "auto" && experts_on != "host" && experts_on != "nvme") {
    return absl::InvalidArgumentError(
        absl::StrCat("--experts-on '", experts_on, "' is not one of auto, host, nvme"));
  }
  if (staging_buffers < 1) return absl::InvalidArgumentError("staging_buffers must be >= 1");
  return absl::OkStatus();
}

namespace {

// A hyper-parameter as an integer; arrays (per-layer values) give their max.
int64_t Hparam(const ModelInfo& info, std::string_view key, int64_t def) {
  for (const ModelHparam& h : info.hparams) {
    if (h.key != key) continue;
    if (h.value.is_array()) {
      int64_t m = 0;
      for (const io::GgufValue& v : h.value.items()) {
        auto x = v.AsInt();
        if (x.ok()) m = std::max(m, *x);
      }
      return m > 0 ? m : def;
    }
    auto x = h.value.AsInt();
    return x.ok() ? *x : def;
  }
  return def;
}

}  // namespace

absl::StatusOr<MemoryPlan> PlanMemory(const io::GgufFile& f, const PlanOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  MOESTREAM_ASSIGN_OR_RETURN(ModelInfo info, SummarizeModel(f));
  MemoryPlan p;
  p.arch = info.arch;
  p.device_budget_bytes = o.device_budget_bytes;
  p.host_budget_bytes = o.host_budget_bytes;
  p.n_layers = Hparam(info, "block_count", 0);
  p.n_moe_layers = int64_t(info.n_moe_layers);
  p.n_expert = int64_t(info.n_expert);
  p.n_expert_used = int64_t(info.n_expert_used);
  p.resident_bytes = info.resident_bytes;

  // KV cache: per layer, n_ctx × (K + V) head dims × kv heads.
  const int64_t n_embd = Hparam(info, "embedding_length", 0);
  const int64_t n_head = Hparam(info, "attention.head_count", 1);
  const int64_t n_head_kv = Hparam(info, "attention.head_count_kv", n_head);
  const int64_t dk = Hparam(info, "attention.key_length", n_head > 0 ? n_embd / n_head : 0);
  const int64_t dv = Hparam(info, "attention.value_length", dk);
  const int64_t ctx_train = Hparam(info, "context_length", 4096);
  p.n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min<int64_t>(ctx_train > 0 ? ctx_train : 4096, 4096);
  const uint64_t kv_elem = o.kv_type == GgmlType::kF32 ? 4 : 2;
  p.kv_cache_bytes =
      uint64_t(p.n_layers) * uint64_t(p.n_ctx) * uint64_t(n_head_kv) * uint64_t(dk + dv) * kv_elem;

  // Scratch: n_batch tokens of F32 activations plus attention scores for one
  // token across the context and the logits of one token.
  const int64_t n_ff = std::max(Hparam(info, "feed_forward_length", 0),
                                Hparam(info, "expert_feed_forward_length", 0));
  const int64_t n_vocab = Hparam(info, "vocab_size", 0);
  const int64_t per_token =
      6 * n_embd + n_head * dk + 2 * n_head_kv * std::max(dk, dv) +
      3 * n_ff * std::max<int64_t>(1, p.n_expert_used);
  p.scratch_bytes = 4 * (uint64_t(o.n_batch) * uint64_t(per_token) +
                         uint64_t(n_head) * uint64_t(p.n_ctx) + uint64_t(n_vocab));
  p.device_fixed_bytes = p.resident_bytes + p.kv_cache_bytes + p.scratch_bytes;

  if (info.n_moe_layers > 0) {
    MOESTREAM_ASSIGN_OR_RETURN(io::ExpertLayout layout, io::ExpertLayout::FromGguf(f));
    p.slot_bytes = (layout.max_blob_bytes() + 255) / 256 * 256;
    p.expert_bytes = layout.total_blob_bytes();
    p.experts_total = layout.size();
  }

  const std::string head = absl::StrCat("device budget ", FormatBytes(o.device_budget_bytes));
  if (p.device_fixed_bytes > o.device_budget_bytes) {
    p.fits = false;
    p.message = absl::StrCat(head, " is ", FormatBytes(p.device_fixed_bytes - o.device_budget_bytes),
                             " short of the resident part: weights ",
                             FormatBytes(p.resident_bytes), " + KV cache ",
                             FormatBytes(p.kv_cache_bytes), " (", p.n_ctx, " tokens) + scratch ",
                             FormatBytes(p.scratch_bytes), " = ",
                             FormatBytes(p.device_fixed_bytes));
    return p;
  }
  const uint64_t left = o.device_budget_bytes - p.device_fixed_bytes;
  if (p.experts_total > 0) {
    p.slots_global = std::min<uint64_t>(left / p.slot_bytes, p.experts_total);
    p.slots_per_layer = p.n_moe_layers > 0 ? p.slots_global / uint64_t(p.n_moe_layers) : 0;
    p.slot_device_bytes = p.slots_global * p.slot_bytes;
    p.all_experts_resident = p.slots_global == p.experts_total;
    const uint64_t need = uint64_t(std::max<int64_t>(1, p.n_expert_used));
    if (p.slots_global < need) {
      p.fits = false;
      p.message = absl::StrCat(
          head, " is ", FormatBytes(need * p.slot_bytes - left), " short: after the resident part (",
          FormatBytes(p.device_fixed_bytes), ") it holds ", p.slots_global,
          " expert slots of ", FormatBytes(p.slot_bytes), " but a token needs ", need);
      return p;
    }
  }

  // Tier of the routed experts.
  const uint64_t staging = uint64_t(o.staging_buffers) * p.slot_bytes;
  const bool host_fits = p.expert_bytes <= o.host_budget_bytes;
  if (p.experts_total == 0 || p.all_experts_resident) {
    p.experts_tier = "host";
    p.host_bytes = 0;
  } else if (o.experts_on == "host" || (o.experts_on == "auto" && host_fits)) {
    p.experts_tier = "host";
    p.host_bytes = p.expert_bytes;
    if (!host_fits) {
      p.fits = false;
      p.message = absl::StrCat("host budget ", FormatBytes(o.host_budget_bytes), " is ",
                               FormatBytes(p.expert_bytes - o.host_budget_bytes),
                               " short of the routed experts (", FormatBytes(p.expert_bytes),
                               "); use --experts-on nvme or a larger --host-budget");
      return p;
    }
  } else {
    p.experts_tier = "nvme";
    p.host_bytes = staging;
    if (staging > o.host_budget_bytes) {
      p.fits = false;
      p.message = absl::StrCat("host budget ", FormatBytes(o.host_budget_bytes), " is ",
                               FormatBytes(staging - o.host_budget_bytes),
                               " short of the NVMe staging buffers (", o.staging_buffers, " x ",
                               FormatBytes(p.slot_bytes), ")");
      return p;
    }
  }
  p.fits = true;
  p.message = absl::StrCat("fits: ", p.slots_global, " of ", p.experts_total,
                           " experts on the device, the rest on ", p.experts_tier);
  if (p.all_experts_resident) {
    p.message = absl::StrCat("fits: all ", p.experts_total, " experts resident on the device");
  }
  if (p.experts_total == 0) p.message = "fits: dense model, everything resident";
  return p;
}

std::string MemoryPlan::Text() const {
  std::string s;
  absl::StrAppend(&s, "model           ", arch, ": ", n_layers, " layers, ", n_moe_layers,
                  " MoE layers, ", n_expert, " experts (", n_expert_used, " per token)\n");
  absl::StrAppend(&s, "device budget   ", FormatBytes(device_budget_bytes), "\n");
  absl::StrAppend(&s, "  resident      ", FormatBytes(resident_bytes), "\n");
  absl::StrAppend(&s, "  KV cache      ", FormatBytes(kv_cache_bytes), " (", n_ctx, " tokens)\n");
  absl::StrAppend(&s, "  scratch       ", FormatBytes(scratch_bytes), " (estimate)\n");
  absl::StrAppend(&s, "  expert slots  ", slots_global, " x ", FormatBytes(slot_bytes), " = ",
                  FormatBytes(slot_device_bytes), " (", slots_per_layer, " per MoE layer)\n");
  absl::StrAppend(&s, "experts         ", experts_total, " = ", FormatBytes(expert_bytes), " on ",
                  experts_tier.empty() ? "-" : experts_tier, "\n");
  absl::StrAppend(&s, "host budget     ", FormatBytes(host_budget_bytes), " (uses ",
                  FormatBytes(host_bytes), ")\n");
  absl::StrAppend(&s, fits ? "" : "DOES NOT FIT: ", message, "\n");
  return s;
}

std::string MemoryPlan::Json() const {
  return absl::StrCat(
      "{\"arch\":\"", arch, "\",\"n_layers\":", n_layers, ",\"n_moe_layers\":", n_moe_layers,
      ",\"n_expert\":", n_expert, ",\"n_expert_used\":", n_expert_used, ",\"n_ctx\":", n_ctx,
      ",\"device_budget_bytes\":", device_budget_bytes,
      ",\"host_budget_bytes\":", host_budget_bytes, ",\"resident_bytes\":", resident_bytes,
      ",\"kv_cache_bytes\":", kv_cache_bytes, ",\"scratch_bytes\":", scratch_bytes,
      ",\"expert_bytes\":", expert_bytes, ",\"slot_bytes\":", slot_bytes,
      ",\"experts_total\":", experts_total, ",\"slots_global\":", slots_global,
      ",\"slots_per_layer\":", slots_per_layer, ",\"slot_device_bytes\":", slot_device_bytes,
      ",\"all_experts_resident\":", all_experts_resident ? "true" : "false",
      ",\"experts_tier\":\"", experts_tier, "\",\"host_bytes\":", host_bytes,
      ",\"fits\":", fits ? "true" : "false", ",\"message\":\"", message, "\"}");
}

}  // namespace moestream::model
