#include "server/http_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include "core/logging.h"

namespace mlaserve::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
constexpr size_t kMaxPipelinedBytes = 1 << 20;  // read ahead while a task runs; more closes the connection
constexpr auto kLinger = std::chrono::seconds(2);
}  // namespace

HttpSession::HttpSession(tcp::socket socket, ServingState& state) : stream_(std::move(socket)), state_(state) {}

HttpSession::~HttpSession() { end_task(); }

void HttpSession::run() {
  net::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::read_request, shared_from_this()));
}

void HttpSession::read_request() {
  if (closed_) return;
  parser_.emplace();
  parser_->body_limit(state_.options().max_body_bytes);
  stream_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(state_.options().keep_alive_timeout_s)));
  http::async_read_header(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
}

void HttpSession::on_header(ErrorCode ec, size_t bytes) {
  if (ec) return on_read(ec, bytes);
  const auto& head = parser_->get();
  if (parser_->is_done() || !beast::iequals(head[http::field::expect], "100-continue")) return read_body();
  // The client sends its body only once told to go on (curl does so past 1 MB, else it waits a second).
  auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, head.version());
  reply_ = go_on;
  http::async_write(stream_, *go_on, [self = shared_from_this()](ErrorCode write_ec, size_t) {
    self->reply_.reset();
    if (write_ec) return self->close();
    self->read_body();
  });
}

void HttpSession::read_body() {
  http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
}

void HttpSession::on_read(ErrorCode ec, size_t) {
  if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == beast::error::timeout ||
      ec == net::error::operation_aborted) {
    return close();
  }
  route_ = "other";
  if (ec == http::error::body_limit) {
    return send_error_and_close(413, fmt::format("the request body exceeds the limit of {} bytes",
                                                 state_.options().max_body_bytes));
  }
  if (ec == http::error::header_limit) return send_error_and_close(431, "the request headers are too large");
  if (ec && ec.category() == http::make_error_code(http::error::bad_method).category()) {
    return send_error_and_close(400, "malformed HTTP request: " + ec.message());
  }
  if (ec) return close();
  stream_.expires_never();
  handle(parser_->release());
}

void HttpSession::handle(http::request<http::string_body> req) {
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  head_ = req.method() == http::verb::head;
  HttpRequest view{std::string(req.method_string()), std::string(req.target()), std::move(req.body()),
                   std::string(req[http::field::authorization])};
  Routed routed = route_request(state_, view);
  route_ = routed.route;
  if (routed.reply) return send_reply(*routed.reply);

  task_ = std::move(routed.task);
  try {
    task_->start(make_wake());
  } catch (const ApiError& e) {
    task_.reset();
    return send_reply(error_reply(e));
  } catch (const std::exception& e) {
    task_.reset();
    MLA_LOG_ERROR("starting a generation failed: {}", e.what());
    return send_reply(error_reply(ApiError(500, std::string("internal error: ") + e.what(), "internal_error")));
  }
  watch_peer();
  if (task_->streaming()) {
    stream_head_ = {http::status::ok, version_};
    stream_head_.set(http::field::server, "mlaserve");
    stream_head_.set(http::field::content_type, "text/event-stream");
    stream_head_.set(http::field::cache_control, "no-cache");
    if (version_ < 11) keep_alive_ = false;  // HTTP/1.0 knows no chunks: the body ends with the connection
    stream_head_.keep_alive(keep_alive_);
    stream_head_.chunked(version_ >= 11);
    stream_serializer_.emplace(stream_head_);
    head_sent_ = last_sent_ = false;
    writing_ = true;
    state_.metrics().count_http(route_, 200);
    arm_write_timeout();
    http::async_write_header(stream_, *stream_serializer_,
                             beast::bind_front_handler(&HttpSession::on_stream_write, shared_from_this()));
  }
}

std::function<void()> HttpSession::make_wake() {
  std::weak_ptr<HttpSession> weak = shared_from_this();
  auto executor = stream_.get_executor();
  return [weak, executor] {
    net::post(executor, [weak] {
      if (auto self = weak.lock()) self->on_task_output();
    });
  };
}

void HttpSession::on_task_output() {
  if (!task_ || closed_) return;
  std::string out = task_->poll();
  if (task_->streaming()) {
    pending_ += out;
    return write_stream();
  }
  if (task_->finished()) {
    HttpReply reply{task_->reply_status(), "application/json", task_->reply_body(), {}};
    task_.reset();
    send_reply(reply);
  }
}

void HttpSession::write_stream() {
  if (writing_ || closed_) return;
  if (!pending_.empty()) {
    writing_ = true;
    out_ = std::move(pending_);
    pending_.clear();
    arm_write_timeout();
    auto done = beast::bind_front_handler(&HttpSession::on_stream_write, shared_from_this());
    if (stream_head_.chunked()) return net::async_write(stream_, http::make_chunk(net::buffer(out_)), std::move(done));
    net::async_write(stream_, net::buffer(out_), std::move(done));
  } else if (task_ && task_->finished() && !last_sent_) {
    last_sent_ = true;
    if (!stream_head_.chunked()) return on_stream_write({}, 0);  // nothing ends the body but the close
    writing_ = true;
    arm_write_timeout();
    net::async_write(stream_, http::make_chunk_last(),
                     beast::bind_front_handler(&HttpSession::on_stream_write, shared_from_this()));
  }
}

void HttpSession::on_stream_write(ErrorCode ec, size_t) {
  writing_ = false;
  head_sent_ = true;
  if (ec) return close();  // the client is gone: close() aborts the task
  if (last_sent_) {
    task_.reset();
    return after_response();
  }
  write_stream();
}

void HttpSession::send_reply(const HttpReply& r) {
  if (closed_) return;
  state_.metrics().count_http(route_, r.status);
  auto send = [&](auto res) {
    res->set(http::field::server, "mlaserve");
    res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->keep_alive(keep_alive_ && !state_.draining());
    reply_ = res;
    arm_write_timeout();
    http::async_write(stream_, *res, [self = shared_from_this()](ErrorCode ec, size_t) {
      self->reply_.reset();
      if (ec) return self->close();
      self->after_response();
    });
  };
  const auto status = static_cast<http::status>(r.status);
  if (head_) {  // the head a GET would get, with its Content-Length, and no body (RFC 9110 §9.3.2)
    auto res = std::make_shared<http::response<http::empty_body>>(status, version_);
    res->content_length(r.body.size());
    return send(res);
  }
  auto res = std::make_shared<http::response<http::string_body>>(status, version_);
  res->body() = r.body;
  res->prepare_payload();
  send(res);
}

void HttpSession::send_error_and_close(int status, const std::string& message) {
  keep_alive_ = false;
  version_ = 11;
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), version_);
  res->set(http::field::server, "mlaserve");
  res->set(http::field::content_type, "application/json");
  res->keep_alive(false);
  res->body() = dump_json(invalid_request(message).body());
  res->prepare_payload();
  state_.metrics().count_http(route_, status);
  reply_ = res;
  stream_.expires_after(kLinger);
  http::async_write(stream_, *res, [self = shared_from_this()](ErrorCode ec, size_t) {
    self->reply_.reset();
    if (ec) return self->close();
    ErrorCode ignored;
    self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    self->linger();
  });
}

void HttpSession::arm_write_timeout() {
  // Only the write's timer: the peer watch's read, pending meanwhile, keeps its own (none).
  stream_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(state_.options().write_timeout_s)));
}

void HttpSession::linger() {
  stream_.async_read_some(net::buffer(discard_), [self = shared_from_this()](ErrorCode ec, size_t) {
    if (ec) return self->close();
    self->linger();
  });
}

void HttpSession::after_response() {
  if (!keep_alive_ || state_.draining()) return close();
  if (watching_) {
    ErrorCode ignored;
    stream_.socket().cancel(ignored);  // on_watch continues with the next request
    return;
  }
  read_request();
}

void HttpSession::watch_peer() {
  if (watching_ || closed_) return;
  watching_ = true;
  // The watch waits as long as the response takes: no read timeout (a write armed while no read
  // was pending left its expiry on the read timer too).
  stream_.expires_never();
  stream_.async_read_some(buffer_.prepare(4096), beast::bind_front_handler(&HttpSession::on_watch, shared_from_this()));
}

void HttpSession::on_watch(ErrorCode ec, size_t bytes) {
  watching_ = false;
  if (closed_) return;
  if (!ec) buffer_.commit(bytes);
  const bool response_pending = task_ != nullptr || reply_ != nullptr;
  if (ec && ec != net::error::operation_aborted) {
    if (task_) MLA_LOG_DEBUG("client went away mid-request: aborting");
    return close();
  }
  if (response_pending) {
    if (buffer_.size() > kMaxPipelinedBytes) return close();
    return watch_peer();
  }
  read_request();  // the response went out while the watch was posted
}

void HttpSession::end_task() {
  if (task_) {
    task_->abort();
    task_.reset();
  }
}

void HttpSession::close() {
  if (closed_) return;
  closed_ = true;
  end_task();
  ErrorCode ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
}

}  // namespace mlaserve::server
