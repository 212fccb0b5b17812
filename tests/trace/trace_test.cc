// The routing-trace format (round trip, CSV export, corruption detection) and
// the importers for every trace in ../shared/data, checked against the
// counts their SOURCE.md files state.
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "trace/trace.h"
#include "trace/trace_import.h"
#include "tests/test_util.h"

namespace moestream::trace {
namespace {

using testing::SharedPath;

size_t Entries(const Trace& t) { return t.experts.size(); }

TEST(TraceImport, EveryShippedFormat) {
  struct Case {
    const char* path;
    const char* format;
    int layers, experts, top_k;
    size_t entries;
  };
  const Case cases[] = {
      // Data rows (one per routed expert) as SOURCE.md counts them.
      {"data/qwen3-30b-a3b-route-trace", "route-csv", 24, 128, 6, 22464},
      {"data/gpt-oss-120b-route-trace", "route-csv", 18, 128, 2, 5364},
      {"data/gemma4-26b-a4b-route-trace", "route-csv", 15, 128, 6, 0},
      // 2,648 + 5,366 records of 2 experts.
      {"data/mixtral-8x7b-routing", "mixtral-jsonl", 32, 8, 2, (2648 + 5366) * 2},
      {"data/mixtral-8x7b-routing/humaneval_p0_raw_prefill_decode.jsonl", "mixtral-raw", 32, 8,
       2, 6777 * 2},
      // 4,292 real rows per layer file, 3 files, top-4 of 60.
      {"data/qwen15-moe-routing", "vllm-logger", 3, 60, 4, 4292 * 3 * 4},
      // 4,471 real rows of top-8 of 64.
      {"data/olmoe-routing-layer0", "vllm-logger", 1, 64, 8, 4471 * 8},
  };
  for (const Case& c : cases) {
    auto fmt = DetectTraceFormat(SharedPath(c.path));
    ASSERT_TRUE(fmt.ok()) << fmt.status();
    EXPECT_EQ(*fmt, c.format) << c.path;
    auto t = LoadTrace(SharedPath(c.path));
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->shape.n_layers, c.layers) << c.path;
    EXPECT_EQ(t->shape.n_experts, c.experts) << c.path;
    EXPECT_EQ(t->shape.top_k, c.top_k) << c.path;
    if (c.entries) {
      EXPECT_EQ(Entries(*t), c.entries) << c.path;
    }
  }
}

TEST(TraceImport, RouteCsvDetails) {
  Trace t = *LoadTrace(SharedPath("data/qwen3-30b-a3b-route-trace"));
  EXPECT_EQ(t.shape.layer_ids.front(), 0);
  EXPECT_EQ(t.shape.layer_ids.back(), 46);
  EXPECT_EQ(t.shape.expert_bytes[0], 3059712u);
  EXPECT_EQ(t.shape.model, "qwen3moe");
  size_t prefill = 0, decode = 0;
  for (const auto& c : t.cells) (c.phase == Phase::kPrefill ? prefill : decode)++;
  EXPECT_EQ(prefill, 28u * 24);  // 28 prompt tokens x 24 layers
  EXPECT_EQ(decode, 128u * 24);
  // Decode is step-major: the first decode cell is step 28, layer 0.
  const TraceCell& d = t.cells[prefill];
  EXPECT_EQ(d.pos, 28u);
  EXPECT_EQ(d.layer, 0);
}

TEST(TraceImport, MixtralRawSplitsPrefillAndDecode) {
  Trace t = *LoadTrace(SharedPath("data/mixtral-8x7b-routing/humaneval_p0_raw_prefill_decode.jsonl"));
  size_t prefill = 0;
  for (const auto& c : t.cells) prefill += c.phase == Phase::kPrefill;
  // 135 prompt tokens per layer minus records dropped for tied weights.
  EXPECT_GT(prefill, 32u * 130);
  EXPECT_LE(prefill, 32u * 135);
}

TEST(TraceImport, VllmDropsDummyBatches) {
  Trace t = *LoadTrace(SharedPath("data/qwen15-moe-routing"));
  EXPECT_EQ(t.shape.layer_ids, (std::vector<int>{0, 8, 12}));
  size_t prefill = 0;
  for (const auto& c : t.cells) prefill += c.phase == Phase::kPrefill;
  EXPECT_EQ(prefill, 1406u * 3);
}

TEST(TraceImport, Popularity) {
  Trace t = *LoadTrace(SharedPath("data/qwen3-30b-a3b-route-trace"));
  auto pop = LoadPopularity(
      SharedPath("data/qwen3-30b-a3b-expert-popularity/gsm_en_he_500_avg_activation.csv"),
      t.shape);
  ASSERT_TRUE(pop.ok()) << pop.status();
  ASSERT_EQ(pop->size(), 24u * 128);
  // Each row sums to 8 (top-8), two languages per layer.
  double s = 0;
  for (int e = 0; e < 128; ++e) s += (*pop)[e];
  EXPECT_NEAR(s, 16.0, 0.01);  // values are stored rounded (bf16-like)
  Trace g = *LoadTrace(SharedPath("data/gpt-oss-120b-route-trace"));
  TraceShape wrong = g.shape;
  wrong.n_experts = 64;
  EXPECT_FALSE(LoadPopularity(
      SharedPath("data/qwen3-30b-a3b-expert-popularity/gsm_en_he_500_avg_activation.csv"), wrong)
                   .ok());
}

TEST(TraceFormat, RoundTripAndCsv) {
  Trace t = *LoadTrace(SharedPath("data/gpt-oss-120b-route-trace"));
  testing::ScratchDir dir;
  ASSERT_TRUE(WriteTrace(t, dir.Path("t.mstrace")).ok());
  auto u = LoadTrace(dir.Path("t.mstrace"));
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->shape.layer_ids, t.shape.layer_ids);
  EXPECT_EQ(u->shape.expert_bytes, t.shape.expert_bytes);
  ASSERT_EQ(u->cells.size(), t.cells.size());
  for (size_t i = 0; i < t.cells.size(); ++i) {
    const auto& a = t.cells[i];
    const auto& b = u->cells[i];
    ASSERT_TRUE(a.seq == b.seq && a.step == b.step && a.pos == b.pos && a.layer == b.layer &&
                a.phase == b.phase);
    ASSERT_TRUE(std::equal(t.Experts(a).begin(), t.Experts(a).end(), u->Experts(b).begin()));
    ASSERT_TRUE(std::equal(t.Weights(a).begin(), t.Weights(a).end(), u->Weights(b).begin()));
  }
  ASSERT_TRUE(WriteTraceCsv(t, dir.Path("t.csv")).ok());
  std::string csv = testing::ReadFileOrDie(dir.Path("t.csv"));
  EXPECT_EQ(csv.rfind("seq,step,pos,phase,layer,layer_id,rank,expert,weight\n", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5364 + 1);
}

TEST(TraceFormat, RecorderAndCorruption) {
  testing::ScratchDir dir;
  TraceRecorder rec(dir.Path("r.mstrace"), TraceShape{"m", "", 2, 4, 2, {}, {}});
  std::vector<int32_t> ids = {3, 1};
  std::vector<float> w = {0.75f, 0.25f};
  std::vector<ExpertKey> guess = {{1, 2}};
  for (uint32_t pos = 0; pos < 3; ++pos) {
    rec.Record(0, pos, Phase::kDecode, ids, w, guess);
    rec.Record(1, pos, Phase::kDecode, ids, w);
    rec.EndStep();
  }
  ASSERT_TRUE(rec.Finish().ok());
  auto t = ReadTrace(dir.Path("r.mstrace"));
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->cells.size(), 6u);
  EXPECT_EQ(t->cells[2].step, 1u);
  ASSERT_EQ(t->Guesses(t->cells[0]).size(), 1u);
  EXPECT_EQ(t->Guesses(t->cells[0])[0], (ExpertKey{1, 2}).packed());
  EXPECT_FLOAT_EQ(t->Weights(t->cells[1])[0], 0.75f);

  std::string bytes = testing::ReadFileOrDie(dir.Path("r.mstrace"));
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  testing::WriteFileOrDie(dir.Path("bad.mstrace"), flipped);
  EXPECT_EQ(ReadTrace(dir.Path("bad.mstrace")).status().code(), absl::StatusCode::kDataLoss);
  testing::WriteFileOrDie(dir.Path("short.mstrace"), bytes.substr(0, bytes.size() - 20));
  EXPECT_EQ(ReadTrace(dir.Path("short.mstrace")).status().code(), absl::StatusCode::kDataLoss);
  std::string v3 = bytes;
  v3[8] = 3;
  testing::WriteFileOrDie(dir.Path("v3.mstrace"), v3);
  EXPECT_EQ(ReadTrace(dir.Path("v3.mstrace")).status().code(), absl::StatusCode::kUnimplemented);
  testing::WriteFileOrDie(dir.Path("junk.txt"), "hello\n");
  EXPECT_EQ(LoadTrace(dir.Path("junk.txt")).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moestream::trace
