#include "server/api_error.h"

#include <regex>

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

std::string client_message(const std::string& what) {
  std::string s = what;
  static const std::string kHead = "check failed: ";
  if (s.rfind(kHead, 0) == 0) {
    // The condition's text ends at the first ": " (conditions hold no ": ").
    const size_t end = s.find(": ", kHead.size());
    if (end != std::string::npos) s = s.substr(end + 2);
  }
  static const std::regex kTail(R"( \([A-Za-z0-9_./-]+\.(cc|h|cu):[0-9]+\)$)");
  return std::regex_replace(s, kTail, "");
}

}  // namespace mlaserve::server
