#include "cli/command.h"

#include <string>
#include <vector>

#include "cli/engine_flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace moestream::cli {
namespace {

using ::moestream::testing::CommandResult;
using ::moestream::testing::MoestreamBin;
using ::moestream::testing::RunCommand;
using ::testing::HasSubstr;

// The subcommands the README documents (the test binary does not link the
// registrations, only the command line does).
constexpr const char* kCommands[] = {"bench",  "gen", "inspect", "pack",     "plan",
                                     "replay", "run", "serve",   "sweep",    "tokenize"};

TEST(ParseFlagsTest, EngineFlagsLongShortAndSizes) {
  CLI::App app("t", "t");
  ConfigureApp(app);
  EngineFlags ef;
  ef.Register(app);
  auto parsed = ParseFlags(app, {"-m", "a.gguf", "-t", "3", "--ctx=128", "--device-budget",
                                 "1.5GiB", "--host-budget=64K", "--cache-policy",
                                 "lfu:decay=0.9,period=10"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, Parsed::kRun);
  EXPECT_EQ(ef.model, "a.gguf");
  EXPECT_EQ(ef.threads, 3);
  EXPECT_EQ(ef.ctx, 128);
  EXPECT_EQ(ef.device_budget, 3ull << 29);
  EXPECT_EQ(ef.host_budget, 64ull << 10);
  EXPECT_EQ(ef.cache_policy, "lfu:decay=0.9,period=10");
  EXPECT_EQ(ef.backend, "auto");  // untouched default
  EXPECT_TRUE(ef.offload());
}

TEST(ParseFlagsTest, ErrorsAreOneLineAndNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string mention;
  };
  for (const Case& c : std::vector<Case>{{{"--bogus"}, "--bogus"},
                                         {{"-t", "abc"}, "--threads"},
                                         {{"--device-budget", "lots"}, "--device-budget"},
                                         {{"--device-budget"}, "--device-budget"},
                                         {{"--ctx", "1.5"}, "--ctx"},
                                         {{"stray"}, "stray"}}) {
    CLI::App app("t", "t");
    ConfigureApp(app);
    EngineFlags ef;
    ef.Register(app);
    auto parsed = ParseFlags(app, c.args);
    ASSERT_FALSE(parsed.ok()) << c.mention;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(c.mention));
    EXPECT_EQ(std::string(parsed.status().message()).find('\n'), std::string::npos);
  }
}

TEST(ParseFlagsTest, LastValueWinsAndRepeatableOptionsCollect) {
  CLI::App app("t", "t");
  ConfigureApp(app);
  int64_t n = 0;
  std::vector<std::string> specs = {"lru"};
  app.add_option("-n", n, "");
  app.add_option("--policy", specs, "")->take_all();
  ASSERT_TRUE(ParseFlags(app, {"-n", "1", "-n", "2", "--policy", "lfu:decay=0.9,period=10",
                               "--policy=2q"})
                  .ok());
  EXPECT_EQ(n, 2);
  // Given values replace the default list; a spec's commas stay inside it.
  EXPECT_EQ(specs, (std::vector<std::string>{"lfu:decay=0.9,period=10", "2q"}));
}

TEST(ParseFlagsTest, HelpShowsDefaultsFromTheCode) {
  CLI::App app("t", "t");
  ConfigureApp(app);
  EngineFlags ef;
  ef.batch = 77;  // the default shown is whatever the field holds
  ef.host_budget = 3ull << 20;
  ef.Register(app);
  EXPECT_THAT(app.help(), HasSubstr("--batch INT=77"));
  EXPECT_THAT(app.help(), HasSubstr("--host-budget SIZE=3.0 MiB"));
  EXPECT_THAT(app.help(), HasSubstr("--cache-policy TEXT=lru"));
}

TEST(ParseFlagsTest, NegativeNumbersAreValues) {
  CLI::App app("t", "t");
  ConfigureApp(app);
  int64_t seed = 0;
  app.add_option("--seed", seed, "");
  ASSERT_TRUE(ParseFlags(app, {"--seed", "-1"}).ok());
  EXPECT_EQ(seed, -1);
}

TEST(MoestreamCommand, HelpVersionAndUnknownCommand) {
  CommandResult r = RunCommand(MoestreamBin());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, HasSubstr("sweep"));
  r = RunCommand(MoestreamBin() + " --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* c : kCommands) EXPECT_THAT(r.out, HasSubstr(c));
  r = RunCommand(MoestreamBin() + " --version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("moestream "));
  r = RunCommand(MoestreamBin() + " frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "moestream: error: unknown command 'frobnicate' (try 'moestream --help')\n");
}

TEST(MoestreamCommand, EveryCommandHasGeneratedHelp) {
  for (const std::string c : kCommands) {
    CommandResult r = RunCommand(MoestreamBin() + " " + c + " --help");
    EXPECT_EQ(r.exit_code, 0) << c << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage: moestream " + c)) << c;
    EXPECT_TRUE(r.err.empty()) << c << ": " << r.err;
  }
  CommandResult r = RunCommand(MoestreamBin() + " run --help");
  EXPECT_THAT(r.out, HasSubstr("-n,--n-predict INT=32"));
  EXPECT_THAT(r.out, HasSubstr("--device-budget SIZE"));
}

TEST(MoestreamCommand, BadFlagsExitTwoWithOneLineNamingTheFlag) {
  struct Case {
    std::string args, line;
  };
  for (const Case& c : std::vector<Case>{
           {"run -n abc", "moestream run: error: Could not convert: --n-predict = abc\n"},
           {"plan -m x.gguf --device-budget lots",
            "moestream plan: error: --device-budget: 'lots' is not a size (e.g. 24G, 512M, "
            "4096)\n"},
           {"sweep --bogus", "moestream sweep: error: The following argument was not expected: "
                             "--bogus\n"},
           {"pack --queue-depth", "moestream pack: error: --queue-depth: 1 required INT missing\n"},
       }) {
    CommandResult r = RunCommand(MoestreamBin() + " " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_EQ(r.err, c.line) << c.args;
    EXPECT_TRUE(r.out.empty()) << c.args;
  }
}

}  // namespace
}  // namespace moestream::cli
