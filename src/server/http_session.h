// HttpSession: one client connection (HTTP/1.1 with keep-alive) on Boost.Beast. Everything it
// does runs on the connection's strand; nothing blocks, so a few threads serve any number of
// connections.
//
// Per request: read it (body limited to ServerOptions::max_body_bytes: 413; a malformed
// request: 400; both close the connection), route it (router.h), then either write the reply
// or run the generation task:
//   - streaming: a chunked text/event-stream reply; the task's SSE text is written as it comes
//     (text that arrives during a write is sent with the next one), then the last chunk;
//   - not streaming: the whole JSON reply once every choice has finished.
// While a task runs, a read stays posted on the socket: the client closing the connection (or
// any read or write error) aborts the task's engine requests at once. Bytes that arrive
// meanwhile (a pipelined request) are kept for the next read.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/router.h"
#include "server/serving_state.h"

namespace mlaserve::server {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket socket, ServingState& state);
  ~HttpSession();

  void run();

 private:
  using ErrorCode = boost::beast::error_code;

  // A request's head, then (after "100 Continue" where the client waits for it) its body.
  void read_request();
  void on_header(ErrorCode ec, size_t bytes);
  void read_body();
  void on_read(ErrorCode ec, size_t bytes);
  void handle(boost::beast::http::request<boost::beast::http::string_body> request);
  std::function<void()> make_wake();

  void send_reply(const HttpReply& reply);
  // An error reply, then the connection closes (after the client's remaining bytes are read
  // away for a moment, so that it sees the reply rather than a reset).
  void send_error_and_close(int status, const std::string& message);
  void after_response();

  void watch_peer();
  void on_watch(ErrorCode ec, size_t bytes);

  void on_task_output();
  void write_stream();
  void on_stream_write(ErrorCode ec, size_t bytes);

  // The next write fails (and the connection closes) unless the client takes it within
  // ServerOptions::write_timeout_s.
  void arm_write_timeout();
  void end_task();
  void close();
  void linger();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  ServingState& state_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;

  // The current request.
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;  // the request is a HEAD: replies go without their body
  std::string route_;
  std::shared_ptr<GenerationTask> task_;
  std::shared_ptr<void> reply_;  // the response being written (kept alive for the write)

  // Streaming.
  boost::beast::http::response<boost::beast::http::empty_body> stream_head_;
  std::optional<boost::beast::http::response_serializer<boost::beast::http::empty_body>> stream_serializer_;
  bool head_sent_ = false, writing_ = false, last_sent_ = false;
  std::string pending_, out_;

  bool watching_ = false;  // the peer read is posted
  bool closed_ = false;
  std::array<char, 4096> discard_{};
};

}  // namespace mlaserve::server
