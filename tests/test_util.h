// Helpers shared by the test suites: where the shared reference data and the
// built `moestream` binary are, scratch directories, running a command.
//
//   std::string gguf = SharedPath("data/stories260k-gguf/stories260K.gguf");
//   ScratchDir dir;  std::string out = dir.Path("m.gguf");
//   CommandResult r = RunCommand(MoestreamBin() + " inspect " + out);
#ifndef MOESTREAM_TESTS_TEST_UTIL_H_
#define MOESTREAM_TESTS_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

namespace moestream::testing {

// ../shared (MOESTREAM_SHARED_DIR overrides).
std::string SharedDir();
std::string SharedPath(const std::string& rel);
// The built moestream executable (MOESTREAM_BIN overrides).
std::string MoestreamBin();
std::string SourceDir();

// A fresh directory removed (recursively) on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Path(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `cmd` through /bin/sh, capturing stdout and stderr.
CommandResult RunCommand(const std::string& cmd);

std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& bytes);
std::vector<float> ReadF32File(const std::string& path);

// Every "experts": [a, b, ...] list of a reference model's ref.json, in file
// order (position-major, then layer).
std::vector<std::vector<int32_t>> ReferenceRouting(const std::string& ref_json);

}  // namespace moestream::testing

#endif  // MOESTREAM_TESTS_TEST_UTIL_H_
