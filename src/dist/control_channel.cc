#include "dist/control_channel.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/logging.h"

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

std::string read_message(int fd, uint64_t max_bytes = uint64_t{1} << 32) {
  uint8_t len[8];
  read_all(fd, len, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{len[i]} << (8 * i);
  MLA_CHECK(n <= max_bytes, "control channel: a message of {} bytes", n);
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

// Receives on fd give up after `seconds` (0: never).
void receive_timeout(int fd, double seconds) {
  timeval tv{static_cast<time_t>(seconds), static_cast<suseconds_t>((seconds - std::floor(seconds)) * 1e6)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

constexpr std::string_view kHelloMagic = "mlaserve-rendezvous-1:";
constexpr uint64_t kMaxHelloBytes = 1 << 16;
constexpr double kHelloWaitS = 10.0;

// A rank's hello: the magic, its rank (4 bytes, little-endian), its fingerprint.
std::string hello_message(int32_t rank, std::string_view fingerprint) {
  std::string m(kHelloMagic);
  for (int i = 0; i < 4; ++i) m += static_cast<char>(static_cast<uint32_t>(rank) >> (8 * i));
  m += fingerprint;
  return m;
}

struct Hello {
  int32_t rank;
  std::string fingerprint;
};

// The hello on a fresh connection; nothing when the peer sends anything else, closes, or stays
// silent for kHelloWaitS (it is not a rank).
std::optional<Hello> read_hello(int fd) {
  receive_timeout(fd, kHelloWaitS);
  try {
    const std::string m = read_message(fd, kMaxHelloBytes);
    if (m.size() < kHelloMagic.size() + 4 || !m.starts_with(kHelloMagic)) return std::nullopt;
    uint32_t rank = 0;
    for (int i = 0; i < 4; ++i) rank |= uint32_t{static_cast<uint8_t>(m[kHelloMagic.size() + i])} << (8 * i);
    return Hello{static_cast<int32_t>(rank), m.substr(kHelloMagic.size() + 4)};
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::vector<int> accept_ranks(const RendezvousOptions& o) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  MLA_CHECK(listener >= 0, "rendezvous: socket() failed ({})", std::strerror(errno));
  std::vector<int> sockets(static_cast<size_t>(o.world_size - 1), -1);
  try {
    const int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(static_cast<uint16_t>(o.master_port));
    MLA_CHECK(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(listener, 64) == 0,
              "rendezvous: cannot listen on port {} ({})", o.master_port, std::strerror(errno));
    const auto deadline = Clock::now() + std::chrono::duration<double>(o.timeout_s);
    for (int joined = 0; joined < o.world_size - 1;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      MLA_CHECK(left > 0, "rendezvous: {} of {} ranks joined within {} s on port {}", joined + 1, o.world_size,
                o.timeout_s, o.master_port);
      pollfd waiting{listener, POLLIN, 0};
      if (poll(&waiting, 1, static_cast<int>(std::min<int64_t>(left, 1000))) <= 0) continue;
      const int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) continue;
      const std::optional<Hello> hello = read_hello(fd);
      if (!hello) {
        MLA_LOG_WARN("rendezvous: dropped a connection to port {} that did not say hello as a rank", o.master_port);
        close(fd);
        continue;
      }
      const int32_t rank = hello->rank;
      const bool known = rank >= 1 && rank < o.world_size && sockets[static_cast<size_t>(rank - 1)] < 0;
      if (!known || hello->fingerprint != o.fingerprint) close(fd);
      MLA_CHECK(known, "rendezvous: a peer announced rank {} (world of {}, or already joined)", rank, o.world_size);
      MLA_CHECK(hello->fingerprint == o.fingerprint,
                "rendezvous: rank {} was started with other settings than rank 0; every rank needs the same.\n"
                "  rank 0: {}\n  rank {}: {}",
                rank, o.fingerprint, rank, hello->fingerprint);
      receive_timeout(fd, 0);  // from now on the watchdog bounds the waits
      no_delay(fd);
      sockets[static_cast<size_t>(rank - 1)] = fd;
      ++joined;
    }
  } catch (...) {
    for (int fd : sockets) {
      if (fd >= 0) close(fd);
    }
    close(listener);
    throw;
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
  const auto start = Clock::now();
  ControlChannel channel(o.rank, {connect_to_leader(o)});
  channel.send_to_leader(hello_message(o.rank, o.fingerprint));
  // Rank 0 answers once every rank has joined: within its timeout, unless it is not rank 0.
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  receive_timeout(channel.sockets_.front(), std::max(o.timeout_s - waited, 0.0) + 60.0);
  try {
    blob = channel.receive();
  } catch (const Error& e) {
    MLA_FAIL("rendezvous: rank {} got no answer from rank 0 at {}:{} ({}); rank 0's log says why (another rank's "
             "settings, a rank that never came), or that port is not rank 0's",
             o.rank, o.master_addr, o.master_port, e.what());
  }
  receive_timeout(channel.sockets_.front(), 0);
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
