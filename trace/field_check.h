// The one wording of a trace field out of range, and the checks behind it,
// shared by the binary reader and the importers:
//
//   trace 'x.route.csv' line 9: expert value '300' is not an integer in [0, 127]
//
//   int64_t e;
//   if (!IntIn(text, 0, n - 1, &e)) return BadField(where, "expert", text, IntRange(0, n - 1));
#ifndef MOESTREAM_TRACE_FIELD_CHECK_H_
#define MOESTREAM_TRACE_FIELD_CHECK_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace moestream::trace {

// "an integer in [lo, hi]"
std::string IntRange(int64_t lo, int64_t hi);
// "a finite number >= 0"
inline constexpr std::string_view kWeightRange = "a finite number >= 0";

// kDataLoss "<where>: <field> value '<value>' is not <expected>", where
// `where` names the file and line (or header).
absl::Status BadField(std::string_view where, std::string_view field, std::string_view value,
                      std::string_view expected);

// `text` as a whole decimal integer in [lo, hi] (no fraction, exponent or
// surrounding junk).
bool IntIn(std::string_view text, int64_t lo, int64_t hi, int64_t* out);
// `v` is integral and in [lo, hi] (1e20, -1 and 2.5 are not, for [0, 10]).
bool IntIn(double v, int64_t lo, int64_t hi, int64_t* out);
// `text` as a finite number >= 0.
bool WeightIn(std::string_view text, float* out);
inline bool WeightOk(double v) { return v >= 0 && v <= 3.4e38; }

}  // namespace moestream::trace

#endif  // MOESTREAM_TRACE_FIELD_CHECK_H_
