// Tests of the synthetic model generator (gen/model_gen.h) and
// `moestream gen`: files read back through io::GgufFile with llama.cpp's keys,
// names and shapes; the key and tensor sets equal those of the reference GGUFs
// in ../shared/reference (written by an independent tool); every --type
// round-trips to the F32 values; determinism; routing skew; CLI errors.
#include "gen/model_gen.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "kernels/quant.h"
#include "tests/test_util.h"

namespace moestream::gen {
namespace {

using ::moestream::testing::MoestreamBin;
using ::moestream::testing::RunCommand;
using ::moestream::testing::ScratchDir;
using ::moestream::testing::SharedPath;
using ::testing::HasSubstr;

io::GgufFile OpenOrDie(const std::string& path) {
  absl::StatusOr<io::GgufFile> f = io::GgufFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  return std::move(f).value();
}

GenOptions Tiny(GenArch arch) {
  absl::StatusOr<GenOptions> o = PresetOptions("tiny", arch);
  EXPECT_TRUE(o.ok()) << o.status();
  return *o;
}

std::string Generate(const ScratchDir& dir, const std::string& name, const GenOptions& o) {
  const std::string path = dir.Path(name);
  absl::Status s = GenerateModel(o, path);
  EXPECT_TRUE(s.ok()) << s;
  return path;
}

std::string ReadBytes(const std::string& path, uint64_t offset, uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  EXPECT_TRUE(in.good()) << path << " @" << offset;
  return bytes;
}

// A tensor's values as floats, dequantized row by row.
std::vector<float> ReadTensor(const io::GgufFile& f, const std::string& name) {
  const io::GgufTensorInfo* t = f.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  const std::string bytes = ReadBytes(f.path(), t->file_offset, t->size_bytes);
  std::vector<float> out(t->elements());
  const int64_t ne0 = t->ne[0];
  const uint64_t row_bytes = RowBytes(t->type, ne0);
  for (uint64_t r = 0; r < t->elements() / ne0; ++r) {
    if (t->type == GgmlType::kF32) {
      std::memcpy(out.data() + r * ne0, bytes.data() + r * row_bytes, row_bytes);
    } else {
      absl::Status s =
          kernels::DequantizeRow(t->type, bytes.data() + r * row_bytes, ne0, out.data() + r * ne0);
      EXPECT_TRUE(s.ok()) << s;
    }
  }
  return out;
}

std::vector<int64_t> Shape(const io::GgufTensorInfo& t) {
  return std::vector<int64_t>(t.ne, t.ne + t.n_dims);
}

TEST(ModelGenTest, Qwen3MoeTinyHasLlamaCppKeysAndTensors) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  const std::string path = Generate(dir, "q.gguf", o);
  io::GgufFile f = OpenOrDie(path);
  EXPECT_EQ(*f.GetString("general.architecture"), "qwen3moe");
  EXPECT_EQ(*f.GetString("tokenizer.ggml.model"), "none");
  EXPECT_EQ(*f.GetUint("general.file_type"), 0u);
  EXPECT_EQ(*f.GetUint("qwen3moe.block_count"), uint64_t(o.layers));
  EXPECT_EQ(*f.GetUint("qwen3moe.embedding_length"), uint64_t(o.hidden));
  EXPECT_EQ(*f.GetUint("qwen3moe.expert_count"), uint64_t(o.experts));
  EXPECT_EQ(*f.GetUint("qwen3moe.expert_used_count"), uint64_t(o.top_k));
  EXPECT_EQ(*f.GetUint("qwen3moe.expert_feed_forward_length"), uint64_t(o.expert_ffn));
  EXPECT_EQ(*f.GetUint("qwen3moe.attention.key_length"), uint64_t(o.head_dim));
  EXPECT_EQ(*f.GetUint("qwen3moe.attention.value_length"), uint64_t(o.head_dim));
  EXPECT_FLOAT_EQ(*f.GetFloat("qwen3moe.rope.freq_base"), 1e6f);
  EXPECT_FLOAT_EQ(*f.GetFloat("qwen3moe.attention.layer_norm_rms_epsilon"), 1e-6f);
  // token_embd + output_norm + output, and 12 tensors per layer.
  EXPECT_EQ(f.tensors().size(), 3u + 12u * o.layers);
  const int64_t h = o.hidden, q = o.heads * o.head_dim, kv = o.kv_heads * o.head_dim;
  const std::map<std::string, std::vector<int64_t>> want = {
      {"token_embd.weight", {h, o.vocab}},
      {"output.weight", {h, o.vocab}},
      {"output_norm.weight", {h}},
      {"blk.1.attn_q.weight", {h, q}},
      {"blk.1.attn_k.weight", {h, kv}},
      {"blk.1.attn_v.weight", {h, kv}},
      {"blk.1.attn_output.weight", {q, h}},
      {"blk.1.attn_q_norm.weight", {o.head_dim}},
      {"blk.1.attn_k_norm.weight", {o.head_dim}},
      {"blk.1.ffn_norm.weight", {h}},
      {"blk.1.ffn_gate_inp.weight", {h, o.experts}},
      {"blk.1.ffn_gate_exps.weight", {h, o.expert_ffn, o.experts}},
      {"blk.1.ffn_up_exps.weight", {h, o.expert_ffn, o.experts}},
      {"blk.1.ffn_down_exps.weight", {o.expert_ffn, h, o.experts}},
  };
  for (const auto& [name, ne] : want) {
    const io::GgufTensorInfo* t = f.FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(Shape(*t), ne) << name;
  }
  // Experts are addressable by the reader.
  absl::StatusOr<io::ByteRange> r = f.ExpertRange(1, io::ExpertMatrix::kDown, o.experts - 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size, RowBytes(GgmlType::kF32, o.expert_ffn) * h);
}

TEST(ModelGenTest, MixtralStackedAndSplitLayoutsHoldIdenticalExperts) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kMixtral);
  o.type = GgmlType::kQ8_0;
  const std::string stacked = Generate(dir, "stacked.gguf", o);
  o.expert_layout = ExpertLayout::kSplit;
  const std::string split = Generate(dir, "split.gguf", o);
  io::GgufFile a = OpenOrDie(stacked), b = OpenOrDie(split);
  EXPECT_EQ(*a.GetString("general.architecture"), "llama");
  EXPECT_EQ(*a.GetUint("llama.expert_count"), uint64_t(o.experts));
  EXPECT_EQ(*a.GetUint("llama.feed_forward_length"), uint64_t(o.expert_ffn));
  EXPECT_EQ(*a.GetUint("general.quantization_version"), 2u);
  EXPECT_EQ(*a.GetUint("general.file_type"), 7u);
  // heads * head_dim == hidden: llama.cpp derives head_dim, no key_length.
  EXPECT_EQ(a.Find("llama.attention.key_length"), nullptr);
  EXPECT_EQ(a.FindTensor("blk.0.attn_q_norm.weight"), nullptr);
  EXPECT_EQ(b.FindTensor("blk.0.ffn_gate_exps.weight"), nullptr);
  const io::GgufTensorInfo* e3 = b.FindTensor("blk.1.ffn_down.3.weight");
  ASSERT_NE(e3, nullptr);
  EXPECT_EQ(Shape(*e3), (std::vector<int64_t>{o.expert_ffn, o.hidden}));
  EXPECT_EQ(e3->type, GgmlType::kQ8_0);
  for (int layer = 0; layer < o.layers; ++layer) {
    for (auto m : {io::ExpertMatrix::kGate, io::ExpertMatrix::kUp, io::ExpertMatrix::kDown}) {
      for (int e = 0; e < o.experts; ++e) {
        absl::StatusOr<io::ByteRange> ra = a.ExpertRange(layer, m, e);
        absl::StatusOr<io::ByteRange> rb = b.ExpertRange(layer, m, e);
        ASSERT_TRUE(ra.ok() && rb.ok()) << ra.status() << rb.status();
        ASSERT_EQ(ReadBytes(stacked, ra->offset, ra->size), ReadBytes(split, rb->offset, rb->size))
            << "layer " << layer << " " << io::ExpertMatrixName(m) << " expert " << e;
      }
    }
  }
}

TEST(ModelGenTest, DenseLlamaHasNoExperts) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kLlama);
  io::GgufFile f = OpenOrDie(Generate(dir, "l.gguf", o));
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(f.Find("llama.expert_count"), nullptr);
  EXPECT_EQ(*f.GetUint("llama.feed_forward_length"), uint64_t(o.ffn));
  EXPECT_FLOAT_EQ(*f.GetFloat("llama.rope.freq_base"), 1e4f);
  EXPECT_EQ(f.tensors().size(), 3u + 9u * o.layers);
  const io::GgufTensorInfo* down = f.FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(Shape(*down), (std::vector<int64_t>{o.ffn, o.hidden}));
  EXPECT_EQ(f.FindTensor("blk.0.ffn_gate_inp.weight"), nullptr);
}

// The reference models were written by an independent tool; a model generated
// with their shapes must have exactly their metadata keys (with the same value
// types and, but for the name, values) and tensor table.
void ExpectSameLayoutAsReference(GenArch arch, const std::string& ref_rel, GenOptions o) {
  ScratchDir dir;
  o.arch = arch;
  io::GgufFile ours = OpenOrDie(Generate(dir, "m.gguf", o));
  io::GgufFile ref = OpenOrDie(SharedPath(ref_rel));
  std::vector<std::string> our_keys, ref_keys;
  for (const auto& kv : ours.metadata()) our_keys.push_back(kv.key);
  for (const auto& kv : ref.metadata()) ref_keys.push_back(kv.key);
  std::sort(our_keys.begin(), our_keys.end());
  std::sort(ref_keys.begin(), ref_keys.end());
  EXPECT_EQ(our_keys, ref_keys);
  for (const auto& kv : ref.metadata()) {
    const io::GgufValue* v = ours.Find(kv.key);
    if (v == nullptr) continue;
    EXPECT_EQ(v->type(), kv.value.type()) << kv.key;
    if (kv.key != "general.name") {
      EXPECT_EQ(*v, kv.value) << kv.key;
    }
  }
  ASSERT_EQ(ours.tensors().size(), ref.tensors().size());
  for (size_t i = 0; i < ref.tensors().size(); ++i) {
    const io::GgufTensorInfo& r = ref.tensors()[i];
    const io::GgufTensorInfo* t = ours.FindTensor(r.name);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(Shape(*t), Shape(r)) << r.name;
    EXPECT_EQ(t->type, r.type) << r.name;
  }
}

GenOptions ReferenceShape() {
  GenOptions o;
  o.layers = 4;
  o.hidden = 256;
  o.heads = 4;
  o.kv_heads = 2;
  o.head_dim = 64;
  o.experts = 8;
  o.top_k = 2;
  o.expert_ffn = 128;
  o.ffn = 128;
  o.vocab = 512;
  o.context = 512;
  return o;
}

TEST(ModelGenTest, Qwen3MoeMatchesIndependentReferenceLayout) {
  ExpectSameLayoutAsReference(GenArch::kQwen3Moe, "reference/qwen3moe-tiny-a/qwen3moe-tiny-a.gguf",
                              ReferenceShape());
}

TEST(ModelGenTest, MixtralMatchesIndependentReferenceLayout) {
  ExpectSameLayoutAsReference(GenArch::kMixtral, "reference/mixtral-tiny-a/mixtral-tiny-a.gguf",
                              ReferenceShape());
}

// gpt-oss: the reference's shape (8/2 heads of 64, 16 experts top-4 of 256,
// window 8, context 131072). Every key, value, tensor shape and type —
// F32 with MXFP4 experts — as llama.cpp's converter writes them.
TEST(ModelGenTest, GptOssMatchesIndependentReferenceLayout) {
  GenOptions o = ReferenceShape();
  o.heads = 8;
  o.experts = 16;
  o.top_k = 4;
  o.expert_ffn = 256;
  o.context = 131072;
  o.sliding_window = 8;
  ExpectSameLayoutAsReference(GenArch::kGptOss, "reference/gpt-oss-tiny-a/gpt-oss-tiny-a.gguf", o);
}

struct TypeTolerance {
  GgmlType type;
  double max_rel_rms_error;  // RMS(dequantized - f32) / RMS(f32)
};

TEST(ModelGenTest, EveryTypeRoundTripsToTheF32Values) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  o.layers = 1;
  o.seed = 77;
  io::GgufFile ref = OpenOrDie(Generate(dir, "f32.gguf", o));
  const std::vector<std::string> matrices = {"token_embd.weight", "blk.0.attn_q.weight",
                                             "blk.0.ffn_down_exps.weight", "output.weight"};
  const std::vector<std::string> f32_always = {"blk.0.attn_norm.weight", "blk.0.attn_q_norm.weight",
                                               "blk.0.ffn_gate_inp.weight", "output_norm.weight"};
  // ggml's formats: f16 ~11 bits, bf16 8 bits, q8_0 ~7 bits, q6_k ~5, q5_k ~4, q4 ~3.
  for (const TypeTolerance& tt :
       {TypeTolerance{GgmlType::kF16, 1e-3}, {GgmlType::kBF16, 5e-3}, {GgmlType::kQ8_0, 1e-2},
        {GgmlType::kQ6_K, 4e-2}, {GgmlType::kQ5_K, 6e-2}, {GgmlType::kQ4_K, 0.12}, {GgmlType::kQ4_0, 0.15}}) {
    SCOPED_TRACE(std::string(GgmlTypeName(tt.type)));
    o.type = tt.type;
    io::GgufFile f = OpenOrDie(Generate(dir, std::string(GgmlTypeName(tt.type)) + ".gguf", o));
    EXPECT_EQ(*f.GetUint("general.file_type"), FileTypeOf(tt.type));
    for (const std::string& name : matrices) {
      EXPECT_EQ(f.FindTensor(name)->type, tt.type) << name;
      const std::vector<float> want = ReadTensor(ref, name);
      const std::vector<float> got = ReadTensor(f, name);
      ASSERT_EQ(got.size(), want.size());
      double err2 = 0, ref2 = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        err2 += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        ref2 += double(want[i]) * want[i];
      }
      EXPECT_LT(std::sqrt(err2 / ref2), tt.max_rel_rms_error) << name;
      EXPECT_GT(ref2, 0.0);
    }
    for (const std::string& name : f32_always) {
      EXPECT_EQ(f.FindTensor(name)->type, GgmlType::kF32) << name;
      EXPECT_EQ(ReadTensor(f, name), ReadTensor(ref, name)) << name;
    }
  }
}

TEST(ModelGenTest, SameSeedSameBytesOtherSeedOtherWeights) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  o.type = GgmlType::kQ8_0;
  o.seed = 5;
  o.threads = 1;
  const std::string a = Generate(dir, "a.gguf", o);
  o.threads = 2;  // the thread count must not matter
  const std::string b = Generate(dir, "b.gguf", o);
  o.seed = 6;
  const std::string c = Generate(dir, "c.gguf", o);
  const std::string ba = testing::ReadFileOrDie(a);
  EXPECT_EQ(ba, testing::ReadFileOrDie(b));
  const std::string bc = testing::ReadFileOrDie(c);
  ASSERT_EQ(ba.size(), bc.size());  // same header and layout
  EXPECT_NE(ba, bc);
  io::GgufFile fa = OpenOrDie(a), fc = OpenOrDie(c);
  EXPECT_NE(ReadTensor(fa, "blk.0.ffn_up_exps.weight"), ReadTensor(fc, "blk.0.ffn_up_exps.weight"));
}

TEST(ModelGenTest, WeightsAreScaledForUnitActivations) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  io::GgufFile f = OpenOrDie(Generate(dir, "m.gguf", o));
  auto stats = [&](const std::string& name) {
    std::vector<float> v = ReadTensor(f, name);
    double s = 0, s2 = 0;
    for (float x : v) {
      s += x;
      s2 += double(x) * x;
    }
    return std::pair<double, double>{s / v.size(), std::sqrt(s2 / v.size())};
  };
  auto [embd_mean, embd_rms] = stats("token_embd.weight");
  EXPECT_NEAR(embd_rms, 1.0, 0.05);
  auto [down_mean, down_rms] = stats("blk.0.ffn_down_exps.weight");
  EXPECT_NEAR(down_mean, 0.0, 0.01);
  EXPECT_NEAR(down_rms, 1.0 / std::sqrt(double(o.expert_ffn)), 0.01 / std::sqrt(double(o.expert_ffn)));
  auto [norm_mean, norm_rms] = stats("blk.0.ffn_norm.weight");
  EXPECT_NEAR(norm_mean, 1.0, 0.02);
  (void)embd_mean;
  (void)norm_rms;
}

// Routing skew: top-1 expert of layer 0's router for hidden vectors. Returns
// the share of the most chosen expert.
double TopExpertShare(const io::GgufFile& f, int experts, bool isotropic) {
  const std::vector<float> router = ReadTensor(f, "blk.0.ffn_gate_inp.weight");
  const std::vector<float> embd = ReadTensor(f, "token_embd.weight");
  const std::vector<float> norm = ReadTensor(f, "blk.0.ffn_norm.weight");
  const int64_t h = static_cast<int64_t>(norm.size());
  const int64_t vocab = static_cast<int64_t>(embd.size()) / h;
  std::vector<int> count(experts);
  uint64_t lcg = 12345;
  std::vector<double> x(h);
  for (int64_t t = 0; t < vocab; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < h; ++i) {
      if (isotropic) {  // sum of 12 uniforms - 6 ~ N(0, 1)
        double s = -6;
        for (int k = 0; k < 12; ++k) {
          lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
          s += double(lcg >> 11) / double(1ull << 53);
        }
        x[i] = s;
      } else {
        x[i] = embd[t * h + i];
      }
      ss += x[i] * x[i];
    }
    const double inv_rms = 1.0 / std::sqrt(ss / h + 1e-6);
    int best = 0;
    double best_logit = -1e300;
    for (int e = 0; e < experts; ++e) {
      double logit = 0;
      for (int64_t i = 0; i < h; ++i) logit += router[e * h + i] * x[i] * inv_rms * norm[i];
      if (logit > best_logit) {
        best_logit = logit;
        best = e;
      }
    }
    ++count[best];
  }
  return double(*std::max_element(count.begin(), count.end())) / double(vocab);
}

TEST(ModelGenTest, RoutingIsSkewedLikeARealModel) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  o.layers = 1;
  o.vocab = 2048;
  o.experts = 16;
  const double uniform = 1.0 / o.experts;
  io::GgufFile skewed = OpenOrDie(Generate(dir, "skewed.gguf", o));
  // Hidden states carry the model's common direction: Zipf-like popularity.
  const double model_inputs = TopExpertShare(skewed, o.experts, /*isotropic=*/false);
  EXPECT_GT(model_inputs, 2.5 * uniform);
  // Even isotropic inputs see some skew.
  const double isotropic = TopExpertShare(skewed, o.experts, /*isotropic=*/true);
  EXPECT_GT(isotropic, 1.3 * uniform);
  // Without the popularity bias, routing is close to uniform.
  o.router_skew = 0;
  io::GgufFile flat = OpenOrDie(Generate(dir, "flat.gguf", o));
  const double no_skew = TopExpertShare(flat, o.experts, /*isotropic=*/false);
  EXPECT_LT(no_skew, 1.6 * uniform);
  RecordProperty("top_expert_share_model_inputs", std::to_string(model_inputs));
  RecordProperty("top_expert_share_isotropic", std::to_string(isotropic));
  RecordProperty("top_expert_share_no_skew", std::to_string(no_skew));
}

TEST(ModelGenTest, PresetsHaveTheRealShapes) {
  absl::StatusOr<GenOptions> m = PresetOptions("mixtral-8x7b", GenArch::kMixtral);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->hidden, 4096);
  EXPECT_EQ(m->layers, 32);
  EXPECT_EQ(m->experts, 8);
  EXPECT_EQ(m->top_k, 2);
  EXPECT_EQ(m->expert_ffn, 14336);
  EXPECT_EQ(m->kv_heads, 8);
  EXPECT_EQ(m->vocab, 32000);
  absl::StatusOr<GenOptions> q = PresetOptions("qwen3-235b-a22b", GenArch::kQwen3Moe);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->layers, 94);
  EXPECT_EQ(q->experts, 128);
  EXPECT_EQ(q->top_k, 8);
  EXPECT_EQ(q->expert_ffn, 1536);
  EXPECT_EQ(q->heads, 64);
  EXPECT_EQ(q->vocab, 151936);
  for (const std::string& name : PresetNames()) {
    absl::StatusOr<GenOptions> p = PresetOptions(name, PresetDefaultArch(name));
    ASSERT_TRUE(p.ok()) << name;
    for (GgmlType t : {GgmlType::kF32, GgmlType::kQ8_0, GgmlType::kQ4_K}) {
      p->type = t;
      EXPECT_TRUE(p->Validate().ok()) << name << " " << GgmlTypeName(t) << ": " << p->Validate();
    }
  }
  EXPECT_THAT(std::string(PresetOptions("huge", GenArch::kLlama).status().message()),
              HasSubstr("--preset"));
}

TEST(ModelGenTest, ScaleKeepsShapesValid) {
  GenOptions m = *PresetOptions("mixtral-8x7b", GenArch::kMixtral);
  ASSERT_TRUE(ScaleOptions(8, /*scale_layers=*/false, &m).ok());
  EXPECT_EQ(m.hidden, 512);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.heads, 4);  // heads * head_dim still == hidden
  EXPECT_EQ(m.kv_heads, 1);
  EXPECT_EQ(m.expert_ffn, 1792);
  EXPECT_EQ(m.vocab, 4096);  // 32000 / 8 rounded to 256
  EXPECT_EQ(m.layers, 32);
  EXPECT_EQ(m.experts, 8);
  for (double scale : {1.0, 2.0, 3.0, 7.5, 16.0, 1000.0}) {
    for (const std::string& name : PresetNames()) {
      GenOptions o = *PresetOptions(name, PresetDefaultArch(name));
      ASSERT_TRUE(ScaleOptions(scale, /*scale_layers=*/true, &o).ok());
      o.type = GgmlType::kQ4_K;
      EXPECT_TRUE(o.Validate().ok()) << name << " / " << scale << ": " << o.Validate();
      EXPECT_GE(o.layers, 1);
    }
  }
  GenOptions q = *PresetOptions("qwen3-235b-a22b", GenArch::kQwen3Moe);
  ASSERT_TRUE(ScaleOptions(4, /*scale_layers=*/true, &q).ok());
  EXPECT_EQ(q.hidden, 1024);
  EXPECT_EQ(q.heads, 16);
  EXPECT_EQ(q.kv_heads, 1);
  EXPECT_EQ(q.expert_ffn, 512);  // 1536 / 4 = 384, rounded to a multiple of 256
  EXPECT_EQ(q.layers, 24);  // 94 / 4 rounded
  EXPECT_FALSE(ScaleOptions(0.5, false, &q).ok());
}

TEST(ModelGenTest, ValidateNamesTheFlag) {
  auto error_of = [](GenOptions o) { return std::string(o.Validate().message()); };
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  ASSERT_TRUE(o.Validate().ok());
  GenOptions bad = o;
  bad.top_k = 9;
  EXPECT_THAT(error_of(bad), HasSubstr("--top-k"));
  bad = o;
  bad.kv_heads = 3;
  EXPECT_THAT(error_of(bad), HasSubstr("--kv-heads"));
  bad = o;
  bad.type = GgmlType::kQ4_K;
  bad.hidden = 128;
  EXPECT_THAT(error_of(bad), HasSubstr("--hidden"));
  bad = o;
  bad.type = GgmlType::kQ8_0;
  bad.expert_ffn = 100;
  EXPECT_THAT(error_of(bad), HasSubstr("--expert-ffn"));
  bad = o;
  bad.expert_layout = ExpertLayout::kSplit;
  EXPECT_THAT(error_of(bad), HasSubstr("--expert-layout"));
  bad = o;
  bad.layers = 0;
  EXPECT_THAT(error_of(bad), HasSubstr("--layers"));
  bad = o;
  bad.head_dim = 63;
  EXPECT_THAT(error_of(bad), HasSubstr("--head-dim"));
  bad = o;
  bad.type = GgmlType::kQ2_K;
  EXPECT_THAT(error_of(bad), HasSubstr("--type"));
}

TEST(ModelGenTest, FailedGenerationLeavesNoFile) {
  ScratchDir dir;
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  o.top_k = 99;
  const std::string path = dir.Path("bad.gguf");
  EXPECT_FALSE(GenerateModel(o, path).ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  o = Tiny(GenArch::kQwen3Moe);
  EXPECT_FALSE(GenerateModel(o, dir.Path("no/such/dir/m.gguf")).ok());
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(GenCliTest, WritesAModelAndReportsIt) {
  ScratchDir dir;
  const std::string out = dir.Path("m.gguf");
  testing::CommandResult r = RunCommand(MoestreamBin() + " gen --arch qwen3moe --preset tiny -o " +
                                        out + " --type q8_0 --layers 1 --experts 4 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("wrote"));
  io::GgufFile f = OpenOrDie(out);
  EXPECT_EQ(*f.GetUint("qwen3moe.block_count"), 1u);
  EXPECT_EQ(*f.GetUint("qwen3moe.expert_count"), 4u);
  EXPECT_EQ(f.FindTensor("blk.0.ffn_up_exps.weight")->type, GgmlType::kQ8_0);
  // Same flags through the library give the same bytes.
  GenOptions o = Tiny(GenArch::kQwen3Moe);
  o.type = GgmlType::kQ8_0;
  o.layers = 1;
  o.experts = 4;
  o.seed = 3;
  EXPECT_EQ(testing::ReadFileOrDie(out), testing::ReadFileOrDie(Generate(dir, "lib.gguf", o)));
}

TEST(GenCliTest, ScaledPresetAndSplitMixtral) {
  ScratchDir dir;
  const std::string out = dir.Path("m.gguf");
  testing::CommandResult r =
      RunCommand(MoestreamBin() + " gen --preset mixtral-8x7b --scale 16 --layers 1 --vocab 256 "
                                  "--expert-layout split --type q4_0 --quiet -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  io::GgufFile f = OpenOrDie(out);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetUint("llama.embedding_length"), 256u);
  EXPECT_EQ(*f.GetUint("llama.expert_count"), 8u);
  EXPECT_NE(f.FindTensor("blk.0.ffn_up.7.weight"), nullptr);
}

TEST(GenCliTest, BadFlagsGiveOneLineErrorsAndNoFile) {
  ScratchDir dir;
  const std::string out = dir.Path("m.gguf");
  const std::string gen = MoestreamBin() + " gen -o " + out + " ";
  struct Case {
    std::string flags;
    std::string mention;
  };
  for (const Case& c : std::vector<Case>{
           {"--top-k 9", "--top-k"},
           {"--type q4_k --hidden 128", "--hidden"},
           {"--heads 3", "--kv-heads"},
           {"--type q9_9", "--type"},
           {"--arch gpt2", "--arch"},
           {"--preset enormous", "--preset"},
           {"--arch llama --experts 4", "--experts"},
           {"--arch mixtral --ffn 512", "--ffn"},
           {"--expert-layout split", "--expert-layout"},
           {"--scale 0.5", "--scale"},
           {"--layers abc", "--layers"},
           {"--no-such-flag", "--no-such-flag"},
       }) {
    SCOPED_TRACE(c.flags);
    testing::CommandResult r = RunCommand(gen + c.flags);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(c.mention));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
  testing::CommandResult r = RunCommand(MoestreamBin() + " gen --preset tiny");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("-o"));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

}  // namespace
}  // namespace moestream::gen
