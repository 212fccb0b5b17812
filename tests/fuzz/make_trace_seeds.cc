// Writes .mstrace seeds for trace_mstrace_fuzzer: each given trace (any
// format trace_import.h reads; small excerpts of the shared traces) as a
// version 2 file, and as the version 1 file an older moestream wrote (same
// layout, the checksum from the old basis).
//
//   make_trace_seeds OUTDIR TRACE...
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "trace/trace.h"
#include "trace/trace_import.h"

int main(int argc, char** argv) {
  namespace tr = moestream::trace;
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_trace_seeds OUTDIR TRACE...\n");
    return 2;
  }
  const std::string out = argv[1];
  int written = 0;
  for (int i = 2; i < argc; ++i) {
    auto t = tr::LoadTrace(argv[i]);
    if (!t.ok()) {
      std::fprintf(stderr, "make_trace_seeds: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    const std::string base =
        out + "/" + std::filesystem::path(argv[i]).filename().string();
    if (!tr::WriteTrace(*t, base + ".mstrace").ok()) return 1;
    std::ifstream in(base + ".mstrace", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string v1 = ss.str();
    const uint32_t version = tr::kTraceVersionLegacy;
    std::memcpy(v1.data() + 8, &version, 4);
    const uint64_t sum = tr::Fnv1a64(std::string_view(v1).substr(0, v1.size() - 8),
                                     tr::kFnv1a64LegacyBasis);
    std::memcpy(v1.data() + v1.size() - 8, &sum, 8);
    std::ofstream(base + ".v1.mstrace", std::ios::binary) << v1;
    written += 2;
  }
  std::printf("make_trace_seeds: %d seeds in %s\n", written, out.c_str());
  return 0;
}
