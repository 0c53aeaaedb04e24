// HttpListener: the accepting socket. Each accepted connection becomes an HttpSession on a
// strand of its own. A failed accept (out of file descriptors, most often) is retried after a
// pause, not at once: the pending connection keeps the socket readable, and retrying at once
// spun a core and filled the log. The warning comes once per failing run and then at most every
// 10 seconds, with the count.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

#include "server/serving_state.h"

namespace mlaserve::server {

class HttpListener : public std::enable_shared_from_this<HttpListener> {
 public:
  // Binds and listens; throws mlaserve::Error when the address cannot be used.
  HttpListener(boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint, ServingState& state);

  void run();   // starts accepting
  void stop();  // stops accepting (connections already open go on)
  uint16_t port() const { return port_; }

 private:
  void accept();
  void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);
  void note_failure(const boost::beast::error_code& ec);

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_;  // on the acceptor's strand
  ServingState& state_;
  uint16_t port_ = 0;
  int64_t failures_ = 0;  // accepts failed since the last success
  std::chrono::steady_clock::time_point last_warning_;
};

}  // namespace mlaserve::server
