// XXH64 (the public xxHash 64-bit algorithm), implemented here: the checksum
// of each blob in the packed expert store (io/expert_store.h). Fast enough
// (~10 GB/s scalar) to verify every blob as it arrives from NVMe.
//
//   uint64_t h = Xxh64(blob, blob_bytes);           // seed 0
//   Xxh64State s; s.Update(a, n); s.Update(b, m);  uint64_t h2 = s.Digest();
#ifndef MOESTREAM_IO_CHECKSUM_H_
#define MOESTREAM_IO_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

namespace moestream::io {

uint64_t Xxh64(const void* data, size_t bytes, uint64_t seed = 0);

// Streaming form: the same digest as Xxh64 over the concatenated input.
class Xxh64State {
 public:
  explicit Xxh64State(uint64_t seed = 0);
  void Update(const void* data, size_t bytes);
  uint64_t Digest() const;

 private:
  uint64_t v_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  uint8_t buf_[32];
  size_t buf_len_ = 0;
};

}  // namespace moestream::io

#endif  // MOESTREAM_IO_CHECKSUM_H_
