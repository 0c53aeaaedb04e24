#include "server/http_listener.h"

#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>

#include "core/error.h"
#include "core/logging.h"
#include "server/http_session.h"

namespace mlaserve::server {

namespace net = boost::asio;
using tcp = net::ip::tcp;

HttpListener::HttpListener(net::io_context& ioc, const tcp::endpoint& endpoint, ServingState& state)
    : ioc_(ioc), acceptor_(net::make_strand(ioc)), retry_(acceptor_.get_executor()), state_(state) {
  boost::beast::error_code ec;
  auto check = [&](const char* what) {
    MLA_CHECK(!ec, "cannot {} {}:{}: {}", what, endpoint.address().to_string(), endpoint.port(), ec.message());
  };
  acceptor_.open(endpoint.protocol(), ec);
  check("open a socket for");
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  check("set SO_REUSEADDR on");
  acceptor_.bind(endpoint, ec);
  check("bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  check("listen on");
  port_ = acceptor_.local_endpoint().port();
}

void HttpListener::run() { accept(); }

void HttpListener::stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::beast::error_code ignored;
    self->acceptor_.close(ignored);
    self->retry_.cancel();
  });
}

void HttpListener::accept() {
  acceptor_.async_accept(net::make_strand(ioc_),
                         boost::beast::bind_front_handler(&HttpListener::on_accept, shared_from_this()));
}

void HttpListener::on_accept(boost::beast::error_code ec, tcp::socket socket) {
  if (!acceptor_.is_open()) return;
  if (ec) {
    note_failure(ec);
    retry_.expires_after(std::chrono::milliseconds(100));
    retry_.async_wait([self = shared_from_this()](boost::beast::error_code wait_ec) {
      if (!wait_ec && self->acceptor_.is_open()) self->accept();
    });
    return;
  }
  if (failures_ > 0) {
    MLA_LOG_INFO("accepting connections again after {} failed accepts", failures_);
    failures_ = 0;
  }
  boost::beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  std::make_shared<HttpSession>(std::move(socket), state_)->run();
  accept();
}

void HttpListener::note_failure(const boost::beast::error_code& ec) {
  const auto now = std::chrono::steady_clock::now();
  ++failures_;
  if (failures_ > 1 && now - last_warning_ < std::chrono::seconds(10)) return;
  MLA_LOG_WARN("accept failed: {} ({} failed accepts in a row; retrying every 100 ms)", ec.message(), failures_);
  last_warning_ = now;
}

}  // namespace mlaserve::server
