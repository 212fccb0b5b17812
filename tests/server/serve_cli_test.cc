// `moestream serve` on bad input: one line naming the flag, exit 2 for a
// flag and 1 for the rest, and nothing left listening.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace moestream::server {
namespace {

using ::moestream::testing::CommandResult;
using ::moestream::testing::MoestreamBin;
using ::moestream::testing::RunCommand;
using ::moestream::testing::SharedPath;
using ::testing::HasSubstr;

std::string Stories() { return SharedPath("data/stories260k-gguf/stories260K.gguf"); }

TEST(ServeCommandTest, HelpListsTheServerFlags) {
  CommandResult r = RunCommand(MoestreamBin() + " serve --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* flag : {"--port INT=8080", "--host TEXT=127.0.0.1", "--api-key", "--parallel INT=1",
                           "--max-body SIZE=1.0 MiB", "--queue-max INT=64", "--device-budget"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
}

TEST(ServeCommandTest, BadFlagsAreOneLineAndExitTwo) {
  struct Case {
    std::string args, message;
  };
  for (const Case& c : std::vector<Case>{
           {"--port 70000", "--port 70000 is out of range 0..65535"},
           {"--parallel 0", "--parallel 0 is out of range 1..256"},
           {"--http-threads 2", "--http-threads 2 is out of range 4..1024"},
           {"--queue-max 0", "--queue-max 0: at least 1 request must be able to wait"},
           {"--max-body 10", "--max-body must be at least 1K"},
           {"--chat-format nope", "unknown chat format 'nope'"},
           {"--ctx -1", "--ctx -1 is out of range"},
       }) {
    CommandResult r = RunCommand(MoestreamBin() + " serve -m " + Stories() + " " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("moestream serve: error: " + c.message)) << c.args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  CommandResult r = RunCommand(MoestreamBin() + " serve");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "moestream serve: error: -m MODEL is required\n");
}

TEST(ServeCommandTest, APortInUseFailsBeforeLoading) {
  // Hold a port, then ask the server for it.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int port = ntohs(a.sin_port);
  CommandResult r =
      RunCommand(MoestreamBin() + " serve -m " + Stories() + " --port " + std::to_string(port));
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("moestream serve: error: cannot listen on 127.0.0.1:" +
                               std::to_string(port)));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("loaded in")));  // nothing was loaded
}

TEST(ServeCommandTest, MissingModelFileIsOneLine) {
  CommandResult r = RunCommand(MoestreamBin() + " serve -m /nonexistent/model.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("moestream serve: error: /nonexistent/model.gguf"));
}

}  // namespace
}  // namespace moestream::server
