#include "cli/command.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/bytes.h"
#include "base/strings.h"

namespace moestream::cli {
namespace {

std::vector<CommandInfo>& Registry() {
  static std::vector<CommandInfo> r;
  return r;
}

// Collapses CLI11's messages (and ours) to one line.
std::string OneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

const std::vector<CommandInfo>& Commands() { return Registry(); }

CommandRegistrar::CommandRegistrar(std::string name, std::string summary, CommandFactory make) {
  auto& r = Registry();
  auto it = r.begin();
  while (it != r.end() && it->name < name) ++it;
  r.insert(it, CommandInfo{std::move(name), std::move(summary), make});
}

int ReportError(std::string_view command, const absl::Status& s) {
  const std::string prefix =
      command.empty() ? std::string("moestream") : absl::StrCat("moestream ", Av(command));
  std::fprintf(stderr, "%s: error: %s\n", prefix.c_str(), OneLine(Sv(s.message())).c_str());
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

void ConfigureApp(CLI::App& app) {
  app.option_defaults()->always_capture_default()->multi_option_policy(
      CLI::MultiOptionPolicy::TakeLast);
}

CLI::Option* AddByteSizeOption(CLI::App& app, const std::string& name, uint64_t* bytes,
                               const std::string& help) {
  // The transform turns "24G" into the decimal byte count CLI11 then stores;
  // its message follows the flag's name in CLI11's ValidationError.
  CLI::Validator as_bytes(
      [](std::string& text) -> std::string {
        absl::StatusOr<uint64_t> b = ParseByteSize(text);
        if (!b.ok()) return std::string(b.status().message());
        text = std::to_string(*b);
        return std::string();
      },
      "", "SIZE");
  return app.add_option(name, *bytes, help)
      ->transform(as_bytes)
      ->type_name("SIZE")
      ->default_str(FormatBytes(*bytes));
}

absl::StatusOr<Parsed> ParseFlags(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return Parsed::kHelpShown;
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(OneLine(e.what()));
  }
  return Parsed::kRun;
}

int Main(const std::vector<std::string>& args) {
  CLI::App app(absl::StrCat("moestream ", MOESTREAM_VERSION_STRING,
                            ": run Mixture-of-Experts models larger than the GPU"),
               "moestream");
  ConfigureApp(app);
  app.set_version_flag("--version", absl::StrCat("moestream ", MOESTREAM_VERSION_STRING));
  app.require_subcommand(1);
  std::vector<std::unique_ptr<Command>> commands;
  std::vector<CLI::App*> subs;
  for (const CommandInfo& info : Commands()) {
    CLI::App* sub = app.add_subcommand(info.name, info.summary);
    commands.push_back(info.make());
    commands.back()->Register(*sub);
    subs.push_back(sub);
  }
  if (args.empty() || args[0] == "help") {
    std::fputs(app.help().c_str(), stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0].empty() || args[0][0] != '-') {
    bool known = false;
    for (const CommandInfo& info : Commands()) known = known || info.name == args[0];
    if (!known) {
      return ReportError("", absl::InvalidArgumentError(absl::StrCat(
                                 "unknown command '", args[0], "' (try 'moestream --help')")));
    }
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::printf("moestream %s\n", MOESTREAM_VERSION_STRING);
    return 0;
  } catch (const CLI::ParseError& e) {
    const std::vector<CLI::App*> chosen = app.get_subcommands();
    return ReportError(chosen.empty() ? std::string() : chosen[0]->get_name(),
                       absl::InvalidArgumentError(e.what()));
  }
  for (size_t i = 0; i < subs.size(); ++i) {
    if (!subs[i]->parsed()) continue;
    const absl::Status s = commands[i]->Run();
    if (!s.ok()) return ReportError(subs[i]->get_name(), s);
    if (std::fflush(stdout) != 0) {
      return ReportError(subs[i]->get_name(), absl::UnavailableError("writing to stdout failed"));
    }
    return 0;
  }
  return ReportError("", absl::InvalidArgumentError("no command given (try 'moestream --help')"));
}

}  // namespace moestream::cli
