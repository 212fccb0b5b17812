// Recording routing traces from live runs: the trace written by
// RecordingExpertProvider holds, for the reference prompt, exactly the expert
// choices of the independent float64 forward pass (ref.json), with the
// positions, phases and steps of the run, and reads back as written.
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "engine/engine.h"
#include "engine/recording_expert_provider.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "trace/trace.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::ReadFileOrDie;
using ::moestream::testing::ScratchDir;
using ::moestream::testing::SharedPath;

TEST(TraceRecording, RecordsTheReferenceRoutingWithPositionsAndPhases) {
  const std::string dir = SharedPath("reference/mixtral-tiny-a");
  RecordingExpertProvider* rec = nullptr;
  ScratchDir tmp;
  const std::string path = tmp.Path("run.mstrace");
  LoadOptions lo;
  lo.provider_factory = [&](kernels::Backend& be, const io::GgufFile&, const model::ModelConfig& c,
                            const model::ModelWeights& w,
                            int64_t n_batch) -> absl::StatusOr<std::unique_ptr<ExpertProvider>> {
    auto inner = ResidentExpertProvider::Create(be, c, w, n_batch);
    if (!inner.ok()) return inner.status();
    auto r = std::make_unique<RecordingExpertProvider>(std::move(*inner), c, path);
    rec = r.get();
    return std::unique_ptr<ExpertProvider>(std::move(r));
  };
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  EngineOptions eo;
  eo.n_ctx = 64;
  auto m = LoadModel(dir + "/mixtral-tiny-a.gguf", bo, eo, lo);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_NE(rec, nullptr);

  std::vector<int32_t> prompt;
  for (int i = 1; i <= 32; ++i) prompt.push_back(i);
  const int n_gen = 3;
  rec->BeginSequence(static_cast<int64_t>(prompt.size()));
  SamplerOptions so;
  so.temperature = 0;
  Sampler sampler(so);
  GenerateOptions g;
  g.n_predict = n_gen;
  auto r = Generate(*(*m)->engine, sampler, prompt, g, [](int32_t) { return true; });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(rec->Finish().ok());

  auto t = trace::ReadTrace(path);
  ASSERT_TRUE(t.ok()) << t.status();
  const int n_layer = 4;
  EXPECT_EQ(t->shape.n_layers, n_layer);
  EXPECT_EQ(t->shape.n_experts, 8);
  EXPECT_EQ(t->shape.top_k, 2);
  // The prompt is one forward; each generated token but the last is fed back.
  const size_t decode_tokens = n_gen - 1;
  ASSERT_EQ(t->cells.size(), (prompt.size() + decode_tokens) * n_layer);

  const auto ref = ::moestream::testing::ReferenceRouting(ReadFileOrDie(dir + "/ref.json"));
  ASSERT_GE(ref.size(), prompt.size() * n_layer);
  for (const trace::TraceCell& c : t->cells) {
    if (c.pos < prompt.size()) {
      EXPECT_EQ(c.phase, trace::Phase::kPrefill);
      EXPECT_EQ(c.step, 0u);
      auto got = t->Experts(c);
      EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()), ref[c.pos * n_layer + c.layer])
          << "position " << c.pos << " layer " << c.layer;
      float sum = 0;
      for (float w : t->Weights(c)) sum += w;
      EXPECT_NEAR(sum, 1.0f, 1e-5);  // mixtral renormalises its top-k
    } else {
      EXPECT_EQ(c.phase, trace::Phase::kDecode);
      EXPECT_EQ(c.step, c.pos - prompt.size() + 1) << "one step per decoded token";
    }
  }
}

}  // namespace
}  // namespace moestream::engine

namespace moestream::engine {
namespace {

// `run --record-trace` writes a trace that `replay` reads back: 8 prompt
// tokens + 3 fed-back tokens, for a model of each routed architecture.
// (Replay fetches a prefill batch's union of experts once per layer, so
// accesses are fewer than tokens x layers x k.)
TEST(TraceRecordingCli, RunRecordsATraceThatReplayReads) {
  using ::moestream::testing::MoestreamBin;
  using ::moestream::testing::RunCommand;
  ScratchDir tmp;
  for (const char* name : {"mixtral-tiny-a", "qwen3moe-tiny-a", "llama4-tiny-a",
                           "deepseek2-tiny-a", "gpt-oss-tiny-a"}) {
    SCOPED_TRACE(name);
    const std::string model = SharedPath(std::string("reference/") + name + "/" + name + ".gguf");
    const std::string trace = tmp.Path(std::string(name) + ".mstrace");
    auto run = RunCommand(MoestreamBin() + " run -m " + model +
                          " --prompt-ids 1,2,3,4,5,6,7,8 -n 4 --temp 0 --record-trace " + trace);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    auto replay = RunCommand(MoestreamBin() + " replay --trace " + trace +
                             " --policy lru --capacity 2 --phase all --json");
    ASSERT_EQ(replay.exit_code, 0) << replay.err;
    EXPECT_EQ(nlohmann::json::parse(replay.out)["tokens"], 11) << replay.out;
  }
}

}  // namespace
}  // namespace moestream::engine
