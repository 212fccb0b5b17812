// Status plumbing shared by every module: Debian's Abseil (20220623) ships no
// RETURN_IF_ERROR / ASSIGN_OR_RETURN, so moestream carries its own.
//
//   absl::StatusOr<Header> ParseHeader(Reader& r) {
//     MOESTREAM_RETURN_IF_ERROR(r.Expect(kMagic));
//     MOESTREAM_ASSIGN_OR_RETURN(uint64_t n, r.ReadU64("tensor_count"));
//     ...
//   }
#ifndef MOESTREAM_BASE_STATUS_MACROS_H_
#define MOESTREAM_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MOESTREAM_STATUS_CONCAT_INNER_(a, b) a##b
#define MOESTREAM_STATUS_CONCAT_(a, b) MOESTREAM_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// when it is not OK.
#define MOESTREAM_RETURN_IF_ERROR(expr)                 \
  do {                                                  \
    ::absl::Status moestream_status_ = (expr);          \
    if (!moestream_status_.ok()) return moestream_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, else
// moves the value into `lhs` (which may be a declaration).
#define MOESTREAM_ASSIGN_OR_RETURN(lhs, rexpr) \
  MOESTREAM_ASSIGN_OR_RETURN_IMPL_(            \
      MOESTREAM_STATUS_CONCAT_(moestream_statusor_, __LINE__), lhs, rexpr)

#define MOESTREAM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                     \
  if (!tmp.ok()) return std::move(tmp).status();          \
  lhs = std::move(tmp).value()

#endif  // MOESTREAM_BASE_STATUS_MACROS_H_
