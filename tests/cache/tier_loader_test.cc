// The live loader: ExpertCache + TierLoader on the CPU backend, whose copy
// engine is a real thread. Every byte that lands in a slot is checked against
// the generator's pattern; injected read faults surface as errors from Wait
// with no hang. The stress test is the one to run under
// -DMOESTREAM_SANITIZE=thread.
#include "cache/tier_loader.h"

#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "cache/expert_cache.h"
#include "gtest/gtest.h"
#include "io/fake_reader.h"
#include "kernels/backend.h"
#include "tests/cache/cache_test_util.h"
#include "tests/io/tier_test_util.h"
#include "tests/test_util.h"

namespace moestream::cache {
namespace {

namespace tt = io::tiertest;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct LiveRig {
  moestream::testing::ScratchDir dir;
  std::string path;
  std::shared_ptr<const io::ExpertLayout> layout;
  std::unique_ptr<kernels::Backend> backend;
  SteadyClock clock;
  testing::TestLru lru;

  void Setup(const std::string& link, uint64_t device_budget) {
    path = dir.Path("m.gguf");
    tt::WriteTierModel(path, {.stacked = true, .n_experts = 5});
    layout = tt::LoadLayout(path);
    ASSERT_NE(layout, nullptr);
    kernels::BackendOptions bo;
    bo.kind = "cpu";
    bo.threads = 1;
    bo.link = link;
    bo.device_budget_bytes = device_budget;
    auto be = kernels::CreateBackend(bo);
    ASSERT_TRUE(be.ok()) << be.status();
    backend = std::move(*be);
  }
  ExpertCacheOptions CacheOptions(int slots, bool per_layer) const {
    ExpertCacheOptions o;
    o.n_layers = 3;
    o.n_experts = 5;
    o.slots = slots;
    o.per_layer = per_layer;
    o.slot_bytes = layout->max_blob_bytes();
    return o;
  }
  // The model file in memory behind a FakeReader (buffered I/O rules).
  std::unique_ptr<io::FakeReader> Fake(uint64_t seed) const {
    return io::FakeReader::Create(layout, ReadAll(path), io::ReaderOptions{}, /*direct=*/false,
                                  seed);
  }
  // Reads the slot back through the backend and checks every byte.
  void Verify(const ExpertHandle& h) {
    const io::ExpertInfo* e = layout->Find(h.key().layer, h.key().expert);
    ASSERT_NE(e, nullptr);
    std::vector<uint8_t> buf(e->blob_bytes);
    ASSERT_TRUE(backend->CopyToHost(buf.data(), h.data(), buf.size()).ok());
    tt::ExpectBlobMatches(*e, buf.data(), true);
  }
};

void Stress(LiveRig& rig, ExpertLoader* loader, ExpertCacheOptions o, int steps, uint64_t seed) {
  testing::TestLru lru;  // a fresh policy: it mirrors this cache only
  auto cache = ExpertCache::Create(o, loader, &rig.clock, &lru, rig.backend.get());
  ASSERT_TRUE(cache.ok()) << cache.status();
  ExpertCache& c = **cache;
  std::mt19937_64 rng(seed);
  std::vector<ExpertHandle> held;
  for (int step = 0; step < steps; ++step) {
    const int layer = 1 + int(rng() % 2);
    std::vector<int32_t> ids = {int32_t(rng() % 5)};
    int32_t e2 = int32_t(rng() % 5);
    if (e2 != ids[0] && int(o.slots) >= 2) ids.push_back(e2);
    std::vector<ExpertHandle> hs;
    ASSERT_TRUE(c.Acquire(layer, ids, &hs).ok());
    if (rng() % 2) {
      std::vector<ExpertKey> pf = {{uint16_t(3 - layer), uint16_t(rng() % 5)},
                                   {uint16_t(3 - layer), uint16_t(rng() % 5)}};
      ASSERT_TRUE(c.Prefetch(pf).ok());
    }
    // Ready ones first, then the rest as they land.
    for (auto& h : hs) {
      if (h.ready()) rig.Verify(h);
    }
    for (auto& h : hs) {
      if (h.ready()) continue;
      held.clear();  // free every older pin so a deferred miss can be placed
      absl::Status s = c.Wait(h);
      ASSERT_TRUE(s.ok()) << s;
      rig.Verify(h);
    }
    for (auto& h : hs) {
      if (rng() % 4 == 0) {
        held.push_back(std::move(h));
      } else {
        h.Release(&rig.backend->compute_stream());
      }
    }
    while (held.size() > 1) held.erase(held.begin());
    if (step % 64 == 0) c.CheckInvariants();
  }
  held.clear();
  ASSERT_TRUE(c.Drain().ok());
  c.CheckInvariants();
  CacheStats st = c.stats();
  EXPECT_EQ(st.total.demand_hits + st.total.demand_misses, st.total.accesses);
  EXPECT_GT(st.total.loads, 0u);
  EXPECT_EQ(st.total.load_errors, 0u);
  if (rig.backend->device_memory().budget_bytes > 0) {
    EXPECT_LE(rig.backend->device_memory().high_water_bytes,
              rig.backend->device_memory().budget_bytes);
  }
}

TEST(TierLoaderTest, HostTierStressEveryByteChecked) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup("none", 8 * 53248));
  io::ReaderOptions ro;
  ro.kind = "pread";
  ro.direct_io = false;
  auto reader = io::OpenExpertReader(rig.layout, ro);
  ASSERT_TRUE(reader.ok()) << reader.status();
  BackendHostAllocator alloc(rig.backend.get());
  io::HostTierOptions ho;
  ho.show_progress = false;
  auto host = io::HostTier::Load(rig.layout, **reader, alloc, ho);
  ASSERT_TRUE(host.ok()) << host.status();
  TierLoaderOptions lo;
  lo.copies_in_flight_max = 2;
  auto loader = TierLoader::Create(rig.backend.get(), TierSource::Host(**host), lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  Stress(rig, loader->get(), rig.CacheOptions(3, false), 1500, 7);
  Stress(rig, loader->get(), rig.CacheOptions(2, true), 1500, 8);
}

TEST(TierLoaderTest, NvmeTierThroughFakeReaderStress) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup("none", 0));
  auto fake = io::FakeReader::Create(rig.layout, ReadAll(rig.path), io::ReaderOptions{},
                                     /*direct=*/false, /*seed=*/3);
  TierLoaderOptions lo;
  lo.staging_buffers = 3;
  auto loader = TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  Stress(rig, loader->get(), rig.CacheOptions(4, false), 1500, 9);
}

TEST(TierLoaderTest, ThrottledLinkStress) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup("pcie4x16", 0));
  auto fake = io::FakeReader::Create(rig.layout, ReadAll(rig.path), io::ReaderOptions{},
                                     /*direct=*/false, /*seed=*/5);
  auto loader = TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), {});
  ASSERT_TRUE(loader.ok()) << loader.status();
  Stress(rig, loader->get(), rig.CacheOptions(3, true), 300, 11);
}

TEST(TierLoaderTest, ReadFaultIsAnErrorFromWaitAndTheCacheCarriesOn) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup("none", 0));
  auto fake = io::FakeReader::Create(rig.layout, ReadAll(rig.path), io::ReaderOptions{},
                                     /*direct=*/false, /*seed=*/1);
  const io::ExpertInfo* bad = rig.layout->Find(1, 2);
  ASSERT_NE(bad, nullptr);
  fake->InjectFault({io::FakeFault::Kind::kEio, bad->segments[0].file_offset, -1});
  auto loader = TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), {});
  ASSERT_TRUE(loader.ok()) << loader.status();
  auto cache = ExpertCache::Create(rig.CacheOptions(3, false), loader->get(), &rig.clock,
                                   &rig.lru, rig.backend.get());
  ASSERT_TRUE(cache.ok()) << cache.status();
  ExpertCache& c = **cache;
  for (int round = 0; round < 3; ++round) {
    std::vector<ExpertHandle> hs;
    std::vector<int32_t> ids = {1, 2, 3};
    ASSERT_TRUE(c.Acquire(1, ids, &hs).ok());
    absl::Status s1 = c.Wait(hs[0]);
    absl::Status s2 = c.Wait(hs[1]);
    absl::Status s3 = c.Wait(hs[2]);
    EXPECT_TRUE(s1.ok()) << s1;
    EXPECT_TRUE(s3.ok()) << s3;
    EXPECT_FALSE(s2.ok());
    EXPECT_FALSE(hs[1].valid());
    EXPECT_NE(s2.message().find("2"), std::string::npos) << s2;
    rig.Verify(hs[0]);
    rig.Verify(hs[2]);
    hs.clear();
    EXPECT_FALSE(c.Contains({1, 2}));
    c.CheckInvariants();
  }
  // A prefetch of the bad expert fails quietly and frees its slot.
  std::vector<ExpertKey> pf = {{1, 2}};
  ASSERT_TRUE(c.Prefetch(pf).ok());
  ASSERT_TRUE(c.Drain().ok());
  EXPECT_FALSE(c.Contains({1, 2}));
  c.CheckInvariants();
  EXPECT_EQ(c.stats().total.load_errors, 4u);
}

// ---- the host expert cache between NVMe and the device ----

// Runs `ids` of `layer` through the cache one at a time, waiting for each
// and checking its bytes.
void AcquireEach(LiveRig& rig, ExpertCache& c, int layer, const std::vector<int32_t>& ids) {
  for (int32_t e : ids) {
    std::vector<ExpertHandle> hs;
    const int32_t one[1] = {e};
    ASSERT_TRUE(c.Acquire(layer, one, &hs).ok());
    ASSERT_TRUE(c.Wait(hs[0]).ok());
    rig.Verify(hs[0]);
  }
}

TEST(TierLoaderHostCacheTest, HitsSkipTheNvmeReadAndCountAsHostReads) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup("none", 0));
  auto fake = rig.Fake(4);
  TierLoaderOptions lo;
  lo.staging_buffers = 2;
  lo.host_cache_slots = 10;  // every expert of the model
  auto loader = TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  TierLoader& l = **loader;
  // Two device slots: each pass evicts every expert from the device.
  auto cache = ExpertCache::Create(rig.CacheOptions(2, false), &l, &rig.clock, &rig.lru,
                                   rig.backend.get());
  ASSERT_TRUE(cache.ok()) << cache.status();
  ExpertCache& c = **cache;
  const std::vector<int32_t> all = {0, 1, 2, 3, 4};
  ASSERT_NO_FATAL_FAILURE(AcquireEach(rig, c, 1, all));
  ASSERT_NO_FATAL_FAILURE(AcquireEach(rig, c, 2, all));
  ASSERT_TRUE(c.Drain().ok());
  const uint64_t reads = fake->stats().experts_read;
  EXPECT_EQ(reads, 10u);
  HostCacheStats h = l.host_cache_stats();
  EXPECT_EQ(h.slots, 10u);
  EXPECT_EQ(h.misses, 10u);
  EXPECT_EQ(h.fills, 10u);
  EXPECT_EQ(h.hits, 0u);
  // Again: the device cache misses every time, the host cache never.
  ASSERT_NO_FATAL_FAILURE(AcquireEach(rig, c, 1, all));
  ASSERT_NO_FATAL_FAILURE(AcquireEach(rig, c, 2, all));
  ASSERT_TRUE(c.Drain().ok());
  EXPECT_EQ(fake->stats().experts_read, reads) << "a host-cache hit read NVMe";
  h = l.host_cache_stats();
  EXPECT_EQ(h.hits, 10u);
  EXPECT_EQ(h.misses, 10u);
  EXPECT_EQ(h.evictions, 0u);
  EXPECT_EQ(h.host_bytes, h.nvme_bytes);
  const CacheCounters t = c.stats().total;
  EXPECT_EQ(t.demand_misses, 20u);
  EXPECT_EQ(t.tier_bytes[int(Tier::kHost)], h.host_bytes);
  EXPECT_EQ(t.tier_bytes[int(Tier::kNvme)], h.nvme_bytes);
  l.CheckHostCacheInvariants();
  c.CheckInvariants();
}

// Fewer host slots than experts, few staging buffers, reads and copies in
// flight together: hits, evictions and staging fallbacks all happen, and
// every byte that lands in a device slot is the expert's. An eviction that
// took a slot still being filled or copied from would show as a wrong byte.
void HostCacheStress(const std::string& link, int host_slots, int staging, uint64_t seed) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup(link, 0));
  auto fake = rig.Fake(seed);
  TierLoaderOptions lo;
  lo.staging_buffers = staging;
  lo.reads_in_flight_max = 8;
  lo.copies_in_flight_max = 3;
  lo.host_cache_slots = host_slots;
  auto loader = TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  TierLoader& l = **loader;
  Stress(rig, &l, rig.CacheOptions(3, false), 600, seed);
  l.CheckHostCacheInvariants();
  const HostCacheStats h = l.host_cache_stats();
  EXPECT_GT(h.hits, 0u);
  EXPECT_GT(h.evictions, 0u);
  // Every miss, and only a miss, read NVMe.
  EXPECT_EQ(fake->stats().experts_read, h.misses);
  EXPECT_EQ(h.fills + h.bypassed, h.misses);
  EXPECT_EQ(h.nvme_bytes, fake->stats().bytes_delivered);
}

TEST(TierLoaderHostCacheTest, StressEveryByteChecked) {
  HostCacheStress("none", 4, 1, 21);
}

TEST(TierLoaderHostCacheTest, ThrottledLinkStressSlowCopiesHoldTheirHostSlots) {
  // Copies take long: host slots stay pinned while reads want them.
  HostCacheStress("pcie4x16", 2, 1, 22);
}

TEST(TierLoaderHostCacheTest, AFailedReadCachesNothing) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup("none", 0));
  auto fake = rig.Fake(2);
  const io::ExpertInfo* bad = rig.layout->Find(1, 2);
  ASSERT_NE(bad, nullptr);
  fake->InjectFault({io::FakeFault::Kind::kEio, bad->segments[0].file_offset, 1});
  TierLoaderOptions lo;
  lo.host_cache_slots = 4;
  auto loader = TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), lo);
  ASSERT_TRUE(loader.ok()) << loader.status();
  auto cache = ExpertCache::Create(rig.CacheOptions(3, false), loader->get(), &rig.clock,
                                   &rig.lru, rig.backend.get());
  ASSERT_TRUE(cache.ok()) << cache.status();
  ExpertCache& c = **cache;
  {
    std::vector<ExpertHandle> hs;
    const int32_t ids[1] = {2};
    ASSERT_TRUE(c.Acquire(1, ids, &hs).ok());
    EXPECT_FALSE(c.Wait(hs[0]).ok());
  }
  (*loader)->CheckHostCacheInvariants();
  // The fault fired once: the next load reads NVMe again (the failed bytes
  // were never kept) and gets the right ones; the one after is a hit.
  const uint64_t reads = fake->stats().experts_read;
  ASSERT_NO_FATAL_FAILURE(AcquireEach(rig, c, 1, {2}));
  EXPECT_EQ(fake->stats().experts_read, reads + 1);
  ASSERT_NO_FATAL_FAILURE(AcquireEach(rig, c, 1, {0, 1, 3}));  // device slots: 3, 2 leaves
  ASSERT_NO_FATAL_FAILURE(AcquireEach(rig, c, 1, {2}));
  ASSERT_TRUE(c.Drain().ok());
  const HostCacheStats h = (*loader)->host_cache_stats();
  EXPECT_EQ(h.hits, 1u);
  EXPECT_EQ(h.misses, 4u);
  (*loader)->CheckHostCacheInvariants();
}

TEST(TierLoaderHostCacheTest, OptionsAreChecked) {
  LiveRig rig;
  ASSERT_NO_FATAL_FAILURE(rig.Setup("none", 0));
  auto fake = rig.Fake(1);
  TierLoaderOptions lo;
  lo.host_cache_slots = 2;
  lo.read_into_slot = true;
  EXPECT_FALSE(TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), lo).ok());
  lo.read_into_slot = false;
  lo.host_cache_policy = "nosuch";
  auto bad = TierLoader::Create(rig.backend.get(), TierSource::Nvme(*fake), lo);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("nosuch"), std::string::npos) << bad.status();
  EXPECT_EQ(rig.backend->host_pinned_memory().used_bytes, 0u);
}

}  // namespace
}  // namespace moestream::cache
