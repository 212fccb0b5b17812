// Helpers of the libFuzzer targets that parse files: the fuzz input written
// to a file in memory (/dev/shm when present, else the temporary directory),
// since the parsers take paths as the commands give them.
#ifndef MOESTREAM_TESTS_FUZZ_FUZZ_UTIL_H_
#define MOESTREAM_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace moestream::fuzz {

// A directory of this process, removed at a normal exit (the name lives on
// the heap, never destroyed, so the exit handler can still read it):
// MOESTREAM_FUZZ_SCRATCH when set (run_fuzzers.sh sets it, and removes it
// after a crash too), else /dev/shm/moestream-fuzz-PID.
inline const std::string& ScratchDir() {
  static const std::string* dir = [] {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec)
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    const char* env = std::getenv("MOESTREAM_FUZZ_SCRATCH");
    auto* d = new std::string(env != nullptr && *env != '\0'
                                  ? std::string(env)
                                  : (base / ("moestream-fuzz-" + std::to_string(getpid()))).string());
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(ScratchDir(), ignored);
    });
    return d;
  }();
  return *dir;
}

// Writes `bytes` to `name` in the scratch directory; returns its path.
inline std::string WriteScratch(const std::string& name, std::string_view bytes) {
  const std::string path = ScratchDir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace moestream::fuzz

#endif  // MOESTREAM_TESTS_FUZZ_FUZZ_UTIL_H_
