// GgufFile against files written by other programs: stories260K.gguf (from
// llama.cpp's converter), the reference MoE models and llama.cpp's vocab
// files. Every expected value is copied by hand from the SOURCE.md / README.md
// that ships with each file, not from our own reader's output.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

using moestream::testing::SharedPath;

GgufFile OpenOrFail(const std::string& path) {
  absl::StatusOr<GgufFile> f = GgufFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *std::move(f) : GgufFile();
}

void ExpectU32(const GgufFile& f, const std::string& key, uint64_t want) {
  const GgufValue* v = f.Find(key);
  ASSERT_NE(v, nullptr) << key;
  EXPECT_EQ(v->type(), GgufType::kUint32) << key;
  EXPECT_EQ(v->raw_uint(), want) << key;
}

void ExpectString(const GgufFile& f, const std::string& key, const std::string& want) {
  const GgufValue* v = f.Find(key);
  ASSERT_NE(v, nullptr) << key;
  EXPECT_EQ(v->type(), GgufType::kString) << key;
  EXPECT_EQ(v->raw_string(), want) << key;
}

void ExpectF32(const GgufFile& f, const std::string& key, float want) {
  const GgufValue* v = f.Find(key);
  ASSERT_NE(v, nullptr) << key;
  EXPECT_EQ(v->type(), GgufType::kFloat32) << key;
  EXPECT_EQ(v->raw_float(), double(want)) << key;
}

struct TensorRow {
  std::string name;
  std::vector<int64_t> ne;
};

// Checks names, order, shapes, F32 type, sizes and the llama.cpp layout
// (each offset the running sum of padded sizes, data inside the file).
void ExpectTensorTable(const GgufFile& f, const std::vector<TensorRow>& rows) {
  ASSERT_EQ(f.tensors().size(), rows.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, rows[i].name) << i;
    ASSERT_EQ(t.n_dims, rows[i].ne.size()) << t.name;
    uint64_t elems = 1;
    for (size_t d = 0; d < rows[i].ne.size(); ++d) {
      EXPECT_EQ(t.ne[d], rows[i].ne[d]) << t.name << " dim " << d;
      elems *= uint64_t(rows[i].ne[d]);
    }
    EXPECT_EQ(t.type, GgmlType::kF32) << t.name;
    EXPECT_EQ(t.size_bytes, elems * 4) << t.name;
    EXPECT_EQ(t.offset, offset) << t.name;
    EXPECT_EQ(t.file_offset, f.data_offset() + t.offset);
    offset += (t.size_bytes + 31) / 32 * 32;
  }
  EXPECT_LE(f.data_offset() + offset, f.file_size() + 31);
}

TEST(GgufSharedFiles, Stories260kMatchesSourceMd) {
  std::string path = SharedPath("data/stories260k-gguf/stories260K.gguf");
  GgufFile f = OpenOrFail(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.file_size(), 1185376u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.Find("general.alignment"), nullptr);
  EXPECT_EQ(f.header_bytes(), 14152u);
  EXPECT_EQ(f.data_offset(), 14176u);

  ASSERT_EQ(f.metadata().size(), 19u);
  ExpectString(f, "general.architecture", "llama");
  ExpectString(f, "general.name", "llama");
  ExpectU32(f, "llama.context_length", 2048);
  ExpectU32(f, "llama.embedding_length", 64);
  ExpectU32(f, "llama.feed_forward_length", 172);
  ExpectU32(f, "llama.attention.head_count", 8);
  ExpectU32(f, "llama.attention.head_count_kv", 4);
  ExpectU32(f, "llama.block_count", 5);
  ExpectU32(f, "llama.rope.dimension_count", 8);
  ExpectF32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  ExpectString(f, "tokenizer.ggml.model", "llama");
  ExpectU32(f, "tokenizer.ggml.bos_token_id", 1);
  ExpectU32(f, "tokenizer.ggml.eos_token_id", 2);
  ExpectU32(f, "tokenizer.ggml.unknown_token_id", 0);
  ExpectU32(f, "tokenizer.ggml.seperator_token_id", 0xFFFFFFFFu);
  ExpectU32(f, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
  const GgufValue* tokens = f.Find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->array_type(), GgufType::kString);
  EXPECT_EQ(tokens->items().size(), 512u);
  const GgufValue* scores = f.Find("tokenizer.ggml.scores");
  ASSERT_NE(scores, nullptr);
  EXPECT_EQ(scores->array_type(), GgufType::kFloat32);
  EXPECT_EQ(scores->items().size(), 512u);
  const GgufValue* types = f.Find("tokenizer.ggml.token_type");
  ASSERT_NE(types, nullptr);
  EXPECT_EQ(types->array_type(), GgufType::kInt32);
  EXPECT_EQ(types->items().size(), 512u);

  std::vector<TensorRow> rows = {
      {"token_embd.weight", {64, 512}}, {"output_norm.weight", {64}}, {"output.weight", {64, 512}}};
  for (int l = 0; l < 5; ++l) {
    std::string b = absl::StrCat("blk.", l, ".");
    rows.push_back({b + "attn_q.weight", {64, 64}});
    rows.push_back({b + "attn_k.weight", {64, 32}});
    rows.push_back({b + "attn_v.weight", {64, 32}});
    rows.push_back({b + "attn_output.weight", {64, 64}});
    rows.push_back({b + "attn_norm.weight", {64}});
    rows.push_back({b + "ffn_gate.weight", {64, 172}});
    rows.push_back({b + "ffn_down.weight", {172, 64}});
    rows.push_back({b + "ffn_up.weight", {64, 172}});
    rows.push_back({b + "ffn_norm.weight", {64}});
  }
  ExpectTensorTable(f, rows);
  ASSERT_NE(f.FindTensor("output.weight"), nullptr);
  EXPECT_EQ(f.FindTensor("output.weight")->offset, 131328u);
  // Dense model: no experts.
  EXPECT_EQ(f.ExpertRange(0, ExpertMatrix::kUp, 0).status().code(), absl::StatusCode::kNotFound);
}

std::vector<TensorRow> ReferenceMoeTable(bool qk_norm) {
  std::vector<TensorRow> rows = {{"token_embd.weight", {256, 512}}};
  for (int l = 0; l < 4; ++l) {
    std::string b = absl::StrCat("blk.", l, ".");
    rows.push_back({b + "attn_norm.weight", {256}});
    rows.push_back({b + "attn_q.weight", {256, 256}});
    rows.push_back({b + "attn_k.weight", {256, 128}});
    rows.push_back({b + "attn_v.weight", {256, 128}});
    rows.push_back({b + "attn_output.weight", {256, 256}});
    if (qk_norm) {
      rows.push_back({b + "attn_q_norm.weight", {64}});
      rows.push_back({b + "attn_k_norm.weight", {64}});
    }
    rows.push_back({b + "ffn_norm.weight", {256}});
    rows.push_back({b + "ffn_gate_inp.weight", {256, 8}});
    rows.push_back({b + "ffn_gate_exps.weight", {256, 128, 8}});
    rows.push_back({b + "ffn_up_exps.weight", {256, 128, 8}});
    rows.push_back({b + "ffn_down_exps.weight", {128, 256, 8}});
  }
  rows.push_back({"output_norm.weight", {256}});
  rows.push_back({"output.weight", {256, 512}});
  return rows;
}

TEST(GgufSharedFiles, MixtralTinyMatchesReadme) {
  GgufFile f = OpenOrFail(SharedPath("reference/mixtral-tiny-a/mixtral-tiny-a.gguf"));
  EXPECT_EQ(f.file_size(), 16822592u);
  ASSERT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(f.metadata().front().key, "general.architecture");
  EXPECT_EQ(f.metadata().back().key, "tokenizer.ggml.model");
  ExpectString(f, "general.architecture", "llama");
  ExpectString(f, "general.name", "synthetic-mixtral-tiny-a");
  ExpectU32(f, "llama.block_count", 4);
  ExpectU32(f, "llama.embedding_length", 256);
  ExpectU32(f, "llama.expert_count", 8);
  ExpectU32(f, "llama.expert_used_count", 2);
  ExpectU32(f, "llama.vocab_size", 512);
  ExpectF32(f, "llama.rope.freq_base", 1000000.0f);
  ExpectF32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  ExpectString(f, "tokenizer.ggml.model", "none");
  ExpectTensorTable(f, ReferenceMoeTable(/*qk_norm=*/false));
  // Expert 5 of layer 2's down matrix: slice 5 of 8 of a [128, 256, 8] F32 tensor.
  const GgufTensorInfo* down = f.FindTensor("blk.2.ffn_down_exps.weight");
  ASSERT_NE(down, nullptr);
  absl::StatusOr<ByteRange> r = f.ExpertRange(2, ExpertMatrix::kDown, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size, 128u * 256 * 4);
  EXPECT_EQ(r->offset, down->file_offset + 5 * 128u * 256 * 4);
}

TEST(GgufSharedFiles, Qwen3MoeTinyMatchesReadme) {
  GgufFile f = OpenOrFail(SharedPath("reference/qwen3moe-tiny-a/qwen3moe-tiny-a.gguf"));
  ASSERT_EQ(f.metadata().size(), 19u);
  ExpectString(f, "general.architecture", "qwen3moe");
  ExpectU32(f, "qwen3moe.attention.key_length", 64);
  ExpectU32(f, "qwen3moe.expert_feed_forward_length", 128);
  ExpectU32(f, "qwen3moe.expert_count", 8);
  ExpectU32(f, "qwen3moe.expert_used_count", 2);
  ExpectF32(f, "qwen3moe.attention.layer_norm_rms_epsilon", 1e-6f);
  ExpectTensorTable(f, ReferenceMoeTable(/*qk_norm=*/true));
}

TEST(GgufSharedFiles, EveryVocabFileParses) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(SharedPath("data/tokenizers"))) {
    if (e.path().extension() != ".gguf") continue;
    ++n;
    SCOPED_TRACE(e.path().string());
    GgufFile f = OpenOrFail(e.path().string());
    EXPECT_TRUE(f.tensors().empty());
    absl::StatusOr<std::vector<std::string>> tokens = f.GetStringArray("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    EXPECT_GT(tokens->size(), 1000u);
    EXPECT_TRUE(f.GetString("tokenizer.ggml.model").ok());
  }
  EXPECT_EQ(n, 5);
}

TEST(GgufSharedFiles, LlamaSpmVocabHas32000Tokens) {
  GgufFile f = OpenOrFail(SharedPath("data/tokenizers/ggml-vocab-llama-spm.gguf"));
  absl::StatusOr<std::vector<std::string>> tokens = f.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 32000u);
  EXPECT_EQ(*f.GetString("tokenizer.ggml.model"), "llama");
}

TEST(GgufSharedFiles, MissingFileIsNotFound) {
  absl::StatusOr<GgufFile> f = GgufFile::Open("/nonexistent/m.gguf");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/m.gguf"), std::string::npos);
}

}  // namespace
}  // namespace moestream::io
