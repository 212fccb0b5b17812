// Properties of our own forward pass: batched prefill equals token-by-token
// decode (and chunked prefill), quantized weights agree with the F32 weights
// of the same generated model within quantization error, the two Mixtral
// expert layouts give identical logits, and bad models fail with errors
// naming the problem.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "io/gguf.h"
#include "gen/model_gen.h"
#include "engine/session.h"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::ReadFileOrDie;
using ::moestream::testing::ScratchDir;
using ::moestream::testing::SharedPath;

kernels::BackendOptions Cpu() {
  kernels::BackendOptions bo;
  bo.kind = "cpu";
  bo.threads = 2;
  return bo;
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadWith(const std::string& path, int64_t n_batch = 512) {
  EngineOptions eo;
  eo.n_ctx = 128;
  eo.n_batch = n_batch;
  eo.all_logits = true;
  return LoadModel(path, Cpu(), eo, LoadOptions{});
}

std::vector<int32_t> Prompt(int n, int64_t vocab) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((i * 37 + 11) % vocab));
  return p;
}

std::vector<float> AllLogits(Engine& e, const std::vector<int32_t>& prompt) {
  e.Reset();
  EXPECT_TRUE(e.Process(prompt, LogitsMode::kAll).ok());
  return {e.logits().begin(), e.logits().end()};
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class PrefillDecodeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefillDecodeTest, BatchedPrefillEqualsTokenByTokenAndChunkedPrefill) {
  auto m = LoadWith(SharedPath(GetParam()));
  ASSERT_TRUE(m.ok()) << m.status();
  Engine& e = *(*m)->engine;
  const std::vector<int32_t> prompt = Prompt(24, (*m)->config.n_vocab);
  const std::vector<float> batched = AllLogits(e, prompt);

  e.Reset();
  std::vector<float> stepped;
  for (int32_t t : prompt) {
    ASSERT_TRUE(e.Process({&t, 1}, LogitsMode::kLast).ok());
    stepped.insert(stepped.end(), e.last_logits().begin(), e.last_logits().end());
  }
  EXPECT_LE(MaxAbsDiff(batched, stepped), 2e-5f);

  EngineOptions small;
  small.n_ctx = 128;
  small.n_batch = 7;  // 24 tokens in chunks of 7, 7, 7, 3
  small.all_logits = true;
  auto chunked = Engine::Create(*(*m)->backend, (*m)->config, *(*m)->weights,
                                (*m)->provider.get(), small);
  ASSERT_TRUE(chunked.ok()) << chunked.status();
  EXPECT_LE(MaxAbsDiff(batched, AllLogits(**chunked, prompt)), 2e-5f);

  // Last-only logits equal the last row of all logits.
  e.Reset();
  ASSERT_TRUE(e.Process(prompt, LogitsMode::kLast).ok());
  ASSERT_EQ(e.logits_rows(), 1);
  const std::vector<float> last(e.last_logits().begin(), e.last_logits().end());
  const std::vector<float> batched_last(batched.end() - last.size(), batched.end());
  EXPECT_EQ(last, batched_last);
}

INSTANTIATE_TEST_SUITE_P(Models, PrefillDecodeTest,
                         ::testing::Values("reference/qwen3moe-tiny-a/qwen3moe-tiny-a.gguf",
                                           "reference/mixtral-tiny-a/mixtral-tiny-a.gguf",
                                           "data/stories260k-gguf/stories260K.gguf"));

// Wraps the resident provider: records every call and, in OnFfnInput,
// applies layer L+1's router to layer L's state the way a predictor would.
class RecordingProvider : public ExpertProvider {
 public:
  RecordingProvider(LoadedModel& m, ExpertProvider& inner) : m_(m), inner_(inner) {}
  void OnFfnInput(int layer, const float* x, int64_t n_tok) override {
    hooks.push_back(layer);
    const model::ModelConfig& c = m_.config;
    if (layer + 1 >= c.n_layer) return;
    const kernels::WeightView next = m_.engine->router(layer + 1);
    ASSERT_NE(next.data, nullptr);
    ASSERT_EQ(next.n_out, c.n_expert);
    std::vector<float> scores(n_tok * c.n_expert);
    m_.backend->MatMul(next, x, n_tok, scores.data());  // cpu: device memory is host memory
    for (float v : scores) ASSERT_TRUE(std::isfinite(v));
  }
  absl::Status Compute(int layer, const float* x, int64_t n_tok, const int32_t* ids,
                       const float* weights, int k, float* out) override {
    for (int64_t t = 0; t < n_tok; ++t) {
      calls.push_back({layer, std::vector<int32_t>(ids + t * k, ids + (t + 1) * k)});
      float sum = 0;
      for (int j = 0; j < k; ++j) sum += weights[t * k + j];
      EXPECT_NEAR(sum, 1.0f, 1e-5f);  // renormalised top-k
    }
    return inner_.Compute(layer, x, n_tok, ids, weights, k, out);
  }
  struct Call {
    int layer;
    std::vector<int32_t> ids;
  };
  std::vector<Call> calls;
  std::vector<int> hooks;

 private:
  LoadedModel& m_;
  ExpertProvider& inner_;
};

TEST(ExpertProviderInjection, EveryRoutedExpertGoesThroughTheProviderAsTheReferenceRoutes) {
  const std::string dir = SharedPath("reference/qwen3moe-tiny-a");
  auto m = LoadWith(dir + "/qwen3moe-tiny-a.gguf");
  ASSERT_TRUE(m.ok()) << m.status();
  LoadedModel& lm = **m;
  RecordingProvider rec(lm, *lm.provider);
  EngineOptions eo;
  eo.n_ctx = 64;
  eo.all_logits = true;
  auto e = Engine::Create(*lm.backend, lm.config, *lm.weights, &rec, eo);
  ASSERT_TRUE(e.ok()) << e.status();
  std::vector<int32_t> prompt;
  for (int i = 1; i <= 32; ++i) prompt.push_back(i);
  ASSERT_TRUE((*e)->Process(prompt, LogitsMode::kAll).ok());
  // Same logits as the engine with the provider used directly.
  EXPECT_EQ(AllLogits(*lm.engine, prompt),
            std::vector<float>((*e)->logits().begin(), (*e)->logits().end()));
  EXPECT_EQ(rec.hooks, (std::vector<int>{0, 1, 2, 3}));
  // The float64 reference's expert choices, position by position.
  const auto ref = ::moestream::testing::ReferenceRouting(ReadFileOrDie(dir + "/ref.json"));
  ASSERT_GE(ref.size(), 32u * 4u);
  ASSERT_EQ(rec.calls.size(), 32u * 4u);
  for (int pos = 0; pos < 32; ++pos) {
    for (int layer = 0; layer < 4; ++layer) {
      // Calls are layer-major (all tokens of a layer), ref is position-major.
      const auto& call = rec.calls[layer * 32 + pos];
      EXPECT_EQ(call.layer, layer);
      EXPECT_EQ(call.ids, ref[pos * 4 + layer]) << "position " << pos << " layer " << layer;
    }
  }
}

gen::GenOptions Tiny(gen::GenArch arch) {
  gen::GenOptions o;
  o.arch = arch;
  o.layers = 2;
  o.hidden = 256;
  o.heads = 4;
  o.kv_heads = 2;
  o.head_dim = 64;
  o.experts = 8;
  o.top_k = 2;
  o.expert_ffn = 256;
  o.ffn = 512;
  o.vocab = 512;
  o.context = 256;
  o.seed = 7;
  o.threads = 2;
  return o;
}

// Relative rms error of the logits of an all-`type` model against the F32
// model with the same generated weights. Rounding gives each weight a
// relative rms error e (uniform rounding: step/sqrt(12) over the weights'
// rms): F16 2^-11/sqrt(3) ~ 0.03%, BF16 2^-8/sqrt(3) ~ 0.23%, Q8_0
// (block absmax ~2.5 sigma / 127) ~ 0.6%, Q6_K ~ 1.8%, Q4_K ~ 6%, Q4_0
// ~ 9%. Through two layers (and an occasional routing flip) the logits
// move by 3-4 e; each bound is 6 e.
struct QuantCase {
  GgmlType type;
  double bound;
};

class QuantizedWeightsTest : public ::testing::TestWithParam<QuantCase> {};

TEST_P(QuantizedWeightsTest, AgreesWithF32WithinQuantizationError) {
  ScratchDir dir;
  gen::GenOptions o = Tiny(gen::GenArch::kQwen3Moe);
  ASSERT_TRUE(gen::GenerateModel(o, dir.Path("f32.gguf")).ok());
  o.type = GetParam().type;
  ASSERT_TRUE(gen::GenerateModel(o, dir.Path("q.gguf")).ok());
  auto f32 = LoadWith(dir.Path("f32.gguf"));
  auto q = LoadWith(dir.Path("q.gguf"));
  ASSERT_TRUE(f32.ok()) << f32.status();
  ASSERT_TRUE(q.ok()) << q.status();
  const std::vector<int32_t> prompt = Prompt(16, 512);
  const std::vector<float> a = AllLogits(*(*f32)->engine, prompt);
  const std::vector<float> b = AllLogits(*(*q)->engine, prompt);
  double rms = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    rms += double(a[i]) * a[i];
    err += double(a[i] - b[i]) * (a[i] - b[i]);
  }
  const double rel = std::sqrt(err / rms);
  RecordProperty("relative_rms_error", std::to_string(rel));
  EXPECT_GT(rel, 0.0);
  EXPECT_LT(rel, GetParam().bound) << GgmlTypeName(GetParam().type);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizedWeightsTest,
                         ::testing::Values(QuantCase{GgmlType::kF16, 0.002},
                                           QuantCase{GgmlType::kBF16, 0.014},
                                           QuantCase{GgmlType::kQ8_0, 0.036},
                                           QuantCase{GgmlType::kQ6_K, 0.11},
                                           QuantCase{GgmlType::kQ4_K, 0.36},
                                           QuantCase{GgmlType::kQ4_0, 0.54}),
                         [](const auto& info) {
                           return std::string(GgmlTypeName(info.param.type));
                         });

TEST(ExpertLayouts, StackedAndPerExpertTensorsGiveIdenticalLogits) {
  ScratchDir dir;
  gen::GenOptions o = Tiny(gen::GenArch::kMixtral);
  ASSERT_TRUE(gen::GenerateModel(o, dir.Path("stacked.gguf")).ok());
  o.expert_layout = gen::ExpertLayout::kSplit;
  ASSERT_TRUE(gen::GenerateModel(o, dir.Path("split.gguf")).ok());
  auto a = LoadWith(dir.Path("stacked.gguf"));
  auto b = LoadWith(dir.Path("split.gguf"));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE((*a)->config.is_moe());
  const std::vector<int32_t> prompt = Prompt(12, 512);
  EXPECT_EQ(AllLogits(*(*a)->engine, prompt), AllLogits(*(*b)->engine, prompt));
}

TEST(DenseLlama, GeneratedDenseModelRuns) {
  ScratchDir dir;
  gen::GenOptions o = Tiny(gen::GenArch::kLlama);
  o.type = GgmlType::kQ8_0;
  ASSERT_TRUE(gen::GenerateModel(o, dir.Path("dense.gguf")).ok());
  auto m = LoadWith(dir.Path("dense.gguf"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE((*m)->config.is_moe());
  const std::vector<float> l = AllLogits(*(*m)->engine, Prompt(5, 512));
  for (float v : l) ASSERT_TRUE(std::isfinite(v));
}

// gen writes llama4 and deepseek2 models the readers take with the layer
// pattern, shared experts and latent attention they describe, and they run.
TEST(GeneratedArchitectures, Llama4AndDeepseek2LoadAndRun) {
  ScratchDir dir;
  gen::GenOptions l4 = Tiny(gen::GenArch::kLlama4);
  l4.layers = 4;
  l4.moe_every = 2;
  l4.shared_experts = 1;
  l4.top_k = 1;
  l4.type = GgmlType::kQ8_0;
  gen::GenOptions ds = Tiny(gen::GenArch::kDeepseek2);
  ds.layers = 3;
  ds.dense_lead = 1;
  ds.shared_experts = 2;
  ds.q_lora_rank = 64;
  ds.kv_lora_rank = 64;
  ds.rope_dim = 16;
  ds.v_head_dim = 32;
  ds.sigmoid_gating = true;
  ds.expert_groups = 4;
  ds.group_used = 2;
  ds.weights_scale = 2.5;
  ds.type = GgmlType::kQ8_0;
  for (const gen::GenOptions& o : {l4, ds}) {
    const std::string path = dir.Path(std::string(gen::GenArchName(o.arch)) + ".gguf");
    ASSERT_TRUE(gen::GenerateModel(o, path).ok()) << gen::GenArchName(o.arch);
    auto m = LoadWith(path);
    ASSERT_TRUE(m.ok()) << m.status();
    const model::ModelConfig& c = (*m)->config;
    EXPECT_EQ(c.arch, gen::GenArchName(o.arch));
    for (int il = 0; il < c.n_layer; ++il) {
      const bool moe = il >= o.dense_lead && (il + 1) % o.moe_every == 0;
      EXPECT_EQ(c.IsMoeLayer(il), moe) << c.arch << " layer " << il;
      EXPECT_EQ((*m)->weights->layers[il].is_moe(), moe) << c.arch << " layer " << il;
    }
    EXPECT_EQ(c.n_ff_shexp, o.shared_experts * o.expert_ffn);
    if (o.arch == gen::GenArch::kDeepseek2) {
      EXPECT_TRUE(c.is_mla());
      EXPECT_EQ(c.n_expert_groups, 4);
      EXPECT_EQ(c.gating, model::ExpertGating::kSigmoid);
      EXPECT_FLOAT_EQ(c.expert_weights_scale, 2.5f);
      EXPECT_NE((*m)->weights->layers[1].exp_probs_b, nullptr);
    }
    const std::vector<float> l = AllLogits(*(*m)->engine, Prompt(5, 512));
    ASSERT_FALSE(l.empty());
    for (float v : l) ASSERT_TRUE(std::isfinite(v)) << c.arch;
  }
}

// Copies `src` to `dst`, letting `edit` change metadata and tensors.
struct Edit {
  std::string arch;          // replaces general.architecture when set
  std::string drop_tensor;   // omitted
  std::string reshape_tensor;  // written with its first two dims swapped
  std::vector<std::string> drop_keys;  // metadata keys omitted
};

void CopyGguf(const std::string& src, const std::string& dst, const Edit& edit) {
  auto f = io::GgufFile::Open(src);
  ASSERT_TRUE(f.ok()) << f.status();
  io::GgufWriter w;
  for (const io::GgufKv& kv : f->metadata()) {
    if (std::find(edit.drop_keys.begin(), edit.drop_keys.end(), kv.key) != edit.drop_keys.end()) {
      continue;
    }
    if (kv.key == "general.architecture" && !edit.arch.empty()) {
      w.SetString(kv.key, edit.arch);
    } else {
      w.Set(kv.key, kv.value);
    }
  }
  for (const io::GgufTensorInfo& t : f->tensors()) {
    if (t.name == edit.drop_tensor) continue;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    if (t.name == edit.reshape_tensor) std::swap(ne[0], ne[1]);
    const uint64_t off = t.file_offset;
    ASSERT_TRUE(w.AddTensor(t.name, t.type, ne, [src, off](std::span<uint8_t> out) {
                   const int fd = ::open(src.c_str(), O_RDONLY);
                   const ssize_t r = ::pread(fd, out.data(), out.size(), static_cast<off_t>(off));
                   ::close(fd);
                   return r == static_cast<ssize_t>(out.size()) ? absl::OkStatus()
                                                                : absl::DataLossError("short read");
                 }).ok());
  }
  ASSERT_TRUE(w.Write(dst).ok());
}

TEST(LoadErrors, NameTheProblem) {
  ScratchDir dir;
  const std::string src = SharedPath("reference/qwen3moe-tiny-a/qwen3moe-tiny-a.gguf");

  CopyGguf(src, dir.Path("arch.gguf"), {"gpt-neo-moe", "", "", {}});
  auto a = LoadWith(dir.Path("arch.gguf"));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("gpt-neo-moe"), std::string::npos) << a.status();
  EXPECT_NE(a.status().message().find("llama, qwen3moe"), std::string::npos) << a.status();

  CopyGguf(src, dir.Path("missing.gguf"), {"", "blk.2.attn_k_norm.weight", "", {}});
  auto b = LoadWith(dir.Path("missing.gguf"));
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("missing tensor 'blk.2.attn_k_norm.weight'"),
            std::string::npos)
      << b.status();

  CopyGguf(src, dir.Path("shape.gguf"), {"", "", "blk.1.attn_k.weight", {}});
  auto c = LoadWith(dir.Path("shape.gguf"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'blk.1.attn_k.weight' has shape [128, 256], expected [256, 128]"),
            std::string::npos)
      << c.status();

  CopyGguf(src, dir.Path("experts.gguf"), {"", "blk.0.ffn_up_exps.weight", "", {}});
  auto d = LoadWith(dir.Path("experts.gguf"));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("ffn_up_exps"), std::string::npos) << d.status();
}

TEST(ModelConfig, AbsentKeysTakeLlamaCppDefaults) {
  ScratchDir dir;
  const std::vector<std::string> optional = {"attention.layer_norm_rms_epsilon",
                                             "rope.dimension_count", "attention.key_length",
                                             "attention.value_length", "vocab_size",
                                             "attention.head_count_kv", "rope.freq_base"};
  for (const std::string arch : {"qwen3moe", "llama"}) {
    const std::string name = arch == "llama" ? "mixtral-tiny-a" : "qwen3moe-tiny-a";
    std::vector<std::string> drop;
    for (const std::string& k : optional) drop.push_back(arch + "." + k);
    const std::string path = dir.Path(arch + ".gguf");
    CopyGguf(SharedPath("reference/" + name + "/" + name + ".gguf"), path, {"", "", "", drop});
    auto f = io::GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    auto c = model::ReadModelConfig(*f);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_FLOAT_EQ(c->rms_eps, arch == "llama" ? 1e-5f : 1e-6f) << arch;
    EXPECT_EQ(c->head_dim_k, 256 / 4) << arch;  // n_embd / n_head
    EXPECT_EQ(c->head_dim_v, c->head_dim_k);
    EXPECT_EQ(c->rope.n_rot, c->head_dim_k);
    EXPECT_EQ(c->n_vocab, 512);  // from token_embd's shape
    EXPECT_EQ(c->n_head_kv, c->n_head);
    EXPECT_FLOAT_EQ(c->rope.freq_base, 10000.0f);
    EXPECT_EQ(c->rope.mode, arch == "llama" ? kernels::RopeMode::kNormal : kernels::RopeMode::kNeox);
    EXPECT_EQ(c->qk_norm, arch == "qwen3moe");
    EXPECT_EQ(c->n_ff_exp, 128);
  }
}

TEST(ModelConfig, RopeScalingKeys) {
  ScratchDir dir;
  auto f = io::GgufFile::Open(SharedPath("reference/mixtral-tiny-a/mixtral-tiny-a.gguf"));
  ASSERT_TRUE(f.ok());
  io::GgufWriter w;
  for (const io::GgufKv& kv : f->metadata()) w.Set(kv.key, kv.value);
  w.SetString("llama.rope.scaling.type", "yarn");
  w.SetFloat32("llama.rope.scaling.factor", 4.0f);
  w.SetUint32("llama.rope.scaling.original_context_length", 128);
  ASSERT_TRUE(w.Write(dir.Path("yarn.gguf")).ok());
  auto y = io::GgufFile::Open(dir.Path("yarn.gguf"));
  ASSERT_TRUE(y.ok()) << y.status();
  auto c = model::ReadModelConfig(*y);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.scaling, kernels::RopeScaling::kYarn);
  EXPECT_FLOAT_EQ(c->rope.freq_scale, 0.25f);
  EXPECT_EQ(c->rope.n_ctx_orig, 128);
  EXPECT_FLOAT_EQ(c->rope.ext_factor, 1.0f);
}

// Metadata no real model has is refused when the config is read, naming the
// key, the value and the range, before any buffer is sized from it.
TEST(ModelConfig, OutOfRangeMetadataIsRefused) {
  ScratchDir dir;
  auto f = io::GgufFile::Open(SharedPath("reference/mixtral-tiny-a/mixtral-tiny-a.gguf"));
  ASSERT_TRUE(f.ok());
  struct Case {
    std::function<void(io::GgufWriter&)> edit;
    std::string want;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Case> cases = {
      {[](io::GgufWriter& w) { w.SetUint32("llama.block_count", 1000000000); },
       "llama.block_count = 1000000000 is out of range 1..1024"},
      {[&](io::GgufWriter& w) { w.SetFloat32("llama.attention.layer_norm_rms_epsilon", nan); },
       "llama.attention.layer_norm_rms_epsilon = nan must be finite"},
      {[](io::GgufWriter& w) { w.SetFloat32("llama.rope.freq_base", -10000.0f); },
       "llama.rope.freq_base = -10000 must be finite and in (0, "},
      {[](io::GgufWriter& w) { w.SetUint32("llama.vocab_size", 1000000000); },
       "llama.vocab_size = 1000000000 is out of range 1..4194304"},
      {[](io::GgufWriter& w) { w.SetUint32("llama.expert_count", 1u << 20); },
       "llama.expert_count = 1048576 is out of range 1..65536"},
      {[](io::GgufWriter& w) { w.SetUint32("llama.embedding_length", 1u << 30); },
       "llama.embedding_length = 1073741824 is out of range 1..65536"},
      {[](io::GgufWriter& w) { w.SetUint32("llama.attention.head_count_kv", 64); },
       "llama.attention.head_count_kv = 64 is out of range 1..4"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    io::GgufWriter w;
    for (const io::GgufKv& kv : f->metadata()) w.Set(kv.key, kv.value);
    cases[i].edit(w);
    const std::string path = dir.Path(absl::StrCat("bad", i, ".gguf"));
    ASSERT_TRUE(w.Write(path).ok());
    auto g = io::GgufFile::Open(path);
    ASSERT_TRUE(g.ok()) << g.status();
    auto c = model::ReadModelConfig(*g);
    ASSERT_FALSE(c.ok()) << cases[i].want;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(cases[i].want), std::string::npos) << c.status();
  }
}

TEST(Engine, ContextOverflowAndBadTokenAreErrors) {
  EngineOptions eo;
  eo.n_ctx = 8;
  auto m = LoadModel(SharedPath("data/stories260k-gguf/stories260K.gguf"), Cpu(), eo, LoadOptions{});
  ASSERT_TRUE(m.ok()) << m.status();
  Engine& e = *(*m)->engine;
  const std::vector<int32_t> nine(9, 5);
  EXPECT_EQ(e.Process(nine, LogitsMode::kLast).code(), absl::StatusCode::kOutOfRange);
  const int32_t bad = 512;
  EXPECT_EQ(e.Process({&bad, 1}, LogitsMode::kLast).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.n_past(), 0);
}

}  // namespace
}  // namespace moestream::engine
