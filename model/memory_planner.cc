// PlanMemory: the arithmetic of memory_planner.h over the buffers the
// engine lists, the expert layout (slot and blob sizes) and the budgets.
#include "model/memory_planner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "io/expert_layout.h"
#include "model/model_info.h"
#include "nlohmann/json.hpp"

namespace moestream::model {

std::string_view MemoryUseName(MemoryUse u) {
  switch (u) {
    case MemoryUse::kWeights: return "weights";
    case MemoryUse::kKvCache: return "kv_cache";
    case MemoryUse::kScratch: return "scratch";
    case MemoryUse::kExpertSlots: return "expert_slots";
    case MemoryUse::kStaging: return "staging";
    case MemoryUse::kReaderRing: return "reader_ring";
    case MemoryUse::kHostTier: return "host_tier";
    case MemoryUse::kHostCache: return "host_cache";
    case MemoryUse::kHostWorkspace: return "host_workspace";
  }
  return "?";
}

uint64_t TotalBytes(const std::vector<PlannedBuffer>& buffers) {
  uint64_t t = 0;
  for (const PlannedBuffer& b : buffers) t += b.total();
  return t;
}

uint64_t TotalBytes(const std::vector<PlannedBuffer>& buffers, MemoryUse use) {
  uint64_t t = 0;
  for (const PlannedBuffer& b : buffers) t += b.use == use ? b.total() : 0;
  return t;
}

uint64_t SlotBytesFor(uint64_t max_blob_bytes) { return (max_blob_bytes + 255) / 256 * 256; }

absl::Status PlanOptions::Validate() const {
  if (device_budget_bytes == 0) {
    return absl::InvalidArgumentError("--device-budget must be given and > 0");
  }
  if (host_budget_bytes == 0) {
    return absl::InvalidArgumentError("--host-budget must be given and > 0");
  }
  if (experts_on != "auto" && experts_on != "host" && experts_on != "nvme" &&
      experts_on != "mmap") {
    return absl::InvalidArgumentError(
        absl::StrCat("--experts-on '", experts_on, "' is not one of auto, host, nvme, mmap"));
  }
  if (staging_buffers < 0) return absl::InvalidArgumentError("staging buffers must be >= 0");
  return absl::OkStatus();
}

absl::StatusOr<MemoryPlan> PlanMemory(const io::GgufFile& f, const PlanOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  MOESTREAM_ASSIGN_OR_RETURN(ModelInfo info, SummarizeModel(f));
  MemoryPlan p;
  p.arch = info.arch;
  p.device_budget_bytes = o.device_budget_bytes;
  p.host_budget_bytes = o.host_budget_bytes;
  p.n_moe_layers = int64_t(info.n_moe_layers);
  p.n_expert = int64_t(info.n_expert);
  p.n_expert_used = int64_t(info.n_expert_used);
  p.n_ctx = o.n_ctx;
  p.n_batch = o.n_batch;
  for (const ModelHparam& h : info.hparams) {
    if (h.key == "block_count") p.n_layers = h.value.AsInt().value_or(0);
  }
  p.device = o.device_fixed;
  p.resident_bytes = TotalBytes(p.device, MemoryUse::kWeights);
  p.kv_cache_bytes = TotalBytes(p.device, MemoryUse::kKvCache);
  p.scratch_bytes = TotalBytes(p.device, MemoryUse::kScratch);
  p.device_fixed_bytes = TotalBytes(p.device);

  std::vector<uint64_t> layer_bytes;  // blob bytes per MoE layer, in layer order
  std::vector<int> layers;
  if (info.n_moe_layers > 0) {
    MOESTREAM_ASSIGN_OR_RETURN(io::ExpertLayout layout, io::ExpertLayout::FromGguf(f));
    p.max_blob_bytes = layout.max_blob_bytes();
    p.slot_bytes = SlotBytesFor(p.max_blob_bytes);
    p.expert_bytes = layout.total_blob_bytes();
    p.experts_total = layout.size();
    layers = layout.moe_layers();
    for (int l : layers) {
      uint64_t b = 0;
      for (int e = 0; e < layout.n_experts(l); ++e) b += layout.Find(l, e)->blob_bytes;
      layer_bytes.push_back(b);
    }
  }

  const std::string head = absl::StrCat("device budget ", FormatBytes(o.device_budget_bytes));
  if (p.device_fixed_bytes > o.device_budget_bytes) {
    p.message = absl::StrCat(head, " is ", FormatBytes(p.device_fixed_bytes - o.device_budget_bytes),
                             " short of the resident part: weights ",
                             FormatBytes(p.resident_bytes), " + KV cache ",
                             FormatBytes(p.kv_cache_bytes), " (", p.n_ctx, " tokens) + scratch ",
                             FormatBytes(p.scratch_bytes), " = ",
                             FormatBytes(p.device_fixed_bytes));
    return p;
  }
  if (p.experts_total == 0) {
    p.experts_tier = "host";
    p.fits = true;
    p.message = "fits: dense model, everything resident";
    return p;
  }

  const bool mmap = o.experts_on == "mmap";
  const uint64_t left = o.device_budget_bytes - p.device_fixed_bytes;
  if (!mmap) {
    p.slots_global = std::min<uint64_t>(left / p.slot_bytes, p.experts_total);
    const bool capped = o.max_slots > 0 && o.max_slots < p.slots_global;
    if (capped) p.slots_global = o.max_slots;
    p.slots_per_layer = p.n_moe_layers > 0 ? p.slots_global / uint64_t(p.n_moe_layers) : 0;
    p.slot_device_bytes = p.slots_global * p.slot_bytes;
    p.all_experts_resident = p.slots_global == p.experts_total;
    if (capped && p.slots_global < uint64_t(std::max<int64_t>(1, p.n_expert_used))) {
      return absl::InvalidArgumentError(absl::StrCat("expert slots ", o.max_slots,
                                                     " fewer than the ", p.n_expert_used,
                                                     " experts a token needs"));
    }
    const uint64_t need = uint64_t(std::max<int64_t>(1, p.n_expert_used));
    if (p.slots_global < need) {
      p.message = absl::StrCat(
          head, " is ", FormatBytes(need * p.slot_bytes - left), " short: after the resident part (",
          FormatBytes(p.device_fixed_bytes), ") it holds ", p.slots_global,
          " expert slots of ", FormatBytes(p.slot_bytes), " but a token needs ", need);
      return p;
    }
    p.device.push_back({"expert cache slot", p.slot_bytes, p.slots_global, MemoryUse::kExpertSlots});
  }

  // Tier of the routed experts.
  const uint64_t staging = uint64_t(o.staging_buffers) * p.max_blob_bytes;
  const uint64_t nvme_fixed = staging + o.reader_ring_bytes;
  const bool host_fits = p.expert_bytes <= o.host_budget_bytes;
  if (mmap) {
    p.experts_tier = "mmap";
  } else if (o.experts_on == "host" ||
             (o.experts_on == "auto" && host_fits && !p.all_experts_resident)) {
    p.experts_tier = "host";
    if (!host_fits) {
      p.message = absl::StrCat("host budget ", FormatBytes(o.host_budget_bytes), " is ",
                               FormatBytes(p.expert_bytes - o.host_budget_bytes),
                               " short of the routed experts (", FormatBytes(p.expert_bytes),
                               "); use --experts-on nvme or a larger --host-budget");
      return p;
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      p.host.push_back({absl::StrCat("host tier, layer ", layers[i], " experts"), layer_bytes[i], 1,
                        MemoryUse::kHostTier});
    }
  } else {
    p.experts_tier = "nvme";
    if (nvme_fixed > o.host_budget_bytes) {
      p.message = absl::StrCat("host budget ", FormatBytes(o.host_budget_bytes), " is ",
                               FormatBytes(nvme_fixed - o.host_budget_bytes),
                               " short of the NVMe staging buffers (", o.staging_buffers, " x ",
                               FormatBytes(p.max_blob_bytes), ") and the reader's ring (",
                               FormatBytes(o.reader_ring_bytes), ")");
      return p;
    }
    if (o.reader_ring_bytes > 0) {
      p.host.push_back({"reader staging ring", o.reader_ring_bytes, 1, MemoryUse::kReaderRing});
    }
    if (o.host_cache && !p.all_experts_resident) {
      // Experts the device does not hold are worth keeping in host RAM; more
      // than every expert not on the device is never useful.
      const uint64_t room = (o.host_budget_bytes - nvme_fixed) / p.max_blob_bytes;
      p.host_cache_slots = std::min<uint64_t>(room, p.experts_total);
      p.host_cache_bytes = p.host_cache_slots * p.max_blob_bytes;
    }
    if (p.host_cache_slots > 0) {
      p.host.push_back(
          {"host expert cache slot", p.max_blob_bytes, p.host_cache_slots, MemoryUse::kHostCache});
    }
    if (o.staging_buffers > 0) {
      p.host.push_back({"expert staging buffer", p.max_blob_bytes, uint64_t(o.staging_buffers),
                        MemoryUse::kStaging});
    }
  }
  p.host_bytes = p.host_total();
  p.fits = true;
  if (mmap) {
    p.message = absl::StrCat("fits: ", p.experts_total,
                             " experts computed in place from the mapped file (page cache)");
  } else if (p.all_experts_resident) {
    p.message = absl::StrCat("fits: all ", p.experts_total, " experts resident on the device");
  } else {
    p.message = absl::StrCat("fits: ", p.slots_global, " of ", p.experts_total,
                             " experts on the device",
                             p.host_cache_slots > 0
                                 ? absl::StrCat(", ", p.host_cache_slots, " in the host cache")
                                 : std::string(),
                             ", the rest on ", p.experts_tier);
  }
  return p;
}

std::string MemoryPlan::Text() const {
  std::string s;
  absl::StrAppend(&s, "model           ", arch, ": ", n_layers, " layers, ", n_moe_layers,
                  " MoE layers, ", n_expert, " experts (", n_expert_used, " per token)\n");
  absl::StrAppend(&s, "device budget   ", FormatBytes(device_budget_bytes), " (", device_budget_bytes,
                  " B); the plan allocates ", FormatBytes(device_total()), " (", device_total(),
                  " B)\n");
  absl::StrAppend(&s, "  weights       ", FormatBytes(resident_bytes), " (", resident_bytes, " B)\n");
  absl::StrAppend(&s, "  KV cache      ", FormatBytes(kv_cache_bytes), " (", kv_cache_bytes, " B, ",
                  n_ctx, " tokens)\n");
  absl::StrAppend(&s, "  scratch       ", FormatBytes(scratch_bytes), " (", scratch_bytes, " B, ",
                  n_batch, "-token batch)\n");
  absl::StrAppend(&s, "  expert slots  ", slots_global, " x ", FormatBytes(slot_bytes), " = ",
                  FormatBytes(slot_device_bytes), " (", slots_per_layer, " per MoE layer)\n");
  const bool unlimited = host_budget_bytes >= (uint64_t(1) << 62);
  absl::StrAppend(&s, "host budget     ", unlimited ? "unlimited" : FormatBytes(host_budget_bytes),
                  "; the plan pins ",
                  FormatBytes(host_bytes), " (", host_bytes, " B)\n");
  for (MemoryUse u : {MemoryUse::kHostTier, MemoryUse::kHostCache, MemoryUse::kStaging,
                      MemoryUse::kReaderRing}) {
    const uint64_t b = TotalBytes(host, u);
    if (b == 0) continue;
    absl::StrAppendFormat(&s, "  %-13s %s (%d B)\n", MemoryUseName(u), FormatBytes(b), b);
  }
  if (!host_ram.empty()) {
    absl::StrAppend(&s, "host RAM        ", FormatBytes(host_ram_total()), " (",
                    host_ram_total(), " B, not pinned: hybrid host compute's workspaces)\n");
  }
  std::string tiers;
  if (experts_total > 0) {
    tiers = absl::StrCat("device ", slots_global);
    if (experts_tier == "host") absl::StrAppend(&tiers, ", host RAM ", experts_total, " (all)");
    if (experts_tier == "nvme") {
      absl::StrAppend(&tiers, ", host cache ", host_cache_slots, ", NVMe ", experts_total, " (all)");
    }
    if (experts_tier == "mmap") absl::StrAppend(&tiers, ", page cache of the mapped file ",
                                                experts_total, " (all)");
  }
  absl::StrAppend(&s, "experts         ", experts_total, " = ", FormatBytes(expert_bytes), " on ",
                  experts_tier.empty() ? "-" : experts_tier,
                  tiers.empty() ? "" : absl::StrCat("; tiers: ", tiers), "\n");
  absl::StrAppend(&s, fits ? "" : "DOES NOT FIT: ", message, "\n");
  return s;
}

std::string MemoryPlan::Json() const {
  nlohmann::ordered_json j;
  j["arch"] = arch;
  j["n_layers"] = n_layers;
  j["n_moe_layers"] = n_moe_layers;
  j["n_expert"] = n_expert;
  j["n_expert_used"] = n_expert_used;
  j["n_ctx"] = n_ctx;
  j["n_batch"] = n_batch;
  j["device_budget_bytes"] = device_budget_bytes;
  j["host_budget_bytes"] = host_budget_bytes;
  j["resident_bytes"] = resident_bytes;
  j["kv_cache_bytes"] = kv_cache_bytes;
  j["scratch_bytes"] = scratch_bytes;
  j["expert_bytes"] = expert_bytes;
  j["slot_bytes"] = slot_bytes;
  j["experts_total"] = experts_total;
  j["slots_global"] = slots_global;
  j["slots_per_layer"] = slots_per_layer;
  j["slot_device_bytes"] = slot_device_bytes;
  j["all_experts_resident"] = all_experts_resident;
  j["experts_tier"] = experts_tier;
  j["host_bytes"] = host_bytes;
  j["host_cache_slots"] = host_cache_slots;
  j["device_total_bytes"] = device_total();
  j["host_total_bytes"] = host_total();
  auto list = [](const std::vector<PlannedBuffer>& v) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const PlannedBuffer& b : v) {
      a.push_back({{"name", b.name}, {"use", MemoryUseName(b.use)}, {"bytes", b.bytes},
                   {"count", b.count}});
    }
    return a;
  };
  j["device"] = list(device);
  j["host"] = list(host);
  j["host_ram_total_bytes"] = host_ram_total();
  j["host_ram"] = list(host_ram);
  j["fits"] = fits;
  j["message"] = message;
  return j.dump();
}

}  // namespace moestream::model
