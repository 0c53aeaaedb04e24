// Errors and checks. Every failure carries file:line and a formatted message.
//
//   MLA_CHECK(cond, "fmt {}", args...)   throws mlaserve::Error if cond is false
//   MLA_FAIL("fmt {}", args...)          throws unconditionally
//
// Errors are exceptions so that the server can turn them into a failed request (a value at
// the API edge) instead of a dead process. CUDA and NCCL checks live in cuda_check.h.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace mlaserve {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace mlaserve

#define MLA_FAIL(...) ::mlaserve::detail::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))

#define MLA_CHECK(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond)) [[unlikely]] {                                                           \
      ::mlaserve::detail::throw_error(__FILE__, __LINE__,                                 \
                                      "check failed: " #cond ": " + ::fmt::format(__VA_ARGS__)); \
    }                                                                                     \
  } while (0)
