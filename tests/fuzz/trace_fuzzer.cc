// libFuzzer entry point for the routing-trace readers, built three times
// (MOESTREAM_TRACE_FUZZ_FORMAT): the binary .mstrace reader (0), the route
// CSV importer (1) and the JSON-lines importers (2: Mixtral and vLLM logger).
// Any bytes must load to a trace inside the caps of trace/trace.h, or fail
// with a Status; never crash, leak or trip a sanitizer. A trace that loads
// must survive a write and read back unchanged.
//
//   .mstrace  the input's trailing 8 bytes are replaced by the checksum its
//             version field calls for, so mutations reach the parser
//             instead of stopping at the checksum.
//   JSONL     a NUL byte splits the input into two vLLM logger files of one
//             directory (moe_layer0.jsonl, moe_layer1.jsonl), merged into one
//             trace; without one the input is a single file.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_util.h"
#include "trace/trace.h"
#include "trace/trace_import.h"

#ifndef MOESTREAM_TRACE_FUZZ_FORMAT
#error "define MOESTREAM_TRACE_FUZZ_FORMAT (0 mstrace, 1 route csv, 2 jsonl)"
#endif

namespace {

using moestream::trace::Trace;

std::string InputPath(std::string bytes) {
  using moestream::fuzz::WriteScratch;
#if MOESTREAM_TRACE_FUZZ_FORMAT == 0
  if (bytes.size() >= 20) {
    uint32_t version = 0;
    std::memcpy(&version, bytes.data() + 8, 4);
    const uint64_t basis = version == moestream::trace::kTraceVersionLegacy
                               ? moestream::trace::kFnv1a64LegacyBasis
                               : moestream::trace::kFnv1a64Basis;
    const uint64_t sum =
        moestream::trace::Fnv1a64(std::string_view(bytes).substr(0, bytes.size() - 8), basis);
    std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
  }
  return WriteScratch("t.mstrace", bytes);
#elif MOESTREAM_TRACE_FUZZ_FORMAT == 1
  return WriteScratch("t.route.csv", bytes);
#else
  const size_t nul = bytes.find('\0');
  if (nul == std::string::npos) return WriteScratch("t.jsonl", bytes);
  std::filesystem::create_directories(moestream::fuzz::ScratchDir() + "/d");
  WriteScratch("d/moe_layer0.jsonl", std::string_view(bytes).substr(0, nul));
  WriteScratch("d/moe_layer1.jsonl", std::string_view(bytes).substr(nul + 1));
  return moestream::fuzz::ScratchDir() + "/d";
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace tr = moestream::trace;
  const std::string path = InputPath(std::string(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<Trace> t = tr::LoadTrace(path);
  if (!t.ok()) return 0;
  const tr::TraceShape& s = t->shape;
  if (s.n_layers < 1 || s.n_layers > tr::kMaxTraceLayers || s.n_experts < 1 ||
      s.n_experts > tr::kMaxTraceExperts || s.top_k > tr::kMaxTraceTopK || !t->Validate().ok()) {
    __builtin_trap();
  }
  if (tr::TracePopularity(*t).size() != size_t(s.n_layers) * size_t(s.n_experts)) __builtin_trap();
  // Round trip through the binary format.
  const std::string copy = moestream::fuzz::ScratchDir() + "/copy.mstrace";
  if (!tr::WriteTrace(*t, copy).ok()) __builtin_trap();
  absl::StatusOr<Trace> u = tr::ReadTrace(copy);
  if (!u.ok() || u->cells.size() != t->cells.size() || u->experts != t->experts ||
      u->weights != t->weights || u->guesses != t->guesses || u->shape.n_experts != s.n_experts ||
      u->shape.n_layers != s.n_layers || u->shape.layer_ids != s.layer_ids) {
    __builtin_trap();
  }
  return 0;
}
