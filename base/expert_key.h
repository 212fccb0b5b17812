// The identity of one routed expert: (layer, expert), packed into 32 bits so
// policies can key hash maps and arrays by it cheaply.
#ifndef MOESTREAM_BASE_EXPERT_KEY_H_
#define MOESTREAM_BASE_EXPERT_KEY_H_

#include <cstdint>
#include <functional>

namespace moestream {

struct ExpertKey {
  uint16_t layer = 0;
  uint16_t expert = 0;

  uint32_t packed() const { return (uint32_t(layer) << 16) | expert; }
  static ExpertKey FromPacked(uint32_t p) { return {uint16_t(p >> 16), uint16_t(p & 0xffff)}; }
  friend bool operator==(ExpertKey a, ExpertKey b) { return a.packed() == b.packed(); }
  friend bool operator!=(ExpertKey a, ExpertKey b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, ExpertKey k) {
    return H::combine(std::move(h), k.packed());
  }
};

}  // namespace moestream

#endif  // MOESTREAM_BASE_EXPERT_KEY_H_
