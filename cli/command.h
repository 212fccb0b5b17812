// Subcommands of the `moestream` executable. Each lives in one file under
// cli/ and registers itself:
//
//   int RunInspect(std::vector<std::string> args) { ... return 0; }
//   MOESTREAM_REGISTER_COMMAND(inspect, "architecture, tensors and sizes of a GGUF",
//                              RunInspect);
//
// Commands print a one-line "moestream <cmd>: error: ..." to stderr and return
// non-zero on failure (see ReportError).
#ifndef MOESTREAM_CLI_COMMAND_H_
#define MOESTREAM_CLI_COMMAND_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace moestream::cli {

using CommandFn = int (*)(std::vector<std::string> args);

struct Command {
  std::string name;
  std::string summary;
  CommandFn run;
};

const std::vector<Command>& Commands();

class CommandRegistrar {
 public:
  CommandRegistrar(std::string name, std::string summary, CommandFn fn);
};

// Prints "moestream <command>: error: <message>" on one line; returns 1 (2
// for kInvalidArgument, i.e. bad flags).
int ReportError(std::string_view command, const absl::Status& s);

}  // namespace moestream::cli

#define MOESTREAM_REGISTER_COMMAND(name, summary, fn) \
  static ::moestream::cli::CommandRegistrar moestream_cmd_##name(#name, summary, fn)

#endif  // MOESTREAM_CLI_COMMAND_H_
