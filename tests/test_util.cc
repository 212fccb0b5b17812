#include "tests/test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace moestream::testing {
namespace {

std::string EnvOr(const char* name, const char* def) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : std::string(def);
}

}  // namespace

std::string SharedDir() { return EnvOr("MOESTREAM_SHARED_DIR", MOESTREAM_TEST_SHARED_DIR); }
std::string SharedPath(const std::string& rel) { return SharedDir() + "/" + rel; }
std::string MoestreamBin() { return EnvOr("MOESTREAM_BIN", MOESTREAM_TEST_BIN); }
std::string SourceDir() { return EnvOr("MOESTREAM_SOURCE_DIR", MOESTREAM_TEST_SOURCE_DIR); }

ScratchDir::ScratchDir() {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/moestream-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed: " << std::strerror(errno);
  }
  path_ = buf.data();
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult RunCommand(const std::string& cmd) {
  ScratchDir dir;
  std::string out = dir.Path("stdout"), err = dir.Path("stderr");
  std::string full = "(" + cmd + ") >" + out + " 2>" + err;
  int rc = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
  r.out = ReadFileOrDie(out);
  r.err = ReadFileOrDie(err);
  return r;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    ADD_FAILURE() << "cannot read " << path;
    return "";
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteFileOrDie(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) ADD_FAILURE() << "cannot write " << path;
}

std::vector<float> ReadF32File(const std::string& path) {
  std::string b = ReadFileOrDie(path);
  std::vector<float> v(b.size() / sizeof(float));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(float));
  return v;
}

std::vector<std::vector<int32_t>> ReferenceRouting(const std::string& json) {
  std::vector<std::vector<int32_t>> out;
  for (size_t at = json.find("\"experts\""); at != std::string::npos;
       at = json.find("\"experts\"", at + 1)) {
    const size_t open = json.find('[', at), close = json.find(']', at);
    if (open == std::string::npos || close == std::string::npos) break;
    std::string inner = json.substr(open + 1, close - open - 1);
    for (char& c : inner) {
      if (c == ',') c = ' ';
    }
    std::istringstream ss(inner);
    std::vector<int32_t> ids;
    for (int32_t v; ss >> v;) ids.push_back(v);
    out.push_back(std::move(ids));
  }
  return out;
}

}  // namespace moestream::testing
