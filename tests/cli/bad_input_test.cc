// Bad input through the command line, as a user meets it: every case ends
// with one error line and a non-zero exit, before any weight loads or any
// replay runs where the problem is visible from the flags, and leaves no file
// replaced or half-written.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace moestream::cli {
namespace {

using ::moestream::testing::CommandResult;
using ::moestream::testing::MoestreamBin;
using ::moestream::testing::RunCommand;
using ::moestream::testing::ScratchDir;
using ::testing::HasSubstr;
using ::testing::Not;

// What `run` prints once the weights are in memory.
constexpr const char* kLoadedLine = "loaded in ";

// Names in `dir` that look like an output's temporary.
std::vector<std::string> Temporaries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename();
    if (name.find(".tmp.") != std::string::npos) out.push_back(name);
  }
  return out;
}

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    model_ = dir_->Path("tiny.gguf");
    CommandResult g = RunCommand(MoestreamBin() + " gen --preset tiny --quiet -o " + model_);
    ASSERT_EQ(g.exit_code, 0) << g.err;
    trace_ = dir_->Path("tiny.mstrace");
    CommandResult r = RunCommand(MoestreamBin() + " run -m " + model_ +
                                 " --prompt-ids 1,2,3 -n 4 --temp 0 --record-trace " + trace_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  CommandResult Moestream(const std::string& args) {
    return RunCommand(MoestreamBin() + " " + args);
  }

  static ScratchDir* dir_;
  static std::string model_, trace_;
  ScratchDir scratch_;
};
ScratchDir* BadInputTest::dir_ = nullptr;
std::string BadInputTest::model_, BadInputTest::trace_;

TEST_F(BadInputTest, RunRefusesBeforeLoadingTheWeights) {
  ASSERT_EQ(::symlink(model_.c_str(), scratch_.Path("link").c_str()), 0);
  ASSERT_TRUE(std::filesystem::create_directory(scratch_.Path("adir")));
  struct Case {
    std::string flags, error;
  };
  const std::string run = "run -m " + model_ + " -n 2 ";
  for (const Case& c : std::vector<Case>{
           {"--prompt-ids 1,2 --record-trace " + scratch_.Path("no/such/dir/t.mstrace"),
            "--record-trace: "},
           {"--prompt-ids 1,2 --record-trace " + scratch_.Path("link"),
            "is a symbolic link, not a regular file; refusing to replace it"},
           {"--prompt-ids 1,2 --dump-logits " + scratch_.Path("adir"),
            "is a directory, not a regular file"},
           {"--prompt-ids 1,2 --dump-logits -", "'-' (standard output) cannot take this output"},
           {"--prompt-ids 1,99999999", "--prompt-ids: id 99999999 is outside the vocabulary 0..511"},
           {"-p hello", "-p needs the model's vocabulary"},
           {"--prompt-ids 1,2 -n 100000", "exceeds the context of"},
           {"--prompt-ids 1,2 --device-budget 0", "--device-budget 0: a budget must be positive"},
           {"--prompt-ids 1,2 -t 99999999", "--threads 99999999 is out of range 0..1024"},
           {"--prompt-ids 1,2 --cache-policy lfu",
            "--cache-policy applies only when offloading"},
           {"--prompt-ids 1,2 --seed -9", "--seed -9: expected -1 (random) or a seed >= 0"},
           {"--prompt-ids 1,2 --ctx 99999999999", "--ctx 99999999999 is out of range 0..268435456"},
           // A KV cache far past this machine's RAM: refused by the plan, not by
           // an allocation (or the OOM killer) half way through loading.
           {"--prompt-ids 1,2 --ctx 200000000", "but this machine has"},
       }) {
    CommandResult r = Moestream(run + c.flags);
    EXPECT_NE(r.exit_code, 0) << c.flags;
    EXPECT_THAT(r.err, HasSubstr(c.error)) << c.flags;
    EXPECT_THAT(r.err, Not(HasSubstr(kLoadedLine))) << c.flags;
    EXPECT_THAT(r.err, Not(HasSubstr("terminate called"))) << c.flags;
  }
  // The symlink still points at the model; nothing was left in the scratch dir.
  EXPECT_EQ(std::filesystem::read_symlink(scratch_.Path("link")), model_);
  EXPECT_THAT(Temporaries(scratch_.path()), ::testing::IsEmpty());
}

TEST_F(BadInputTest, SweepChecksItsOutputsBeforeTheGrid) {
  // A missing trace would fail when the grid loads; the bad -o is reported
  // first.
  CommandResult r = Moestream("sweep -t " + scratch_.Path("missing.mstrace") + " -o " +
                              scratch_.Path("no/dir/out.csv"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("-o: "));
  EXPECT_THAT(r.err, HasSubstr("no/dir/out.csv"));

  ASSERT_TRUE(std::filesystem::create_directory(scratch_.Path("adir")));
  r = Moestream("sweep -t " + trace_ + " -o " + scratch_.Path("adir"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is a directory"));
  EXPECT_TRUE(std::filesystem::is_directory(scratch_.Path("adir")));

  r = Moestream("sweep -t " + trace_ + " -o /dev/full");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("/dev/full: is a character device"));
  struct stat st;
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));

  const std::string file = scratch_.Path("plainfile");
  ::moestream::testing::WriteFileOrDie(file, "x");
  r = Moestream("sweep -t " + trace_ + " -o " + scratch_.Path("s.csv") + " --plot " + file);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--plot " + file + ": cannot make a directory there"));
  EXPECT_FALSE(std::filesystem::exists(scratch_.Path("s.csv")));

  r = Moestream("sweep -t " + trace_ + " -o - -j 100000");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--jobs 100000 is out of range 0..1024"));

  // "-" is standard output; no file named "-" appears.
  r = RunCommand("cd " + scratch_.path() + " && " + MoestreamBin() + " sweep -t " + trace_ +
                 " -o - --policies lru --capacities 2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("trace,policy,predictor,capacity"));
  EXPECT_FALSE(std::filesystem::exists(scratch_.Path("-")));
  EXPECT_THAT(Temporaries(scratch_.path()), ::testing::IsEmpty());
}

TEST_F(BadInputTest, ReplayExportCsvGoesToStdoutOrARegularFileOnly) {
  CommandResult r = Moestream("replay -t " + trace_ + " -c 2 --export-csv -");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("seq,step,pos,phase,layer"));
  const std::string fifo = scratch_.Path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  r = Moestream("replay -t " + trace_ + " -c 2 --export-csv " + fifo);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is a FIFO, not a regular file"));
  struct stat st;
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST_F(BadInputTest, GenRefusesShapesNoReaderAccepts) {
  for (const std::string& flags : {std::string("--vocab 1000000000"), std::string("--layers 100000000")}) {
    CommandResult r = Moestream("gen --preset tiny -o " + scratch_.Path("g.gguf") + " " + flags);
    EXPECT_EQ(r.exit_code, 2) << flags;
    EXPECT_THAT(r.err, HasSubstr("is out of range 1..")) << flags;
    EXPECT_FALSE(std::filesystem::exists(scratch_.Path("g.gguf")));
  }
}

// gen and pack stopped by SIGINT or SIGTERM leave neither the output nor a
// temporary. bash's job control keeps SIGINT's default disposition in the
// background job (a plain `&` would ignore it).
TEST_F(BadInputTest, InterruptedGenAndPackLeaveNothing) {
  const std::string big = scratch_.Path("big.gguf");
  for (const char* sig : {"INT", "TERM"}) {
    const std::string script = absl::StrCat(
        "set -m; ", MoestreamBin(), " gen --preset small --type f32 --quiet -o ", big,
        " & pid=$!; for i in $(seq 200); do ls ", big, ".tmp.* >/dev/null 2>&1 && break; "
        "sleep 0.02; done; kill -", sig, " $pid; wait $pid; echo rc=$?");
    CommandResult r = RunCommand("bash -c '" + script + "'");
    EXPECT_THAT(r.out, ::testing::AnyOf(HasSubstr("rc=130"), HasSubstr("rc=143"))) << r.err;
    EXPECT_FALSE(std::filesystem::exists(big)) << sig;
    EXPECT_THAT(Temporaries(scratch_.path()), ::testing::IsEmpty()) << sig;
  }
  const std::string store = scratch_.Path("m.store");
  const std::string script = absl::StrCat(
      "set -m; ", MoestreamBin(), " pack ", model_, " --window 1 -o ", store,
      " & pid=$!; for i in $(seq 200); do ls ", store, ".tmp.* >/dev/null 2>&1 && break; "
      "sleep 0.01; done; kill -INT $pid; wait $pid; echo rc=$?");
  CommandResult r = RunCommand("bash -c '" + script + "'");
  EXPECT_THAT(r.out, HasSubstr("rc=")) << r.err;
  EXPECT_THAT(Temporaries(scratch_.path()), ::testing::IsEmpty());
}

// A store packed from a model of the same shape and another seed is refused
// by run, which would otherwise compute with the other model's experts.
TEST_F(BadInputTest, StoreFromAnotherSeedIsRefused) {
  const std::string a = scratch_.Path("a.gguf"), b = scratch_.Path("b.gguf");
  const std::string shape = " --preset tiny --quiet --type q8_0";
  ASSERT_EQ(Moestream("gen" + shape + " -o " + a).exit_code, 0);
  ASSERT_EQ(Moestream("gen" + shape + " --seed 2 -o " + b).exit_code, 0);
  ASSERT_EQ(Moestream("pack " + b + " -o " + scratch_.Path("b.store")).exit_code, 0);
  ASSERT_EQ(Moestream("pack " + a + " -o " + scratch_.Path("a.store")).exit_code, 0);
  const std::string run = "run -m " + a + " --prompt-ids 1,2,3 -n 4 --temp 0 --experts-on nvme "
                          "--device-budget 12M --store ";
  CommandResult bad = Moestream(run + scratch_.Path("b.store"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("expert weights differ"));
  EXPECT_THAT(bad.err, Not(HasSubstr(kLoadedLine)));
  CommandResult good = Moestream(run + scratch_.Path("a.store"));
  EXPECT_EQ(good.exit_code, 0) << good.err;
}

}  // namespace
}  // namespace moestream::cli
