// The `run` and `bench` commands end to end: greedy ids and dumped logits
// of `moestream run` against llama.cpp's reference (reference/README.md),
// the JSON summaries, and one-line errors for bad flags and models.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace moestream::engine {
namespace {

using ::moestream::testing::CommandResult;
using ::moestream::testing::MoestreamBin;
using ::moestream::testing::ReadF32File;
using ::moestream::testing::ReadFileOrDie;
using ::moestream::testing::RunCommand;
using ::moestream::testing::ScratchDir;
using ::moestream::testing::SharedPath;

const char kQwenIds[] = "385,62,296,423,179,363,58,51,293,395,395,395,395,395,395,395";

std::string RefDir() { return SharedPath("reference/qwen3moe-tiny-a"); }
std::string RefModel() { return RefDir() + "/qwen3moe-tiny-a.gguf"; }
std::string Prompt32() {
  std::string s;
  for (int i = 1; i <= 32; ++i) {
    if (i > 1) s.push_back(',');
    s.append(std::to_string(i));
  }
  return s;
}

TEST(RunCommand, GreedyJsonSummaryMatchesLlamaCpp) {
  CommandResult r = RunCommand(MoestreamBin() + " run -m " + RefModel() + " --prompt-ids " +
                               Prompt32() + " -n 16 --temp 0 --backend cpu -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One JSON object on stdout, on one line.
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["generated_ids"].dump(), absl::StrCat("[", kQwenIds, "]")) << r.out;
  EXPECT_EQ(j["prompt_ids"].dump(), absl::StrCat("[", Prompt32(), "]"));
  for (const char* key : {"prefill_tok_s", "decode_tok_s", "ttft_ms"}) {
    EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key;
  }
  // Tokens were streamed to stderr, space separated.
  EXPECT_NE(r.err.find("385 62 296 423"), std::string::npos) << r.err;
}

TEST(RunCommand, StreamsIdsAndPrintsSummary) {
  CommandResult r = RunCommand(MoestreamBin() + " run -m " +
                               SharedPath("data/stories260k-gguf/stories260K.gguf") +
                               " --prompt-ids 1 -n 8 --temp 0 --backend cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "403 407 261 378 432 383 286 261\n");
  EXPECT_NE(r.err.find("prompt: 1 tokens, prefill"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("decode"), std::string::npos);
  EXPECT_NE(r.err.find("ttft"), std::string::npos);
}

TEST(RunCommand, StreamsTextWithTheModelsVocabulary) {
  const std::string model = SharedPath("data/stories260k-gguf/stories260K.gguf");
  // The greedy text from BOS given in data/stories260k-gguf/SOURCE.md.
  CommandResult r = RunCommand(MoestreamBin() + " run -m " + model +
                               " --prompt-ids 1 -n 40 --temp 0 --output text --backend cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            " Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day, she saw a big, r\n");
  // -p tokenizes with BOS (add_bos) and continues the text.
  r = RunCommand(MoestreamBin() + " run -m " + model +
                 " -p 'Once upon a time' -n 8 --temp 0 --backend cpu --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_ids"][0], 1) << r.out;
  EXPECT_EQ(j["text"].get<std::string>().rfind(", there was a little girl", 0), 0u) << r.out;
}

TEST(RunCommand, DumpLogitsCoversPromptAndFedBackTokens) {
  ScratchDir dir;
  const std::string out = dir.Path("logits.f32");
  CommandResult r = RunCommand(MoestreamBin() + " run -m " + RefModel() + " --prompt-ids " +
                               Prompt32() + " -n 16 --temp 0 --backend cpu --dump-logits " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<float> got = ReadF32File(out);
  // 32 prompt positions + 15 fed-back greedy tokens (the 16th is not fed).
  ASSERT_EQ(got.size(), 47u * 512u);
  EXPECT_EQ(nlohmann::json::parse(ReadFileOrDie(out + ".json"))["shape"],
            nlohmann::json::array({47, 512}));
  const std::vector<float> all = ReadF32File(RefDir() + "/logits_all.f32");
  const std::vector<float> gen = ReadF32File(RefDir() + "/logits_gen.f32");
  float worst = 0;
  for (size_t i = 0; i < all.size(); ++i) worst = std::max(worst, std::fabs(got[i] - all[i]));
  // Row 32 of the dump follows greedy id 0 = logits_gen row 1, and so on.
  for (size_t i = 512; i < gen.size(); ++i) {
    worst = std::max(worst, std::fabs(got[all.size() + i - 512] - gen[i]));
  }
  EXPECT_LE(worst, 1e-4f);
}

TEST(RunCommand, BadInputGivesOneLineErrors) {
  CommandResult r = RunCommand(MoestreamBin() + " run --prompt-ids 1,2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("moestream run: error: -m MODEL is required"), std::string::npos) << r.err;

  r = RunCommand(MoestreamBin() + " run -m " + RefModel() + " --prompt-ids 1,x,3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("'x' is not a token id"), std::string::npos) << r.err;

  r = RunCommand(MoestreamBin() + " run -m " + RefModel() + " --prompt-ids 1,9999 --backend cpu");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << r.err;

  r = RunCommand(MoestreamBin() + " run -m /nonexistent.gguf --prompt-ids 1 --backend cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent.gguf"), std::string::npos) << r.err;

  r = RunCommand(MoestreamBin() + " run -m " + RefModel() + " --prompt-ids 1 --kv-type q4_0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--kv-type"), std::string::npos) << r.err;
}

TEST(BenchCommand, JsonHasMediansAndRepetitions) {
  CommandResult r = RunCommand(MoestreamBin() + " bench -m " + RefModel() +
                               " --prompt 16 --gen 8 --reps 3 --backend cpu -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.front(), '{');
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["prefill_tok_s"].is_number()) << r.out;
  EXPECT_TRUE(j["decode_tok_s"].is_number()) << r.out;
  EXPECT_EQ(j["prompt_tokens"], 16);
  EXPECT_EQ(j["gen_tokens"], 8);
  EXPECT_EQ(j["reps"], 3);
  EXPECT_TRUE(j["decode_tok_s_reps"].is_array()) << r.out;
}

}  // namespace
}  // namespace moestream::engine
