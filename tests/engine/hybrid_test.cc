// Hybrid mode on a device backend: missed experts computed on the host CPU
// from the host tier while the device computes the resident ones, their rows
// copied back to the device before Scatter. A CPU backend under another name
// stands for the device (only a backend other than "cpu" takes this path),
// so the test runs without a GPU; the logits must be bit-identical to the
// fully resident run (the host runner uses the same CPU kernels).
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cached_expert_provider.h"
#include "engine/engine.h"
#include "engine/expert_provider.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "model/model_config.h"
#include "model/weights.h"
#include "tests/kernels/forwarding_backend.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using kernels::testing::RefusingBackend;

std::unique_ptr<kernels::Backend> Cpu() {
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 2;
  auto be = kernels::CreateBackend(bo);
  EXPECT_TRUE(be.ok()) << be.status();
  return std::move(be).value();
}

std::vector<float> Decode(Engine& e, const std::vector<int32_t>& prompt) {
  std::vector<float> out;
  EXPECT_TRUE(e.Process(prompt, LogitsMode::kAll).ok());
  out.assign(e.logits().begin(), e.logits().end());
  for (int32_t tok : {5, 9, 200, 7}) {
    EXPECT_TRUE(e.Process({&tok, 1}, LogitsMode::kLast).ok());
    out.insert(out.end(), e.logits().begin(), e.logits().end());
  }
  return out;
}

TEST(HybridTest, MissesComputedOnTheHostWhileTheDeviceWorksMatchTheResidentRun) {
  const std::string dir = testing::SharedPath("reference/qwen3moe-tiny-a");
  auto f = io::GgufFile::Open(dir + "/qwen3moe-tiny-a.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  auto c = model::ReadModelConfig(*f);
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<int32_t> prompt;
  {
    std::istringstream ss(testing::ReadFileOrDie(dir + "/tokens.txt"));
    for (int32_t v; ss >> v;) prompt.push_back(v);
  }
  EngineOptions eo;
  eo.n_ctx = 256;
  eo.n_batch = 64;
  eo.all_logits = true;

  std::unique_ptr<kernels::Backend> cpu = Cpu();
  auto w = model::ModelWeights::Load(*f, *c, *cpu, model::WeightsOptions{});
  ASSERT_TRUE(w.ok()) << w.status();
  auto resident = ResidentExpertProvider::Create(*cpu, *c, **w, eo.n_batch);
  ASSERT_TRUE(resident.ok()) << resident.status();
  auto e = Engine::Create(*cpu, *c, **w, resident->get(), eo);
  ASSERT_TRUE(e.ok()) << e.status();
  const std::vector<float> want = Decode(**e, prompt);

  RefusingBackend dev(Cpu(), "device");
  model::WeightsOptions wo;
  wo.upload_routed_experts = false;
  auto dw = model::ModelWeights::Load(*f, *c, dev, wo);
  ASSERT_TRUE(dw.ok()) << dw.status();
  OffloadOptions o;
  o.experts_on = "host";
  o.miss_policy = MissPolicy::kHost;
  o.device_budget_bytes = uint64_t{1} << 30;
  o.slots = int(c->n_expert_used);  // most selections miss
  o.n_ctx = eo.n_ctx;
  o.all_logits = true;
  auto p = CachedExpertProvider::Create(dev, *f, *c, **dw, eo.n_batch, o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NE((*p)->Describe().find("hybrid: host"), std::string::npos) << (*p)->Describe();
  auto he = Engine::Create(dev, *c, **dw, p->get(), eo);
  ASSERT_TRUE(he.ok()) << he.status();
  const std::vector<float> got = Decode(**he, prompt);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
  EXPECT_GT((*p)->stats().host_computed, 0u);

  // The host compute's workspaces are host RAM the plan lists (apart from
  // the pinned buffers), and the plan is what was allocated.
  const model::MemoryPlan& plan = (*p)->plan();
  ASSERT_FALSE(plan.host_ram.empty());
  EXPECT_EQ(plan.host_ram_total(),
            model::TotalBytes(CachedExpertProvider::HybridHostBuffers(*c, eo.n_batch, 0)));
  EXPECT_EQ((*p)->hybrid_host_bytes(), plan.host_ram_total());
  EXPECT_NE(plan.Json().find("\"hybrid.experts.x\""), std::string::npos) << plan.Json();
  EXPECT_NE(plan.Text().find("host RAM"), std::string::npos) << plan.Text();
}

// Only a hybrid run plans host RAM: a device backend with misses given to the
// host, experts in the host tier.
TEST(HybridTest, HostRamIsPlannedOnlyForAHybridRun) {
  const std::string dir = testing::SharedPath("reference/qwen3moe-tiny-a");
  auto f = io::GgufFile::Open(dir + "/qwen3moe-tiny-a.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  auto c = model::ReadModelConfig(*f);
  ASSERT_TRUE(c.ok()) << c.status();
  OffloadOptions o;
  o.experts_on = "host";
  o.device_budget_bytes = uint64_t{1} << 30;
  o.n_ctx = 256;
  struct Case {
    const char* backend;
    MissPolicy miss;
    bool hybrid;
  };
  for (const Case& k : {Case{"cuda", MissPolicy::kAuto, true}, Case{"cuda", MissPolicy::kHost, true},
                        Case{"cuda", MissPolicy::kCopy, false}, Case{"cpu", MissPolicy::kHost, false}}) {
    o.backend_kind = k.backend;
    o.miss_policy = k.miss;
    auto plan = PlanOffload(*f, o, 64);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->host_ram.empty(), !k.hybrid) << k.backend << " " << MissPolicyName(k.miss);
    if (k.hybrid) {
      EXPECT_EQ(plan->host_ram_total(),
                model::TotalBytes(CachedExpertProvider::HybridHostBuffers(*c, 64, 0)));
      for (const model::PlannedBuffer& b : plan->host_ram) {
        EXPECT_EQ(b.use, model::MemoryUse::kHostWorkspace) << b.name;
      }
    }
  }
  // Per-expert biases (gpt-oss) add a host copy per biased layer.
  const std::string gdir = testing::SharedPath("reference/gpt-oss-tiny-a");
  auto g = io::GgufFile::Open(gdir + "/gpt-oss-tiny-a.gguf");
  ASSERT_TRUE(g.ok()) << g.status();
  auto gc = model::ReadModelConfig(*g);
  ASSERT_TRUE(gc.ok()) << gc.status();
  o.backend_kind = "cuda";
  o.miss_policy = MissPolicy::kAuto;
  auto gplan = PlanOffload(*g, o, 64);
  ASSERT_TRUE(gplan.ok()) << gplan.status();
  ASSERT_FALSE(gplan->host_ram.empty());
  const model::PlannedBuffer& bias = gplan->host_ram.back();
  ASSERT_EQ(bias.name, "hybrid.expert_bias");
  EXPECT_EQ(bias.count, uint64_t(gc->n_layer));
  EXPECT_EQ(bias.bytes, uint64_t(gc->n_expert * (2 * gc->n_ff_exp + gc->n_embd)) * sizeof(float));
}

}  // namespace
}  // namespace moestream::engine
