// A TCP port for a test's rendezvous, chosen by the kernel (bind to port 0, read it, close): free
// at that moment on every address, unlike a port derived from the pid, which could sit in the
// ephemeral range that other tests' connections take their local ports from, or be another
// running test's pick (ctest -j). A socket that never connected leaves no TIME_WAIT, so the
// rendezvous can listen on it at once; only a connection opened in between could take it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"

namespace mlaserve::testing {

inline int free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  MLA_CHECK(fd >= 0, "free_tcp_port: socket() failed ({})", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);  // as the rendezvous listens
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const std::string why = ok ? "" : std::strerror(errno);
  close(fd);
  MLA_CHECK(ok, "free_tcp_port: no port from the kernel ({})", why);
  return ntohs(addr.sin_port);
}

}  // namespace mlaserve::testing
