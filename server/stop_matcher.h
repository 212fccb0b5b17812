// Stop strings over streamed text: output is released as soon as it cannot
// be the start of a stop string, and cut where a stop string begins.
//
//   StopMatcher m({"\n\n", "The end"});
//   for (...) { send(m.Push(piece)); if (m.stopped()) break; }
//   if (!m.stopped()) send(m.Flush());
//
// Holds back at most the longest stop string's length minus one bytes. A
// stop string is matched in the whole output, across piece boundaries; the
// earliest match wins and neither it nor anything after it is released.
#ifndef MOESTREAM_SERVER_STOP_MATCHER_H_
#define MOESTREAM_SERVER_STOP_MATCHER_H_

#include <string>
#include <string_view>
#include <vector>

namespace moestream::server {

class StopMatcher {
 public:
  // Empty strings are ignored.
  explicit StopMatcher(std::vector<std::string> stops = {});

  // Appends `piece`; returns the text that is now safe to send. After a
  // match, returns the text before it and stopped() is true; later pushes
  // return nothing.
  std::string Push(std::string_view piece);
  // The held-back text (the output ended without a match).
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace moestream::server

#endif  // MOESTREAM_SERVER_STOP_MATCHER_H_
