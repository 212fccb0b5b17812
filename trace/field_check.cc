#include "trace/field_check.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace moestream::trace {

std::string IntRange(int64_t lo, int64_t hi) {
  return absl::StrCat("an integer in [", lo, ", ", hi, "]");
}

absl::Status BadField(std::string_view where, std::string_view field, std::string_view value,
                      std::string_view expected) {
  return absl::DataLossError(absl::StrCat(Av(where), ": ", Av(field), " value '", Av(value),
                                          "' is not ", Av(expected)));
}

bool IntIn(std::string_view text, int64_t lo, int64_t hi, int64_t* out) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(Av(text), &v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool IntIn(double v, int64_t lo, int64_t hi, int64_t* out) {
  // The range test first: it also rejects NaN and values too large for int64.
  if (!(v >= double(lo) && v <= double(hi)) || v != std::floor(v)) return false;
  *out = int64_t(v);
  return true;
}

bool WeightIn(std::string_view text, float* out) {
  double v = 0;
  if (!absl::SimpleAtod(Av(text), &v) || !WeightOk(v)) return false;
  *out = float(v);
  return true;
}

}  // namespace moestream::trace
