// The error of the template engine: a template that cannot be parsed (an unsupported
// construct is named), or one that fails while rendering (what jinja2 would raise). The
// message carries the template line when it is known.
#pragma once

#include <fmt/format.h>

#include <string>

#include "core/error.h"

namespace mlaserve::tokenizer::jinja {

class TemplateError : public Error {
 public:
  explicit TemplateError(std::string message, int line = 0)
      : Error(line > 0 ? fmt::format("chat template line {}: {}", line, message) : "chat template: " + message),
        message_(std::move(message)),
        line_(line) {}

  const std::string& message() const { return message_; }
  int line() const { return line_; }

 private:
  std::string message_;
  int line_;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw TemplateError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace mlaserve::tokenizer::jinja
