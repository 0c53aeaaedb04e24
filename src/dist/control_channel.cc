#include "dist/control_channel.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace mlaserve::dist {
namespace {

using Clock = std::chrono::steady_clock;

void write_all(int fd, const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    MLA_CHECK(n > 0, "control channel: send failed ({})", std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void read_all(int fd, void* data, size_t bytes) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::recv(fd, p, bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    MLA_CHECK(n != 0, "control channel: the peer closed the connection");
    MLA_CHECK(n > 0, "control channel: receive failed ({})", std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void write_message(int fd, std::string_view m) {
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{m.size()} >> (8 * i));
  write_all(fd, len, 8);
  write_all(fd, m.data(), m.size());
}

std::string read_message(int fd) {
  uint8_t len[8];
  read_all(fd, len, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{len[i]} << (8 * i);
  MLA_CHECK(n <= (uint64_t{1} << 32), "control channel: a message of {} bytes", n);
  std::string m(n, '\0');
  read_all(fd, m.data(), n);
  return m;
}

void no_delay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // small step messages go out at once
}

sockaddr_in resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  MLA_CHECK(rc == 0 && res != nullptr, "rendezvous: cannot resolve master address {} ({})", host, gai_strerror(rc));
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

std::vector<int> accept_ranks(const RendezvousOptions& o) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  MLA_CHECK(listener >= 0, "rendezvous: socket() failed ({})", std::strerror(errno));
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(o.master_port));
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listener, o.world_size) != 0) {
    const std::string why = std::strerror(errno);
    close(listener);
    MLA_FAIL("rendezvous: cannot listen on port {} ({})", o.master_port, why);
  }
  timeval tv{static_cast<time_t>(o.timeout_s), 0};
  setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));  // accept() gives up after the timeout
  std::vector<int> sockets(static_cast<size_t>(o.world_size - 1), -1);
  for (int joined = 0; joined < o.world_size - 1; ++joined) {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) {
      close(listener);
      MLA_FAIL("rendezvous: {} of {} ranks joined within {} s on port {}", joined + 1, o.world_size, o.timeout_s,
               o.master_port);
    }
    no_delay(fd);
    const std::string hello = read_message(fd);
    int32_t rank = -1;
    if (hello.size() == 4) std::memcpy(&rank, hello.data(), 4);
    MLA_CHECK(rank >= 1 && rank < o.world_size && sockets[static_cast<size_t>(rank - 1)] < 0,
              "rendezvous: a peer announced rank {} (world of {}, or already joined)", rank, o.world_size);
    sockets[static_cast<size_t>(rank - 1)] = fd;
  }
  close(listener);
  return sockets;
}

int connect_to_leader(const RendezvousOptions& o) {
  const sockaddr_in addr = resolve(o.master_addr, o.master_port);
  const auto deadline = Clock::now() + std::chrono::duration<double>(o.timeout_s);
  while (true) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    MLA_CHECK(fd >= 0, "rendezvous: socket() failed ({})", std::strerror(errno));
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      no_delay(fd);
      return fd;
    }
    const std::string why = std::strerror(errno);
    close(fd);
    MLA_CHECK(Clock::now() < deadline, "rendezvous: rank {} could not reach rank 0 at {}:{} within {} s ({})", o.rank,
              o.master_addr, o.master_port, o.timeout_s, why);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

ControlChannel ControlChannel::rendezvous(const RendezvousOptions& o, std::string& blob) {
  MLA_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, "rendezvous: rank {} of {}", o.rank,
            o.world_size);
  if (o.rank == 0) {
    std::vector<int> sockets = accept_ranks(o);
    ControlChannel channel(0, std::move(sockets));
    channel.broadcast(blob);
    return channel;
  }
  ControlChannel channel(o.rank, {connect_to_leader(o)});
  const int32_t rank = o.rank;
  channel.send_to_leader(std::string_view(reinterpret_cast<const char*>(&rank), 4));
  blob = channel.receive();
  return channel;
}

ControlChannel::ControlChannel(ControlChannel&& other) noexcept
    : rank_(other.rank_), sockets_(std::move(other.sockets_)) {
  other.sockets_.clear();
}

ControlChannel::~ControlChannel() {
  for (int fd : sockets_) ::close(fd);
}

void ControlChannel::broadcast(std::string_view message) {
  MLA_CHECK(rank_ == 0, "control channel: only rank 0 broadcasts");
  for (int fd : sockets_) write_message(fd, message);
}

std::vector<std::string> ControlChannel::gather() {
  MLA_CHECK(rank_ == 0, "control channel: only rank 0 gathers");
  std::vector<std::string> out;
  for (int fd : sockets_) out.push_back(read_message(fd));
  return out;
}

std::string ControlChannel::receive() {
  MLA_CHECK(rank_ != 0, "control channel: rank 0 receives through gather()");
  return read_message(sockets_.front());
}

int ControlChannel::hung_up_peer(int timeout_ms) const {
  std::vector<pollfd> fds;
  for (int fd : sockets_) fds.push_back(pollfd{fd, POLLRDHUP, 0});  // not POLLIN: leaves the data alone
  if (poll(fds.data(), fds.size(), timeout_ms) <= 0) return -1;
  for (size_t i = 0; i < fds.size(); ++i) {
    if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return rank_ == 0 ? static_cast<int>(i) + 1 : 0;
  }
  return -1;
}

void ControlChannel::close() {
  for (int fd : sockets_) shutdown(fd, SHUT_RDWR);
}

void ControlChannel::send_to_leader(std::string_view message) {
  MLA_CHECK(rank_ != 0, "control channel: rank 0 sends through broadcast()");
  write_message(sockets_.front(), message);
}

}  // namespace mlaserve::dist
