#include "core/error.h"

#include <string_view>

namespace mlaserve::detail {

void throw_error(const char* file, int line, const std::string& message) {
  // Keep only the path below src/ (or the file name) so messages stay short.
  std::string_view path(file);
  if (auto pos = path.rfind("src/"); pos != std::string_view::npos) path = path.substr(pos + 4);
  throw Error(fmt::format("{} ({}:{})", message, path, line));
}

}  // namespace mlaserve::detail
