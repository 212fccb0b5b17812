// A small strict flag parser for the subcommands: `--name value`,
// `--name=value`, short aliases (`-m`), boolean switches, positionals, and
// `--` ending flags. Unknown flags and missing or malformed values are
// kInvalidArgument errors naming the flag.
//
//   FlagParser p("run");
//   std::string model;  int64_t n = 32;  bool json = false;
//   p.String("model", 'm', "MODEL", "GGUF file", &model);
//   p.Int("n-predict", 'n', "N", "tokens to generate", &n);
//   p.Bool("json", "print the summary as JSON", &json);
//   MOESTREAM_RETURN_IF_ERROR(p.Parse(args));
#ifndef MOESTREAM_CLI_FLAGS_H_
#define MOESTREAM_CLI_FLAGS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moestream::cli {

// "24G", "512M", "1.5GiB", "4096" -> bytes (K/M/G/T are powers of 1024).
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

class FlagParser {
 public:
  explicit FlagParser(std::string command) : command_(std::move(command)) {}

  void String(std::string name, char short_name, std::string metavar, std::string help,
              std::string* out);
  void Int(std::string name, char short_name, std::string metavar, std::string help,
           int64_t* out);
  void Double(std::string name, char short_name, std::string metavar, std::string help,
              double* out);
  void Bytes(std::string name, std::string metavar, std::string help, uint64_t* out);
  void Bool(std::string name, std::string help, bool* out);
  // Positionals are collected in order; `help` names them in usage.
  void Positionals(std::string usage, std::vector<std::string>* out);

  // Parses; `--help`/-h sets help_requested() and returns OK.
  absl::Status Parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_; }
  bool was_set(const std::string& name) const;
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    char short_name;
    std::string metavar;  // empty for booleans
    std::string help;
    std::function<absl::Status(const std::string&)> set;
  };
  const Flag* FindLong(const std::string& name) const;
  const Flag* FindShort(char c) const;

  std::string command_;
  std::vector<Flag> flags_;
  std::vector<std::string> set_;
  std::string positional_usage_;
  std::vector<std::string>* positionals_ = nullptr;
  bool help_ = false;
};

}  // namespace moestream::cli

#endif  // MOESTREAM_CLI_FLAGS_H_
