// Incremental parser for a text/event-stream body (the WHATWG server-sent events format, as
// OpenAI-style servers stream completions): bytes arrive in arbitrary pieces, events come out
// once their terminating blank line has arrived.
//
// Lines end in LF, CRLF or a lone CR. "data:" lines of one event are joined with "\n"; one
// space after the colon is dropped; "event:" sets the type; comment lines (":...") and other
// fields are skipped; an event with no data line is not dispatched. A CR at the end of a piece
// waits for the next piece (it may be the first half of a CRLF).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mlaserve::loadgen {

struct SseEvent {
  std::string type = "message";
  std::string data;
};

class SseParser {
 public:
  // Feeds the next piece of the body; returns the events it completed, in order.
  std::vector<SseEvent> feed(std::string_view bytes);

  // True when a partial line or event is buffered (the stream ended mid-event if so).
  bool pending() const { return !line_.empty() || has_data_; }

 private:
  void take_line(std::vector<SseEvent>& out);

  std::string line_;        // the current line, without its terminator
  bool pending_cr_ = false; // the last byte seen was a CR
  SseEvent event_;          // the event being built
  bool has_data_ = false;
};

}  // namespace mlaserve::loadgen
