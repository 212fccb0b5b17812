// HostTier: contents equal the GGUF ranges, budgets are hard, faults during
// loading free everything.
#include <cstring>

#include "gtest/gtest.h"
#include "io/fake_reader.h"
#include "io/host_tier.h"
#include "tests/io/tier_test_util.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

class HostTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.Path("m.gguf");
    tiertest::WriteTierModel(path_, {});
    layout_ = tiertest::LoadLayout(path_);
    ASSERT_NE(layout_, nullptr);
    options_.show_progress = false;
  }
  std::unique_ptr<ExpertReader> Reader() {
    ReaderOptions o;
    o.block_bytes = 8192;
    o.queue_depth = 8;
    auto r = OpenExpertReader(layout_, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return std::move(r).value();
  }
  testing::ScratchDir dir_;
  std::string path_;
  std::shared_ptr<const ExpertLayout> layout_;
  HostTierOptions options_;
};

TEST_F(HostTierTest, ContentsEqualGgufRanges) {
  AlignedHostAllocator alloc;
  auto reader = Reader();
  uint64_t last_done = 0, calls = 0;
  auto tier = HostTier::Load(layout_, *reader, alloc, options_, [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, last_done);
    EXPECT_EQ(total, HostTier::RequiredBytes(*layout_));
    last_done = done;
    ++calls;
  });
  ASSERT_TRUE(tier.ok()) << tier.status();
  EXPECT_EQ(last_done, HostTier::RequiredBytes(*layout_));
  EXPECT_GT(calls, 0u);
  EXPECT_EQ((*tier)->bytes(), HostTier::RequiredBytes(*layout_));
  EXPECT_EQ(alloc.used_bytes(), (*tier)->bytes());
  // Independent reference: the raw file bytes at each expert's GGUF range.
  std::string file = testing::ReadFileOrDie(path_);
  auto f = GgufFile::Open(path_);
  ASSERT_TRUE(f.ok());
  for (const ExpertInfo& e : layout_->experts()) {
    tiertest::ExpectBlobMatches(e, (*tier)->Blob(e.layer, e.expert), true);
    for (ExpertMatrix m : {ExpertMatrix::kGate, ExpertMatrix::kUp, ExpertMatrix::kDown}) {
      auto r = f->ExpertRange(e.layer, m, e.expert);
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(std::memcmp((*tier)->Matrix(e.layer, e.expert, m), file.data() + r->offset, r->size), 0);
    }
  }
  EXPECT_EQ((*tier)->Blob(0, 0), nullptr);
  EXPECT_EQ((*tier)->Matrix(1, 99, ExpertMatrix::kUp), nullptr);
  tier->reset();
  EXPECT_EQ(alloc.used_bytes(), 0u);
}

TEST_F(HostTierTest, BudgetTooSmallNamesShortfall) {
  AlignedHostAllocator alloc;
  auto reader = Reader();
  uint64_t need = HostTier::RequiredBytes(*layout_);
  options_.host_budget_bytes = need - 1;
  auto tier = HostTier::Load(layout_, *reader, alloc, options_);
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(tier.status().message().find("short by 1 bytes"), std::string::npos) << tier.status();
  EXPECT_EQ(alloc.high_water_bytes(), 0u);  // refused before allocating
  options_.host_budget_bytes = need;
  EXPECT_TRUE(HostTier::Load(layout_, *reader, alloc, options_).ok());
}

TEST_F(HostTierTest, AllocatorBudgetIsHard) {
  uint64_t need = HostTier::RequiredBytes(*layout_);
  AlignedHostAllocator alloc({.budget_bytes = need - 4096});
  auto reader = Reader();
  auto tier = HostTier::Load(layout_, *reader, alloc, options_);
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(tier.status().message().find("host tier, layer 2"), std::string::npos) << tier.status();
  EXPECT_LE(alloc.high_water_bytes(), need - 4096);
  EXPECT_EQ(alloc.used_bytes(), 0u);
}

TEST_F(HostTierTest, ReadFaultFailsLoadAndFreesEverything) {
  AlignedHostAllocator alloc;
  ReaderOptions o;
  o.block_bytes = 8192;
  auto fake = FakeReader::Create(layout_, testing::ReadFileOrDie(path_), o);
  fake->InjectFault({FakeFault::Kind::kEio, layout_->Find(2, 2)->segments[0].file_offset, -1});
  auto tier = HostTier::Load(layout_, *fake, alloc, options_);
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kDataLoss) << tier.status();
  EXPECT_NE(tier.status().message().find("m.gguf"), std::string::npos);
  EXPECT_EQ(alloc.used_bytes(), 0u);
  EXPECT_EQ(fake->in_flight(), 0u);
}

}  // namespace
}  // namespace moestream::io
