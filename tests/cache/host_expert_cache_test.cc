// HostExpertCache on its own, over the CPU backend's pinned memory: slots
// taken exactly as planned, hits pin, the policy's victim is never a slot a
// read or a copy still uses, a failed read leaves nothing findable.
#include "cache/host_expert_cache.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace moestream::cache {
namespace {

constexpr uint64_t kSlotBytes = 4096 + 100;

std::unique_ptr<kernels::Backend> CpuBackend(uint64_t host_budget) {
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 1;
  bo.host_budget_bytes = host_budget;
  auto be = kernels::CreateBackend(bo);
  EXPECT_TRUE(be.ok()) << be.status();
  return be.ok() ? std::move(*be) : nullptr;
}

policies::PolicyEnv Env() {
  policies::PolicyEnv env;
  env.n_layers = 3;
  env.n_experts = 8;
  env.top_k = 2;
  return env;
}

std::unique_ptr<HostExpertCache> Make(kernels::Backend* be, int slots, const char* policy = "lru") {
  HostCacheOptions o;
  o.slots = slots;
  o.slot_bytes = kSlotBytes;
  o.policy = policy;
  auto hc = HostExpertCache::Create(be, o, Env());
  EXPECT_TRUE(hc.ok()) << hc.status();
  return hc.ok() ? std::move(*hc) : nullptr;
}

// Reserve + a successful read + the copy done: `k` cached, unpinned.
int Fill(HostExpertCache& hc, ExpertKey k) {
  const int s = hc.Reserve(k);
  if (s < 0) return s;
  hc.data(s)[0] = uint8_t(k.expert);
  hc.Filled(s, true);
  hc.Unpin(s);
  return s;
}

TEST(HostExpertCacheTest, AllocatesExactlyItsSlotsAndFreesThem) {
  auto be = CpuBackend(3 * kSlotBytes);
  {
    auto hc = Make(be.get(), 3);
    ASSERT_NE(hc, nullptr);
    EXPECT_EQ(be->host_pinned_memory().used_bytes, 3 * kSlotBytes);
    EXPECT_EQ(hc->slot_count(), 3);
    EXPECT_EQ(hc->policy_name(), "lru");
  }
  EXPECT_EQ(be->host_pinned_memory().used_bytes, 0u);
  EXPECT_EQ(be->host_pinned_memory().high_water_bytes, 3 * kSlotBytes);
  // One slot more than the budget holds: a clear error, nothing leaked.
  HostCacheOptions o;
  o.slots = 4;
  o.slot_bytes = kSlotBytes;
  auto bad = HostExpertCache::Create(be.get(), o, Env());
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("slot 3 of 4"), std::string::npos) << bad.status();
  EXPECT_EQ(be->host_pinned_memory().used_bytes, 0u);
}

TEST(HostExpertCacheTest, UnknownOrUnusablePolicyIsAnError) {
  auto be = CpuBackend(0);
  HostCacheOptions o;
  o.slots = 2;
  o.slot_bytes = kSlotBytes;
  o.policy = "nosuch";
  auto hc = HostExpertCache::Create(be.get(), o, Env());
  EXPECT_EQ(hc.status().code(), absl::StatusCode::kInvalidArgument) << hc.status();
  EXPECT_NE(hc.status().message().find("--host-cache-policy"), std::string::npos);
  o.policy = "min";  // needs the future, which a live run does not have
  EXPECT_FALSE(HostExpertCache::Create(be.get(), o, Env()).ok());
  o.policy = "lru";
  o.slots = 0;
  EXPECT_FALSE(HostExpertCache::Create(be.get(), o, Env()).ok());
}

TEST(HostExpertCacheTest, HitsPinAndFindTheBytesKept) {
  auto be = CpuBackend(0);
  auto hc = Make(be.get(), 2);
  ASSERT_NE(hc, nullptr);
  const ExpertKey a{1, 3}, b{2, 5};
  EXPECT_EQ(hc->Lookup(a), -1);
  const int sa = Fill(*hc, a);
  ASSERT_GE(sa, 0);
  const int hit = hc->Lookup(a);
  EXPECT_EQ(hit, sa);
  EXPECT_EQ(hc->users(sa), 1);
  EXPECT_EQ(hc->data(hit)[0], 3);
  EXPECT_EQ(hc->Lookup(b), -1);
  hc->Unpin(hit);
  EXPECT_EQ(hc->users(sa), 0);
  hc->CheckInvariants();
}

TEST(HostExpertCacheTest, EvictionNeverTakesASlotInUse) {
  auto be = CpuBackend(0);
  auto hc = Make(be.get(), 3);
  ASSERT_NE(hc, nullptr);
  const ExpertKey k1{1, 1}, k2{1, 2}, k3{1, 3}, k4{1, 4}, k5{2, 0};
  const int s1 = Fill(*hc, k1), s2 = Fill(*hc, k2), s3 = Fill(*hc, k3);
  ASSERT_TRUE(s1 >= 0 && s2 >= 0 && s3 >= 0);
  // A copy reads k1; then k2 and k3 are used, so k1 is the least recently
  // used, and the one LRU would give up if pins did not count.
  ASSERT_EQ(hc->Lookup(k1), s1);
  for (ExpertKey k : {k2, k3}) hc->Unpin(hc->Lookup(k));
  const int s4 = hc->Reserve(k4);
  EXPECT_EQ(s4, s2);
  EXPECT_EQ(hc->evictions(), 1u);
  EXPECT_EQ(hc->Lookup(k2), -1);
  // k4 is still being read and k1 still copied; k3 is the only candidate.
  const int s5 = hc->Reserve(k5);
  EXPECT_EQ(s5, s3);
  // Every slot is filling or read: nothing can be taken.
  EXPECT_EQ(hc->Reserve({2, 7}), -1);
  EXPECT_EQ(hc->evictions(), 2u);
  hc->CheckInvariants();
  // A filling slot is not findable until its read lands.
  EXPECT_EQ(hc->Lookup(k4), -1);
  hc->Filled(s4, true);
  EXPECT_EQ(hc->Lookup(k4), s4);
  EXPECT_EQ(hc->users(s4), 2);  // the read's copy and this hit
  // A failed read frees its slot and caches nothing.
  hc->Filled(s5, false);
  EXPECT_EQ(hc->Lookup(k5), -1);
  EXPECT_EQ(hc->Reserve({2, 7}), s5);
  hc->CheckInvariants();
  hc->Unpin(s1);
  hc->Unpin(s4);
  hc->Unpin(s4);
  hc->Filled(s5, true);
  hc->Unpin(s5);
  hc->CheckInvariants();
}

TEST(HostExpertCacheTest, TwoReadsOfOneKeyKeepOneFindableCopy) {
  auto be = CpuBackend(0);
  auto hc = Make(be.get(), 2);
  ASSERT_NE(hc, nullptr);
  const ExpertKey k{1, 1};
  const int a = hc->Reserve(k), b = hc->Reserve(k);
  ASSERT_TRUE(a >= 0 && b >= 0 && a != b);
  hc->Filled(a, true);
  hc->Filled(b, true);  // the second copy stays private to its reader
  EXPECT_EQ(hc->Lookup(k), a);
  hc->CheckInvariants();
  hc->Unpin(b);         // its copy done: b is free again
  EXPECT_EQ(hc->Reserve({1, 2}), b);
  hc->CheckInvariants();
}

}  // namespace
}  // namespace moestream::cache
