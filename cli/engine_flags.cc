#include "cli/engine_flags.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "model/memory_planner.h"

namespace moestream::cli {

void EngineFlags::Register(FlagParser& p) {
  p.String("model", 'm', "MODEL", "GGUF model file (required)", &model);
  p.String("backend", 0, "cpu|cuda|auto", "compute backend (default auto)", &backend);
  p.Int("threads", 't', "N", "compute threads of the cpu backend (default: one per core)",
        &threads);
  p.String("kv-type", 0, "f32|f16", "KV cache element type (default f32)", &kv_type);
  p.Int("ctx", 0, "N", "KV cache positions (default: the model's context, at most 4096)", &ctx);
  p.Int("batch", 0, "N", "most tokens per forward chunk (default 512)", &batch);
  p.String("isa", 0, "auto|scalar|avx2|avx512", "cpu kernel ISA (default auto)", &isa);
  p.Bytes("device-budget", "SIZE",
          "device memory budget (e.g. 256M); offloads the routed experts through an expert cache",
          &device_budget);
  p.Bytes("host-budget", "SIZE", "pinned host memory budget (default unlimited)", &host_budget);
  p.String("experts-on", 0, "host|nvme|auto",
           "tier of the routed experts when offloading (default auto: host when they fit)",
           &experts_on);
  p.String("store", 0, "FILE", "read experts from a packed store (moestream pack) of the model",
           &store);
  p.String("link", 0, "PROFILE",
           "cpu backend link: pcie3x16|pcie4x16|pcie5x16|none|custom:GBPS:US (default none)",
           &link);
  p.String("cache-policy", 0, "SPEC", "expert cache eviction policy (default lru)",
           &cache_policy);
  p.String("prefetch", 0, "none|gate", "prefetch the next layer's experts (default gate)",
           &prefetch);
  p.String("miss-policy", 0, "copy|host|auto",
           "a missing expert is copied to the device, computed on the host, or chosen by cost "
           "(default copy)",
           &miss_policy);
}

absl::StatusOr<kernels::BackendOptions> EngineFlags::BackendOptions() const {
  if (model.empty()) return absl::InvalidArgumentError("-m MODEL is required");
  if (backend != "cpu" && backend != "cuda" && backend != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend '", backend, "': expected cpu, cuda or auto"));
  }
  if (threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  kernels::BackendOptions o;
  o.kind = backend;
  o.threads = static_cast<int>(threads);
  o.isa = isa;
  o.device_budget_bytes = device_budget;
  o.host_budget_bytes = host_budget;
  MOESTREAM_RETURN_IF_ERROR(kernels::FindLinkProfile(link).status());
  o.link = link;
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<engine::OffloadOptions> EngineFlags::OffloadOptions() const {
  engine::OffloadOptions o;
  // No --device-budget with --experts-on: the backend's memory is unlimited
  // and every expert gets a slot once used.
  o.device_budget_bytes = device_budget > 0 ? device_budget : (uint64_t(1) << 62);
  o.host_budget_bytes = host_budget;
  o.experts_on = experts_on.empty() ? "auto" : experts_on;
  o.store_path = store;
  o.reader.queue_depth = 8;  // staging ring of 8 MiB (1 MiB blocks)
  o.cache_policy = cache_policy;
  o.prefetch = prefetch;
  MOESTREAM_ASSIGN_OR_RETURN(o.miss_policy, engine::ParseMissPolicy(miss_policy));
  o.link = link;
  MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, EngineOptions());
  o.n_ctx = eo.n_ctx;
  o.kv_type = eo.kv_type;
  o.all_logits = eo.all_logits;
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<engine::EngineOptions> EngineFlags::EngineOptions() const {
  engine::EngineOptions o;
  if (kv_type == "f32") {
    o.kv_type = GgmlType::kF32;
  } else if (kv_type == "f16") {
    o.kv_type = GgmlType::kF16;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--kv-type '", kv_type, "': expected f32 or f16"));
  }
  o.n_ctx = ctx;
  o.n_batch = batch;
  o.all_logits = all_logits;
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<std::unique_ptr<engine::LoadedModel>> LoadModel(
    const EngineFlags& f, const engine::LoadOptions& o, engine::CachedExpertProvider** offload) {
  MOESTREAM_ASSIGN_OR_RETURN(kernels::BackendOptions bo, f.BackendOptions());
  MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, f.EngineOptions());
  engine::CachedExpertProvider* created = nullptr;
  engine::LoadOptions lo = o;
  if (f.offload()) {
    MOESTREAM_ASSIGN_OR_RETURN(engine::OffloadOptions oo, f.OffloadOptions());
    // Plan before loading anything: a budget that cannot work fails with
    // the planner's message, not with the first allocation past it.
    MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile gf, io::GgufFile::Open(f.model));
    MOESTREAM_RETURN_IF_ERROR(engine::PlanOffload(gf, oo, eo.n_batch).status());
    oo.verbose = o.verbose;
    lo.upload_routed_experts = false;
    lo.provider_factory = engine::CachedExpertProvider::Factory(std::move(oo), &created);
  }
  MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<engine::LoadedModel> m,
                             engine::LoadModel(f.model, bo, eo, lo));
  if (f.offload() && created == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(f.model, ": --device-budget/--experts-on: ",
                                                   "the model has no routed experts to offload"));
  }
  if (o.verbose && created != nullptr) {
    std::fprintf(stderr, "offload: %s\n", created->Describe().c_str());
  }
  if (offload != nullptr) *offload = created;
  return m;
}

double OffloadReport::overlap_efficiency() const {
  const double floor_ms = std::max(compute_ms(), transfer_ms());
  return floor_ms > 0 ? step_ms / floor_ms : 0.0;
}

std::string OffloadReport::JsonFields() const {
  const engine::OffloadStats& s = stats;
  return absl::StrFormat(
      "\"hit_rate\": %.6f, \"prefetch_precision\": %.6f, \"prefetch_recall\": %.6f, "
      "\"link_bytes\": %d, \"tier_bytes\": {\"host\": %d, \"nvme\": %d}, "
      "\"stall_ms\": %.3f, \"compute_ms\": %.3f, \"transfer_ms\": %.3f, "
      "\"overlap_efficiency\": %.4f, \"expert_accesses\": %d, \"expert_loads\": %d, "
      "\"host_computed\": %d, \"device_budget_bytes\": %d, \"device_high_water_bytes\": %d, "
      "\"host_budget_bytes\": %d, \"host_high_water_bytes\": %d",
      s.hit_rate(), s.prefetch_precision(), s.prefetch_recall(), s.cache.link_bytes,
      s.cache.tier_bytes[0], s.cache.tier_bytes[1], stall_ms(), compute_ms(), transfer_ms(),
      overlap_efficiency(), s.cache.accesses, s.cache.loads, s.host_computed, device_budget_bytes,
      device_high_water_bytes, host_budget_bytes, host_high_water_bytes);
}

std::string OffloadReport::Text() const {
  const engine::OffloadStats& s = stats;
  return absl::StrFormat(
      "offload: %s\n"
      "experts: hit rate %.1f%% of %d accesses, prefetch precision %.1f%% recall %.1f%%, "
      "%d loads, %d computed on the host\n"
      "transfer: %s over the link, %s from host, %s from nvme; stall %.1f ms, "
      "link busy %.1f ms of %.1f ms, overlap efficiency %.3f\n"
      "memory: device %s of %s budget, host %s of %s\n",
      describe, 100 * s.hit_rate(), s.cache.accesses, 100 * s.prefetch_precision(),
      100 * s.prefetch_recall(), s.cache.loads, s.host_computed,
      model::FormatBytes(s.cache.link_bytes), model::FormatBytes(s.cache.tier_bytes[0]),
      model::FormatBytes(s.cache.tier_bytes[1]), stall_ms(), transfer_ms(), step_ms,
      overlap_efficiency(), model::FormatBytes(device_high_water_bytes),
      model::FormatBytes(device_budget_bytes), model::FormatBytes(host_high_water_bytes),
      host_budget_bytes ? model::FormatBytes(host_budget_bytes) : std::string("unlimited"));
}

OffloadReport MakeOffloadReport(const engine::LoadedModel& m, const EngineFlags& f,
                                const engine::CachedExpertProvider& p,
                                const engine::OffloadStats& window, double step_ms) {
  OffloadReport r;
  r.stats = window;
  r.step_ms = step_ms;
  const kernels::MemoryStats dev = m.backend->device_memory();
  const kernels::MemoryStats host = m.backend->host_pinned_memory();
  r.device_budget_bytes = f.device_budget > 0 ? f.device_budget : dev.budget_bytes;
  r.device_high_water_bytes = dev.high_water_bytes;
  r.host_budget_bytes = f.host_budget > 0 ? f.host_budget : host.budget_bytes;
  r.host_high_water_bytes = host.high_water_bytes;
  r.describe = p.Describe();
  return r;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonIds(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&out, i ? "," : "", ids[i]);
  return out + "]";
}

}  // namespace moestream::cli
