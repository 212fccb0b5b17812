// The `moestream` executable: dispatches to the registered subcommands.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/command.h"

namespace moestream::cli {
namespace {

std::vector<Command>& Registry() {
  static std::vector<Command> r;
  return r;
}

void PrintHelp() {
  std::printf("moestream %s: run Mixture-of-Experts models larger than the GPU\n\n",
              MOESTREAM_VERSION_STRING);
  std::printf("usage: moestream COMMAND [flags]   (moestream COMMAND --help for its flags)\n\n");
  for (const auto& c : Commands()) std::printf("  %-10s %s\n", c.name.c_str(), c.summary.c_str());
}

}  // namespace

const std::vector<Command>& Commands() { return Registry(); }

CommandRegistrar::CommandRegistrar(std::string name, std::string summary, CommandFn fn) {
  auto& r = Registry();
  auto it = r.begin();
  while (it != r.end() && it->name < name) ++it;
  r.insert(it, Command{std::move(name), std::move(summary), fn});
}

int ReportError(std::string_view command, const absl::Status& s) {
  std::string msg(s.message());
  for (char& c : msg) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "moestream %.*s: error: %s\n", static_cast<int>(command.size()),
               command.data(), msg.c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace moestream::cli

int main(int argc, char** argv) {
  using moestream::cli::Commands;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    moestream::cli::PrintHelp();
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::printf("moestream %s\n", MOESTREAM_VERSION_STRING);
    return 0;
  }
  std::string name = argv[1];
  for (const auto& c : Commands()) {
    if (c.name == name) return c.run(std::vector<std::string>(argv + 2, argv + argc));
  }
  std::fprintf(stderr, "moestream: error: unknown command '%s' (try 'moestream --help')\n",
               name.c_str());
  return 2;
}
