// libFuzzer entry point for the GGUF reader: any byte string must parse to a
// GgufFile or fail with a Status, never crash, leak or trip a sanitizer.
//
// Each input is parsed twice: as a whole file, and as a header-only image of
// a much larger file, so inputs whose tensor data is absent still reach the
// layout checks and the accessors.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moestream::io::ExpertMatrix;
  using moestream::io::GgufFile;
  std::span<const uint8_t> bytes(data, size);
  for (uint64_t file_size : {uint64_t{0}, uint64_t{size} + (uint64_t{1} << 40)}) {
    absl::StatusOr<GgufFile> f = GgufFile::Parse(bytes, "fuzz.gguf", file_size);
    if (!f.ok()) continue;
    size_t sink = 0;
    for (const auto& kv : f->metadata()) sink += kv.value.DebugString(4).size();
    for (const auto& t : f->tensors()) {
      sink += t.ShapeString().size();
      if (f->FindTensor(t.name) != &t) __builtin_trap();
      if (t.file_offset < f->data_offset() || t.range().end() > f->file_size()) __builtin_trap();
    }
    for (ExpertMatrix m : {ExpertMatrix::kGate, ExpertMatrix::kUp, ExpertMatrix::kDown}) {
      for (int e : {0, 1, 7}) {
        auto r = f->ExpertRange(0, m, e);
        if (r.ok() && r->end() > f->file_size()) __builtin_trap();
      }
    }
    (void)f->GetString("general.architecture");
    (void)f->GetStringArray("tokenizer.ggml.tokens");
    (void)f->GetFloatArray("tokenizer.ggml.scores");
    (void)f->GetIntArray("tokenizer.ggml.token_type");
    (void)sink;
  }
  return 0;
}
