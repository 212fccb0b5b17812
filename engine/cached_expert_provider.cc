#include "engine/cached_expert_provider.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/bytes.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "io/host_tier.h"
#include "kernels/cpu/memcpy_probe.h"

namespace moestream::engine {

absl::StatusOr<MissPolicy> ParseMissPolicy(std::string_view name) {
  if (name == "copy") return MissPolicy::kCopy;
  if (name == "host") return MissPolicy::kHost;
  if (name == "auto") return MissPolicy::kAuto;
  return absl::InvalidArgumentError(
      absl::StrCat("--miss-policy '", Av(name), "': expected copy, host or auto"));
}

std::string_view MissPolicyName(MissPolicy p) {
  switch (p) {
    case MissPolicy::kCopy: return "copy";
    case MissPolicy::kHost: return "host";
    case MissPolicy::kAuto: return "auto";
  }
  return "?";
}

absl::Status OffloadOptions::Validate() const {
  if (device_budget_bytes == 0) {
    return absl::InvalidArgumentError("offloading needs a device budget (--device-budget SIZE)");
  }
  if (experts_on != "auto" && experts_on != "host" && experts_on != "nvme" &&
      experts_on != "mmap") {
    return absl::InvalidArgumentError(
        absl::StrCat("--experts-on '", experts_on, "': expected host, nvme, mmap or auto"));
  }
  if (prefetch != "none" && prefetch != "gate") {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefetch '", prefetch, "': expected none or gate"));
  }
  if (slots < 0) return absl::InvalidArgumentError("slots must be >= 0");
  if (prefetch_lookahead < 1 || prefetch_lookahead > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefetch-lookahead ", prefetch_lookahead, " must be in [1, 64]"));
  }
  if (!(prefetch_min_confidence >= 0 && prefetch_min_confidence <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--prefetch-min-confidence ", prefetch_min_confidence, " must be in [0, 1]"));
  }
  if (!(host_gbps > 0)) return absl::InvalidArgumentError("host_gbps must be > 0");
  MOESTREAM_RETURN_IF_ERROR(reader.Validate());
  cache::TierLoaderOptions l = ResolveLoaderOptions(*this, 1);
  return l.Validate();
}

cache::TierLoaderOptions ResolveLoaderOptions(const OffloadOptions& o, int64_t top_k,
                                              uint64_t host_cache_slots) {
  cache::TierLoaderOptions l = o.loader;
  const int def = int(std::clamp<int64_t>(2 * top_k, 4, 32));
  if (l.staging_buffers == 0) l.staging_buffers = def;
  if (l.reads_in_flight_max == 0) l.reads_in_flight_max = def;
  if (l.copies_in_flight_max == 0) l.copies_in_flight_max = std::min(def, 16);
  // Slot memory is host memory and no link is modelled: the read is the
  // transfer; a staging buffer and a copy would only repeat it.
  if (o.backend_kind == "cpu" && o.link == "none") l.read_into_slot = true;
  if (host_cache_slots > 0) {
    // The read must land in host memory to be kept there.
    l.read_into_slot = false;
    l.host_cache_slots = int(std::min<uint64_t>(host_cache_slots, uint64_t(1) << 30));
    l.host_cache_policy = o.host_cache_policy;
    l.top_k = int(top_k);
  }
  if (!l.read_into_slot) l.reads_in_flight_max = std::min(l.reads_in_flight_max, l.staging_buffers);
  return l;
}

namespace {

void Subtract(cache::CacheCounters& a, const cache::CacheCounters& b) {
  a.accesses -= b.accesses;
  a.demand_hits -= b.demand_hits;
  a.demand_misses -= b.demand_misses;
  a.prefetch_hits -= b.prefetch_hits;
  a.prefetch_late -= b.prefetch_late;
  a.prefetch_issued -= b.prefetch_issued;
  a.prefetch_unused -= b.prefetch_unused;
  a.prefetch_cancelled -= b.prefetch_cancelled;
  a.prefetch_dropped -= b.prefetch_dropped;
  a.loads -= b.loads;
  a.load_errors -= b.load_errors;
  a.evictions -= b.evictions;
  a.link_bytes -= b.link_bytes;
  for (int t = 0; t < cache::kNumTiers; ++t) a.tier_bytes[t] -= b.tier_bytes[t];
  a.stall_ns -= b.stall_ns;
}

// Hybrid mode: a device backend computing the misses the miss policy gives
// to the host from the host tier (Init decides with the same test).
bool IsHybrid(std::string_view tier, std::string_view backend_kind, MissPolicy miss) {
  return tier == "host" && backend_kind != "cpu" && miss != MissPolicy::kCopy;
}

// Layers of `file` with per-expert biases (gpt-oss binds gate, up and down
// together).
int64_t ExpertBiasLayers(const io::GgufFile& file, const model::ModelConfig& c) {
  int64_t n = 0;
  for (int64_t il = 0; il < c.n_layer; ++il) {
    n += file.FindTensor(absl::StrCat("blk.", il, ".ffn_gate_exps.bias")) != nullptr;
  }
  return n;
}

}  // namespace

std::vector<model::PlannedBuffer> CachedExpertProvider::HybridHostBuffers(
    const model::ModelConfig& c, int64_t n_batch, int64_t biased_layers) {
  std::vector<model::PlannedBuffer> v = ExpertFfnRunner::PlanBuffers(c, n_batch, "hybrid.");
  v.push_back({"hybrid.x", uint64_t(n_batch * c.n_embd) * sizeof(float), 1});
  if (biased_layers > 0) {
    v.push_back({"hybrid.expert_bias",
                 uint64_t(c.n_expert * (2 * c.n_ff_exp + c.n_embd)) * sizeof(float),
                 uint64_t(biased_layers)});
  }
  for (model::PlannedBuffer& b : v) b.use = model::MemoryUse::kHostWorkspace;
  return v;
}

double OffloadStats::prefetch_precision() const {
  const uint64_t used = cache.prefetch_hits + cache.prefetch_late;
  return cache.prefetch_issued ? double(used) / double(cache.prefetch_issued) : 0.0;
}

double OffloadStats::prefetch_recall() const {
  const uint64_t would_miss = cache.demand_misses + cache.prefetch_hits;
  const uint64_t used = cache.prefetch_hits + cache.prefetch_late;
  return would_miss ? double(used) / double(would_miss) : 0.0;
}

OffloadStats OffloadStats::Minus(const OffloadStats& before) const {
  OffloadStats d = *this;
  Subtract(d.cache, before.cache);
  d.host_computed -= before.host_computed;
  d.link.copies -= before.link.copies;
  d.link.bytes -= before.link.bytes;
  d.link.busy_ns -= before.link.busy_ns;
  d.transfer_ns -= before.transfer_ns;
  d.host_cache = host_cache.Minus(before.host_cache);
  return d;
}

void OffloadStats::Add(const OffloadStats& o) {
  cache.Add(o.cache);
  host_computed += o.host_computed;
  link.copies += o.link.copies;
  link.bytes += o.link.bytes;
  link.busy_ns += o.link.busy_ns;
  transfer_ns += o.transfer_ns;
  host_cache.Add(o.host_cache);
}

std::vector<model::PlannedBuffer> CachedExpertProvider::PlanBuffers(const model::ModelConfig& c,
                                                                    int64_t n_batch,
                                                                    const OffloadOptions& o) {
  std::vector<model::PlannedBuffer> v = ExpertFfnRunner::PlanBuffers(c, n_batch);
  if (o.prefetch == "gate" && o.experts_on != "mmap") {
    for (const model::PlannedBuffer& b : PredictionBuffers(c, n_batch)) v.push_back(b);
  }
  return v;
}

std::array<model::PlannedBuffer, 3> CachedExpertProvider::PredictionBuffers(
    const model::ModelConfig& c, int64_t n_batch) {
  const uint64_t rows = uint64_t(n_batch);
  const uint64_t kk = rows * uint64_t(c.n_expert_used);
  const model::MemoryUse s = model::MemoryUse::kScratch;
  return {{{"prefetch.scores", rows * uint64_t(c.n_expert) * sizeof(float), 1, s},
           {"prefetch.ids", kk * sizeof(int32_t), 1, s},
           {"prefetch.values", kk * sizeof(float), 1, s}}};
}

absl::StatusOr<model::MemoryPlan> PlanOffload(const io::GgufFile& file, const OffloadOptions& o,
                                              int64_t n_batch) {
  MOESTREAM_ASSIGN_OR_RETURN(model::MemoryPlan plan, PlanOffloadUnchecked(file, o, n_batch));
  if (!plan.fits) return absl::ResourceExhaustedError(plan.message);
  return plan;
}

absl::StatusOr<model::MemoryPlan> PlanOffloadUnchecked(const io::GgufFile& file,
                                                       const OffloadOptions& o, int64_t n_batch) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  MOESTREAM_ASSIGN_OR_RETURN(model::ModelConfig c, model::ReadModelConfig(file));
  EngineOptions eo;
  eo.n_ctx = o.n_ctx;
  eo.kv_type = o.kv_type;
  eo.n_batch = n_batch;
  eo.all_logits = o.all_logits;
  eo.op_scratch = o.backend_kind == "cuda";  // as Engine::Create decides it
  MOESTREAM_RETURN_IF_ERROR(eo.Validate());
  // Policy and predictor specs are checked here, before anything loads:
  // the same registries the run builds them from.
  policies::PolicyEnv env;
  env.n_layers = int(c.n_layer);
  env.n_experts = int(std::max<int64_t>(c.n_expert, 1));
  env.top_k = int(c.n_expert_used);
  env.capacity = 1;
  MOESTREAM_RETURN_IF_ERROR(policies::CreateEvictionPolicy(o.cache_policy, env).status());
  MOESTREAM_RETURN_IF_ERROR(policies::CreateEvictionPolicy(o.host_cache_policy, env).status());
  if (o.prefetch != "none" && o.prefetch_lookahead > 1) {
    MOESTREAM_RETURN_IF_ERROR(
        policies::CreatePrefetchPredictor(o.lookahead_predictor, env).status());
  }
  model::PlanOptions po;
  po.device_budget_bytes = o.device_budget_bytes;
  po.host_budget_bytes = o.host_budget_bytes > 0 ? o.host_budget_bytes : (uint64_t(1) << 62);
  po.experts_on = o.experts_on;
  po.n_ctx = eo.ResolvedCtx(c);
  po.n_batch = eo.ResolvedBatch(c);
  // Weights without the routed experts, the engine's KV cache and
  // activations, this provider's workspaces: the order LoadModel allocates.
  MOESTREAM_ASSIGN_OR_RETURN(po.device_fixed, model::ModelWeights::PlanBuffers(file, c, false));
  for (auto& part : {CachedExpertProvider::PlanBuffers(c, po.n_batch, o), Engine::PlanBuffers(c, eo)}) {
    po.device_fixed.insert(po.device_fixed.end(), part.begin(), part.end());
  }
  // The reader stages through pinned memory it takes from the budget; a
  // test's reader factory brings its own.
  po.reader_ring_bytes = o.open_reader ? 0 : uint64_t(o.reader.queue_depth) * o.reader.block_bytes;
  po.max_slots = uint64_t(o.slots);
  // Three tiers: with experts on NVMe and a host budget given, what the
  // budget holds beyond the staging and the ring caches experts in host
  // RAM. Reads then land in host memory (never in the slot), so the
  // loader keeps its staging buffers as the fallback, and the plan counts
  // them. When no cache slot fits, plan as if there were no host cache.
  if (o.host_budget_bytes > 0 && o.experts_on != "host" && o.experts_on != "mmap") {
    const cache::TierLoaderOptions lo = ResolveLoaderOptions(o, c.n_expert_used, 1);
    po.staging_buffers = lo.staging_buffers;
    po.host_cache = true;
    MOESTREAM_ASSIGN_OR_RETURN(model::MemoryPlan plan, model::PlanMemory(file, po));
    if (plan.fits && plan.host_cache_slots > 0) return plan;
  }
  const cache::TierLoaderOptions lo = ResolveLoaderOptions(o, c.n_expert_used);
  po.staging_buffers = lo.read_into_slot ? 0 : lo.staging_buffers;
  po.host_cache = false;
  MOESTREAM_ASSIGN_OR_RETURN(model::MemoryPlan plan, model::PlanMemory(file, po));
  if (IsHybrid(plan.experts_tier, o.backend_kind, o.miss_policy)) {
    plan.host_ram =
        CachedExpertProvider::HybridHostBuffers(c, po.n_batch, ExpertBiasLayers(file, c));
  }
  return plan;
}

absl::StatusOr<std::unique_ptr<CachedExpertProvider>> CachedExpertProvider::Create(
    kernels::Backend& backend, const io::GgufFile& file, const model::ModelConfig& c,
    const model::ModelWeights& w, int64_t n_batch, const OffloadOptions& o) {
  MOESTREAM_RETURN_IF_ERROR(o.Validate());
  if (!c.is_moe()) return absl::InvalidArgumentError("offloading needs a model with routed experts");
  OffloadOptions resolved = o;
  resolved.backend_kind = std::string(backend.name());
  std::unique_ptr<CachedExpertProvider> p(new CachedExpertProvider(backend, c, w, resolved));
  MOESTREAM_RETURN_IF_ERROR(p->Init(file, n_batch));
  return p;
}

ExpertProviderFactory CachedExpertProvider::Factory(OffloadOptions o,
                                                    CachedExpertProvider** created) {
  return [o = std::move(o), created](kernels::Backend& backend, const io::GgufFile& file,
                                     const model::ModelConfig& c, const model::ModelWeights& w,
                                     int64_t n_batch)
             -> absl::StatusOr<std::unique_ptr<ExpertProvider>> {
    MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<CachedExpertProvider> p,
                               Create(backend, file, c, w, n_batch, o));
    if (created != nullptr) *created = p.get();
    return std::unique_ptr<ExpertProvider>(std::move(p));
  };
}

CachedExpertProvider::~CachedExpertProvider() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), map_bytes_);
  handles_.clear();  // pins end before the cache goes
  for (void* q : {static_cast<void*>(pred_scores_), static_cast<void*>(pred_ids_dev_),
                  static_cast<void*>(pred_vals_dev_)}) {
    if (q != nullptr) backend_.DeviceFree(q);
  }
}

absl::Status CachedExpertProvider::OpenTier(const io::GgufFile& file) {
  if (!opt_.store_path.empty()) {
    MOESTREAM_ASSIGN_OR_RETURN(io::ExpertStore store, io::ExpertStore::Open(opt_.store_path));
    MOESTREAM_RETURN_IF_ERROR(store.CheckSource(file));
    layout_ = store.layout();
  } else {
    MOESTREAM_ASSIGN_OR_RETURN(io::ExpertLayout layout, io::ExpertLayout::FromGguf(file));
    layout_ = std::make_shared<const io::ExpertLayout>(std::move(layout));
  }
  auto open = [&](io::HostAllocator* staging) -> absl::StatusOr<std::unique_ptr<io::ExpertReader>> {
    if (opt_.open_reader) return opt_.open_reader(layout_, staging);
    return io::OpenExpertReader(layout_, opt_.reader, staging);
  };
  if (tier_ == "mmap") {
    // The file mapped read-only; the kernel's page cache decides what stays.
    const int fd = ::open(layout_->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::NotFoundError(
          absl::StrCat(layout_->path(), ": cannot open: ", std::strerror(errno)));
    }
    map_bytes_ = size_t(layout_->file_size());
    void* p = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) {
      map_bytes_ = 0;
      return absl::ResourceExhaustedError(
          absl::StrCat(layout_->path(), ": cannot map ", map_bytes_, " bytes: ", std::strerror(err)));
    }
    map_ = static_cast<const uint8_t*>(p);
    return absl::OkStatus();
  }
  if (tier_ == "host") {
    // The load-time reader's staging ring is transient (freed once the tier
    // is loaded), so it comes from the reader's own memory, not the budget.
    MOESTREAM_ASSIGN_OR_RETURN(std::unique_ptr<io::ExpertReader> loader_reader, open(nullptr));
    io::HostTierOptions ho;
    ho.host_budget_bytes = opt_.host_budget_bytes;
    ho.show_progress = opt_.verbose;
    MOESTREAM_ASSIGN_OR_RETURN(host_, io::HostTier::Load(layout_, *loader_reader, host_alloc_, ho));
    return absl::OkStatus();
  }
  MOESTREAM_ASSIGN_OR_RETURN(reader_, open(&host_alloc_));
  return absl::OkStatus();
}

absl::Status CachedExpertProvider::Init(const io::GgufFile& file, int64_t n_batch) {
  MOESTREAM_ASSIGN_OR_RETURN(link_, kernels::FindLinkProfile(opt_.link));
  MOESTREAM_ASSIGN_OR_RETURN(plan_, PlanOffload(file, opt_, n_batch));
  tier_ = plan_.experts_tier;
  if (tier_ == "mmap") {
    if (backend_.name() != "cpu") {
      return absl::FailedPreconditionError(
          "--experts-on mmap computes the experts where the file is mapped: it needs "
          "--backend cpu");
    }
    if (opt_.miss_policy != MissPolicy::kCopy || !opt_.store_path.empty()) {
      return absl::InvalidArgumentError(
          "--experts-on mmap takes neither --miss-policy nor --store: every expert is computed "
          "in place from the mapped GGUF");
    }
    MOESTREAM_RETURN_IF_ERROR(OpenTier(file));
    MOESTREAM_ASSIGN_OR_RETURN(runner_, ExpertFfnRunner::Create(backend_, c_, n_batch));
    return absl::OkStatus();
  }
  host_compute_ok_ = tier_ == "host" && backend_.name() == "cpu";
  if (IsHybrid(tier_, backend_.name(), opt_.miss_policy)) {
    MOESTREAM_RETURN_IF_ERROR(InitHybrid(n_batch));
    host_compute_ok_ = true;
  }
  if (opt_.miss_policy == MissPolicy::kHost && !host_compute_ok_) {
    return absl::FailedPreconditionError(
        "--miss-policy host computes missing experts from the host tier: it needs --experts-on "
        "host");
  }
  MOESTREAM_RETURN_IF_ERROR(OpenTier(file));

  const int slots = int(plan_.slots_global);
  policies::PolicyEnv env;
  env.n_layers = int(c_.n_layer);
  env.n_experts = int(c_.n_expert);
  env.top_k = int(c_.n_expert_used);
  env.capacity = slots;
  MOESTREAM_ASSIGN_OR_RETURN(policy_, policies::CreateEvictionPolicy(opt_.cache_policy, env));
  cache::TierSource src = tier_ == "host" ? cache::TierSource::Host(*host_)
                                          : cache::TierSource::Nvme(*reader_);
  // The loader allocates the staging buffers and host cache slots the plan
  // lists, no more.
  MOESTREAM_ASSIGN_OR_RETURN(
      loader_, cache::TierLoader::Create(&backend_, src,
                                         ResolveLoaderOptions(opt_, c_.n_expert_used,
                                                              plan_.host_cache_slots)));

  // Workspaces before the slots: the slots take what the plan gives them.
  MOESTREAM_ASSIGN_OR_RETURN(runner_, ExpertFfnRunner::Create(backend_, c_, n_batch));
  if (opt_.prefetch == "gate") {
    // Scores, ids, values: as planned.
    const auto bufs = PredictionBuffers(c_, n_batch);
    void* p[3] = {};
    for (size_t i = 0; i < bufs.size(); ++i) {
      MOESTREAM_ASSIGN_OR_RETURN(p[i], backend_.DeviceAlloc(bufs[i].bytes, bufs[i].name));
    }
    pred_scores_ = static_cast<float*>(p[0]);
    pred_ids_dev_ = static_cast<int32_t*>(p[1]);
    pred_vals_dev_ = static_cast<float*>(p[2]);
    pred_ids_.resize(size_t(n_batch) * size_t(c_.n_expert_used));
    pred_count_.resize(size_t(c_.n_expert));
  }

  if (opt_.prefetch != "none" && opt_.prefetch_lookahead > 1) {
    MOESTREAM_ASSIGN_OR_RETURN(ahead_,
                               policies::CreatePrefetchPredictor(opt_.lookahead_predictor, env));
  }

  cache::ExpertCacheOptions co;
  co.n_layers = int(c_.n_layer);
  co.n_experts = int(c_.n_expert);
  co.slots = slots;
  co.slot_bytes = plan_.slot_bytes;
  auto made = cache::ExpertCache::Create(co, loader_.get(), &clock_, policy_.get(), &backend_);
  if (!made.ok()) {
    return absl::Status(made.status().code(),
                        absl::StrCat("expert cache of ", slots, " slots x ",
                                     FormatBytes(co.slot_bytes), ": ", made.status().message()));
  }
  cache_ = std::move(*made);
  // A multi-token step's prefetch cap (PredictNext): half a MoE layer's
  // share of the slots, at least k.
  int64_t moe_layers = 0;
  for (int64_t il = 0; il < c_.n_layer; ++il) moe_layers += c_.IsMoeLayer(il);
  multi_token_prefetch_cap_ = size_t(std::max<int64_t>(
      c_.n_expert_used, cache_->total_slots() / std::max<int64_t>(1, 2 * moe_layers)));
  experts_.reserve(size_t(c_.n_expert));
  views_.reserve(size_t(c_.n_expert));
  view_ptrs_.reserve(size_t(c_.n_expert));
  groups_run_.reserve(size_t(c_.n_expert));
  handles_run_.reserve(size_t(c_.n_expert));
  pending_.reserve(size_t(c_.n_expert));
  return absl::OkStatus();
}

std::string CachedExpertProvider::Describe() const {
  if (tier_ == "mmap") {
    return absl::StrCat("experts on mmap (", layout_->path(), " mapped, ", plan_.experts_total,
                        " experts computed in place; the page cache holds what fits)");
  }
  std::string src = opt_.store_path.empty() ? "the GGUF" : opt_.store_path;
  if (reader_ != nullptr) src = absl::StrCat(Av(reader_->kind()), " reads of ", src);
  const std::string host_cache =
      plan_.host_cache_slots > 0
          ? absl::StrCat(", host cache of ", plan_.host_cache_slots, " experts x ",
                         FormatBytes(plan_.max_blob_bytes), " (policy ",
                         loader_->options().host_cache_policy, ")")
          : std::string();
  return absl::StrCat("experts on ", tier_, " (", src, "), ", cache_->total_slots(), " of ",
                      plan_.experts_total, " expert slots x ", FormatBytes(plan_.slot_bytes),
                      " on the device, policy ", policy_->name(), host_cache, ", prefetch ",
                      opt_.prefetch, ", miss policy ", Av(MissPolicyName(opt_.miss_policy)),
                      opt_.miss_policy == MissPolicy::kAuto && !host_compute_ok_
                          ? " (copies every miss: host compute needs --experts-on host)"
                          : "",
                      host_be_ != nullptr
                          ? absl::StrFormat(" (hybrid: host %.1f GB/s, link %.1f GB/s, device "
                                            "%.1f GB/s, measured)",
                                            host_gbps_, link_gbps_, device_gbps_)
                          : std::string());
}

OffloadStats CachedExpertProvider::stats() const {
  OffloadStats s;
  if (cache_ != nullptr) s.cache = cache_->stats().total;
  s.host_computed = host_computed_;
  s.link = backend_.link_stats();
  if (loader_ != nullptr) {
    s.transfer_ns = loader_->busy_ns();
    s.host_cache = loader_->host_cache_stats();
  }
  return s;
}

model::ExpertWeights CachedExpertProvider::View(int layer, int expert, const uint8_t* blob) const {
  const io::ExpertInfo* info = layout_->Find(layer, expert);
  auto view = [&](io::ExpertMatrix m) {
    const io::ExpertMatrixInfo& mi = info->matrix(m);
    return kernels::WeightView{mi.type, mi.ne0, mi.ne1, blob + mi.blob_offset};
  };
  return {view(io::ExpertMatrix::kGate), view(io::ExpertMatrix::kUp),
          view(io::ExpertMatrix::kDown)};
}

// The kAuto cost model, per missing expert of B bytes:
//   copy = B / link GB/s + link latency   (then the device reads it from the slot)
//   host = B / host GB/s                  (a few tokens' matmul reads each weight once)
// Host compute when strictly cheaper. An unthrottled link ("none") copies:
// the copy is a memcpy, and the copied expert stays cached for later tokens.
//
// Hybrid mode (a device backend) measures its inputs at start-up instead:
//   copy = B / link GB/s + B / device GB/s   (the copy, then the device's read)
//   host = B / host GB/s
bool CachedExpertProvider::ChooseHostCompute(ExpertKey k) const {
  if (opt_.miss_policy == MissPolicy::kHost) return true;
  if (opt_.miss_policy == MissPolicy::kCopy) return false;
  const io::ExpertInfo* info = layout_->Find(k.layer, k.expert);
  if (info == nullptr) return false;
  const double bytes = double(info->blob_bytes);
  if (host_be_ != nullptr) {
    if (host_gbps_ <= 0 || link_gbps_ <= 0 || device_gbps_ <= 0) return false;
    return bytes / host_gbps_ < bytes / link_gbps_ + bytes / device_gbps_;
  }
  if (link_.gbps <= 0) return false;
  const double copy_ns = bytes / link_.gbps + link_.latency_us * 1e3;  // 1 GB/s = 1 B/ns
  const double host_ns = bytes / opt_.host_gbps;
  return host_ns < copy_ns;
}

model::ExpertWeights CachedExpertProvider::MappedView(int layer, int expert) const {
  const io::ExpertInfo* info = layout_->Find(layer, expert);
  auto view = [&](io::ExpertMatrix m) {
    const io::ExpertMatrixInfo& mi = info->matrix(m);
    // The file run that holds the matrix's first byte.
    uint64_t file = 0;
    for (const io::ExpertSegment& seg : info->segment_span()) {
      if (mi.blob_offset >= seg.blob_offset && mi.blob_offset < seg.blob_offset + seg.bytes) {
        file = seg.file_offset + (mi.blob_offset - seg.blob_offset);
      }
    }
    return kernels::WeightView{mi.type, mi.ne0, mi.ne1, map_ + file};
  };
  return {view(io::ExpertMatrix::kGate), view(io::ExpertMatrix::kUp),
          view(io::ExpertMatrix::kDown)};
}

uint64_t CachedExpertProvider::hybrid_host_bytes() const {
  if (host_be_ == nullptr) return 0;
  uint64_t b = host_be_->device_memory().used_bytes + host_x_.size() * sizeof(float);
  for (const std::array<std::vector<float>, 3>& layer : host_bias_) {
    for (const std::vector<float>& m : layer) b += m.size() * sizeof(float);
  }
  return b;
}

absl::Status CachedExpertProvider::InitHybrid(int64_t n_batch) {
  kernels::BackendOptions bo;
  bo.kind = "cpu";  // one thread per core; its memory is plain host RAM
  MOESTREAM_ASSIGN_OR_RETURN(host_be_, kernels::CreateBackend(bo));
  // The plan's host_ram (HybridHostBuffers): runner workspaces, input rows,
  // biases.
  MOESTREAM_ASSIGN_OR_RETURN(host_runner_,
                             ExpertFfnRunner::Create(*host_be_, c_, n_batch, "hybrid."));
  host_x_.resize(size_t(n_batch * c_.n_embd));
  // The routed experts' biases live on the device with the dense weights; the
  // host runner needs its own copy.
  host_bias_.resize(size_t(c_.n_layer));
  for (int64_t il = 0; il < c_.n_layer; ++il) {
    const model::ExpertBiases& b = w_.layers[size_t(il)].expert_bias;
    const float* src[3] = {b.gate, b.up, b.down};
    const int64_t width[3] = {c_.n_ff_exp, c_.n_ff_exp, c_.n_embd};
    for (int m = 0; m < 3; ++m) {
      if (src[m] == nullptr) continue;
      std::vector<float>& dst = host_bias_[size_t(il)][size_t(m)];
      dst.resize(size_t(c_.n_expert * width[m]));
      MOESTREAM_RETURN_IF_ERROR(backend_.CopyToHost(dst.data(), src[m], dst.size() * sizeof(float)));
    }
  }
  // The cost model's inputs. Host: memcpy's rate with the compute threads (a
  // decode step's host matmul reads each weight once, no faster). Link: a
  // pinned 16 MiB copy to the device. Device: a device-to-device copy of 8 MiB
  // (a read and a write per byte, counted as 2 bytes read).
  host_gbps_ = kernels::cpu::MeasureMemcpyGbps(0, 2);
  constexpr size_t kProbe = 16u << 20;
  absl::StatusOr<void*> pinned = backend_.HostPinnedAlloc(kProbe, "hybrid.link_probe");
  absl::StatusOr<void*> dev = backend_.DeviceAlloc(kProbe, "hybrid.link_probe");
  if (pinned.ok() && dev.ok()) {
    std::memset(*pinned, 1, kProbe);
    absl::StatusOr<std::unique_ptr<kernels::Stream>> s = backend_.CreateStream(kernels::StreamKind::kCopy);
    absl::StatusOr<std::unique_ptr<kernels::Event>> e = backend_.CreateEvent();
    if (s.ok() && e.ok()) {
      auto time_ns = [](auto&& fn) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        return double(std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count());
      };
      for (int rep = 0; rep < 2; ++rep) {  // the first warms up
        const double ns = time_ns([&] {
          if (backend_.CopyToDeviceAsync(*dev, *pinned, kProbe, **s).ok() && (*s)->Record(**e).ok()) {
            (*e)->Synchronize().IgnoreError();
          }
        });
        link_gbps_ = ns > 0 ? double(kProbe) / ns : 0;
      }
      const int64_t half = int64_t(kProbe / 2 / sizeof(float));
      for (int rep = 0; rep < 2; ++rep) {
        const double ns = time_ns([&] {
          float* f = static_cast<float*>(*dev);
          backend_.Copy2D(f + half, half, f, half, 1, half);
          backend_.compute_stream().Synchronize().IgnoreError();
        });
        device_gbps_ = ns > 0 ? 2.0 * double(kProbe / 2) / ns : 0;
      }
    }
  }
  if (pinned.ok()) backend_.HostPinnedFree(*pinned);
  if (dev.ok()) backend_.DeviceFree(*dev);
  std::fprintf(stderr,
               "moestream: hybrid experts: host %.1f GB/s, link %.1f GB/s, device %.1f GB/s "
               "(measured); a miss is computed on the host when bytes/host < bytes/link + "
               "bytes/device%s\n",
               host_gbps_, link_gbps_, device_gbps_,
               opt_.miss_policy == MissPolicy::kHost ? " (--miss-policy host: always)" : "");
  return absl::OkStatus();
}

absl::Status CachedExpertProvider::RunHostGroups(int layer, const int32_t* ids,
                                                 const float* weights, int64_t n_tok, int k) {
  const std::array<std::vector<float>, 3>& hb = host_bias_[size_t(layer)];
  auto ptr = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  const model::ExpertBiases biases{ptr(hb[0]), ptr(hb[1]), ptr(hb[2])};
  MOESTREAM_RETURN_IF_ERROR(host_runner_->Group(ids, weights, n_tok, k, biases));
  host_view_ptrs_.clear();
  for (const model::ExpertWeights& v : host_views_) host_view_ptrs_.push_back(&v);
  host_runner_->Run(host_x_.data(), n_tok, host_groups_, host_view_ptrs_);
  MOESTREAM_RETURN_IF_ERROR(host_be_->compute_stream().Synchronize());
  // Same grouping on both runners: a group's rows have the same numbers.
  const size_t width = size_t(c_.n_embd);
  for (const ExpertGroup& g : host_groups_) {
    MOESTREAM_RETURN_IF_ERROR(backend_.CopyToDevice(
        runner_->output_rows() + size_t(g.first_row) * width,
        host_runner_->output_rows() + size_t(g.first_row) * width,
        size_t(g.rows) * width * sizeof(float)));
  }
  host_groups_.clear();
  host_views_.clear();
  return absl::OkStatus();
}

absl::Status CachedExpertProvider::ComputeMapped(int layer, const float* x, int64_t n_tok,
                                                 float* out) {
  const std::span<const ExpertGroup> groups = runner_->groups();
  groups_run_.assign(groups.begin(), groups.end());
  views_.clear();
  for (const ExpertGroup& g : groups) views_.push_back(MappedView(layer, g.expert));
  host_computed_ += groups.size();
  view_ptrs_.clear();
  for (const model::ExpertWeights& v : views_) view_ptrs_.push_back(&v);
  runner_->Run(x, n_tok, groups_run_, view_ptrs_);
  groups_run_.clear();
  views_.clear();
  runner_->Scatter(out);
  return absl::OkStatus();
}

void CachedExpertProvider::OnFfnInput(int layer, const float* x, int64_t n_tok) {
  if (pred_scores_ == nullptr || !sticky_.ok()) return;
  // The next MoE layer: with dense layers between (llama4's interleaving),
  // its router applied to this layer's input is still the best early guess.
  int next = layer + 1;
  while (next < c_.n_layer && !w_.layers[next].is_moe()) ++next;
  if (next >= c_.n_layer) return;
  absl::Status s = PredictNext(next, x, n_tok);
  if (!s.ok()) sticky_ = s;
}

absl::Status CachedExpertProvider::PredictNext(int next, const float* x, int64_t n_tok) {
  const int64_t n_exp = c_.n_expert;
  const int k = int(c_.n_expert_used);
  backend_.MatMul(w_.layers[next].router, x, n_tok, pred_scores_);
  backend_.Softmax(pred_scores_, n_tok, n_exp);
  backend_.TopKRows(pred_scores_, n_tok, n_exp, k, false, pred_ids_dev_, pred_vals_dev_);
  MOESTREAM_RETURN_IF_ERROR(
      backend_.CopyToHost(pred_ids_.data(), pred_ids_dev_, size_t(n_tok * k) * sizeof(int32_t)));
  // Rank by how many tokens picked an expert; ties by first appearance (for
  // one token: the router's descending order).
  std::fill(pred_count_.begin(), pred_count_.end(), 0);
  pending_prefetch_.clear();
  for (int64_t i = 0; i < n_tok * k; ++i) {
    const int32_t e = pred_ids_[size_t(i)];
    if (e < 0 || e >= n_exp) continue;
    if (pred_count_[size_t(e)]++ == 0) pending_prefetch_.push_back({uint16_t(next), uint16_t(e)});
  }
  std::stable_sort(pending_prefetch_.begin(), pending_prefetch_.end(),
                   [&](ExpertKey a, ExpertKey b) {
                     return pred_count_[a.expert] > pred_count_[b.expert];
                   });
  // Several tokens (a prefill, or sequences decoding together): the
  // guesses most of them share, at most half a layer's share of the slots
  // (and never fewer than k). The whole union would flood a small cache
  // with loads that evict each other before the layer runs.
  if (n_tok > 1 && pending_prefetch_.size() > multi_token_prefetch_cap_) {
    pending_prefetch_.resize(multi_token_prefetch_cap_);
  }
  return absl::OkStatus();
}

absl::Status CachedExpertProvider::PrefetchAhead(int layer, const int32_t* ids, int64_t n_tok,
                                                 int k) {
  for (int64_t t = 0; t < n_tok; ++t) {
    ahead_->Observe({tokens_seen_ + uint64_t(t), layer,
                     std::span<const int32_t>(ids + t * k, size_t(k)), {}});
  }
  // Guesses from the last token's choices, for layer+1 .. layer+lookahead;
  // the next layer is the gate's when it runs.
  policies::PredictContext ctx;
  ctx.token = tokens_seen_ + uint64_t(n_tok - 1);
  ctx.layer = layer;
  ctx.lookahead = opt_.prefetch_lookahead;
  ctx.top_k = k;
  ctx.experts = std::span<const int32_t>(ids + (n_tok - 1) * k, size_t(k));
  guesses_.clear();
  ahead_->Predict(ctx, &guesses_);
  if (layer == c_.n_layer - 1) tokens_seen_ += uint64_t(n_tok);
  const int first = pred_scores_ != nullptr ? 2 : 1;  // distance of the first layer to load
  ahead_keys_.clear();
  for (int d = first; d <= opt_.prefetch_lookahead; ++d) {
    const int target = (layer + d) % int(c_.n_layer);
    float best = 0;
    for (const policies::ExpertGuess& g : guesses_) {
      if (g.key.layer == target) best = std::max(best, g.confidence);
    }
    for (const policies::ExpertGuess& g : guesses_) {
      if (g.key.layer == target && best > 0 &&
          g.confidence >= float(opt_.prefetch_min_confidence) * best) {
        ahead_keys_.push_back(g.key);
      }
    }
  }
  if (ahead_keys_.empty()) return absl::OkStatus();
  // Never at the expense of what the next layer is predicted to use.
  return cache_->Prefetch(ahead_keys_, next_keep_);
}

void CachedExpertProvider::RunBatch(const float* x, int64_t n_tok) {
  if (groups_run_.empty()) return;
  view_ptrs_.clear();
  for (const model::ExpertWeights& v : views_) view_ptrs_.push_back(&v);
  runner_->Run(x, n_tok, groups_run_, view_ptrs_);
  // The slots may be reused once the compute stream has passed this point.
  for (cache::ExpertHandle* h : handles_run_) h->Release(&backend_.compute_stream());
  groups_run_.clear();
  views_.clear();
  handles_run_.clear();
}

absl::Status CachedExpertProvider::Compute(int layer, const float* x, int64_t n_tok,
                                           const int32_t* ids, const float* weights, int k,
                                           float* out) {
  MOESTREAM_RETURN_IF_ERROR(sticky_);
  MOESTREAM_RETURN_IF_ERROR(runner_->Group(ids, weights, n_tok, k, w_.layers[layer].expert_bias));
  if (map_ != nullptr) return ComputeMapped(layer, x, n_tok, out);
  const std::span<const ExpertGroup> groups = runner_->groups();
  experts_.clear();
  for (const ExpertGroup& g : groups) experts_.push_back(g.expert);
  std::function<bool(ExpertKey)> load_miss;
  if (opt_.miss_policy != MissPolicy::kCopy && host_compute_ok_) {
    load_miss = [this](ExpertKey key) { return !ChooseHostCompute(key); };
  }
  MOESTREAM_RETURN_IF_ERROR(cache_->Acquire(layer, experts_, &handles_, load_miss));
  // The next layer's guesses, now that this layer's experts are pinned.
  next_keep_.clear();
  if (!pending_prefetch_.empty()) {
    if (pending_prefetch_.front().layer != layer) {
      MOESTREAM_RETURN_IF_ERROR(cache_->Prefetch(pending_prefetch_));
      next_keep_.assign(pending_prefetch_.begin(), pending_prefetch_.end());
    }
    pending_prefetch_.clear();
  }
  if (ahead_ != nullptr) MOESTREAM_RETURN_IF_ERROR(PrefetchAhead(layer, ids, n_tok, k));

  // Resident experts (and those computed where they live) first.
  groups_run_.clear();
  views_.clear();
  handles_run_.clear();
  pending_.clear();
  for (size_t i = 0; i < handles_.size(); ++i) {
    cache::ExpertHandle& h = handles_[i];
    if (!h.valid()) {
      const uint8_t* blob = host_ != nullptr ? host_->Blob(layer, groups[i].expert) : nullptr;
      if (blob == nullptr) {
        return absl::InternalError(absl::StrCat("expert ", layer, "/", groups[i].expert,
                                                " is neither loaded nor in the host tier"));
      }
      if (host_be_ != nullptr) {  // hybrid: on the host CPU, below
        host_groups_.push_back(groups[i]);
        host_views_.push_back(View(layer, groups[i].expert, blob));
      } else {
        groups_run_.push_back(groups[i]);
        views_.push_back(View(layer, groups[i].expert, blob));
      }
      ++host_computed_;
    } else if (h.ready()) {
      groups_run_.push_back(groups[i]);
      views_.push_back(View(layer, groups[i].expert, static_cast<const uint8_t*>(h.data())));
      handles_run_.push_back(&h);
    } else {
      pending_.push_back(int(i));
    }
  }
  // Hybrid: the input to the host (waits for the device's work so far), the
  // resident experts queued on the device, the missed ones computed on the
  // host CPU meanwhile, their rows copied back for Scatter.
  const bool hybrid = !host_groups_.empty();
  if (hybrid) {
    MOESTREAM_RETURN_IF_ERROR(
        backend_.CopyToHost(host_x_.data(), x, size_t(n_tok * c_.n_embd) * sizeof(float)));
  }
  RunBatch(x, n_tok);
  if (hybrid) MOESTREAM_RETURN_IF_ERROR(RunHostGroups(layer, ids, weights, n_tok, k));

  // The rest as they land: loads with a slot first, deferred ones (no slot
  // until this layer's earlier pins are released) last.
  std::stable_partition(pending_.begin(), pending_.end(),
                        [&](int i) { return !handles_[size_t(i)].deferred(); });
  size_t next = 0;
  while (next < pending_.size()) {
    cache::ExpertHandle& h = handles_[size_t(pending_[next])];
    if (!h.ready()) MOESTREAM_RETURN_IF_ERROR(cache_->Wait(h));
    do {
      const size_t i = size_t(pending_[next]);
      groups_run_.push_back(groups[i]);
      views_.push_back(
          View(layer, groups[i].expert, static_cast<const uint8_t*>(handles_[i].data())));
      handles_run_.push_back(&handles_[i]);
      ++next;
    } while (next < pending_.size() && handles_[size_t(pending_[next])].ready());
    RunBatch(x, n_tok);
    MOESTREAM_RETURN_IF_ERROR(cache_->Reap());
  }
  runner_->Scatter(out);
  return absl::OkStatus();
}

}  // namespace moestream::engine
