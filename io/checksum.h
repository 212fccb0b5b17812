// XXH64 (the public xxHash 64-bit algorithm, computed by libxxhash): the
// checksum of each blob, the index and the header of the packed expert store
// (io/expert_store.h), and of a GGUF's metadata for the store's source
// identity. XXH64 is the on-disk format, so the digest never changes with the
// library version; fast enough to verify every blob as it arrives from NVMe.
//
//   uint64_t h = Xxh64(blob, blob_bytes);           // seed 0
//   Xxh64State s; s.Update(a, n); s.Update(b, m);  uint64_t h2 = s.Digest();
#ifndef MOESTREAM_IO_CHECKSUM_H_
#define MOESTREAM_IO_CHECKSUM_H_

#include <cstddef>
#include <cstdint>
#include <memory>

// libxxhash's streaming state, kept opaque so that <xxhash.h> stays out of
// our headers.
struct XXH64_state_s;

namespace moestream::io {

uint64_t Xxh64(const void* data, size_t bytes, uint64_t seed = 0);

// Streaming form: the same digest as Xxh64 over the concatenated input.
class Xxh64State {
 public:
  explicit Xxh64State(uint64_t seed = 0);
  void Update(const void* data, size_t bytes);
  uint64_t Digest() const;

 private:
  struct Free {
    void operator()(XXH64_state_s* s) const;
  };
  std::unique_ptr<XXH64_state_s, Free> state_;
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_CHECKSUM_H_
