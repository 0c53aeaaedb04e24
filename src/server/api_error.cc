#include "server/api_error.h"

#include <algorithm>
#include <string_view>

namespace mlaserve::server {

ApiError::ApiError(int status, std::string message, std::string type, std::string param, std::string code)
    : std::runtime_error(std::move(message)),
      status_(status),
      type_(std::move(type)),
      param_(std::move(param)),
      code_(std::move(code)) {}

nlohmann::ordered_json ApiError::body() const {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s); };
  return {{"error", {{"message", what()}, {"type", type_}, {"param", or_null(param_)}, {"code", or_null(code_)}}}};
}

ApiError invalid_request(const std::string& message, const std::string& param, const std::string& code) {
  return ApiError(400, message, "invalid_request_error", param, code);
}

namespace {

// Whether t is "path/file.cc:123)", the tail of MLA_CHECK's " (path/file.cc:123)" (.cc, .h or .cu).
// By hand, not by std::regex, whose recursion overflows the stack on long messages.
bool is_source_location(std::string_view t) {
  if (!t.ends_with(')')) return false;
  t.remove_suffix(1);
  const size_t colon = t.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == t.size()) return false;
  const std::string_view line = t.substr(colon + 1), file = t.substr(0, colon);
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  auto is_path_char = [&](char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.' || c == '/' ||
           c == '-';
  };
  const bool source = (file.ends_with(".cc") && file.size() > 3) || (file.ends_with(".h") && file.size() > 2) ||
                      (file.ends_with(".cu") && file.size() > 3);
  return source && std::all_of(line.begin(), line.end(), is_digit) &&
         std::all_of(file.begin(), file.end(), is_path_char);
}

}  // namespace

std::string client_message(const std::string& what) {
  std::string s = what;
  static const std::string kHead = "check failed: ";
  if (s.rfind(kHead, 0) == 0) {
    // The condition's text ends at the first ": " (conditions hold no ": ").
    const size_t end = s.find(": ", kHead.size());
    if (end != std::string::npos) s = s.substr(end + 2);
  }
  const size_t tail = s.rfind(" (");
  if (tail != std::string::npos && is_source_location(std::string_view(s).substr(tail + 2))) s.resize(tail);
  return s;
}

}  // namespace mlaserve::server
