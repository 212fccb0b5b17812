// Expert offloading end to end: logits with every routed expert streamed
// through the device expert cache (CachedExpertProvider) are bit-identical
// to the all-resident run, for many randomised configurations of device
// budget, tier, reader, eviction policy, prefetch, miss policy and link;
// the device and host high-water marks stay within their budgets; an
// impossible budget and an injected I/O error are clear errors, not hangs.
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/expert_layout.h"
#include "io/fake_reader.h"
#include "io/gguf.h"
#include "policies/eviction_policy.h"
#include "engine/cached_expert_provider.h"
#include "model/memory_planner.h"
#include "gen/model_gen.h"
#include "engine/session.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::MoestreamBin;
using ::moestream::testing::ReadFileOrDie;
using ::moestream::testing::ScratchDir;

constexpr int kThreads = 2;
constexpr int64_t kBatch = 16;
constexpr int64_t kCtx = 64;

// One model for the whole suite: 3 MoE layers of 8 experts, top-2, Q8_0.
class OffloadTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    path_ = dir_->Path("m.gguf");
    gen::GenOptions g;
    g.layers = 3;
    g.hidden = 256;
    g.heads = 4;
    g.kv_heads = 2;
    g.head_dim = 64;
    g.experts = 8;
    g.top_k = 2;
    g.expert_ffn = 256;
    g.ffn = 256;
    g.vocab = 256;
    g.context = 128;
    g.type = GgmlType::kQ8_0;
    g.threads = kThreads;
    ASSERT_TRUE(gen::GenerateModel(g, path_).ok());
    image_ = new std::string(ReadFileOrDie(path_));
    auto f = io::GgufFile::Open(path_);
    ASSERT_TRUE(f.ok()) << f.status();
    OffloadOptions po;
    po.device_budget_bytes = uint64_t(1) << 40;
    po.host_budget_bytes = uint64_t(1) << 40;
    po.n_ctx = kCtx;
    po.kv_type = GgmlType::kF32;
    po.all_logits = true;
    auto plan = PlanOffload(*f, po, kBatch);
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = new model::MemoryPlan(*plan);
    // The all-resident reference.
    reference_ = new std::vector<float>();
    auto m = Load(kernels::BackendOptions{}, LoadOptions{});
    ASSERT_TRUE(m.ok()) << m.status();
    *reference_ = Logits(**m);
    ASSERT_FALSE(reference_->empty());
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete plan_;
    delete image_;
    delete dir_;
  }

  static absl::StatusOr<std::unique_ptr<LoadedModel>> Load(kernels::BackendOptions bo,
                                                           const LoadOptions& lo) {
    bo.kind = "cpu";
    bo.threads = kThreads;
    EngineOptions eo;
    eo.n_ctx = kCtx;
    eo.n_batch = kBatch;
    eo.all_logits = true;
    return LoadModel(path_, bo, eo, lo);
  }

  // The model with its routed experts offloaded as `o` says, on a backend
  // with o's budgets and link.
  static absl::StatusOr<std::unique_ptr<LoadedModel>> LoadOffloaded(
      OffloadOptions o, CachedExpertProvider** p = nullptr) {
    o.all_logits = true;  // Logits() reads every prompt position
    LoadOptions lo;
    lo.upload_routed_experts = false;
    lo.provider_factory = CachedExpertProvider::Factory(o, p);
    kernels::BackendOptions bo;
    bo.device_budget_bytes = o.device_budget_bytes;
    bo.host_budget_bytes = o.host_budget_bytes;
    bo.link = o.link;
    return Load(bo, lo);
  }

  // Logits of a 20-token prompt (two batches, every position) and of 8
  // single-token decode steps, concatenated; empty on error (reported).
  static std::vector<float> Logits(LoadedModel& m, absl::Status* error = nullptr) {
    std::vector<int32_t> prompt;
    for (int i = 0; i < 20; ++i) prompt.push_back((i * 37 + 11) % 256);
    std::vector<float> out;
    absl::Status s = m.engine->Process(prompt, LogitsMode::kAll);
    if (s.ok()) out.assign(m.engine->logits().begin(), m.engine->logits().end());
    for (int i = 0; s.ok() && i < 8; ++i) {
      const int32_t tok = (i * 53 + 7) % 256;
      s = m.engine->Process({&tok, 1}, LogitsMode::kLast);
      if (s.ok()) out.insert(out.end(), m.engine->logits().begin(), m.engine->logits().end());
    }
    if (error != nullptr) *error = s;
    if (!s.ok()) {
      if (error == nullptr) ADD_FAILURE() << s;
      out.clear();
    }
    return out;
  }

  static ScratchDir* dir_;
  static std::string path_;
  static std::string* image_;
  static model::MemoryPlan* plan_;
  static std::vector<float>* reference_;
};

ScratchDir* OffloadTest::dir_ = nullptr;
std::string OffloadTest::path_;
std::string* OffloadTest::image_ = nullptr;
model::MemoryPlan* OffloadTest::plan_ = nullptr;
std::vector<float>* OffloadTest::reference_ = nullptr;

struct Config {
  uint64_t device_budget = 0;
  uint64_t host_budget = 0;
  std::string tier;      // host | nvme
  std::string reader;    // fake | pread | auto
  std::string policy;
  std::string prefetch;
  MissPolicy miss = MissPolicy::kCopy;
  std::string link;
  std::string Describe() const {
    return absl::StrCat("budget ", device_budget, " host ", host_budget, " tier ", tier,
                        " reader ", reader, " policy ", policy, " prefetch ", prefetch, " miss ",
                        std::string(MissPolicyName(miss)), " link ", link);
  }
};

ExpertReaderFactory FakeReaderFactory(const std::string& image) {
  return [&image](std::shared_ptr<const io::ExpertLayout> layout,
                  io::HostAllocator*) -> absl::StatusOr<std::unique_ptr<io::ExpertReader>> {
    io::ReaderOptions ro;
    ro.queue_depth = 4;
    ro.block_bytes = 64 << 10;
    return std::unique_ptr<io::ExpertReader>(io::FakeReader::Create(layout, image, ro));
  };
}

TEST_F(OffloadTest, BitIdenticalToResidentAcrossRandomConfigurations) {
  std::vector<std::string> policies;
  for (const std::string& name : policies::EvictionPolicyNames()) {
    policies::PolicyEnv env;
    env.n_layers = 3;
    env.n_experts = 8;
    env.top_k = 2;
    env.capacity = 4;
    if (policies::CreateEvictionPolicy(name, env).ok()) policies.push_back(name);
  }
  ASSERT_GE(policies.size(), 2u);
  uint64_t fixed_no_prefetch = 0;
  {
    auto f = io::GgufFile::Open(path_);
    ASSERT_TRUE(f.ok()) << f.status();
    OffloadOptions o;
    o.device_budget_bytes = uint64_t(1) << 40;
    o.n_ctx = kCtx;
    o.all_logits = true;
    o.prefetch = "none";
    auto p = PlanOffload(*f, o, kBatch);
    ASSERT_TRUE(p.ok()) << p.status();
    fixed_no_prefetch = p->device_fixed_bytes;
  }
  const uint64_t slot = plan_->slot_bytes;
  const uint64_t top_k = uint64_t(plan_->n_expert_used);
  std::mt19937_64 rng(20260);
  std::mt19937_64 host_rng(7);
  const int kConfigs = 36;
  for (int i = 0; i < kConfigs; ++i) {
    Config c;
    // From "just fits top-k" to every expert resident.
    const uint64_t slots = top_k + rng() % (plan_->experts_total - top_k + 1);
    const uint64_t extra = rng() % 2 ? slot - 1 : 0;
    c.tier = rng() % 2 ? "host" : "nvme";
    c.reader = std::vector<std::string>{"fake", "pread", "auto"}[rng() % 3];
    c.policy = policies[rng() % policies.size()];
    c.prefetch = rng() % 2 ? "gate" : "none";
    // The fixed part depends on the prefetcher's buffers.
    const uint64_t fixed = c.prefetch == "gate" ? plan_->device_fixed_bytes : fixed_no_prefetch;
    c.device_budget = fixed + slots * slot + extra;
    c.miss = c.tier == "host" && rng() % 3 == 0 ? MissPolicy::kHost : MissPolicy::kCopy;
    c.link = rng() % 2 ? "pcie4x16" : "none";
    io::ReaderOptions ro;
    ro.kind = c.reader == "fake" ? "auto" : c.reader;
    ro.queue_depth = 4;
    ro.block_bytes = 64 << 10;
    const uint64_t staging = 8 * slot + ro.queue_depth * ro.block_bytes;
    c.host_budget = c.tier == "host" ? plan_->expert_bytes + rng() % (4 * slot)
                                     : staging + rng() % (4 * slot);
    SCOPED_TRACE(c.Describe());

    OffloadOptions o;
    o.device_budget_bytes = c.device_budget;
    o.host_budget_bytes = c.host_budget;
    o.experts_on = c.tier;
    o.cache_policy = c.policy;
    // Its own generator, so the configurations above stay what they were.
    o.host_cache_policy = policies[host_rng() % policies.size()];
    SCOPED_TRACE(absl::StrCat("host cache policy ", o.host_cache_policy));
    o.prefetch = c.prefetch;
    // Speculation further ahead must not change the output either.
    o.prefetch_lookahead = 1 + int(rng() % 3);
    o.prefetch_min_confidence = double(rng() % 3) / 4;
    o.miss_policy = c.miss;
    o.link = c.link;
    o.n_ctx = kCtx;
    o.reader = ro;
    if (c.reader == "fake") o.open_reader = FakeReaderFactory(*image_);
    CachedExpertProvider* p = nullptr;
    auto m = LoadOffloaded(o, &p);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->cache().total_slots(), int(slots));
    const std::vector<float> got = Logits(**m);
    ASSERT_EQ(got.size(), reference_->size());
    EXPECT_EQ(std::memcmp(got.data(), reference_->data(), got.size() * sizeof(float)), 0)
        << "logits differ from the all-resident run";
    // The plan is the allocation: the run's high-water marks are its totals.
    EXPECT_EQ((*m)->backend->device_memory().high_water_bytes, p->plan().device_total());
    EXPECT_LE(p->plan().device_total(), c.device_budget);
    EXPECT_EQ((*m)->backend->host_pinned_memory().high_water_bytes, p->plan().host_total());
    const OffloadStats s = p->stats();
    EXPECT_GT(s.cache.accesses, 0u);
    EXPECT_EQ(s.cache.demand_hits + s.cache.demand_misses, s.cache.accesses);
    if (c.prefetch == "none") {
      EXPECT_EQ(s.cache.prefetch_issued, 0u);
    }
    p->cache().CheckInvariants();
    const kernels::MemoryStats dev = (*m)->backend->device_memory();
    const kernels::MemoryStats host = (*m)->backend->host_pinned_memory();
    EXPECT_LE(dev.high_water_bytes, c.device_budget);
    EXPECT_LE(host.high_water_bytes, c.host_budget);
  }
}

// Three tiers: experts on NVMe, a host budget that caches 10 of the 24
// experts in host RAM beyond the staging buffers, 4 device slots. The host
// cache is what the plan says, the logits are the all-resident ones, and a
// repeated prompt is served partly from host RAM instead of NVMe.
TEST_F(OffloadTest, HostCacheBetweenNvmeAndDeviceHoldsPartOfTheExperts) {
  const uint64_t blob = plan_->max_blob_bytes;
  const int kHostSlots = 10;
  ASSERT_GT(plan_->experts_total, uint64_t(kHostSlots));
  OffloadOptions o;
  o.experts_on = "nvme";
  o.device_budget_bytes = plan_->device_fixed_bytes + 4 * plan_->slot_bytes;
  o.n_ctx = kCtx;
  o.open_reader = FakeReaderFactory(*image_);  // no reader ring in the budget
  const int staging = ResolveLoaderOptions(o, plan_->n_expert_used, 1).staging_buffers;
  o.host_budget_bytes = (uint64_t(staging) + kHostSlots) * blob + blob / 2;
  CachedExpertProvider* p = nullptr;
  auto m = LoadOffloaded(o, &p);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_NE(p, nullptr);
  const model::MemoryPlan& plan = p->plan();
  EXPECT_EQ(plan.experts_tier, "nvme");
  EXPECT_EQ(plan.host_cache_slots, uint64_t(kHostSlots));
  EXPECT_EQ(model::TotalBytes(plan.host, model::MemoryUse::kStaging), uint64_t(staging) * blob);
  EXPECT_NE(p->Describe().find("host cache of 10 experts"), std::string::npos) << p->Describe();

  const std::vector<float> got = Logits(**m);
  ASSERT_EQ(got.size(), reference_->size());
  EXPECT_EQ(std::memcmp(got.data(), reference_->data(), got.size() * sizeof(float)), 0)
      << "logits differ from the all-resident run";
  const OffloadStats first = p->stats();
  EXPECT_EQ(first.host_cache.slots, uint64_t(kHostSlots));
  EXPECT_GT(first.host_cache.misses, 0u);
  EXPECT_GT(first.host_cache.evictions, 0u);  // 24 experts, 10 host slots

  // The same prompt again from position 0: bit-identical, and some loads
  // that the device cache misses now come from host RAM, not NVMe.
  (*m)->engine->Reset();
  const std::vector<float> again = Logits(**m);
  ASSERT_EQ(again.size(), reference_->size());
  EXPECT_EQ(std::memcmp(again.data(), reference_->data(), again.size() * sizeof(float)), 0);
  const OffloadStats w = p->stats().Minus(first);
  EXPECT_GT(w.host_cache.hits, 0u);
  EXPECT_GT(w.host_cache.hit_rate(), 0.0);
  EXPECT_GT(w.cache.tier_bytes[int(cache::Tier::kHost)], 0u);
  EXPECT_EQ(w.cache.tier_bytes[int(cache::Tier::kHost)], w.host_cache.host_bytes);
  // The plan is the allocation, the host cache included.
  EXPECT_EQ((*m)->backend->host_pinned_memory().high_water_bytes, plan.host_total());
  EXPECT_LE(plan.host_total(), o.host_budget_bytes);
  EXPECT_EQ((*m)->backend->device_memory().high_water_bytes, plan.device_total());
  p->cache().CheckInvariants();
}

// Without a host budget, or with one that holds only the staging, there is
// no host cache and an NVMe read lands in its device slot (cpu, no link).
TEST_F(OffloadTest, NoHostCacheWithoutRoomForOne) {
  OffloadOptions o;
  o.experts_on = "nvme";
  o.device_budget_bytes = plan_->device_fixed_bytes + 4 * plan_->slot_bytes;
  o.n_ctx = kCtx;
  o.all_logits = true;
  o.open_reader = FakeReaderFactory(*image_);
  auto f = io::GgufFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  auto unlimited = PlanOffload(*f, o, kBatch);
  ASSERT_TRUE(unlimited.ok()) << unlimited.status();
  EXPECT_EQ(unlimited->host_cache_slots, 0u);
  EXPECT_EQ(unlimited->host_total(), 0u);  // reads land in the slots
  const int staging = ResolveLoaderOptions(o, plan_->n_expert_used, 1).staging_buffers;
  o.host_budget_bytes = uint64_t(staging) * plan_->max_blob_bytes + plan_->max_blob_bytes - 1;
  auto tight = PlanOffload(*f, o, kBatch);
  ASSERT_TRUE(tight.ok()) << tight.status();
  EXPECT_EQ(tight->host_cache_slots, 0u);
  EXPECT_EQ(tight->host_total(), 0u);
  o.host_budget_bytes += 1;  // now one host slot fits beside the staging
  auto one = PlanOffload(*f, o, kBatch);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->host_cache_slots, 1u);
  EXPECT_EQ(one->host_total(), o.host_budget_bytes);
}

TEST_F(OffloadTest, HostMissPolicyComputesOnTheHostAndCopiesNothing) {
  OffloadOptions o;
  o.device_budget_bytes = plan_->device_fixed_bytes + 3 * plan_->slot_bytes;
  o.experts_on = "host";
  o.prefetch = "none";
  o.miss_policy = MissPolicy::kHost;
  o.n_ctx = kCtx;
  CachedExpertProvider* p = nullptr;
  auto m = LoadOffloaded(o, &p);
  ASSERT_TRUE(m.ok()) << m.status();
  const OffloadStats before = p->stats();
  const std::vector<float> got = Logits(**m);
  ASSERT_EQ(got.size(), reference_->size());
  EXPECT_EQ(std::memcmp(got.data(), reference_->data(), got.size() * sizeof(float)), 0);
  const OffloadStats s = p->stats().Minus(before);
  EXPECT_EQ(s.host_computed, s.cache.accesses);
  EXPECT_EQ(s.cache.link_bytes, 0u);
  EXPECT_EQ(s.cache.loads, 0u);
}

TEST_F(OffloadTest, MmapTierComputesInPlaceFromTheMappedFile) {
  OffloadOptions o;
  o.device_budget_bytes = plan_->device_fixed_bytes;  // no room for a single slot
  o.experts_on = "mmap";
  o.n_ctx = kCtx;
  CachedExpertProvider* p = nullptr;
  auto m = LoadOffloaded(o, &p);
  ASSERT_TRUE(m.ok()) << m.status();
  const OffloadStats before = p->stats();
  const std::vector<float> got = Logits(**m);
  ASSERT_EQ(got.size(), reference_->size());
  EXPECT_EQ(std::memcmp(got.data(), reference_->data(), got.size() * sizeof(float)), 0);
  const OffloadStats s = p->stats().Minus(before);
  EXPECT_GT(s.host_computed, 0u);
  EXPECT_EQ(s.cache.link_bytes, 0u);
  // No slots, no pinned memory: the plan, and what was allocated.
  EXPECT_EQ(p->plan().slots_global, 0u);
  EXPECT_EQ((*m)->backend->device_memory().high_water_bytes, p->plan().device_total());
  EXPECT_EQ((*m)->backend->host_pinned_memory().high_water_bytes, 0u);
  // Only the cpu backend computes where the file is mapped.
  o.miss_policy = MissPolicy::kHost;
  EXPECT_FALSE(LoadOffloaded(o).ok());
}

TEST_F(OffloadTest, ImpossibleBudgetIsAClearError) {
  OffloadOptions o;
  o.device_budget_bytes = plan_->device_fixed_bytes + plan_->slot_bytes;  // top-2 needs 2
  o.n_ctx = kCtx;
  auto m = LoadOffloaded(o);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted) << m.status();
  EXPECT_NE(m.status().message().find("short"), std::string_view::npos) << m.status();

  // The command line: one line on stderr, non-zero exit.
  const auto r = ::moestream::testing::RunCommand(
      MoestreamBin() + " run -m " + path_ + " --prompt-ids 1,2,3 -n 2 --device-budget 64K");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("short"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(OffloadTest, InjectedReadErrorIsAClearErrorNotAHang) {
  auto f = io::GgufFile::Open(path_);
  ASSERT_TRUE(f.ok());
  auto layout = io::ExpertLayout::FromGguf(*f);
  ASSERT_TRUE(layout.ok());
  // Every expert of layer 1 fails to read, on every attempt.
  std::vector<io::FakeFault> faults;
  for (const io::ExpertInfo& e : layout->experts()) {
    if (e.layer == 1) faults.push_back({io::FakeFault::Kind::kEio, e.segments[0].file_offset, -1});
  }
  for (const std::string tier : {"nvme", "host"}) {
    SCOPED_TRACE(tier);
    OffloadOptions o;
    o.device_budget_bytes = plan_->device_fixed_bytes + 4 * plan_->slot_bytes;
    o.experts_on = tier;
    o.n_ctx = kCtx;
    o.open_reader = [&](std::shared_ptr<const io::ExpertLayout> l, io::HostAllocator*)
        -> absl::StatusOr<std::unique_ptr<io::ExpertReader>> {
      io::ReaderOptions ro;
      ro.queue_depth = 4;
      ro.block_bytes = 64 << 10;
      auto r = io::FakeReader::Create(l, *image_, ro);
      for (const io::FakeFault& fault : faults) r->InjectFault(fault);
      return std::unique_ptr<io::ExpertReader>(std::move(r));
    };
    auto m = LoadOffloaded(o);
    absl::Status s = m.status();
    if (m.ok()) Logits(**m, &s);  // nvme: the error comes with the first load
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("m.gguf"), std::string_view::npos) << s;
    EXPECT_NE(s.message().find("Input/output error"), std::string_view::npos) << s;
  }
}

}  // namespace
}  // namespace moestream::engine
