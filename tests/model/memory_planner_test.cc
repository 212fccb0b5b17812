// The memory planner against sums computed here from the GGUF's tensor table
// (independently of the planner's own classification), and its decisions at
// the edges of the budgets. (That the engine allocates exactly the plan is
// tested in tests/engine/plan_test.cc.)
#include "model/memory_planner.h"

#include <string>

#include "model/model_config.h"
#include "model/weights.h"

#include "gtest/gtest.h"
#include "io/gguf.h"
#include "gen/model_gen.h"
#include "tests/test_util.h"

namespace moestream::model {
namespace {

using ::moestream::testing::MoestreamBin;
using ::moestream::testing::RunCommand;
using ::moestream::testing::ScratchDir;

class MemoryPlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gen::GenOptions o;  // tiny qwen3moe: 2 layers, 8 experts top-2
    path_ = dir_.Path("m.gguf");
    ASSERT_TRUE(gen::GenerateModel(o, path_).ok());
    auto f = io::GgufFile::Open(path_);
    ASSERT_TRUE(f.ok()) << f.status();
    file_ = std::make_unique<io::GgufFile>(std::move(*f));
    for (const auto& t : file_->tensors()) {
      if (t.name.find("_exps.") != std::string::npos) {
        expert_tensor_bytes_ += t.size_bytes;
      } else {
        resident_tensor_bytes_ += t.size_bytes;
      }
    }
  }

  // The weights as ModelWeights would upload them plus a KV cache and a
  // scratch buffer of the sizes given.
  PlanOptions Options(uint64_t kv_bytes, uint64_t scratch_bytes) const {
    auto c = ReadModelConfig(*file_);
    EXPECT_TRUE(c.ok()) << c.status();
    auto weights = ModelWeights::PlanBuffers(*file_, *c, false);
    EXPECT_TRUE(weights.ok()) << weights.status();
    PlanOptions po;
    po.device_fixed = *weights;
    po.device_fixed.push_back({"kv", kv_bytes, 1, MemoryUse::kKvCache});
    po.device_fixed.push_back({"scratch", scratch_bytes, 1, MemoryUse::kScratch});
    return po;
  }

  ScratchDir dir_;
  std::string path_;
  std::unique_ptr<io::GgufFile> file_;
  uint64_t resident_tensor_bytes_ = 0;
  uint64_t expert_tensor_bytes_ = 0;
};

TEST_F(MemoryPlannerTest, SizesFollowTheTensorTable) {
  PlanOptions po = Options(1000, 300);
  po.device_budget_bytes = 1ull << 30;
  po.host_budget_bytes = 1ull << 30;
  auto p = PlanMemory(*file_, po);
  ASSERT_TRUE(p.ok()) << p.status();
  // The generator writes F32 norms: uploaded as they are.
  EXPECT_EQ(p->resident_bytes, resident_tensor_bytes_);
  EXPECT_EQ(p->kv_cache_bytes, 1000u);
  EXPECT_EQ(p->scratch_bytes, 300u);
  EXPECT_EQ(p->device_fixed_bytes, resident_tensor_bytes_ + 1300);
  EXPECT_EQ(p->device_total(), p->device_fixed_bytes + p->slot_device_bytes);
  EXPECT_EQ(p->experts_total, 2u * 8u);
  // Blobs are the three matrices padded: at least the raw bytes.
  EXPECT_GE(p->expert_bytes, expert_tensor_bytes_);
  EXPECT_LT(p->expert_bytes, expert_tensor_bytes_ + p->experts_total * 3 * 4096);
  EXPECT_TRUE(p->fits);
  EXPECT_TRUE(p->all_experts_resident);  // 1 GiB holds everything
  // Every expert on the device: they come from the file, nothing is pinned
  // but the reader's buffers.
  EXPECT_EQ(p->experts_tier, "nvme");
}

TEST_F(MemoryPlannerTest, SlotsAreWhatTheBudgetLeaves) {
  PlanOptions po = Options(4096, 8192);
  po.host_budget_bytes = 1ull << 30;
  po.device_budget_bytes = 1ull << 30;
  auto big = PlanMemory(*file_, po);
  ASSERT_TRUE(big.ok());
  const uint64_t fixed = big->device_fixed_bytes, slot = big->slot_bytes;
  ASSERT_GT(slot, 0u);
  for (uint64_t slots : {2u, 3u, 7u}) {
    po.device_budget_bytes = fixed + slots * slot;
    auto p = PlanMemory(*file_, po);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->slots_global, slots);
    EXPECT_TRUE(p->fits) << p->message;
    EXPECT_LE(p->device_fixed_bytes + p->slot_device_bytes, po.device_budget_bytes);
    EXPECT_EQ(p->device_total(), p->device_fixed_bytes + slots * slot);
  }
  // One slot cannot serve a token that routes to two experts.
  po.device_budget_bytes = fixed + slot;
  auto p = PlanMemory(*file_, po);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->fits);
  EXPECT_NE(p->message.find("short"), std::string::npos) << p->message;
  // Not even the resident part.
  po.device_budget_bytes = resident_tensor_bytes_ / 2;
  p = PlanMemory(*file_, po);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->fits);
}

TEST_F(MemoryPlannerTest, ExpertsGoToNvmeWhenTheHostBudgetIsShort) {
  PlanOptions po = Options(4096, 8192);
  po.device_budget_bytes = 1ull << 30;
  po.host_budget_bytes = 1ull << 30;
  auto host = PlanMemory(*file_, po);
  ASSERT_TRUE(host.ok());
  // Room for 4 slots only, so the experts need a tier below the device.
  po.device_budget_bytes = host->device_fixed_bytes + 4 * host->slot_bytes;
  ASSERT_EQ(PlanMemory(*file_, po)->experts_tier, "host");
  EXPECT_EQ(PlanMemory(*file_, po)->host_total(), host->expert_bytes);
  po.host_budget_bytes = host->expert_bytes - 1;
  auto p = PlanMemory(*file_, po);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->experts_tier, "nvme");
  po.experts_on = "host";
  p = PlanMemory(*file_, po);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->fits);
}

TEST_F(MemoryPlannerTest, CliPrintsJsonAndFailsWithOneLine) {
  auto ok = RunCommand(MoestreamBin() + " plan -m " + path_ +
                       " --device-budget 1G --host-budget 1G --json");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("\"fits\":true"), std::string::npos) << ok.out;
  auto bad = RunCommand(MoestreamBin() + " plan -m " + path_ +
                        " --device-budget 64K --host-budget 1G");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  auto flag = RunCommand(MoestreamBin() + " plan -m " + path_ + " --device-budget lots");
  EXPECT_NE(flag.exit_code, 0);
  EXPECT_NE(flag.err.find("device-budget"), std::string::npos) << flag.err;
}

}  // namespace
}  // namespace moestream::model
