#include "policies/policy_spec.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace moestream::policies {

absl::StatusOr<PolicySpec> ParsePolicySpec(std::string_view text) {
  PolicySpec spec;
  spec.text_ = std::string(text);
  size_t colon = text.find(':');
  spec.name_ = std::string(text.substr(0, colon));
  if (spec.name_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy spec '", Av(text), "' has no name (expected name[:key=value,...])"));
  }
  if (colon == std::string_view::npos) return spec;
  std::string_view rest = text.substr(colon + 1);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("policy spec '", Av(text), "': option '",
                                                     Av(item), "' is not key=value"));
    }
    std::string key(item.substr(0, eq));
    for (const auto& [k, v] : spec.options_) {
      if (k == key) {
        return absl::InvalidArgumentError(
            absl::StrCat("policy spec '", Av(text), "': option '", key, "' given twice"));
      }
    }
    spec.options_.emplace_back(std::move(key), std::string(item.substr(eq + 1)));
  }
  spec.used_.assign(spec.options_.size(), false);
  return spec;
}

const std::string* PolicySpec::Find(std::string_view key) {
  for (size_t i = 0; i < options_.size(); ++i) {
    if (options_[i].first == key) {
      used_[i] = true;
      return &options_[i].second;
    }
  }
  return nullptr;
}

absl::Status PolicySpec::Double(std::string_view key, double lo, double hi, double* out) {
  const std::string* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || errno != 0 || !std::isfinite(d) || d < lo || d > hi) {
    return absl::InvalidArgumentError(absl::StrCat("policy spec '", text_, "': option ",
                                                   Av(key), "='", *v, "' is not a number in [",
                                                   lo, ", ", hi, "]"));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status PolicySpec::Int(std::string_view key, int64_t lo, int64_t hi, int64_t* out) {
  const std::string* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || x < lo || x > hi) {
    return absl::InvalidArgumentError(absl::StrCat("policy spec '", text_, "': option ",
                                                   Av(key), "='", *v,
                                                   "' is not an integer in [", lo, ", ", hi, "]"));
  }
  *out = x;
  return absl::OkStatus();
}

absl::Status PolicySpec::Bool(std::string_view key, bool* out) {
  const std::string* v = Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (*v == "1" || *v == "true" || *v == "on") {
    *out = true;
  } else if (*v == "0" || *v == "false" || *v == "off") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("policy spec '", text_, "': option ",
                                                   Av(key), "='", *v, "' is not 0/1/true/false"));
  }
  return absl::OkStatus();
}

absl::Status PolicySpec::String(std::string_view key, std::string* out) {
  const std::string* v = Find(key);
  if (v != nullptr) *out = *v;
  return absl::OkStatus();
}

absl::Status PolicySpec::CheckAllUsed(std::string_view known) const {
  for (size_t i = 0; i < options_.size(); ++i) {
    if (!used_[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy spec '", text_, "': unknown option '", options_[i].first, "' for '", name_,
          "' (known: ", known.empty() ? std::string("none") : std::string(known), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace moestream::policies
