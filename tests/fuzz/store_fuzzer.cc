// libFuzzer entry point for the packed expert store's header and index,
// through the public ExpertStore::Open on a file holding the input. Open must
// return a store whose every blob lies inside the file, or fail with a
// Status; never crash, leak or trip a sanitizer.
//
// Seeds are stores written by `moestream pack` when the fuzzer runs
// (tests/fuzz/run_fuzzers.sh), so they follow the format of the code under
// test. For an input of the current version (io/expert_store.h: index
// checksum at byte 40 over [index offset, + index bytes), header checksum at
// byte 4088 over [0, 4088)) both checksums are recomputed before Open, so
// mutations reach the index checks instead of stopping at a checksum; inputs
// of any other version go to Open as they are.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "io/checksum.h"
#include "io/expert_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

template <typename T>
T Load(const std::string& b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

void FixChecksums(std::string& b) {
  namespace io = moestream::io;
  if (b.size() < io::kStoreHeaderBytes || std::memcmp(b.data(), io::kStoreMagic, 8) != 0 ||
      Load<uint32_t>(b, 8) != io::kStoreVersion) {
    return;
  }
  const uint64_t index_offset = Load<uint64_t>(b, 24), index_bytes = Load<uint64_t>(b, 32);
  if (index_offset <= b.size() && index_bytes <= b.size() - index_offset) {
    const uint64_t sum = io::Xxh64(b.data() + index_offset, index_bytes);
    std::memcpy(b.data() + 40, &sum, 8);
  }
  const uint64_t header_sum = io::Xxh64(b.data(), 4088);
  std::memcpy(b.data() + 4088, &header_sum, 8);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  FixChecksums(bytes);
  const std::string path = moestream::fuzz::WriteScratch("s.store", bytes);
  absl::StatusOr<moestream::io::ExpertStore> store = moestream::io::ExpertStore::Open(path);
  if (!store.ok()) return 0;
  const auto& layout = *store->layout();
  for (const auto& e : layout.experts()) {
    if (layout.Find(e.layer, e.expert) != &e) __builtin_trap();
    for (const auto& seg : e.segment_span()) {
      if (seg.file_offset > layout.file_size() || seg.bytes > layout.file_size() - seg.file_offset) {
        __builtin_trap();
      }
    }
  }
  (void)layout.moe_layers();
  return 0;
}
