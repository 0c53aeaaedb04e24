// Logging: leveled, thread-safe lines on stderr, "[time level] message".
//   MLA_LOG_INFO("loaded {} tensors", n);
// The level is a process-wide setting made once by the CLI (set_log_level), never read from
// environment variables inside the engine.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace mlaserve {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
LogLevel parse_log_level(std::string_view name);  // "debug", "info", "warn", "error", "off"
void log_line(LogLevel level, std::string_view message);

}  // namespace mlaserve

#define MLA_LOG_AT(level, ...)                                                      \
  do {                                                                              \
    if ((level) >= ::mlaserve::log_level()) {                                       \
      ::mlaserve::log_line((level), ::fmt::format(__VA_ARGS__));                    \
    }                                                                               \
  } while (0)
#define MLA_LOG_DEBUG(...) MLA_LOG_AT(::mlaserve::LogLevel::kDebug, __VA_ARGS__)
#define MLA_LOG_INFO(...) MLA_LOG_AT(::mlaserve::LogLevel::kInfo, __VA_ARGS__)
#define MLA_LOG_WARN(...) MLA_LOG_AT(::mlaserve::LogLevel::kWarn, __VA_ARGS__)
#define MLA_LOG_ERROR(...) MLA_LOG_AT(::mlaserve::LogLevel::kError, __VA_ARGS__)
