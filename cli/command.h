// Subcommands of the `moestream` executable, and the flag helpers they and
// the benchmark binaries share. Flags are parsed by CLI11: each command adds
// its flags to its own CLI::App (a subcommand of `moestream`), so `--help`
// is generated, with defaults read from the variables the flags write.
//
//   class InspectCommand : public Command {
//    public:
//     void Register(CLI::App& app) override {
//       app.add_flag("--json", json_, "print one JSON object");
//       app.add_option("model", model_, "GGUF file");
//     }
//     absl::Status Run() override { ... }
//    private:
//     bool json_ = false;
//     std::string model_;
//   };
//   MOESTREAM_REGISTER_COMMAND(inspect, "sizes of a GGUF", InspectCommand);
//
// Every failure, bad flags included, is one line on stderr,
// "moestream <cmd>: error: <message>", with exit code 2 for kInvalidArgument
// (bad flags or flag values) and 1 otherwise (see ReportError).
#ifndef MOESTREAM_CLI_COMMAND_H_
#define MOESTREAM_CLI_COMMAND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moestream::cli {

class Command {
 public:
  virtual ~Command() = default;
  // Adds the command's flags and positionals to `app`, bound to members.
  virtual void Register(CLI::App& app) = 0;
  // Runs once the flags are parsed. kInvalidArgument for bad flag values.
  virtual absl::Status Run() = 0;
};

using CommandFactory = std::unique_ptr<Command> (*)();

struct CommandInfo {
  std::string name;
  std::string summary;
  CommandFactory make;
};

// Every registered command, sorted by name.
const std::vector<CommandInfo>& Commands();

class CommandRegistrar {
 public:
  CommandRegistrar(std::string name, std::string summary, CommandFactory make);
};

// Prints "moestream <command>: error: <message>" on one line; returns 1 (2
// for kInvalidArgument, i.e. bad flags).
int ReportError(std::string_view command, const absl::Status& s);

// The whole command line: `args` is argv without the program name. Prints
// help, the version or one error line; returns the exit code.
int Main(const std::vector<std::string>& args);

// What ParseFlags did when it succeeded.
enum class Parsed {
  kRun,        // flags are set: go on
  kHelpShown,  // --help was given and the help is printed: exit 0
};

// Parses `args` (no program name) into `app`, for a benchmark binary or a
// test; a flag error is kInvalidArgument with CLI11's message, which names
// the flag.
absl::StatusOr<Parsed> ParseFlags(CLI::App& app, const std::vector<std::string>& args);

// Settings every app of ours gets: defaults captured from the bound
// variables for --help, and a flag given twice keeps its last value.
void ConfigureApp(CLI::App& app);

// A size flag ("24G", "512M", "1.5GiB", "4096"; base/bytes.h) into `*bytes`;
// its --help default is the variable's value, formatted.
CLI::Option* AddByteSizeOption(CLI::App& app, const std::string& name, uint64_t* bytes,
                               const std::string& help);

}  // namespace moestream::cli

#define MOESTREAM_REGISTER_COMMAND(name, summary, type)                          \
  static ::moestream::cli::CommandRegistrar moestream_cmd_##name(                \
      #name, summary, []() -> std::unique_ptr<::moestream::cli::Command> {       \
        return std::make_unique<type>();                                         \
      })

#endif  // MOESTREAM_CLI_COMMAND_H_
