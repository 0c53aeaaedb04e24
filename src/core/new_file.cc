#include "core/new_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace mlaserve {

std::string write_new_file(const std::string& dir, const std::string& stem, const std::string& ext,
                           std::string_view text) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  MLA_CHECK(!ec, "cannot create the directory {}: {}", dir, ec.message());
  for (int n = 1;; ++n) {
    const std::string path =
        n == 1 ? fmt::format("{}/{}.{}", dir, stem, ext) : fmt::format("{}/{}-{}.{}", dir, stem, n, ext);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) continue;
    MLA_CHECK(fd >= 0, "cannot create {}: {}", path, std::strerror(errno));
    size_t written = 0;
    while (written < text.size()) {
      const ssize_t w = ::write(fd, text.data() + written, text.size() - written);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        const int err = errno;
        ::close(fd);
        MLA_FAIL("cannot write {}: {}", path, std::strerror(err));
      }
      written += static_cast<size_t>(w);
    }
    MLA_CHECK(::close(fd) == 0, "cannot write {}: {}", path, std::strerror(errno));
    return path;
  }
}

std::string file_name_part(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-';
  return out;
}

}  // namespace mlaserve
