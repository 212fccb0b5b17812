// The CPU backend's device side: budgeted arenas, pinned memory, streams,
// events and the throttled copy engine; backend selection.
#include "kernels/cpu/cpu_backend.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"

namespace moestream::kernels {
namespace {

std::unique_ptr<Backend> MakeCpu(BackendOptions o = {}) {
  o.kind = "cpu";
  auto be = CreateBackend(o);
  EXPECT_TRUE(be.ok()) << be.status();
  return std::move(be).value();
}

TEST(CpuBackendTest, DescribesItself) {
  BackendOptions o;
  o.threads = 3;
  o.link = "pcie4x16";
  auto be = MakeCpu(o);
  EXPECT_EQ(be->name(), "cpu");
  const std::string d = be->Describe();
  EXPECT_NE(d.find("3 threads"), std::string::npos) << d;
  EXPECT_NE(d.find("pcie4x16"), std::string::npos) << d;
}

TEST(CpuBackendTest, RejectsBadOptions) {
  BackendOptions o;
  o.kind = "cpu";
  o.link = "pcie9x1";
  EXPECT_EQ(CreateBackend(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.link = "none";
  o.isa = "neon";
  EXPECT_EQ(CreateBackend(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuBackendTest, CudaKindWithoutGpuIsUnavailableAndAutoFallsBack) {
  BackendOptions o;
  o.kind = "cuda";
  auto cuda = CreateBackend(o);
  if (cuda.ok()) GTEST_SKIP() << "a usable GPU is present: " << (*cuda)->Describe();
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnavailable) << cuda.status();
  o.kind = "auto";
  auto be = CreateBackend(o);
  ASSERT_TRUE(be.ok()) << be.status();
  EXPECT_EQ((*be)->name(), "cpu");
}

TEST(CpuBackendTest, DeviceBudgetIsHard) {
  BackendOptions o;
  o.device_budget_bytes = 1000;
  auto be = MakeCpu(o);
  auto a = be->DeviceAlloc(600, "blk.0.ffn_up");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*a) % 64, 0u);
  auto b = be->DeviceAlloc(401, "blk.1.ffn_down");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string msg(b.status().message());
  EXPECT_NE(msg.find("blk.1.ffn_down"), std::string::npos) << msg;
  EXPECT_NE(msg.find("401"), std::string::npos) << msg;
  EXPECT_NE(msg.find("600"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1000"), std::string::npos) << msg;
  auto c = be->DeviceAlloc(400, "exact fit");
  ASSERT_TRUE(c.ok());
  MemoryStats s = be->device_memory();
  EXPECT_EQ(s.used_bytes, 1000u);
  EXPECT_EQ(s.high_water_bytes, 1000u);
  EXPECT_EQ(s.budget_bytes, 1000u);
  be->DeviceFree(*a);
  be->DeviceFree(*c);
  s = be->device_memory();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.high_water_bytes, 1000u);
  auto d = be->DeviceAlloc(1000, "again");
  ASSERT_TRUE(d.ok());
  std::memset(*d, 0xAB, 1000);  // the memory is really there
  be->DeviceFree(*d);
}

TEST(CpuBackendTest, RandomAllocationsNeverExceedBudget) {
  BackendOptions o;
  o.device_budget_bytes = 1 << 20;
  auto be = MakeCpu(o);
  std::vector<std::pair<void*, size_t>> live;
  uint64_t used = 0, high = 0;
  uint32_t seed = 1;
  for (int i = 0; i < 2000; ++i) {
    seed = seed * 1664525u + 1013904223u;
    if ((seed >> 28) < 10 || live.empty()) {
      const size_t n = (seed >> 8) % 200000;
      auto p = be->DeviceAlloc(n, "x");
      if (used + n <= o.device_budget_bytes) {
        ASSERT_TRUE(p.ok()) << i;
        live.emplace_back(*p, n);
        used += n;
        high = std::max(high, used);
      } else {
        ASSERT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted);
      }
    } else {
      const size_t k = (seed >> 4) % live.size();
      be->DeviceFree(live[k].first);
      used -= live[k].second;
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    ASSERT_EQ(be->device_memory().used_bytes, used);
    ASSERT_LE(be->device_memory().used_bytes, o.device_budget_bytes);
  }
  EXPECT_EQ(be->device_memory().high_water_bytes, high);
  for (auto& [p, n] : live) be->DeviceFree(p);
}

TEST(CpuBackendTest, PinnedMemoryIsPageAlignedAndBudgeted) {
  BackendOptions o;
  o.host_budget_bytes = 10000;
  auto be = MakeCpu(o);
  auto a = be->HostPinnedAlloc(8192, "host tier");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*a) % 4096, 0u);
  auto b = be->HostPinnedAlloc(2000, "staging");
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(be->host_pinned_memory().used_bytes, 8192u);
  be->HostPinnedFree(*a);
  EXPECT_EQ(be->host_pinned_memory().used_bytes, 0u);
}

// The "THPeligible" line of the /proc/self/smaps mapping that holds `p`:
// 1 when the kernel may back it with transparent huge pages, -1 if absent.
int ThpEligible(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= lo && a < hi;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::stoi(line.substr(12));
    }
  }
  return -1;
}

bool ThpNever() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::stringstream ss;
  ss << f.rdbuf();
  return !f || ss.str().find("[never]") != std::string::npos;
}

TEST(CpuBackendTest, LargeBuffersStartOnHugePagesAndAreUsableToTheLastByte) {
  auto be = MakeCpu();
  for (size_t n : {size_t{2} << 20, (size_t{5} << 20) + 123, (size_t{64} << 20) + 4096}) {
    auto d = be->DeviceAlloc(n, "stacked experts");
    auto h = be->HostPinnedAlloc(n, "host tier");
    ASSERT_TRUE(d.ok() && h.ok());
    for (void* p : {*d, *h}) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (size_t{2} << 20), 0u) << n;
      std::memset(p, 0x5a, n);  // every byte asked for is mapped and writable
      EXPECT_EQ(static_cast<uint8_t*>(p)[n - 1], 0x5a);
      if (!ThpNever()) {
        EXPECT_EQ(ThpEligible(p), 1) << "no MADV_HUGEPAGE on a " << n << " B block";
      }
    }
    EXPECT_EQ(be->device_memory().used_bytes, n);  // the budget counts what was asked
    EXPECT_EQ(be->host_pinned_memory().used_bytes, n);
    be->DeviceFree(*d);
    be->HostPinnedFree(*h);
  }
  // Small blocks stay with the allocator and keep their alignment.
  auto s = be->DeviceAlloc(1000, "norm");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(*s) % 64, 0u);
  be->DeviceFree(*s);
  EXPECT_EQ(be->device_memory().used_bytes, 0u);
}

TEST(CpuBackendTest, AsyncCopyLandsAndEventsOrder) {
  auto be = MakeCpu();
  const size_t n = 3 << 20;
  auto src = be->HostPinnedAlloc(n, "src");
  auto dst = be->DeviceAlloc(n, "dst");
  ASSERT_TRUE(src.ok() && dst.ok());
  auto* s = static_cast<uint8_t*>(*src);
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<uint8_t>(i * 31 + 7);
  auto stream = be->CreateStream(StreamKind::kCopy);
  auto e1 = be->CreateEvent();
  auto e2 = be->CreateEvent();
  ASSERT_TRUE(stream.ok() && e1.ok() && e2.ok());
  EXPECT_TRUE((*e1)->Query());  // never recorded: complete
  ASSERT_TRUE(be->CopyToDeviceAsync(*dst, s, n / 2, **stream).ok());
  ASSERT_TRUE((*stream)->Record(**e1).ok());
  ASSERT_TRUE(be->CopyToDeviceAsync(static_cast<uint8_t*>(*dst) + n / 2, s + n / 2, n / 2, **stream).ok());
  ASSERT_TRUE((*stream)->Record(**e2).ok());
  // The compute stream waits on the last event; then everything has landed.
  ASSERT_TRUE(be->compute_stream().Wait(**e2).ok());
  EXPECT_TRUE((*e1)->Query());
  EXPECT_TRUE((*e2)->Query());
  EXPECT_EQ(std::memcmp(*dst, s, n), 0);
  const LinkStats ls = be->link_stats();
  EXPECT_EQ(ls.copies, 2u);
  EXPECT_EQ(ls.bytes, n);
  be->HostPinnedFree(*src);
  be->DeviceFree(*dst);
}

TEST(CpuBackendTest, AsyncCopyRejectsUnpinnedSource) {
  auto be = MakeCpu();
  std::vector<uint8_t> host(100);
  auto dst = be->DeviceAlloc(100, "dst");
  auto stream = be->CreateStream(StreamKind::kCopy);
  absl::Status st = be->CopyToDeviceAsync(*dst, host.data(), 100, **stream);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  be->DeviceFree(*dst);
}

TEST(CpuBackendTest, CopyStreamWaitsOnAnotherStreamsEvent) {
  BackendOptions o;
  o.link = "pcie3x4";  // slow enough that the first copy is still running
  auto be = MakeCpu(o);
  const size_t n = 4 << 20;
  auto src = be->HostPinnedAlloc(2 * n, "src");
  auto dst = be->DeviceAlloc(2 * n, "dst");
  std::memset(*src, 1, n);
  std::memset(static_cast<uint8_t*>(*src) + n, 2, n);
  auto a = be->CreateStream(StreamKind::kCopy);
  auto b = be->CreateStream(StreamKind::kCopy);
  auto ea = be->CreateEvent();
  auto eb = be->CreateEvent();
  ASSERT_TRUE(be->CopyToDeviceAsync(*dst, *src, n, **a).ok());
  ASSERT_TRUE((*a)->Record(**ea).ok());
  ASSERT_TRUE((*b)->Wait(**ea).ok());
  // Stream b copies over the same bytes after a's copy: the result is b's.
  ASSERT_TRUE(be->CopyToDeviceAsync(*dst, static_cast<uint8_t*>(*src) + n, n, **b).ok());
  ASSERT_TRUE((*b)->Record(**eb).ok());
  ASSERT_TRUE((*eb)->Synchronize().ok());
  EXPECT_TRUE((*ea)->Query());
  const auto* d = static_cast<const uint8_t*>(*dst);
  for (size_t i = 0; i < n; i += 4096) ASSERT_EQ(d[i], 2) << i;
  ASSERT_TRUE((*a)->Synchronize().ok());
  be->HostPinnedFree(*src);
  be->DeviceFree(*dst);
}

TEST(LinkProfileTest, NamedAndCustomProfiles) {
  for (const char* name : {"pcie3x4", "pcie3x16", "pcie4x16", "pcie5x16"}) {
    auto p = FindLinkProfile(name);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_GT(p->gbps, 0) << name;
    EXPECT_GT(p->latency_us, 0) << name;
  }
  EXPECT_EQ(FindLinkProfile("none")->gbps, 0);
  auto c = FindLinkProfile("custom:0.5:20");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->gbps, 0.5);
  EXPECT_EQ(c->latency_us, 20);
  EXPECT_EQ(FindLinkProfile("custom:0:20").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FindLinkProfile("custom:fast").status().code(), absl::StatusCode::kInvalidArgument);
}

// The one timing assertion the copy engine needs: a large throttled copy runs
// at the profile's rate (±20%), so overlap schedules behave as on a GPU. The
// rate is set well below memcpy speed on a loaded machine.
TEST(CpuBackendTest, ThrottledLinkMatchesProfileRate) {
  BackendOptions o;
  o.link = "custom:0.25:20";
  auto be = MakeCpu(o);
  auto prof = FindLinkProfile(o.link);
  const size_t n = 32 << 20;
  auto src = be->HostPinnedAlloc(n, "src");
  auto dst = be->DeviceAlloc(n, "dst");
  std::memset(*src, 3, n);
  std::memset(*dst, 0, n);  // fault the pages in before timing
  auto stream = be->CreateStream(StreamKind::kCopy);
  auto ev = be->CreateEvent();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(be->CopyToDeviceAsync(*dst, *src, n, **stream).ok());
  ASSERT_TRUE((*stream)->Record(**ev).ok());
  EXPECT_FALSE((*ev)->Query());  // 134 ms of modelled transfer have not passed
  ASSERT_TRUE((*ev)->Synchronize().ok());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double gbps = n / secs / 1e9;
  // Never faster than the profile; slower only by what a loaded machine (or
  // a sanitizer build) adds to the copy itself.
  EXPECT_GT(gbps, prof->gbps * 0.25) << secs;
  EXPECT_LT(gbps, prof->gbps * 1.2) << secs;
  const LinkStats ls = be->link_stats();
  const double modelled_ns = n / prof->gbps + prof->latency_us * 1e3;
  EXPECT_GE(static_cast<double>(ls.busy_ns), modelled_ns * 0.999);
  be->HostPinnedFree(*src);
  be->DeviceFree(*dst);
}

}  // namespace
}  // namespace moestream::kernels
