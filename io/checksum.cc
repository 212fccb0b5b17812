#include "io/checksum.h"

#include <cstring>

namespace moestream::io {
namespace {

constexpr uint64_t kP1 = 11400714785074694791ULL;
constexpr uint64_t kP2 = 14029467366897019727ULL;
constexpr uint64_t kP3 = 1609587929392839161ULL;
constexpr uint64_t kP4 = 9650029242287828579ULL;
constexpr uint64_t kP5 = 2870177450012600261ULL;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t Read64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // little-endian hosts only (x86-64, aarch64)
  return v;
}
inline uint32_t Read32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t Round(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = Rotl(acc, 31);
  return acc * kP1;
}
inline uint64_t MergeRound(uint64_t acc, uint64_t val) {
  acc ^= Round(0, val);
  return acc * kP1 + kP4;
}

// Consumes whole 32-byte stripes of p[0..n); returns bytes consumed.
size_t Stripes(uint64_t v[4], const uint8_t* p, size_t n) {
  size_t done = 0;
  for (; done + 32 <= n; done += 32) {
    v[0] = Round(v[0], Read64(p + done));
    v[1] = Round(v[1], Read64(p + done + 8));
    v[2] = Round(v[2], Read64(p + done + 16));
    v[3] = Round(v[3], Read64(p + done + 24));
  }
  return done;
}

uint64_t Finish(const uint64_t v[4], uint64_t seed, uint64_t total, const uint8_t* tail,
                size_t tail_len) {
  uint64_t h;
  if (total >= 32) {
    h = Rotl(v[0], 1) + Rotl(v[1], 7) + Rotl(v[2], 12) + Rotl(v[3], 18);
    for (int i = 0; i < 4; ++i) h = MergeRound(h, v[i]);
  } else {
    h = seed + kP5;
  }
  h += total;
  const uint8_t* p = tail;
  size_t n = tail_len;
  for (; n >= 8; p += 8, n -= 8) {
    h ^= Round(0, Read64(p));
    h = Rotl(h, 27) * kP1 + kP4;
  }
  if (n >= 4) {
    h ^= uint64_t(Read32(p)) * kP1;
    h = Rotl(h, 23) * kP2 + kP3;
    p += 4;
    n -= 4;
  }
  for (; n > 0; ++p, --n) {
    h ^= uint64_t(*p) * kP5;
    h = Rotl(h, 11) * kP1;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

}  // namespace

Xxh64State::Xxh64State(uint64_t seed)
    : v_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1}, seed_(seed) {}

void Xxh64State::Update(const void* data, size_t bytes) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  total_ += bytes;
  if (buf_len_ > 0) {
    size_t take = bytes < 32 - buf_len_ ? bytes : 32 - buf_len_;
    std::memcpy(buf_ + buf_len_, p, take);
    buf_len_ += take;
    p += take;
    bytes -= take;
    if (buf_len_ < 32) return;
    Stripes(v_, buf_, 32);
    buf_len_ = 0;
  }
  size_t done = Stripes(v_, p, bytes);
  std::memcpy(buf_, p + done, bytes - done);
  buf_len_ = bytes - done;
}

uint64_t Xxh64State::Digest() const { return Finish(v_, seed_, total_, buf_, buf_len_); }

uint64_t Xxh64(const void* data, size_t bytes, uint64_t seed) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t v[4] = {seed + kP1 + kP2, seed + kP2, seed, seed - kP1};
  size_t done = Stripes(v, p, bytes);
  return Finish(v, seed, bytes, p + done, bytes - done);
}

}  // namespace moestream::io
