// The forward pass against independent implementations:
// - stories260K (a trained llama): greedy ids and position-0 logits from an
//   independent float64 pass and llama.cpp (data/stories260k-gguf/SOURCE.md);
// - reference/{qwen3moe,mixtral}-tiny-a: llama.cpp's logits at every prompt
//   position (batched prefill) and along the greedy continuation, within
//   the 1e-4 tolerance their README sets, and identical greedy ids; the same
//   for llama4-tiny-a, deepseek2-tiny-a and deepseek2-lite-tiny-a, and for
//   llama4-long-tiny-a past llama.cpp's 8192-token attention chunk;
// - reference/{qwen3moe,mixtral}-tiny-a-q4_k_m (quantized by llama.cpp's own
//   quantizer: Q4_K, Q5_K, Q6_K, Q5_0 and Q8_0 tensors mixed): the check their
//   README states — identical greedy ids, mean |diff| over all logits at most
//   0.03, max |diff| at most 0.1 at 90% of the positions. Only a runtime that
//   rounds each quantized matmul's activations as llama.cpp does (Q8_K for the
//   k-quants, Q8_0 for Q5_0/Q8_0) follows its greedy path on Mixtral.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cached_expert_provider.h"
#include "gtest/gtest.h"
#include "io/expert_layout.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::ReadF32File;
using ::moestream::testing::ReadFileOrDie;
using ::moestream::testing::SharedPath;

std::unique_ptr<LoadedModel> Load(const std::string& path, GgmlType kv = GgmlType::kF32,
                                  int64_t n_ctx = 256) {
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 2;
  EngineOptions eo;
  eo.n_ctx = n_ctx;
  eo.n_batch = std::max<int64_t>(512, n_ctx);
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

// A reference folder's model, prompt, llama.cpp greedy ids and logits.
struct ReferenceRun {
  std::string gguf;
  std::vector<int32_t> prompt, greedy;
  std::vector<float> all, gen;  // logits_all.f32, logits_gen.f32
};

ReferenceRun ReadReference(const std::string& name) {
  const std::string dir = SharedPath("reference/" + name);
  return {dir + "/" + name + ".gguf", ParseIds(ReadFileOrDie(dir + "/tokens.txt")),
          OracleGreedy(ReadFileOrDie(dir + "/oracle.json")), ReadF32File(dir + "/logits_all.f32"),
          ReadF32File(dir + "/logits_gen.f32")};
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

// Loads reference/<param>: the model, the prompt, llama.cpp's greedy ids and
// logits, with their sizes checked.
class ReferenceFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void LoadReference() {
    ref_ = ReadReference(GetParam());
    m_ = Load(ref_.gguf);
    ASSERT_NE(m_, nullptr);
    const size_t V = static_cast<size_t>(m_->config.n_vocab);
    ASSERT_EQ(V, 512u);
    ASSERT_EQ(ref_.prompt.size(), 32u);
    ASSERT_EQ(ref_.greedy.size(), 16u);
    ASSERT_EQ(ref_.all.size(), ref_.prompt.size() * V);
    ASSERT_EQ(ref_.gen.size(), ref_.greedy.size() * V);
  }
  // Decodes the prompt as one batch, then the 16 greedy steps one token at a
  // time (fed our own argmax, or llama.cpp's ids with `feed_reference`),
  // calling check(logits, llama.cpp's row, position name) at each of the 48
  // positions. Returns our argmax ids of the greedy steps.
  std::vector<int32_t> Walk(bool feed_reference,
                            const std::function<void(std::span<const float>, std::span<const float>,
                                                     const std::string&)>& check) {
    const size_t V = static_cast<size_t>(m_->config.n_vocab);
    Engine& e = *m_->engine;
    std::vector<int32_t> got;
    EXPECT_TRUE(e.Process(ref_.prompt, LogitsMode::kAll).ok());
    if (e.logits_rows() != static_cast<int64_t>(ref_.prompt.size())) {
      ADD_FAILURE() << "logits rows " << e.logits_rows();
      return got;
    }
    for (size_t i = 0; i < ref_.prompt.size(); ++i) {
      check(e.logits().subspan(i * V, V), {ref_.all.data() + i * V, V},
            "prompt position " + std::to_string(i));
    }
    for (size_t k = 0; k < ref_.greedy.size(); ++k) {
      if (k > 0) {
        int32_t prev = feed_reference ? ref_.greedy[k - 1] : got.back();
        EXPECT_TRUE(e.Process({&prev, 1}, LogitsMode::kLast).ok());
      }
      check(e.last_logits(), {ref_.gen.data() + k * V, V}, "greedy step " + std::to_string(k));
      got.push_back(Argmax(e.last_logits()));
    }
    return got;
  }

  ReferenceRun ref_;
  std::unique_ptr<LoadedModel> m_;
};

class ReferenceModelTest : public ReferenceFixture {};

TEST_P(ReferenceModelTest, LogitsMatchLlamaCppAtEveryPositionAndGreedyIdsAgree) {
  ASSERT_NO_FATAL_FAILURE(LoadReference());
  constexpr float kTol = 1e-4f;  // reference/README.md
  const std::vector<int32_t> got =
      Walk(/*feed_reference=*/false, [kTol](std::span<const float> logits, std::span<const float> ref,
                                        const std::string& where) {
        EXPECT_LE(MaxAbsDiff(logits, ref), kTol) << where;
      });
  EXPECT_EQ(got, ref_.greedy);
}

TEST_P(ReferenceModelTest, F16KvCacheStaysCloseToReference) {
  // README: an F16 KV cache moves these logits by about 2e-3. gpt-oss is the
  // exception its README measures: the Q8_0 rounding of the activations
  // entering the MXFP4 experts amplifies the F16 noise (llama.cpp's own F16
  // run moves the prompt logits by 0.021 on average, up to 0.41, where a
  // close expert choice flips). There the check is that average and most
  // positions within 0.1.
  const std::string dir = SharedPath("reference/" + GetParam());
  auto m = Load(dir + "/" + GetParam() + ".gguf", GgmlType::kF16);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> prompt = ParseIds(ReadFileOrDie(dir + "/tokens.txt"));
  const std::vector<float> all = ReadF32File(dir + "/logits_all.f32");
  ASSERT_TRUE(m->engine->Process(prompt, LogitsMode::kAll).ok());
  const std::span<const float> got = m->engine->logits();
  if (GetParam().starts_with("gpt-oss")) {
    const size_t n_vocab = all.size() / prompt.size();
    double sum = 0;
    size_t within = 0;
    for (size_t p = 0; p < prompt.size(); ++p) {
      float mx = 0;
      for (size_t i = p * n_vocab; i < (p + 1) * n_vocab; ++i) {
        const float d = std::fabs(got[i] - all[i]);
        sum += d;
        mx = std::max(mx, d);
      }
      within += mx <= 0.1f;
    }
    EXPECT_LE(sum / double(all.size()), 0.03);
    EXPECT_GE(within * 10, prompt.size() * 9) << within << " of " << prompt.size();
    return;
  }
  EXPECT_LE(MaxAbsDiff(got, all), 2e-2f);
}

// Loads reference/NAME with a context of n_ctx (one batch), decodes its
// prompt in one batch and its 16 greedy steps, and checks every row of
// logits against llama.cpp's within the README's 1e-4 and the greedy ids.
void ExpectMatchesLlamaCpp(const std::string& name, int64_t n_ctx, size_t n_prompt) {
  const std::string dir = SharedPath("reference/" + name);
  auto m = Load(dir + "/" + name + ".gguf", GgmlType::kF32, n_ctx);
  ASSERT_NE(m, nullptr);
  const int64_t V = m->config.n_vocab;
  const std::vector<int32_t> prompt = ParseIds(ReadFileOrDie(dir + "/tokens.txt"));
  const std::vector<int32_t> greedy = OracleGreedy(ReadFileOrDie(dir + "/oracle.json"));
  const std::vector<float> all = ReadF32File(dir + "/logits_all.f32");
  const std::vector<float> gen = ReadF32File(dir + "/logits_gen.f32");
  ASSERT_EQ(prompt.size(), n_prompt);
  ASSERT_EQ(greedy.size(), 16u);
  ASSERT_EQ(all.size(), prompt.size() * V);
  ASSERT_EQ(gen.size(), greedy.size() * V);

  constexpr float kTol = 1e-4f;  // reference/README.md
  Engine& e = *m->engine;
  ASSERT_TRUE(e.Process(prompt, LogitsMode::kAll).ok());
  ASSERT_EQ(e.logits_rows(), int64_t(prompt.size()));
  float worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const float d = MaxAbsDiff(e.logits().subspan(i * V, V), {all.data() + i * V, size_t(V)});
    if (d > worst) worst = d, worst_at = i;
  }
  EXPECT_LE(worst, kTol) << "prompt position " << worst_at;
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

// llama4 past llama.cpp's 8192-token attention chunk: an 8200-token prompt
// as one batch (n_ctx = n_batch = 8448, as the reference ran), where the
// chunked attention of the RoPE layers and the NoPE layers' temperature
// both act.
TEST(Llama4LongContext, ChunkedAttentionAndTemperatureMatchLlamaCpp) {
  ExpectMatchesLlamaCpp("llama4-long-tiny-a", 8448, 8200);
}

// The new architectures' routed experts streamed through the expert cache
// (host and NVMe tiers, a budget with room for a third of the experts, MoE
// and dense layers interleaved): logits bit-identical to the resident run.
TEST_P(ReferenceModelTest, OffloadedRunIsBitIdenticalToResident) {
  const std::string path = SharedPath("reference/" + GetParam() + "/" + GetParam() + ".gguf");
  const std::vector<int32_t> prompt =
      ParseIds(ReadFileOrDie(SharedPath("reference/" + GetParam() + "/tokens.txt")));
  auto run = [&](LoadedModel& m) {
    std::vector<float> out;
    EXPECT_TRUE(m.engine->Process(prompt, LogitsMode::kAll).ok());
    out.assign(m.engine->logits().begin(), m.engine->logits().end());
    for (int32_t tok : {5, 9, 200}) {
      EXPECT_TRUE(m.engine->Process({&tok, 1}, LogitsMode::kLast).ok());
      out.insert(out.end(), m.engine->logits().begin(), m.engine->logits().end());
    }
    return out;
  };
  auto resident = Load(path);
  ASSERT_NE(resident, nullptr);
  const std::vector<float> want = run(*resident);
  auto f = io::GgufFile::Open(path);
  ASSERT_TRUE(f.ok());
  auto layout = io::ExpertLayout::FromGguf(*f);
  ASSERT_TRUE(layout.ok());
  for (const char* tier : {"host", "nvme"}) {
    OffloadOptions o;
    o.experts_on = tier;
    o.n_ctx = 256;
    o.all_logits = true;
    o.device_budget_bytes = uint64_t{1} << 40;  // sized below from the plan's parts
    auto plan = PlanOffloadUnchecked(*f, o, 512);
    ASSERT_TRUE(plan.ok()) << plan.status();
    o.device_budget_bytes = plan->device_fixed_bytes + plan->slot_bytes * (layout->size() / 3);
    LoadOptions lo;
    lo.upload_routed_experts = false;
    CachedExpertProvider* p = nullptr;
    lo.provider_factory = CachedExpertProvider::Factory(o, &p);
    kernels::BackendOptions bo;
    bo.kind = "cpu";
    bo.threads = 2;
    bo.device_budget_bytes = o.device_budget_bytes;
    EngineOptions eo;
    eo.n_ctx = 256;
    eo.all_logits = true;
    auto m = LoadModel(path, bo, eo, lo);
    ASSERT_TRUE(m.ok()) << tier << ": " << m.status();
    const std::vector<float> got = run(**m);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << tier;
    EXPECT_GT(p->stats().cache.loads, 0u) << tier;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceModelTest,
                         ::testing::Values("qwen3moe-tiny-a", "mixtral-tiny-a", "llama4-tiny-a",
                                           "deepseek2-tiny-a", "deepseek2-lite-tiny-a",
                                           "gpt-oss-tiny-a"));

class QuantizedReferenceTest : public ReferenceFixture {};

TEST_P(QuantizedReferenceTest, FollowsLlamaCppWithinItsActivationRounding) {
  ASSERT_NO_FATAL_FAILURE(LoadReference());
  // Per position (prompt rows, then greedy steps): max |diff|; and the sum.
  // llama.cpp's ids are fed back so one early disagreement does not hide the
  // rest; the greedy ids must agree anyway.
  std::vector<float> pos_max;
  double sum_abs = 0;
  const std::vector<int32_t> got =
      Walk(/*feed_reference=*/true,
           [&](std::span<const float> logits, std::span<const float> ref, const std::string&) {
             float mx = 0;
             for (size_t i = 0; i < ref.size(); ++i) {
               const float d = std::fabs(logits[i] - ref[i]);
               sum_abs += d;
               mx = std::max(mx, d);
             }
             pos_max.push_back(mx);
           });
  EXPECT_EQ(got, ref_.greedy);
  ASSERT_EQ(pos_max.size(), 48u);
  const double mean_abs = sum_abs / static_cast<double>(pos_max.size() * m_->config.n_vocab);
  EXPECT_LE(mean_abs, 0.03);
  const int64_t within = std::count_if(pos_max.begin(), pos_max.end(), [](float v) { return v <= 0.1f; });
  EXPECT_GE(within * 10, static_cast<int64_t>(pos_max.size()) * 9)
      << within << " of " << pos_max.size() << " positions within 0.1";
  std::ostringstream per_pos;
  for (float v : pos_max) per_pos << " " << v;
  std::cout << GetParam() << ": mean |diff| " << mean_abs << ", positions within 0.1: " << within
            << "/" << pos_max.size() << ", per-position max:" << per_pos.str() << "\n";
}

INSTANTIATE_TEST_SUITE_P(Models, QuantizedReferenceTest,
                         ::testing::Values("qwen3moe-tiny-a-q4_k_m", "mixtral-tiny-a-q4_k_m"));

}  // namespace
}  // namespace moestream::engine
