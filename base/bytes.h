// Byte sizes as people write them and as we print them, shared by every flag
// that takes a size and every report that shows one.
//
//   MOESTREAM_ASSIGN_OR_RETURN(uint64_t budget, ParseByteSize("1.5GiB"));  // 1610612736
//   FormatBytes(3 << 20);                                                  // "3.0 MiB"
#ifndef MOESTREAM_BASE_BYTES_H_
#define MOESTREAM_BASE_BYTES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace moestream {

// "24G", "512M", "8k", "1.5GiB", "4096", "64KB" -> bytes. K, M, G and T are
// powers of 1024 (a trailing "B" or "iB" changes nothing); case and
// surrounding spaces are ignored; fractions round to the nearest byte.
// kInvalidArgument for an empty, negative, malformed or too large size.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// "512 B", "1.5 KiB", "24.0 GiB": one decimal from KiB up, binary units.
std::string FormatBytes(uint64_t bytes);

}  // namespace moestream

#endif  // MOESTREAM_BASE_BYTES_H_
