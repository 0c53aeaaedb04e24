// HttpListener: the accepting socket. Each accepted connection becomes an HttpSession on a
// strand of its own.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>

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

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  ServingState& state_;
  uint16_t port_ = 0;
};

}  // namespace mlaserve::server
