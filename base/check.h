// Assertions for programmer errors (never for bad input, which gets a Status).
//
//   MOESTREAM_CHECK(slot < slots_.size()) << "slot " << slot;
//   MOESTREAM_DCHECK(pins_ > 0);
//
// A failed check prints file, line, the condition and the streamed message to
// stderr and aborts.
#ifndef MOESTREAM_BASE_CHECK_H_
#define MOESTREAM_BASE_CHECK_H_

#include <sstream>

namespace moestream::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Swallows the stream expression in the non-failing branch of the macro.
struct CheckVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace moestream::internal

#define MOESTREAM_CHECK(cond)                     \
  (cond) ? (void)0                                \
         : ::moestream::internal::CheckVoidify() & \
               ::moestream::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()

#ifdef NDEBUG
#define MOESTREAM_DCHECK(cond) \
  while (false) MOESTREAM_CHECK(cond)
#else
#define MOESTREAM_DCHECK(cond) MOESTREAM_CHECK(cond)
#endif

#endif  // MOESTREAM_BASE_CHECK_H_
