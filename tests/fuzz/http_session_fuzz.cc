// Fuzz target: raw bytes on a TCP connection to the server's HTTP layer, as a client sends
// them: HttpListener and HttpSession (Boost.Beast's request parser and its limits, keep-alive,
// pipelined requests, the peer watch, streamed and error replies), then the routes and the
// engine behind them as in request_fuzz (fuzz_server.h). The listener runs once per process on
// a loopback port, with the connection idle timeout at 0.2 s and the body limit at 64 KiB.
//
// Input: a mode byte, then the bytes to send. The target connects, sends them, and with an odd
// mode byte shuts its sending side (the server sees the client leave: what it is generating is
// aborted); then it reads until the server closes the connection. That must happen within
// kHangSeconds (else the session hung: abort), and what the server wrote must be a sequence of
// HTTP/1.1 responses, none a 5xx other than 503, JSON bodies valid JSON and event streams SSE;
// only the last may be cut short, and only when the client left or the server was refusing the
// request (a 4xx ends the connection).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "fuzz/fuzz_server.h"
#include "server/http_listener.h"

namespace mlaserve::server {
namespace {

namespace http = boost::beast::http;
namespace net = boost::asio;

constexpr int kHangSeconds = 5;  // under scripts/fuzz.sh's -timeout=10, so that this check speaks first

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "http_session fuzz: %s\n", what);
  std::abort();
}

// The server: its state, and an io_context with two threads serving the listener's sessions.
// At exit the threads stop first; the sessions left in the context then go before the engine.
struct LoopbackServer {
  LoopbackServer() : server(options()) {
    listener = std::make_shared<HttpListener>(ioc, net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), 0),
                                              server.state);
    listener->run();
    for (std::thread& t : threads) t = std::thread([this] { ioc.run(); });
  }
  ~LoopbackServer() {
    ioc.stop();
    for (std::thread& t : threads) t.join();
  }
  static ServerOptions options() {
    ServerOptions o = fuzz::base_server_options();
    o.keep_alive_timeout_s = 0.2;
    o.max_body_bytes = 64 << 10;
    return o;
  }
  fuzz::FuzzServer server;
  net::io_context ioc{2};
  std::shared_ptr<HttpListener> listener;
  std::thread threads[2];
};

// Sends `bytes` on a new connection to `port` (shutting the sending side when `leave`), and
// returns what the server wrote before it closed the connection.
std::string exchange(uint16_t port, std::string_view bytes, bool leave) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket() failed");
  timeval timeout{kHangSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) fail("connect() failed");
  while (!bytes.empty()) {  // the server may close early (a 4xx): then the rest is not sent
    const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent <= 0) break;
    bytes.remove_prefix(static_cast<size_t>(sent));
  }
  if (leave) ::shutdown(fd, SHUT_WR);
  std::string out;
  char buffer[16384];
  for (;;) {
    const ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) fail("the server kept the connection open past the hang limit");
      break;  // reset by the server (it closed with bytes of ours unread)
    }
    out.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  return out;
}

// Checks the responses in `out` (the note at the top).
void check_responses(std::string_view out, bool left) {
  while (!out.empty()) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(boost::none);
    boost::beast::error_code ec;
    size_t used = 0;
    while (!parser.is_done() && used < out.size()) {
      const size_t n = parser.put(net::buffer(out.data() + used, out.size() - used), ec);
      used += n;
      if (ec == http::error::need_more && n > 0) ec = {};
      if (ec || n == 0) break;
    }
    if (!parser.is_done() && (!ec || ec == http::error::need_more)) {  // the connection ended inside it
      const bool refused = parser.is_header_done() && parser.get().result_int() >= 400;
      if (!left && !refused) fail("a response was cut short");
      return;
    }
    if (ec) fail("the server wrote something that is not an HTTP response");
    const auto& response = parser.get();
    const int status = response.result_int();
    if (status >= 500 && status != 503) fail("a 5xx other than 503");
    const boost::beast::string_view field = response[http::field::content_type];
    const std::string_view type(field.data(), field.size());
    if (type == "application/json" && !fuzz::is_json(response.body())) fail("a JSON reply that is not JSON");
    if (type == "text/event-stream" && !fuzz::is_sse(response.body())) fail("an event stream that is not SSE");
    out.remove_prefix(used);
  }
}

}  // namespace
}  // namespace mlaserve::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlaserve::server;
  static LoopbackServer server;  // one for the whole run, as a server serves many connections
  if (size == 0) return 0;
  const bool leave = (data[0] & 1) != 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  check_responses(exchange(server.listener->port(), bytes, leave), leave);
  return 0;
}
