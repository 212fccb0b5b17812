#include "base/bytes.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"

namespace moestream {

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  std::string t = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(Av(text)));
  if (t.empty()) return absl::InvalidArgumentError("empty size");
  auto strip = [&t](std::string_view suffix) {
    if (t.size() > suffix.size() && std::string_view(t).substr(t.size() - suffix.size()) == suffix) {
      t.resize(t.size() - suffix.size());
      return true;
    }
    return false;
  };
  // "GiB" and "GB" both mean 2^30 here: a memory budget is never decimal.
  if (!strip("IB")) strip("B");
  double unit = 1;
  constexpr double kKiB = 1024.0;
  if (strip("K")) {
    unit = kKiB;
  } else if (strip("M")) {
    unit = kKiB * kKiB;
  } else if (strip("G")) {
    unit = kKiB * kKiB * kKiB;
  } else if (strip("T")) {
    unit = kKiB * kKiB * kKiB * kKiB;
  }
  double v = 0;
  if (!absl::SimpleAtod(t, &v) || !(v >= 0) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", Av(text), "' is not a size (e.g. 24G, 512M, 4096)"));
  }
  const double bytes = v * unit;
  // Below 2^64 (~1.845e19) with room for the double's rounding; std::round,
  // not llround, since sizes above 2^63 must not pass through int64.
  if (bytes >= 1.8e19) {
    return absl::InvalidArgumentError(absl::StrCat("size '", Av(text), "' is too large"));
  }
  return static_cast<uint64_t>(std::round(bytes));
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024.0 && unit < 4) {
    v /= 1024.0;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

}  // namespace moestream
