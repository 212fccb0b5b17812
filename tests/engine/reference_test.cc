// The forward pass against independent implementations:
// - stories260K (a trained llama): greedy ids and position-0 logits from an
//   independent float64 pass and llama.cpp (data/stories260k-gguf/SOURCE.md);
// - reference/{qwen3moe,mixtral}-tiny-a: llama.cpp's logits at every prompt
//   position (batched prefill) and along the greedy continuation, within
//   the 1e-4 tolerance their README sets, and identical greedy ids.
#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::ReadF32File;
using ::moestream::testing::ReadFileOrDie;
using ::moestream::testing::SharedPath;

std::unique_ptr<LoadedModel> Load(const std::string& path, GgmlType kv = GgmlType::kF32) {
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 2;
  EngineOptions eo;
  eo.n_ctx = 256;
  eo.kv_type = kv;
  eo.all_logits = true;
  auto m = LoadModel(path, bo, eo, LoadOptions{});
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(m).value() : nullptr;
}

int32_t Argmax(std::span<const float> v) {
  int32_t best = 0;
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<int32_t> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  std::istringstream ss(text);
  int32_t v;
  while (ss >> v) ids.push_back(v);
  return ids;
}

// "greedy_tokens": [a, b, ...] from oracle.json.
std::vector<int32_t> OracleGreedy(const std::string& json) {
  const size_t at = json.find("\"greedy_tokens\"");
  if (at == std::string::npos) return {};
  const size_t open = json.find('[', at), close = json.find(']', at);
  std::string inner = json.substr(open + 1, close - open - 1);
  std::replace(inner.begin(), inner.end(), ',', ' ');
  return ParseIds(inner);
}

float MaxAbsDiff(std::span<const float> a, std::span<const float> b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(Stories260K, GreedyIdsAndPositionZeroLogitsMatchReference) {
  auto m = Load(SharedPath("data/stories260k-gguf/stories260K.gguf"));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->config.arch, "llama");
  EXPECT_EQ(m->config.n_vocab, 512);
  EXPECT_EQ(m->config.rope.n_rot, 8);
  EXPECT_EQ(m->config.bos_id, 1);
  EXPECT_TRUE(m->config.IsEog(2));
  // From SOURCE.md: BOS, then 40 greedy ids.
  const std::vector<int32_t> expected = {
      403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
      426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282,
      295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352};
  const float logits0[8] = {-6.2229f, 8.4043f, -6.2237f, -6.2225f,
                            -6.2220f, -6.2229f, -6.2219f, -6.2234f};
  Engine& e = *m->engine;
  std::vector<int32_t> got;
  int32_t tok = 1;
  for (int step = 0; step < 40; ++step) {
    ASSERT_TRUE(e.Process({&tok, 1}, LogitsMode::kLast).ok());
    if (step == 0) {
      for (int i = 0; i < 8; ++i) EXPECT_NEAR(e.last_logits()[i], logits0[i], 1e-3) << "id " << i;
    }
    tok = Argmax(e.last_logits());
    got.push_back(tok);
  }
  EXPECT_EQ(got, expected);
}

class ReferenceModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceModelTest, LogitsMatchLlamaCppAtEveryPositionAndGreedyIdsAgree) {
  const std::string dir = SharedPath("reference/" + GetParam());
  auto m = Load(dir + "/" + GetParam() + ".gguf");
  ASSERT_NE(m, nullptr);
  const int64_t V = m->config.n_vocab;
  ASSERT_EQ(V, 512);
  const std::vector<int32_t> prompt = ParseIds(ReadFileOrDie(dir + "/tokens.txt"));
  const std::vector<int32_t> greedy = OracleGreedy(ReadFileOrDie(dir + "/oracle.json"));
  const std::vector<float> all = ReadF32File(dir + "/logits_all.f32");
  const std::vector<float> gen = ReadF32File(dir + "/logits_gen.f32");
  ASSERT_EQ(prompt.size(), 32u);
  ASSERT_EQ(greedy.size(), 16u);
  ASSERT_EQ(all.size(), prompt.size() * V);
  ASSERT_EQ(gen.size(), greedy.size() * V);

  constexpr float kTol = 1e-4f;  // reference/README.md
  Engine& e = *m->engine;
  ASSERT_TRUE(e.Process(prompt, LogitsMode::kAll).ok());
  ASSERT_EQ(e.logits_rows(), 32);
  for (size_t i = 0; i < prompt.size(); ++i) {
    EXPECT_LE(MaxAbsDiff(e.logits().subspan(i * V, V), {all.data() + i * V, size_t(V)}), kTol)
        << "prompt position " << i;
  }
  std::vector<int32_t> got;
  for (size_t k = 0; k < greedy.size(); ++k) {
    if (k > 0) {
      int32_t prev = got.back();
      ASSERT_TRUE(e.Process({&prev, 1}, LogitsMode::kLast).ok());
    }
    EXPECT_LE(MaxAbsDiff(e.last_logits(), {gen.data() + k * V, size_t(V)}), kTol)
        << "greedy step " << k;
    got.push_back(Argmax(e.last_logits()));
  }
  EXPECT_EQ(got, greedy);
}

TEST_P(ReferenceModelTest, F16KvCacheStaysCloseToReference) {
  // README: an F16 KV cache moves these logits by about 2e-3.
  const std::string dir = SharedPath("reference/" + GetParam());
  auto m = Load(dir + "/" + GetParam() + ".gguf", GgmlType::kF16);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> prompt = ParseIds(ReadFileOrDie(dir + "/tokens.txt"));
  const std::vector<float> all = ReadF32File(dir + "/logits_all.f32");
  ASSERT_TRUE(m->engine->Process(prompt, LogitsMode::kAll).ok());
  EXPECT_LE(MaxAbsDiff(m->engine->logits(), all), 2e-2f);
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceModelTest,
                         ::testing::Values("qwen3moe-tiny-a", "mixtral-tiny-a"));

}  // namespace
}  // namespace moestream::engine
