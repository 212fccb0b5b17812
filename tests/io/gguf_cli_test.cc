// `moestream inspect` end to end: corrupt and missing files give one line on
// stderr and a non-zero exit; the sizes and parameter counts it reports for
// the reference models match the arithmetic on their README tensor tables;
// per-expert and shared-expert tensors are classified as routed / resident.
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/gguf.h"
#include "tests/test_util.h"

namespace moestream::io {
namespace {

using moestream::testing::CommandResult;
using moestream::testing::MoestreamBin;
using moestream::testing::RunCommand;
using moestream::testing::ScratchDir;
using moestream::testing::SharedPath;

int CountLines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

void ExpectOneLineError(const CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_NE(r.err.find("moestream inspect: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(InspectCli, CorruptFileGivesOneLineAndNonZeroExit) {
  ScratchDir dir;
  std::string good = SharedPath("data/stories260k-gguf/stories260K.gguf");
  std::string bytes = moestream::testing::ReadFileOrDie(good);
  ASSERT_GT(bytes.size(), 20000u);

  std::string truncated = dir.Path("truncated.gguf");
  moestream::testing::WriteFileOrDie(truncated, bytes.substr(0, 5000));
  ExpectOneLineError(RunCommand(MoestreamBin() + " inspect " + truncated), "truncated.gguf: offset");

  std::string bad_version = dir.Path("v2.gguf");
  std::string v2 = bytes;
  v2[4] = 2;
  moestream::testing::WriteFileOrDie(bad_version, v2);
  ExpectOneLineError(RunCommand(MoestreamBin() + " inspect " + bad_version + " --json"),
                     "version");

  std::string garbage = dir.Path("garbage.gguf");
  moestream::testing::WriteFileOrDie(garbage, std::string(100, '\n'));
  ExpectOneLineError(RunCommand(MoestreamBin() + " inspect " + garbage), "magic");

  ExpectOneLineError(RunCommand(MoestreamBin() + " inspect " + dir.Path("missing.gguf")),
                     "missing.gguf");
}

TEST(InspectCli, BadArguments) {
  CommandResult r = RunCommand(MoestreamBin() + " inspect");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  r = RunCommand(MoestreamBin() + " inspect --bogus x.gguf");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
}

// Numbers from the README's tensor table of mixtral-tiny-a (all F32):
// per layer 2*256 (norms) + 256*256*2 (q, o) + 256*128*2 (k, v) + 256*8
// (router) = 199168 dense and 3 * 256*128*8 = 786432 routed elements;
// plus token_embd and output (256*512 each) and output_norm (256).
TEST(InspectCli, JsonForMixtralReference) {
  CommandResult r = RunCommand(MoestreamBin() + " inspect --json " +
                               SharedPath("reference/mixtral-tiny-a/mixtral-tiny-a.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(CountLines(r.out), 1);
  const uint64_t dense = 4 * 199168 + 2 * 256 * 512 + 256;
  const uint64_t routed = 4 * 786432;
  auto has = [&](const std::string& kv) {
    EXPECT_NE(r.out.find(kv), std::string::npos) << kv << " not in " << r.out.substr(0, 400);
  };
  has("\"arch\":\"llama\"");
  has("\"block_count\":4");
  has("\"expert_count\":8");
  has("\"expert_used_count\":2");
  has("\"rope.freq_base\":1000000");
  has("\"vocab_size\":512");
  has("\"n_tensors\":43");
  has(absl::StrCat("\"params_total\":", dense + routed));
  has(absl::StrCat("\"params_active\":", dense + routed * 2 / 8));
  has(absl::StrCat("\"resident_bytes\":", dense * 4));
  has(absl::StrCat("\"expert_bytes\":", routed * 4));
  has(absl::StrCat("\"expert_bytes_per_layer\":", 786432 * 4));
  has(absl::StrCat("\"bytes_per_expert\":", 786432 * 4 / 8));
  has("{\"name\":\"blk.0.ffn_down_exps.weight\",\"type\":\"f32\",\"shape\":[128,256,8],"
      "\"bytes\":1048576,");
}

TEST(InspectCli, HumanReportForDenseModel) {
  CommandResult r = RunCommand(MoestreamBin() + " inspect " +
                               SharedPath("data/stories260k-gguf/stories260K.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("arch:  llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("block_count"), std::string::npos);
  EXPECT_NE(r.out.find("blk.4.ffn_norm.weight"), std::string::npos);
  EXPECT_EQ(r.out.find("routed experts:"), std::string::npos) << "dense model has no experts";
}

// Per-expert (old Mixtral) tensors are routed; shared experts and the router
// are resident.
TEST(InspectCli, PerExpertAndSharedExpertTensors) {
  ScratchDir dir;
  std::string path = dir.Path("m.gguf");
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.expert_count", 4);
  w.SetUint32("llama.expert_used_count", 1);
  auto zero = [](std::span<uint8_t> out) {
    std::fill(out.begin(), out.end(), 0);
    return absl::OkStatus();
  };
  ASSERT_TRUE(w.AddTensor("blk.0.ffn_gate_inp.weight", GgmlType::kF32, {32, 4}, zero).ok());
  ASSERT_TRUE(w.AddTensor("blk.0.ffn_up_shexp.weight", GgmlType::kF32, {32, 16}, zero).ok());
  for (int e = 0; e < 4; ++e) {
    for (const char* m : {"gate", "up", "down"}) {
      ASSERT_TRUE(w.AddTensor(absl::StrCat("blk.0.ffn_", m, ".", e, ".weight"), GgmlType::kF16,
                              {32, 8}, zero)
                      .ok());
    }
  }
  ASSERT_TRUE(w.Write(path).ok());
  CommandResult r = RunCommand(MoestreamBin() + " inspect --json " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const uint64_t resident = (32 * 4 + 32 * 16) * 4;
  const uint64_t routed = 12 * 32 * 8 * 2;
  EXPECT_NE(r.out.find(absl::StrCat("\"resident_bytes\":", resident)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(absl::StrCat("\"expert_bytes\":", routed)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(absl::StrCat("\"bytes_per_expert\":", routed / 4)), std::string::npos);
  EXPECT_NE(r.out.find(absl::StrCat("\"params_active\":", 32 * 4 + 32 * 16 + 3 * 32 * 8)),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace moestream::io
