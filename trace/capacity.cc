// ParseCapacity (trace/replay.h), on its own: it depends on nothing of the
// replay, so the spec-parser fuzz target compiles it without the cache.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "trace/replay.h"

namespace moestream::trace {

absl::StatusOr<int> ParseCapacity(const std::string& text, int n_experts) {
  std::string s = text;
  bool pct = !s.empty() && s.back() == '%';
  if (pct) s.pop_back();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(v > 0) || (pct && v > 100)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capacity '", text, "' is not a positive expert count or a percentage in (0, 100]"));
  }
  if (pct) return std::max(1, int(std::lround(v * n_experts / 100.0)));
  if (v != std::floor(v)) {
    return absl::InvalidArgumentError(absl::StrCat("capacity '", text, "' is not a whole count"));
  }
  if (v > n_experts) {
    return absl::InvalidArgumentError(absl::StrCat("capacity ", text, " exceeds the ", n_experts,
                                                   " experts per layer"));
  }
  return int(v);
}

}  // namespace moestream::trace
