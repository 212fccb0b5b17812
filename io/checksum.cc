#include "io/checksum.h"

#include <xxhash.h>

#include "base/check.h"

namespace moestream::io {

uint64_t Xxh64(const void* data, size_t bytes, uint64_t seed) {
  return XXH64(data, bytes, seed);
}

void Xxh64State::Free::operator()(XXH64_state_s* s) const { XXH64_freeState(s); }

Xxh64State::Xxh64State(uint64_t seed) : state_(XXH64_createState()) {
  // Allocation of a few dozen bytes: failure is out-of-memory, not bad input.
  MOESTREAM_CHECK(state_ != nullptr) << "XXH64_createState failed";
  XXH64_reset(state_.get(), seed);
}

void Xxh64State::Update(const void* data, size_t bytes) {
  // XXH64_update fails only for a null pointer with a non-zero length.
  if (bytes > 0) XXH64_update(state_.get(), data, bytes);
}

uint64_t Xxh64State::Digest() const { return XXH64_digest(state_.get()); }

}  // namespace moestream::io
