// Tests of the Q4_K_M per-tensor mix (gen/quant_mix.h): the types `gen
// --type q4_k_m` writes for the qwen3moe and mixtral tiny shapes equal, tensor
// by tensor, those of the same shapes quantized by llama.cpp's own
// llama-quantize (../shared/reference/*-tiny-a-q4_k_m); the layer rule and the
// fallbacks on hand-made tables; a generated Q4_K_M model loads its data.
#include "gen/quant_mix.h"

#include <map>
#include <string>
#include <vector>

#include "gen/model_gen.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "tests/test_util.h"

namespace moestream::gen {
namespace {

using ::moestream::testing::ScratchDir;
using ::moestream::testing::SharedPath;

std::map<std::string, GgmlType> TypesOf(const std::string& path) {
  absl::StatusOr<io::GgufFile> f = io::GgufFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  std::map<std::string, GgmlType> m;
  if (!f.ok()) return m;
  for (const io::GgufTensorInfo& t : f->tensors()) m[t.name] = t.type;
  return m;
}

// The reference models' shape: 4 layers, hidden 256, 4 heads (2 KV) of 64,
// 8 experts top-2 of 128 rows, vocabulary 512.
GenOptions ReferenceShape(GenArch arch) {
  absl::StatusOr<GenOptions> o = PresetOptions("tiny", arch);
  EXPECT_TRUE(o.ok()) << o.status();
  o->layers = 4;
  o->expert_ffn = 128;
  o->ffn = 128;
  o->type = QuantMixBaseType(QuantMix::kQ4_K_M);
  o->mix = QuantMix::kQ4_K_M;
  return *o;
}

void ExpectSameTypes(GenArch arch, const std::string& reference) {
  ScratchDir dir;
  GenOptions o = ReferenceShape(arch);
  o.header_only = true;
  ASSERT_TRUE(GenerateModel(o, dir.Path("m.gguf")).ok());
  std::map<std::string, GgmlType> ours = TypesOf(dir.Path("m.gguf"));
  std::map<std::string, GgmlType> theirs = TypesOf(SharedPath(reference));
  ASSERT_FALSE(theirs.empty());
  ASSERT_EQ(ours.size(), theirs.size());
  int quantized_kinds = 0;
  std::map<GgmlType, int> count;
  for (const auto& [name, type] : theirs) {
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_EQ(GgmlTypeName(ours[name]), GgmlTypeName(type)) << name;
    ++count[type];
  }
  for (const auto& [type, n] : count) quantized_kinds += type != GgmlType::kF32;
  // The reference really is a mix: Q4_K, Q5_0, Q5_K, Q6_K and Q8_0.
  EXPECT_EQ(quantized_kinds, 5);
}

TEST(QuantMixTest, Qwen3MoeTinyMatchesLlamaCppQuantizer) {
  ExpectSameTypes(GenArch::kQwen3Moe,
                  "reference/qwen3moe-tiny-a-q4_k_m/qwen3moe-tiny-a-q4_k_m.gguf");
}

TEST(QuantMixTest, MixtralTinyMatchesLlamaCppQuantizer) {
  ExpectSameTypes(GenArch::kMixtral, "reference/mixtral-tiny-a-q4_k_m/mixtral-tiny-a-q4_k_m.gguf");
}

TEST(QuantMixTest, MoreBitsPicksFirstAndLastEighthAndEveryThirdLayer) {
  std::vector<int> chosen;
  for (int i = 0; i < 48; ++i) {
    if (MoreBits(i, 48)) chosen.push_back(i);
  }
  // 48 layers: 0..5, every third from 8, and 42..47.
  EXPECT_EQ(chosen, (std::vector<int>{0, 1, 2, 3, 4, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38,
                                      41, 42, 43, 44, 45, 46, 47}));
}

TEST(QuantMixTest, DenseAndManyExpertRulesAndFallbacks) {
  MixModel m{.n_layer = 16, .n_expert = 128, .arch = "qwen3moe"};
  std::vector<MixTensor> t = {
      {"token_embd.weight", {2048, 1000}, GgmlType::kQ4_K},
      {"output.weight", {2048, 1000}, GgmlType::kQ4_K},
      {"blk.0.attn_v.weight", {2048, 512}, GgmlType::kQ4_K},
      {"blk.3.attn_v.weight", {2048, 512}, GgmlType::kQ4_K},
      {"blk.4.attn_v.weight", {2048, 512}, GgmlType::kQ4_K},
      {"blk.2.attn_k.weight", {2048, 512}, GgmlType::kQ4_K},
      {"blk.2.attn_output.weight", {4096, 2048}, GgmlType::kQ4_K},
      {"blk.1.ffn_down_exps.weight", {768, 2048, 128}, GgmlType::kQ4_K},
      {"blk.2.ffn_down_exps.weight", {768, 2048, 128}, GgmlType::kQ4_K},
      {"blk.2.ffn_down_shexp.weight", {1408, 2048}, GgmlType::kQ4_K},
      {"blk.1.ffn_down_exps.weight", {1408, 2048, 128}, GgmlType::kQ4_K},
      {"blk.2.ffn_gate_inp.weight", {2048, 128}, GgmlType::kF32},
      {"blk.2.attn_norm.weight", {2048}, GgmlType::kF32},
      {"blk.2.attn_sinks.weight", {64}, GgmlType::kF32},
  };
  // Only three attn_v tensors here: n = 3, so 3/8 = 0 and 7*3/8 = 2.
  absl::StatusOr<std::vector<GgmlType>> r = MixTypes(QuantMix::kQ4_K_M, m, t);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::vector<GgmlType> want = {
      GgmlType::kQ4_K,  // token_embd: the base type
      GgmlType::kQ6_K,  // output
      GgmlType::kQ4_K,  // attn_v #0: not chosen (0 < 0 false, 0 >= 2 false, 0 % 3 != 2)
      GgmlType::kQ4_K,  // attn_v #1
      GgmlType::kQ6_K,  // attn_v #2 (>= 7n/8)
      GgmlType::kQ4_K,  // attn_k: 128 experts, no bump
      GgmlType::kQ4_K,  // attn_output: 128 experts, no bump
      GgmlType::kQ6_K,  // ffn_down layer 1 of 16 (< n/8 = 2)
      GgmlType::kQ4_K,  // ffn_down layer 2: (2 - 2) % 3 = 0
      GgmlType::kQ4_K,  // shared expert's ffn_down, 1408 rows: Q4_K -> Q5_0
      GgmlType::kQ6_K,  // 1408 rows in Q6_K -> Q8_0
      GgmlType::kF32, GgmlType::kF32, GgmlType::kF32,
  };
  EXPECT_EQ(GgmlTypeName((*r)[9]), GgmlTypeName(GgmlType::kQ5_0));
  EXPECT_EQ(GgmlTypeName((*r)[10]), GgmlTypeName(GgmlType::kQ8_0));
  for (size_t i = 0; i < t.size(); ++i) {
    if (i == 9 || i == 10) continue;
    EXPECT_EQ(GgmlTypeName((*r)[i]), GgmlTypeName(want[i])) << t[i].name;
  }
  // Tied embeddings: token_embd takes the output rule.
  std::vector<MixTensor> tied = {{"token_embd.weight", {2048, 1000}, GgmlType::kQ4_K}};
  r = MixTypes(QuantMix::kQ4_K_M, m, tied);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(GgmlTypeName((*r)[0]), "q6_k");
  // A layer out of range is an error naming the tensor.
  std::vector<MixTensor> bad = {{"blk.99.ffn_down_exps.weight", {768, 2048, 128}, GgmlType::kQ4_K}};
  r = MixTypes(QuantMix::kQ4_K_M, m, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("blk.99.ffn_down_exps.weight"), std::string::npos);
}

TEST(QuantMixTest, GeneratedQ4KMModelHasDataOfEveryType) {
  ScratchDir dir;
  GenOptions o = ReferenceShape(GenArch::kQwen3Moe);
  ASSERT_TRUE(GenerateModel(o, dir.Path("m.gguf")).ok());
  absl::StatusOr<io::GgufFile> f = io::GgufFile::Open(dir.Path("m.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->has_data());
  const io::GgufTensorInfo* down = f->FindTensor("blk.3.ffn_down_exps.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(GgmlTypeName(down->type), "q8_0");
  EXPECT_EQ(f->GetUint("general.file_type").value_or(0), 15u);
}

}  // namespace
}  // namespace moestream::gen
