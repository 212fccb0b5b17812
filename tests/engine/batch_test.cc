// Several sequences decoded together (Engine::StepSequences) against each
// sequence decoded on its own: the same logits bit for bit (every matmul
// tile, activation rounding and expert sum is per token), one expert
// provider call per MoE layer and step instead of one per sequence, and
// the errors of a bad batch.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/session.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::SharedPath;

// Counts provider calls, then hands them on.
class CountingProvider : public ExpertProvider {
 public:
  explicit CountingProvider(ExpertProvider* inner) : inner_(inner) {}
  absl::Status Compute(int layer, const float* x, int64_t n_tok, const int32_t* ids,
                       const float* weights, int k, float* out) override {
    ++calls;
    rows += n_tok;
    return inner_->Compute(layer, x, n_tok, ids, weights, k, out);
  }
  int64_t calls = 0, rows = 0;

 private:
  ExpertProvider* inner_;
};

std::unique_ptr<LoadedModel> Load(const std::string& name) {
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 2;
  EngineOptions eo;
  eo.n_ctx = 128;
  auto m = LoadModel(SharedPath("reference/" + name + "/" + name + ".gguf"), bo, eo, {});
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(m).value() : nullptr;
}

class StepSequencesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StepSequencesTest, MatchesEachSequenceAloneWithOneProviderCallPerLayer) {
  auto m = Load(GetParam());
  ASSERT_NE(m, nullptr);
  const model::ModelConfig& c = m->config;
  CountingProvider counting(m->provider.get());
  EngineOptions eo;
  eo.n_ctx = 128;
  eo.batch_sequences = 3;
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5}, {9, 8, 7}, {42, 17, 99, 3, 11, 5, 6}};
  constexpr int kSteps = 6;
  // Alone: each sequence on its own engine, greedy.
  std::vector<std::vector<float>> alone(prompts.size());
  std::vector<std::vector<int32_t>> alone_ids(prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) {
    auto e = Engine::Create(*m->backend, c, *m->weights, m->provider.get(), eo);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE((*e)->Process(prompts[s], LogitsMode::kLast).ok());
    for (int step = 0; step < kSteps; ++step) {
      const std::span<const float> l = (*e)->last_logits();
      const int32_t id = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
      alone_ids[s].push_back(id);
      ASSERT_TRUE((*e)->Process({&id, 1}, LogitsMode::kLast).ok());
      alone[s].insert(alone[s].end(), (*e)->last_logits().begin(), (*e)->last_logits().end());
    }
  }
  // Together: prefill one at a time, then every decode step as one batch.
  std::vector<std::unique_ptr<Engine>> engines;
  std::vector<Engine*> seqs;
  for (size_t s = 0; s < prompts.size(); ++s) {
    auto e = Engine::Create(*m->backend, c, *m->weights, &counting, eo);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE((*e)->Process(prompts[s], LogitsMode::kLast).ok());
    seqs.push_back(e->get());
    engines.push_back(*std::move(e));
  }
  int64_t moe_layers = 0;
  for (int64_t il = 0; il < c.n_layer; ++il) moe_layers += c.IsMoeLayer(il);
  counting.calls = counting.rows = 0;
  for (int step = 0; step < kSteps; ++step) {
    std::vector<int32_t> tokens;
    for (size_t s = 0; s < seqs.size(); ++s) tokens.push_back(alone_ids[s][size_t(step)]);
    ASSERT_TRUE(seqs[0]->StepSequences(seqs, tokens).ok());
    for (size_t s = 0; s < seqs.size(); ++s) {
      const std::span<const float> got = seqs[s]->last_logits();
      ASSERT_EQ(std::memcmp(got.data(), alone[s].data() + size_t(step) * c.n_vocab,
                            size_t(c.n_vocab) * sizeof(float)),
                0)
          << "sequence " << s << " step " << step;
      EXPECT_EQ(seqs[s]->n_past(), int64_t(prompts[s].size()) + step + 1);
    }
  }
  EXPECT_EQ(counting.calls, kSteps * moe_layers);
  EXPECT_EQ(counting.rows, kSteps * moe_layers * int64_t(seqs.size()));
}

INSTANTIATE_TEST_SUITE_P(Models, StepSequencesTest,
                         ::testing::Values("qwen3moe-tiny-a", "mixtral-tiny-a", "llama4-tiny-a",
                                           "gpt-oss-tiny-a"));

TEST(StepSequences, RefusesBadBatches) {
  auto m = Load("qwen3moe-tiny-a");
  ASSERT_NE(m, nullptr);
  EngineOptions eo;
  eo.n_ctx = 8;
  eo.batch_sequences = 2;
  auto a = Engine::Create(*m->backend, m->config, *m->weights, m->provider.get(), eo);
  auto b = Engine::Create(*m->backend, m->config, *m->weights, m->provider.get(), eo);
  auto c = Engine::Create(*m->backend, m->config, *m->weights, m->provider.get(), eo);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  Engine* two[] = {a->get(), b->get()};
  Engine* same[] = {a->get(), a->get()};
  Engine* three[] = {a->get(), b->get(), c->get()};
  const int32_t tok[] = {1, 2, 3};
  EXPECT_EQ((*a)->StepSequences(same, {tok, 2}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*a)->StepSequences(three, tok).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*a)->StepSequences(two, {tok, 1}).code(), absl::StatusCode::kInvalidArgument);
  const int32_t bad[] = {1, int32_t(m->config.n_vocab)};
  EXPECT_EQ((*a)->StepSequences(two, bad).code(), absl::StatusCode::kInvalidArgument);
  // A full context is refused before anything runs.
  const std::vector<int32_t> fill(8, 1);
  ASSERT_TRUE((*b)->Process(fill, LogitsMode::kLast).ok());
  EXPECT_EQ((*a)->StepSequences(two, {tok, 2}).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ((*a)->n_past(), 0);
  // deepseek2 runs its own attention: one sequence at a time.
  auto ds = Load("deepseek2-tiny-a");
  ASSERT_NE(ds, nullptr);
  EXPECT_FALSE(ds->engine->CanStepSequences());
  EXPECT_TRUE((*a)->CanStepSequences());
}

}  // namespace
}  // namespace moestream::engine
