#include "loadgen/sse_parser.h"

namespace mlaserve::loadgen {

std::vector<SseEvent> SseParser::feed(std::string_view bytes) {
  std::vector<SseEvent> out;
  for (const char c : bytes) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') continue;  // the LF of a CRLF already ended the line
    }
    if (c == '\r') {
      pending_cr_ = true;
      take_line(out);
    } else if (c == '\n') {
      take_line(out);
    } else {
      line_.push_back(c);
    }
  }
  return out;
}

void SseParser::take_line(std::vector<SseEvent>& out) {
  if (line_.empty()) {  // blank line: dispatch
    if (has_data_) out.push_back(std::move(event_));
    event_ = SseEvent{};
    has_data_ = false;
    return;
  }
  if (line_.front() != ':') {
    const size_t colon = line_.find(':');
    const std::string_view field = std::string_view(line_).substr(0, colon);
    std::string_view value;
    if (colon != std::string::npos) {
      value = std::string_view(line_).substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) event_.data.push_back('\n');
      event_.data.append(value);
      has_data_ = true;
    } else if (field == "event") {
      event_.type = std::string(value);
    }
  }
  line_.clear();
}

}  // namespace mlaserve::loadgen
