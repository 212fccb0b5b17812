#include "cli/engine_flags.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "cli/command.h"
#include "model/memory_planner.h"

namespace moestream::cli {

void EngineFlags::Register(CLI::App& app) {
  app.add_option("-m,--model", model, "GGUF model file (required)");
  app.add_option("--backend", backend, "compute backend: cpu, cuda or auto");
  app.add_option("-t,--threads", threads, "compute threads of the cpu backend; 0 = one per core");
  app.add_option("--kv-type", kv_type, "KV cache element type: f32 or f16");
  app.add_option("--ctx", ctx, "KV cache positions; 0 = the model's context, at most 4096");
  app.add_option("--batch", batch, "most tokens per forward chunk");
  app.add_option("--isa", isa, "cpu kernel ISA: auto, scalar, avx2, avx512 or avx512vnni");
  AddByteSizeOption(app, "--device-budget", &device_budget,
                    "device memory budget (e.g. 256M); offloads the routed experts through an "
                    "expert cache (omit for a resident run)")
      ->each([this](const std::string&) { device_budget_given = true; });
  AddByteSizeOption(app, "--host-budget", &host_budget,
                    "pinned host memory budget; 0 = unlimited. With experts on nvme, what it "
                    "holds beyond the staging buffers and the reader's ring caches experts in "
                    "host RAM (the middle tier)");
  app.add_option("--experts-on", experts_on,
                 "tier of the routed experts when offloading: host (pinned RAM), nvme (read on "
                 "demand; a --host-budget larger than the staging also caches them in RAM), mmap "
                 "(the mapped GGUF, left to the page cache; cpu backend) or auto (empty = auto: "
                 "host when they fit)");
  app.add_option("--store", store, "read experts from a packed store (moestream pack) of the model");
  app.add_option("--link", link,
                 "cpu backend link: pcie3x16, pcie4x16, pcie5x16, none or custom:GBPS:US");
  app.add_option("--cache-policy", cache_policy, "expert cache eviction policy SPEC");
  app.add_option("--host-cache-policy", host_cache_policy,
                 "eviction policy SPEC of the host expert cache (experts on nvme with a "
                 "--host-budget)");
  app.add_option("--prefetch", prefetch, "prefetch the next layer's experts: none or gate");
  app.add_option("--prefetch-lookahead", prefetch_lookahead,
                 "layers ahead to prefetch for; beyond the next layer --lookahead-predictor "
                 "guesses (1 = the next layer only)");
  app.add_option("--lookahead-predictor", lookahead_predictor,
                 "predictor of the layers after the next (coact, prev, popularity)");
  app.add_option("--prefetch-min-confidence", prefetch_min_confidence,
                 "a lookahead guess is loaded when its confidence is at least this fraction "
                 "of the best guess's of its layer (0..1)");
  app.add_option("--staging-buffers", staging_buffers,
                 "NVMe staging buffers of one expert each; 0 = twice the experts a token uses "
                 "(4..32)");
  app.add_option("--reads-in-flight", reads_in_flight,
                 "NVMe reads submitted at once; 0 = as many as staging buffers");
  app.add_option("--copies-in-flight", copies_in_flight,
                 "link copies handed to the copy stream at once; 0 = as staging, at most 16");
  app.add_option("--miss-policy", miss_policy,
                 "a missing expert is copied to the device (copy), computed on the host (host), "
                 "or chosen by cost (auto)");
  // Flags that mean something only with offloading: given without it, they
  // are an error rather than silently ignored.
  for (const char* name : {"--host-budget", "--store", "--cache-policy", "--host-cache-policy",
                           "--prefetch", "--prefetch-lookahead", "--lookahead-predictor",
                           "--prefetch-min-confidence", "--staging-buffers", "--reads-in-flight",
                           "--copies-in-flight", "--miss-policy"}) {
    app.get_option(name)->each([this, name](const std::string&) {
      if (offload_flag_given.empty()) offload_flag_given = name;
    });
  }
}

absl::StatusOr<kernels::BackendOptions> EngineFlags::BackendOptions() const {
  if (model.empty()) return absl::InvalidArgumentError("-m MODEL is required");
  if (backend != "cpu" && backend != "cuda" && backend != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend '", backend, "': expected cpu, cuda or auto"));
  }
  if (!offload() && !offload_flag_given.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        offload_flag_given, " applies only when offloading (give --device-budget or --experts-on)"));
  }
  if (device_budget_given && device_budget == 0) {
    return absl::InvalidArgumentError(
        "--device-budget 0: a budget must be positive (omit the flag for a resident run)");
  }
  if (threads < 0 || threads > kernels::kMaxThreads) {
    return absl::InvalidArgumentError(absl::StrCat("--threads ", threads, " is out of range 0..",
                                                   kernels::kMaxThreads, " (0 = one per core)"));
  }
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
  // The plan made before loading must be the provider's: it depends on the
  // backend (reads land in the slots only on the cpu backend). "auto" is the
  // cpu backend on a machine without a GPU; the provider replans from the
  // backend it gets.
  o.backend_kind = backend == "cuda" ? "cuda" : "cpu";
  o.experts_on = experts_on.empty() ? "auto" : experts_on;
  o.store_path = store;
  o.reader.queue_depth = 8;  // staging ring of 8 MiB (1 MiB blocks)
  o.cache_policy = cache_policy;
  o.host_cache_policy = host_cache_policy;
  o.prefetch = prefetch;
  o.prefetch_lookahead = prefetch_lookahead;
  o.lookahead_predictor = lookahead_predictor;
  o.prefetch_min_confidence = prefetch_min_confidence;
  o.loader.staging_buffers = staging_buffers;
  o.loader.reads_in_flight_max = reads_in_flight;
  o.loader.copies_in_flight_max = copies_in_flight;
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

absl::StatusOr<std::unique_ptr<engine::LoadedModel>> LoadModelForSequences(
    const EngineFlags& f, const model::ModelConfig& config, int sequences, std::string_view flag,
    bool verbose, engine::CachedExpertProvider** offload) {
  engine::LoadOptions lo;
  lo.verbose = verbose;
  if (!f.offload() || sequences == 1 || f.device_budget == 0 || !config.is_moe()) {
    return LoadModel(f, lo, offload);
  }
  MOESTREAM_ASSIGN_OR_RETURN(engine::EngineOptions eo, f.EngineOptions());
  engine::EngineOptions first = eo;
  first.batch_sequences = sequences;
  const uint64_t one = model::TotalBytes(engine::Engine::PlanBuffers(config, eo));
  const uint64_t extra = uint64_t(sequences - 1) * one +
                         (model::TotalBytes(engine::Engine::PlanBuffers(config, first)) - one);
  MOESTREAM_ASSIGN_OR_RETURN(engine::OffloadOptions oo, f.OffloadOptions());
  if (extra >= oo.device_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        Av(flag), " ", sequences, ": the other ", sequences - 1,
        " sequences' KV caches and activations (", FormatBytes(extra),
        ") leave nothing of --device-budget ", FormatBytes(oo.device_budget_bytes),
        " for the model (lower ", Av(flag), " or --ctx)"));
  }
  oo.device_budget_bytes -= extra;
  oo.verbose = verbose;
  MOESTREAM_ASSIGN_OR_RETURN(io::GgufFile gf, io::GgufFile::Open(f.model));
  MOESTREAM_RETURN_IF_ERROR(engine::PlanOffload(gf, oo, eo.n_batch).status());
  MOESTREAM_ASSIGN_OR_RETURN(kernels::BackendOptions bo, f.BackendOptions());
  lo.upload_routed_experts = false;
  lo.provider_factory = engine::CachedExpertProvider::Factory(std::move(oo), offload);
  return engine::LoadModel(f.model, bo, eo, lo);
}

double OffloadReport::overlap_efficiency() const {
  const double floor_ms = std::max(compute_ms(), transfer_ms());
  return floor_ms > 0 ? step_ms / floor_ms : 0.0;
}

double OffloadReport::BytesPerToken(int t) const {
  if (tokens <= 0) return 0;
  const uint64_t b = t < 0 ? stats.cache.link_bytes : stats.cache.tier_bytes[t];
  return double(b) / double(tokens);
}

void OffloadReport::AddJsonFields(nlohmann::ordered_json& out) const {
  const engine::OffloadStats& s = stats;
  out["hit_rate"] = s.hit_rate();
  out["prefetch_precision"] = s.prefetch_precision();
  out["prefetch_recall"] = s.prefetch_recall();
  out["link_bytes"] = s.cache.link_bytes;
  out["tier_bytes"] = {{"host", s.cache.tier_bytes[0]}, {"nvme", s.cache.tier_bytes[1]}};
  out["stall_ms"] = stall_ms();
  out["compute_ms"] = compute_ms();
  out["transfer_ms"] = transfer_ms();
  out["link_busy_ms"] = link_busy_ms();
  out["tokens"] = tokens;
  out["bytes_per_token"] = {{"host", BytesPerToken(0)}, {"nvme", BytesPerToken(1)},
                            {"link", BytesPerToken(-1)}};
  out["overlap_efficiency"] = overlap_efficiency();
  out["expert_accesses"] = s.cache.accesses;
  out["expert_loads"] = s.cache.loads;
  out["host_computed"] = s.host_computed;
  out["host_cache"] = {{"slots", s.host_cache.slots},
                       {"hits", s.host_cache.hits},
                       {"misses", s.host_cache.misses},
                       {"hit_rate", s.host_cache.hit_rate()},
                       {"evictions", s.host_cache.evictions},
                       {"bypassed", s.host_cache.bypassed},
                       {"host_bytes", s.host_cache.host_bytes},
                       {"nvme_bytes", s.host_cache.nvme_bytes}};
  out["device_budget_bytes"] = device_budget_bytes;
  out["device_high_water_bytes"] = device_high_water_bytes;
  out["host_budget_bytes"] = host_budget_bytes;
  out["host_high_water_bytes"] = host_high_water_bytes;
}

std::string OffloadReport::Text() const {
  const engine::OffloadStats& s = stats;
  const cache::HostCacheStats& hc = s.host_cache;
  std::string host_cache;
  if (hc.slots > 0) {
    host_cache = absl::StrFormat(
        "host cache: %d slots, hit rate %.1f%% of %d loads (%s from host RAM, %s from nvme), "
        "%d evictions, %d reads without a free slot\n",
        hc.slots, 100 * hc.hit_rate(), hc.hits + hc.misses, FormatBytes(hc.host_bytes),
        FormatBytes(hc.nvme_bytes), hc.evictions, hc.bypassed);
  }
  return absl::StrFormat(
      "offload: %s\n"
      "experts: hit rate %.1f%% of %d accesses, prefetch precision %.1f%% recall %.1f%%, "
      "%d loads, %d computed on the host\n"
      "transfer: %s over the link, %s from host, %s from nvme (per token: %s, %s); "
      "stall %.1f ms, transfer %.1f ms (link busy %.1f ms) of %.1f ms, "
      "overlap efficiency %.3f\n"
      "memory: device %s of %s budget, host %s of %s\n",
      describe, 100 * s.hit_rate(), s.cache.accesses, 100 * s.prefetch_precision(),
      100 * s.prefetch_recall(), s.cache.loads, s.host_computed,
      FormatBytes(s.cache.link_bytes), FormatBytes(s.cache.tier_bytes[0]),
      FormatBytes(s.cache.tier_bytes[1]), FormatBytes(uint64_t(BytesPerToken(0))),
      FormatBytes(uint64_t(BytesPerToken(1))), stall_ms(), transfer_ms(), link_busy_ms(), step_ms,
      overlap_efficiency(), FormatBytes(device_high_water_bytes),
      FormatBytes(device_budget_bytes), FormatBytes(host_high_water_bytes),
      host_budget_bytes ? FormatBytes(host_budget_bytes) : std::string("unlimited")) +
         host_cache;
}

OffloadReport MakeOffloadReport(const engine::LoadedModel& m, const EngineFlags& f,
                                const engine::CachedExpertProvider& p,
                                const engine::OffloadStats& window, double step_ms,
                                int64_t tokens) {
  OffloadReport r;
  r.tokens = tokens;
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

}  // namespace moestream::cli
