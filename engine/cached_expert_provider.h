// The offloading expert provider: every routed expert is computed through
// the device expert cache (cache/expert_cache.h). The routed experts live in
// a tier below the device — pinned host memory (io::HostTier) or NVMe (an
// io::ExpertReader over the GGUF or a packed expert store) — and a fixed
// pool of device slots, sized by the memory planner from the device budget,
// holds the ones in use.
//
//   OffloadOptions o;  o.device_budget_bytes = 256 << 20;  o.experts_on = "nvme";
//   LoadOptions lo;  lo.upload_routed_experts = false;
//   lo.provider_factory = CachedExpertProvider::Factory(o);
//   MOESTREAM_ASSIGN_OR_RETURN(auto m, LoadModel(path, bo, eo, lo));
//   ... Generate(*m->engine, ...) ...
//   OffloadStats s = static_cast<CachedExpertProvider&>(*m->provider).stats();
//
// Per MoE layer (Compute):
//   1. group the tokens' choices by expert (ExpertFfnRunner::Group): each
//      needed expert crosses the link at most once per layer;
//   2. Acquire the layer's experts: hits are pinned and ready, misses start
//      demand loads (or, by the miss policy, are left on the host);
//   3. issue the prefetches predicted for the next MoE layer (after the
//      Acquire, so they never evict an expert this layer is about to use);
//   4. compute the ready groups (and the host-computed ones) while the
//      misses land, then Wait for each remaining expert and compute it as it
//      lands; each pin is released in the compute stream's order
//      (Release(&compute_stream)) right after the compute that read it, so
//      a layer needing more experts than there are slots still proceeds;
//   5. Scatter: the weighted sum in token-major, choice order — the result
//      is bit-identical to ResidentExpertProvider whatever the order of the
//      groups, the tier, the policy or the prefetching.
//
// Prefetch ("gate"): in OnFfnInput(L, x) the next MoE layer's router is
// applied to layer L's ffn-normed state on the device (MatMul, Softmax,
// TopK per token, as the engine routes); the predicted ids are copied to the
// host and, ranked by how many tokens chose them, prefetched in Compute(L).
//
// Miss policy: kCopy loads every miss into a slot. kHost computes a missing
// expert where it lives, from the host tier's pinned memory — possible on the
// CPU backend, whose ops read host memory directly — and never copies it.
// kAuto decides per miss with a cost model (see ChooseHostCompute in the .cc):
// copy = expert bytes / link GB/s + link latency; host = expert bytes / host
// memory bandwidth (the matmul of a few tokens is bound by reading the
// weights); host compute is chosen when strictly cheaper. Host compute needs
// the host tier and the CPU backend; elsewhere kAuto copies and kHost is an
// error at Create.
//
// Threading: the engine thread only (the cache's owner).
#ifndef MOESTREAM_ENGINE_CACHED_EXPERT_PROVIDER_H_
#define MOESTREAM_ENGINE_CACHED_EXPERT_PROVIDER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/expert_cache.h"
#include "cache/tier_loader.h"
#include "io/expert_store.h"
#include "io/expert_tier.h"
#include "io/gguf.h"
#include "kernels/backend.h"
#include "policies/eviction_policy.h"
#include "policies/prefetch_predictor.h"
#include "engine/expert_provider.h"
#include "model/memory_planner.h"
#include "model/model_config.h"
#include "engine/session.h"
#include "model/weights.h"

namespace moestream::engine {

enum class MissPolicy { kCopy, kHost, kAuto };
// "copy", "host", "auto"; kInvalidArgument naming --miss-policy otherwise.
absl::StatusOr<MissPolicy> ParseMissPolicy(std::string_view name);
std::string_view MissPolicyName(MissPolicy p);

// Opens the NVMe reader for a layout (test seam: a FakeReader with faults).
using ExpertReaderFactory = std::function<absl::StatusOr<std::unique_ptr<io::ExpertReader>>(
    std::shared_ptr<const io::ExpertLayout> layout, io::HostAllocator* staging)>;

struct OffloadOptions {
  // The device budget the planner sizes the slots from, bytes (the backend
  // must enforce the same budget). Required, > 0.
  uint64_t device_budget_bytes = 0;
  // Pinned host bytes for the host tier or the NVMe staging; 0 = unlimited.
  uint64_t host_budget_bytes = 0;
  // "host", "nvme" or "auto" (host when the experts fit the host budget).
  std::string experts_on = "auto";
  // Packed expert store (moestream pack) to read experts from instead of the
  // GGUF; must have been packed from the loaded model.
  std::string store_path;
  // Eviction policy spec (policies/eviction_policy.h). Default "lru".
  std::string cache_policy = "lru";
  // Eviction policy of the host expert cache (experts on NVMe with a host
  // budget larger than the staging: the rest of the budget caches experts
  // in pinned host RAM between NVMe and the device). Default "lru".
  std::string host_cache_policy = "lru";
  // "gate" (next layer's router on this layer's state) or "none".
  std::string prefetch = "gate";
  // Layers ahead to prefetch for (1 = the next layer only; `prefetch`
  // "none" turns all prefetching off). Beyond the next
  // layer, `lookahead_predictor` (a policies/ predictor spec, e.g. "coact")
  // guesses from the routing so far; a guess is loaded when its confidence
  // is at least `prefetch_min_confidence` times the best guess's of its
  // layer, only into a free slot or a victim that the next layer's
  // predicted experts are not.
  int prefetch_lookahead = 1;
  std::string lookahead_predictor = "coact";
  double prefetch_min_confidence = 0.5;
  MissPolicy miss_policy = MissPolicy::kCopy;
  // KV cache the engine will allocate (the planner counts it): positions
  // (0 = the model's context capped at 4096) and element type.
  int64_t n_ctx = 0;
  GgmlType kv_type = GgmlType::kF32;
  // The engine keeps every token's logits (EngineOptions::all_logits).
  bool all_logits = false;
  // Expert slots; 0 = the planner's global count. Tests set it to force
  // small caches; never above what the budget holds.
  int slots = 0;
  // The backend's link profile (BackendOptions::link): the kAuto cost
  // model's copy time. Default "none" (unthrottled).
  std::string link = "none";
  // Host memory bandwidth for host compute in the kAuto cost model, GB/s.
  double host_gbps = 20.0;
  // NVMe reader (kind, depth, block size, O_DIRECT) and loader options.
  // Loader counts of 0 take defaults from the model: staging buffers, reads
  // and copies in flight = twice the experts a token uses, within [4, 32].
  io::ReaderOptions reader;
  cache::TierLoaderOptions loader{.copies_in_flight_max = 0, .staging_buffers = 0,
                                  .reads_in_flight_max = 0, .read_into_slot = false};
  // The backend the provider will run on ("cpu" or "cuda"): on the CPU
  // backend with no modelled link (link "none") an NVMe read lands in its
  // slot directly (no staging buffer, no copy). Create() takes it from the
  // backend; set it for planning ahead.
  std::string backend_kind = "cpu";
  // Test seam; null = io::OpenExpertReader.
  ExpertReaderFactory open_reader;
  // Host tier load progress on stderr.
  bool verbose = false;
  absl::Status Validate() const;
};

// The memory plan for offloading `file` as `o` says, with n_batch tokens per
// step: every buffer the weights (routed experts excluded), the engine, the
// provider, the expert cache, the loader and the reader will allocate.
// kResourceExhausted carrying the planner's one-line message when it does
// not fit. Create() calls it and allocates exactly it; callers may call it
// before loading.
absl::StatusOr<model::MemoryPlan> PlanOffload(const io::GgufFile& file, const OffloadOptions& o,
                                              int64_t n_batch);
// The loader options `o` resolves to for a model whose tokens use `top_k`
// experts (defaults for counts of 0, read_into_slot where it applies), with
// a host expert cache of `host_cache_slots` (the plan's; > 0 turns
// read_into_slot off: a read must land in host memory to be kept).
cache::TierLoaderOptions ResolveLoaderOptions(const OffloadOptions& o, int64_t top_k,
                                              uint64_t host_cache_slots = 0);
// The same plan whether it fits or not (`moestream plan` prints both).
absl::StatusOr<model::MemoryPlan> PlanOffloadUnchecked(const io::GgufFile& file,
                                                       const OffloadOptions& o, int64_t n_batch);

// What the offloading did over a window (stats() minus an earlier stats()).
struct OffloadStats {
  cache::CacheCounters cache;       // cache totals (accesses, hits, loads, bytes, stall)
  uint64_t host_computed = 0;       // experts computed on the host (miss policy)
  kernels::LinkStats link;          // the backend's link (all copies it made)
  // Wall time during which the loader was reading from the tier or copying
  // over the link (overlapping reads and copies count once), ns.
  uint64_t transfer_ns = 0;
  // The host expert cache between NVMe and the device (zero without one):
  // loads served from host RAM (hits) or read from NVMe (misses), evictions.
  cache::HostCacheStats host_cache;
  double hit_rate() const { return cache.hit_rate(); }
  // Prefetched experts that a demand access used / prefetch loads issued.
  double prefetch_precision() const;
  // Demand accesses served by a prefetch / accesses that would have missed
  // without prefetching (demand misses + prefetch hits).
  double prefetch_recall() const;
  OffloadStats Minus(const OffloadStats& before) const;
  void Add(const OffloadStats& o);  // sums two windows
};

class CachedExpertProvider final : public ExpertProvider {
 public:
  static absl::StatusOr<std::unique_ptr<CachedExpertProvider>> Create(
      kernels::Backend& backend, const io::GgufFile& file, const model::ModelConfig& c,
      const model::ModelWeights& w, int64_t n_batch, const OffloadOptions& o);
  // For LoadOptions::provider_factory. `created`, when set, receives the
  // provider (owned by the LoadedModel).
  static ExpertProviderFactory Factory(OffloadOptions o,
                                       CachedExpertProvider** created = nullptr);
  // The provider's own device buffers for `n_batch`-token steps (the expert
  // FFN workspace and, with gate prefetch, the prediction buffers).
  static std::vector<model::PlannedBuffer> PlanBuffers(const model::ModelConfig& c,
                                                       int64_t n_batch,
                                                       const OffloadOptions& o);
  // Hybrid mode's host RAM (not pinned), for `biased_layers` layers with
  // per-expert biases: the host runner's workspaces in its CPU backend
  // ("hybrid.experts.x", ...), the step's input rows copied to the host
  // ("hybrid.x") and a host copy of each biased layer's expert biases
  // ("hybrid.expert_bias"). PlanOffload lists them as the plan's host_ram
  // when the run is hybrid; InitHybrid allocates exactly them.
  static std::vector<model::PlannedBuffer> HybridHostBuffers(const model::ModelConfig& c,
                                                             int64_t n_batch,
                                                             int64_t biased_layers);
  ~CachedExpertProvider() override;

  void OnFfnInput(int layer, const float* x, int64_t n_tok) override;
  absl::Status Compute(int layer, const float* x, int64_t n_tok, const int32_t* ids,
                       const float* weights, int k, float* out) override;

  OffloadStats stats() const;
  const model::MemoryPlan& plan() const { return plan_; }
  // Hybrid mode's host RAM as allocated (the host runner's CPU backend's
  // memory, input rows, bias copies): plan().host_ram_total(); 0 otherwise.
  uint64_t hybrid_host_bytes() const;
  // The device expert cache (not with the mmap tier, which has none).
  const cache::ExpertCache& cache() const { return *cache_; }
  std::string_view tier() const { return tier_; }  // "host", "nvme" or "mmap"
  // One line: tier, reader, slots, policy, prefetch, miss policy.
  std::string Describe() const;

 private:
  CachedExpertProvider(kernels::Backend& b, const model::ModelConfig& c, const model::ModelWeights& w,
                       OffloadOptions o)
      : backend_(b), c_(c), w_(w), opt_(std::move(o)), host_alloc_(&b) {}
  absl::Status Init(const io::GgufFile& file, int64_t n_batch);
  // Gate prediction's device buffers: scores, ids, values.
  static std::array<model::PlannedBuffer, 3> PredictionBuffers(const model::ModelConfig& c,
                                                               int64_t n_batch);
  absl::Status OpenTier(const io::GgufFile& file);
  absl::Status PredictNext(int layer, const float* x, int64_t n_tok);
  // Observes layer's routing and prefetches the lookahead predictor's
  // confident guesses for the layers after the next.
  absl::Status PrefetchAhead(int layer, const int32_t* ids, int64_t n_tok, int k);
  bool ChooseHostCompute(ExpertKey k) const;
  model::ExpertWeights View(int layer, int expert, const uint8_t* blob) const;
  // mmap tier: the expert's matrices where the file is mapped.
  model::ExpertWeights MappedView(int layer, int expert) const;
  absl::Status ComputeMapped(int layer, const float* x, int64_t n_tok, float* out);
  // Computes groups_run_ with views_ and releases handles_run_ after it.
  void RunBatch(const float* x, int64_t n_tok);
  // Hybrid: the CPU backend, its runner and the cost model's bandwidths.
  absl::Status InitHybrid(int64_t n_batch);
  // Hybrid: host_groups_ on the CPU from host_x_, rows copied into runner_'s.
  absl::Status RunHostGroups(int layer, const int32_t* ids, const float* weights, int64_t n_tok,
                             int k);

  kernels::Backend& backend_;
  const model::ModelConfig& c_;
  const model::ModelWeights& w_;
  OffloadOptions opt_;
  model::MemoryPlan plan_;
  std::string tier_;
  bool host_compute_ok_ = false;
  kernels::LinkProfile link_;
  // Hybrid mode on a device backend (experts on host, miss policy host or
  // auto): a CPU backend computes missed experts from the host tier while the
  // device computes the resident ones. Bandwidths measured at Init, GB/s.
  std::unique_ptr<kernels::Backend> host_be_;
  std::unique_ptr<ExpertFfnRunner> host_runner_;
  std::vector<float> host_x_;
  // Per-expert biases (gpt-oss) copied to host memory, per layer: gate, up
  // ([n_expert, n_ff_exp]) and down ([n_expert, n_embd]); empty: none.
  std::vector<std::array<std::vector<float>, 3>> host_bias_;
  double host_gbps_ = 0, link_gbps_ = 0, device_gbps_ = 0;

  // Destroyed in reverse: cache before loader before tiers before memory.
  cache::BackendHostAllocator host_alloc_;
  std::shared_ptr<const io::ExpertLayout> layout_;
  std::unique_ptr<io::ExpertReader> reader_;
  std::unique_ptr<io::HostTier> host_;
  const uint8_t* map_ = nullptr;  // mmap tier: the whole file, read-only
  size_t map_bytes_ = 0;
  std::unique_ptr<policies::EvictionPolicy> policy_;
  cache::SteadyClock clock_;
  std::unique_ptr<cache::TierLoader> loader_;
  std::unique_ptr<cache::ExpertCache> cache_;
  std::unique_ptr<ExpertFfnRunner> runner_;

  // Gate prediction: device scores [n_batch, n_expert], ids/values [n_batch, k].
  float* pred_scores_ = nullptr;
  int32_t* pred_ids_dev_ = nullptr;
  float* pred_vals_dev_ = nullptr;
  std::vector<int32_t> pred_ids_;
  std::vector<int> pred_count_;
  size_t multi_token_prefetch_cap_ = 0;  // set with the cache
  std::vector<ExpertKey> pending_prefetch_;
  std::vector<ExpertKey> next_keep_;  // the next layer's predicted experts
  std::unique_ptr<policies::PrefetchPredictor> ahead_;
  uint64_t tokens_seen_ = 0;
  std::vector<policies::ExpertGuess> guesses_;
  std::vector<ExpertKey> ahead_keys_;
  absl::Status sticky_;

  // Reused per Compute.
  std::vector<int32_t> experts_;
  std::vector<cache::ExpertHandle> handles_;
  std::vector<int> pending_;
  std::vector<ExpertGroup> groups_run_;
  std::vector<model::ExpertWeights> views_;
  std::vector<const model::ExpertWeights*> view_ptrs_;
  std::vector<cache::ExpertHandle*> handles_run_;
  std::vector<ExpertGroup> host_groups_;  // hybrid: this layer's groups for host_runner_
  std::vector<model::ExpertWeights> host_views_;
  std::vector<const model::ExpertWeights*> host_view_ptrs_;
  uint64_t host_computed_ = 0;
};

}  // namespace moestream::engine

#endif  // MOESTREAM_ENGINE_CACHED_EXPERT_PROVIDER_H_
