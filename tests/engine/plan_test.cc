// The plan is the allocation: over hundreds of random (model shape x device
// budget x context x batch x tier x prefetch) combinations, a plan the
// planner accepts loads and runs, never allocates past its budgets, and its
// high-water marks equal the plan's totals to the byte; a plan it refuses
// fails before loading with the planner's message. Shapes of several GB with
// hundreds of slots are included: their GGUFs are sparse files (header and a
// hole; every weight reads as zero) and the CPU backend's arena reserves
// memory that the run never touches, so the suite stays fast.
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "engine/cached_expert_provider.h"
#include "engine/session.h"
#include "gen/model_gen.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "model/memory_planner.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::ScratchDir;

struct Shape {
  gen::GenOptions gen;
  std::string Describe() const {
    return absl::StrCat(gen.layers, "L hidden ", gen.hidden, " heads ", gen.heads, "/",
                        gen.kv_heads, "x", gen.head_dim, " experts ", gen.experts, " top-",
                        gen.top_k, " ffn ", gen.expert_ffn, " vocab ", gen.vocab, " ",
                        Av(GgmlTypeName(gen.type)));
  }
};

// A model of `shape` whose tensor data is a hole in the file.
std::string WriteSparse(const ScratchDir& dir, const std::string& name, const gen::GenOptions& g) {
  io::GgufWriter w;
  w.SetSparseData();
  auto built = gen::BuildModel(g, &w);
  EXPECT_TRUE(built.ok()) << built.status();
  const std::string path = dir.Path(name);
  absl::Status s = w.Write(path);
  EXPECT_TRUE(s.ok()) << s;
  return path;
}

Shape RandomSmallShape(std::mt19937_64& rng) {
  Shape s;
  gen::GenOptions& g = s.gen;
  g.layers = 1 + int64_t(rng() % 4);
  g.hidden = 64 * (1 + int64_t(rng() % 6));
  g.kv_heads = 1 + int64_t(rng() % 2);
  g.heads = g.kv_heads * (1 + int64_t(rng() % 3));
  g.head_dim = 32 * (1 + int64_t(rng() % 2));
  g.experts = 4 + int64_t(rng() % 29);
  g.top_k = 1 + int64_t(rng() % std::min<uint64_t>(8, uint64_t(g.experts)));
  g.expert_ffn = 64 * (1 + int64_t(rng() % 6));
  g.vocab = 256 * (1 + int64_t(rng() % 8));
  g.context = 512;
  g.type = std::vector<GgmlType>{GgmlType::kQ8_0, GgmlType::kF16, GgmlType::kQ4_0}[rng() % 3];
  g.threads = 1;
  return s;
}

// The realistic shape of the offloading benchmark (4 GB of Q8_0) and a wider
// one with more, smaller experts (hundreds of slots either way).
std::vector<Shape> LargeShapes() {
  Shape mid;
  mid.gen.layers = 12;
  mid.gen.hidden = 2048;
  mid.gen.heads = 16;
  mid.gen.kv_heads = 4;
  mid.gen.head_dim = 128;
  mid.gen.experts = 64;
  mid.gen.top_k = 8;
  mid.gen.expert_ffn = 768;
  mid.gen.vocab = 8192;
  mid.gen.type = GgmlType::kQ8_0;
  mid.gen.threads = 1;
  Shape many = mid;
  many.gen.layers = 16;
  many.gen.experts = 128;
  many.gen.expert_ffn = 256;
  many.gen.hidden = 1024;
  many.gen.heads = 8;
  many.gen.kv_heads = 2;
  return {mid, many};
}

// Plans and (when accepted) loads and runs `prompt` tokens then two decode
// steps; checks the budgets and the plan's totals.
// `*accepted` counts the plans that fit. `host_tier`: the experts may be
// loaded whole into host memory (too slow for the multi-GB shapes).
void CheckCombination(const std::string& path, const Shape& shape, std::mt19937_64& rng,
                      uint64_t fixed, uint64_t slot, uint64_t experts_total, int prompt,
                      bool host_tier, int* accepted) {
  OffloadOptions o;
  const int64_t ctx = 16 << (rng() % 6);  // 16 .. 512
  const int64_t batch = 1 + int64_t(rng() % 64);
  o.n_ctx = ctx;
  o.kv_type = rng() % 2 ? GgmlType::kF16 : GgmlType::kF32;
  o.prefetch = rng() % 2 ? "gate" : "none";
  o.experts_on = host_tier ? std::vector<std::string>{"host", "nvme", "auto"}[rng() % 3] : "nvme";
  o.reader.queue_depth = 2 + int(rng() % 6);
  o.reader.block_bytes = uint64_t(64 << 10) << (rng() % 3);
  o.loader.staging_buffers = 1 + int(rng() % 8);
  // From below the fixed part to every expert resident and beyond.
  const uint64_t top = fixed + (experts_total + 2) * slot;
  o.device_budget_bytes = fixed / 2 + rng() % (top - fixed / 2);
  const uint64_t expert_bytes = experts_total * slot;
  o.host_budget_bytes = rng() % 3 == 0 ? 0 : 1 + rng() % (expert_bytes + expert_bytes / 4);
  SCOPED_TRACE(absl::StrCat(shape.Describe(), "; device ", o.device_budget_bytes, " host ",
                            o.host_budget_bytes, " ctx ", ctx, " batch ", batch, " kv ",
                            Av(GgmlTypeName(o.kv_type)), " tier ", o.experts_on, " prefetch ",
                            o.prefetch, " staging ", o.loader.staging_buffers, " ring ",
                            o.reader.queue_depth, "x", o.reader.block_bytes));

  auto f = io::GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  auto plan = PlanOffloadUnchecked(*f, o, batch);
  ASSERT_TRUE(plan.ok()) << plan.status();

  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 1;
  bo.device_budget_bytes = o.device_budget_bytes;
  bo.host_budget_bytes = o.host_budget_bytes;
  EngineOptions eo;
  eo.n_ctx = ctx;
  eo.kv_type = o.kv_type;
  eo.n_batch = batch;
  LoadOptions lo;
  lo.upload_routed_experts = false;
  CachedExpertProvider* p = nullptr;
  lo.provider_factory = CachedExpertProvider::Factory(o, &p);
  auto m = LoadModel(path, bo, eo, lo);
  if (!plan->fits) {
    // Refused before anything is loaded, with the planner's one line.
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(m.status().message(), plan->message);
    return;
  }
  ASSERT_TRUE(m.ok()) << m.status() << " (the plan said: " << plan->message << ")";
  ++*accepted;
  ASSERT_NE(p, nullptr);
  Engine& e = *(*m)->engine;
  std::vector<int32_t> tokens;
  const int n = int(std::min<int64_t>(prompt, ctx - 2));
  for (int i = 0; i < n; ++i) tokens.push_back(int32_t((i * 31 + 7) % shape.gen.vocab));
  absl::Status s = e.Process(tokens, LogitsMode::kLast);
  ASSERT_TRUE(s.ok()) << s;
  for (int i = 0; i < 2; ++i) {
    const int32_t t = int32_t((i * 13 + 1) % shape.gen.vocab);
    s = e.Process({&t, 1}, LogitsMode::kLast);
    ASSERT_TRUE(s.ok()) << s;
  }
  const kernels::MemoryStats dev = (*m)->backend->device_memory();
  const kernels::MemoryStats host = (*m)->backend->host_pinned_memory();
  EXPECT_EQ(dev.high_water_bytes, plan->device_total());
  EXPECT_LE(dev.high_water_bytes, o.device_budget_bytes);
  EXPECT_EQ(host.high_water_bytes, plan->host_total());
  if (o.host_budget_bytes > 0) {
    EXPECT_LE(host.high_water_bytes, o.host_budget_bytes);
  }
  EXPECT_EQ(p->cache().total_slots(), int(plan->slots_global));
}

// The fixed device part and the slot size of a shape (an all-resident plan).
void FixedAndSlot(const std::string& path, uint64_t* fixed, uint64_t* slot, uint64_t* experts) {
  auto f = io::GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  OffloadOptions o;
  o.device_budget_bytes = uint64_t(1) << 50;
  auto p = PlanOffloadUnchecked(*f, o, 512);
  ASSERT_TRUE(p.ok()) << p.status();
  *fixed = p->device_fixed_bytes;
  *slot = p->slot_bytes;
  *experts = p->experts_total;
}

TEST(PlanIsTheAllocation, KvCacheAndWeightsAgainstTheirOwnArithmetic) {
  ScratchDir dir;
  gen::GenOptions g;  // tiny qwen3moe: 2 layers, 2 kv heads of 64, 8 experts top-2
  const std::string path = WriteSparse(dir, "tiny.gguf", g);
  auto f = io::GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  uint64_t resident = 0;
  for (const auto& t : f->tensors()) {
    if (t.name.find("_exps.") == std::string::npos) resident += t.size_bytes;
  }
  OffloadOptions o;
  o.device_budget_bytes = uint64_t(1) << 40;
  o.n_ctx = 128;
  o.kv_type = GgmlType::kF32;
  auto p = PlanOffloadUnchecked(*f, o, 16);
  ASSERT_TRUE(p.ok()) << p.status();
  // K and V, per layer, n_ctx positions of kv_heads * head_dim F32 values.
  EXPECT_EQ(p->kv_cache_bytes, 2ull * 2 * 128 * (2 * 64) * 4);
  o.kv_type = GgmlType::kF16;
  EXPECT_EQ(PlanOffloadUnchecked(*f, o, 16)->kv_cache_bytes, 2ull * 2 * 128 * (2 * 64) * 2);
  // Norms are F32 in the file: uploaded as they are.
  EXPECT_EQ(p->resident_bytes, resident);
}

TEST(PlanIsTheAllocation, RandomSmallShapesBudgetsContextsBatchesAndTiers) {
  ScratchDir dir;
  std::mt19937_64 rng(7001);
  int combos = 0, accepted = 0;
  for (int shape_i = 0; shape_i < 25; ++shape_i) {
    const Shape shape = RandomSmallShape(rng);
    const std::string path = WriteSparse(dir, absl::StrCat("s", shape_i, ".gguf"), shape.gen);
    uint64_t fixed = 0, slot = 0, experts = 0;
    FixedAndSlot(path, &fixed, &slot, &experts);
    for (int j = 0; j < 8; ++j, ++combos) {
      CheckCombination(path, shape, rng, fixed, slot, experts, 1 + int(rng() % 80), true,
                       &accepted);
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_EQ(combos, 200);
  // Most budgets are accepted (the rest test the refusal).
  EXPECT_GE(accepted, 120);
}

TEST(PlanIsTheAllocation, SeveralGigabyteShapesWithHundredsOfSlots) {
  ScratchDir dir;
  std::mt19937_64 rng(7002);
  int i = 0, accepted = 0;
  for (const Shape& shape : LargeShapes()) {
    const std::string path = WriteSparse(dir, absl::StrCat("l", i++, ".gguf"), shape.gen);
    uint64_t fixed = 0, slot = 0, experts = 0;
    FixedAndSlot(path, &fixed, &slot, &experts);
    ASSERT_GE(experts, 768u);
    for (int j = 0; j < 3; ++j) {
      CheckCombination(path, shape, rng, fixed, slot, experts, 4, false, &accepted);
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GE(accepted, 4);
}

}  // namespace
}  // namespace moestream::engine
