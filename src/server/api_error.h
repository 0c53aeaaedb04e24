// ApiError: a failed API request as a value: the HTTP status and OpenAI's error body
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens", "code": null}}
// Anything a handler throws ends as one of these (router.cc): an ApiError as it is, a
// mlaserve::Error from request validation (the engine's front door) as a 400, anything else
// as a 500. The process never dies of a request.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace mlaserve::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type, std::string param = "", std::string code = "");

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }  // "" : null in the body
  const std::string& code() const { return code_; }    // "" : null in the body

  nlohmann::ordered_json body() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// 400 invalid_request_error, naming the offending field.
ApiError invalid_request(const std::string& message, const std::string& param = "", const std::string& code = "");

// A mlaserve::Error's message without the "check failed: <condition>: " head and the
// " (file.cc:123)" tail, for an API client's eyes.
std::string client_message(const std::string& what);

}  // namespace mlaserve::server
