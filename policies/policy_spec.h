// Parsing of policy and predictor specs: "name" or "name:key=value,key=value".
// Every policy and predictor in policies/ is chosen by such a spec; options
// are typed and range-checked here so a bad flag becomes one clear error
// naming the spec, the option and what was expected.
//
//   MOESTREAM_ASSIGN_OR_RETURN(PolicySpec spec, ParsePolicySpec("lfu:decay=0.9"));
//   double decay = 1.0;
//   MOESTREAM_RETURN_IF_ERROR(spec.Double("decay", 0.0, 1.0, &decay));
//   MOESTREAM_RETURN_IF_ERROR(spec.CheckAllUsed());
#ifndef MOESTREAM_POLICIES_POLICY_SPEC_H_
#define MOESTREAM_POLICIES_POLICY_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moestream::policies {

class PolicySpec {
 public:
  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }

  // Each reads option `key` if present (leaving *out unchanged otherwise) and
  // checks lo <= value <= hi; kInvalidArgument names the spec and option.
  absl::Status Double(std::string_view key, double lo, double hi, double* out);
  absl::Status Int(std::string_view key, int64_t lo, int64_t hi, int64_t* out);
  absl::Status Bool(std::string_view key, bool* out);
  absl::Status String(std::string_view key, std::string* out);
  // kInvalidArgument naming the first option no accessor asked for, and the
  // options this policy knows (`known`, comma separated).
  absl::Status CheckAllUsed(std::string_view known) const;

 private:
  friend absl::StatusOr<PolicySpec> ParsePolicySpec(std::string_view text);
  const std::string* Find(std::string_view key);

  std::string text_;
  std::string name_;
  std::vector<std::pair<std::string, std::string>> options_;
  std::vector<bool> used_;
};

// Splits "name:k=v,k=v". kInvalidArgument for an empty name, an option
// without '=', an empty key or a repeated key.
absl::StatusOr<PolicySpec> ParsePolicySpec(std::string_view text);

}  // namespace moestream::policies

#endif  // MOESTREAM_POLICIES_POLICY_SPEC_H_
