// Tests of the decode-speed arithmetic (model/decode_predictor.h) with given
// bandwidths and hit rates, worked by hand; and the workload read from a
// generated model's header. (How close the prediction comes to a measured
// run is a benchmark, bench/plan_accuracy.sh, not a timed unit test.)
#include "model/decode_predictor.h"

#include <string>

#include "gen/model_gen.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "model/memory_planner.h"
#include "tests/test_util.h"

namespace moestream::model {
namespace {

using ::moestream::testing::ScratchDir;

TEST(DecodePredictorTest, CpuHostTierMissesAreMemcpysAtHostBandwidth) {
  DecodeWorkload w;
  w.dense_bytes = 1'000'000'000;
  w.expert_bytes = 2'000'000'000;
  w.experts_per_token = 64;
  w.n_layers = 10;
  w.experts_tier = "host";
  DecodeHardware hw;
  hw.backend = "cpu";
  hw.host_gbps = 10;
  hw.link_gbps = 0;
  hw.efficiency_low = 0.5;
  hw.efficiency_high = 0.9;  // mean 0.7: 7 GB/s
  hw.layer_overhead_us = 100;
  absl::StatusOr<DecodePrediction> p = PredictDecode(w, hw, {0.75, 1.0});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NEAR(p->dense_ms, 1e9 / 7e9 * 1e3, 1e-9);           // 142.857 ms
  EXPECT_NEAR(p->experts_ms, 2e9 / 7e9 * 1e3, 1e-9);         // 285.714 ms
  EXPECT_NEAR(p->link_ms, 2 * 0.25 * 2e9 / 7e9 * 1e3, 1e-9);  // memcpy reads and writes: 142.857
  EXPECT_DOUBLE_EQ(p->nvme_ms, 0);
  EXPECT_NEAR(p->overhead_ms, 1.0, 1e-12);  // 10 layers x 100 us
  EXPECT_NEAR(p->token_ms, 4e9 / 7e9 * 1e3 + 1.0, 1e-9);
  EXPECT_NEAR(p->tok_s, 1e3 / p->token_ms, 1e-12);
  EXPECT_NEAR(p->link_bytes, 5e8, 1e-3);
  // The range: everything but the overhead at 0.5 and at 0.9 of 10 GB/s.
  EXPECT_NEAR(p->tok_s_low, 1e3 / (4e9 / 5e9 * 1e3 + 1.0), 1e-12);
  EXPECT_NEAR(p->tok_s_high, 1e3 / (4e9 / 9e9 * 1e3 + 1.0), 1e-12);
  EXPECT_LT(p->tok_s_low, p->tok_s);
  EXPECT_LT(p->tok_s, p->tok_s_high);
  const double copying_tok_s = p->tok_s;

  // A cold cache's lower hit rate moves only the slow end: half the experts
  // copied at 0.5 of 10 GB/s.
  absl::StatusOr<DecodePrediction> with_cold = PredictDecode(w, hw, {0.75, 1.0, 0.5, 1.0});
  ASSERT_TRUE(with_cold.ok());
  EXPECT_DOUBLE_EQ(with_cold->tok_s, p->tok_s);
  EXPECT_DOUBLE_EQ(with_cold->tok_s_high, p->tok_s_high);
  EXPECT_NEAR(with_cold->tok_s_low, 1e3 / ((1e9 + 2e9 + 2 * 0.5 * 2e9) / 5e9 * 1e3 + 1.0), 1e-12);

  // Host compute of the misses: no copy, the missed quarter read at host speed.
  hw.host_compute_misses = true;
  p = PredictDecode(w, hw, {0.75, 1.0});
  ASSERT_TRUE(p.ok());
  EXPECT_DOUBLE_EQ(p->link_ms, 0);
  EXPECT_NEAR(p->experts_ms, 2e9 / 7e9 * 1e3, 1e-9);

  // A higher hit rate is never slower; all hits cost what resident costs.
  hw.host_compute_misses = false;
  absl::StatusOr<DecodePrediction> all_hits = PredictDecode(w, hw, {1.0, 1.0});
  w.experts_tier = "device";
  absl::StatusOr<DecodePrediction> resident = PredictDecode(w, hw, {0.1, 0.1});
  ASSERT_TRUE(all_hits.ok() && resident.ok());
  EXPECT_DOUBLE_EQ(all_hits->tok_s, resident->tok_s);
  EXPECT_GT(all_hits->tok_s, copying_tok_s);
}

TEST(DecodePredictorTest, GpuNvmeTierReadsThenCrossesTheLinkAndOverlapsAtTheFastEnd) {
  DecodeWorkload w;
  w.dense_bytes = 1'000'000'000;
  w.expert_bytes = 2'000'000'000;
  w.experts_per_token = 100;
  w.experts_tier = "nvme";
  DecodeHardware hw;
  hw.backend = "cuda";
  hw.device_gbps = 1000;
  hw.link_gbps = 25;
  hw.link_latency_us = 10;
  hw.nvme_gbps = 5;
  hw.efficiency_low = 0.5;
  hw.efficiency_high = 0.9;
  // 50% in device slots, 30% more in host RAM, 20% only on NVMe.
  absl::StatusOr<DecodePrediction> p = PredictDecode(w, hw, {0.5, 0.8});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NEAR(p->dense_ms, 1e9 / 700e9 * 1e3, 1e-9);
  EXPECT_NEAR(p->experts_ms, 2e9 / 700e9 * 1e3, 1e-9);
  // Link: 0.3 + 0.2 of 2 GB at 17.5 GB/s, plus 50 copies of 10 us.
  EXPECT_NEAR(p->link_bytes, 1e9, 1e-3);
  EXPECT_NEAR(p->link_ms, 1e9 / 17.5e9 * 1e3 + 50 * 10 / 1e3, 1e-9);
  EXPECT_NEAR(p->nvme_bytes, 4e8, 1e-3);
  EXPECT_NEAR(p->nvme_ms, 4e8 / 3.5e9 * 1e3, 1e-9);
  EXPECT_NEAR(p->token_ms, p->dense_ms + p->experts_ms + p->link_ms + p->nvme_ms, 1e-9);
  // Fast end: compute (3 GB at 900 GB/s) overlapped with transfers at 0.9.
  const double compute = 3e9 / 900e9 * 1e3;
  const double transfer = 1e9 / 22.5e9 * 1e3 + 0.5 + 4e8 / 4.5e9 * 1e3;
  EXPECT_NEAR(p->tok_s_high, 1e3 / std::max(compute, transfer), 1e-9);
  // Slow end: serial at 0.5.
  const double slow = 3e9 / 500e9 * 1e3 + 1e9 / 12.5e9 * 1e3 + 0.5 + 4e8 / 2.5e9 * 1e3;
  EXPECT_NEAR(p->tok_s_low, 1e3 / slow, 1e-9);
}

TEST(DecodePredictorTest, BadHardwareIsAnError) {
  DecodeWorkload w;
  w.dense_bytes = 1000;
  DecodeHardware hw;
  hw.host_gbps = 0;
  EXPECT_EQ(PredictDecode(w, hw, {}).status().code(), absl::StatusCode::kInvalidArgument);
  hw = DecodeHardware();
  hw.efficiency_low = 0.9;
  hw.efficiency_high = 0.5;
  EXPECT_EQ(PredictDecode(w, hw, {}).status().code(), absl::StatusCode::kInvalidArgument);
  hw = DecodeHardware();
  hw.backend = "tpu";
  EXPECT_EQ(PredictDecode(w, hw, {}).status().code(), absl::StatusCode::kInvalidArgument);
  hw = DecodeHardware();
  hw.link_gbps = 0;  // a GPU needs a link
  EXPECT_EQ(PredictDecode(w, hw, {}).status().code(), absl::StatusCode::kInvalidArgument);
  w.experts_tier = "floppy";
  EXPECT_EQ(PredictDecode(w, DecodeHardware(), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecodePredictorTest, WorkloadFromAGeneratedHeader) {
  ScratchDir dir;
  absl::StatusOr<gen::GenOptions> o = gen::PresetOptions("small", gen::GenArch::kQwen3Moe);
  ASSERT_TRUE(o.ok());
  o->type = GgmlType::kQ8_0;
  o->header_only = true;
  ASSERT_TRUE(gen::GenerateModel(*o, dir.Path("m.gguf")).ok());
  absl::StatusOr<io::GgufFile> f = io::GgufFile::Open(dir.Path("m.gguf"));
  ASSERT_TRUE(f.ok());
  uint64_t dense = 0, experts = 0;
  for (const io::GgufTensorInfo& t : f->tensors()) {
    if (t.name.find("_exps") != std::string::npos) {
      experts += t.size_bytes;
    } else if (t.name == "token_embd.weight") {
      dense += t.size_bytes / uint64_t(t.ne[1]);  // one row
    } else {
      dense += t.size_bytes;
    }
  }
  MemoryPlan plan;
  plan.n_layers = o->layers;
  plan.n_moe_layers = o->layers;
  plan.n_expert = o->experts;
  plan.n_expert_used = o->top_k;
  plan.experts_total = uint64_t(o->layers * o->experts);
  plan.expert_bytes = experts;
  plan.n_ctx = 100;
  plan.kv_cache_bytes = 1000;
  plan.experts_tier = "host";
  absl::StatusOr<DecodeWorkload> w = DecodeWorkloadOf(*f, plan, 25);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dense_bytes, dense);
  EXPECT_EQ(w->expert_bytes, experts / uint64_t(o->experts) * uint64_t(o->top_k));
  EXPECT_EQ(w->experts_per_token, uint64_t(o->top_k * o->layers));
  EXPECT_EQ(w->kv_bytes, 250u);
  EXPECT_EQ(w->experts_tier, "host");
  plan.all_experts_resident = true;
  w = DecodeWorkloadOf(*f, plan, 25);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->experts_tier, "device");
}

}  // namespace
}  // namespace moestream::model
