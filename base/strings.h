// Debian's Abseil is built with its own absl::string_view (not std's), so a
// std::string_view does not convert to absl's implicitly. Av() bridges the
// two where our std::string_view meets absl::StrCat, StrFormat or a Status.
//
//   return absl::NotFoundError(absl::StrCat("no tensor '", Av(name), "'"));
#ifndef MOESTREAM_BASE_STRINGS_H_
#define MOESTREAM_BASE_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace moestream {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace moestream

#endif  // MOESTREAM_BASE_STRINGS_H_
