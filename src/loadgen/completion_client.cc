#include "loadgen/completion_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <array>
#include <limits>

#include "core/error.h"
#include "loadgen/sse_parser.h"

namespace mlaserve::loadgen {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kErrorBodyKept = 300;  // characters of a failed response's body in the record

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string host_header(const ServerAddress& s) { return s.host + ":" + std::to_string(s.port); }

// What the stream has said so far.
struct StreamState {
  bool done = false;       // [DONE] seen
  bool saw_output = false;
  double last_output_s = 0;
  std::string error;       // an error chunk's message
};

// One "data:" payload: updates the record and the state.
void take_chunk(const std::string& data, RequestRecord& r, StreamState& st, Clock::time_point start) {
  if (data == "[DONE]") {
    st.done = true;
    return;
  }
  const double now = since(start);
  const nlohmann::json chunk = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (chunk.is_discarded() || !chunk.is_object()) {
    st.error = "chunk is not a JSON object: " + data.substr(0, kErrorBodyKept);
    return;
  }
  if (chunk.contains("error")) {
    st.error = "error chunk: " + chunk["error"].dump().substr(0, kErrorBodyKept);
    return;
  }
  const auto choices = chunk.find("choices");
  if (choices != chunk.end() && choices->is_array() && !choices->empty()) {
    const nlohmann::json& choice = choices->front();
    const auto finish = choice.find("finish_reason");
    if (finish != choice.end() && finish->is_string()) r.finish_reason = finish->get<std::string>();
    const auto text = choice.find("text");
    if (text != choice.end() && text->is_string() && (!text->get_ref<const std::string&>().empty() || r.finish_reason.empty())) {
      if (!st.saw_output) {
        r.ttft_s = now - r.send_s;
      } else {
        r.itl_s.push_back(now - st.last_output_s);
      }
      st.saw_output = true;
      st.last_output_s = now;
      ++r.output_tokens;  // replaced by usage when the server sends it
    }
  }
  const auto usage = chunk.find("usage");
  if (usage != chunk.end() && usage->is_object()) {
    auto count = [&](const char* name, int64_t& field) {  // an integer, or the chunk is refused
      const auto it = usage->find(name);
      if (it == usage->end()) return;
      if (!it->is_number_integer()) st.error = fmt::format("usage.{} is not an integer: {}", name, it->dump());
      else field = it->get<int64_t>();
    };
    count("prompt_tokens", r.prompt_tokens);
    count("completion_tokens", r.output_tokens);
  }
}

}  // namespace

nlohmann::json completion_body(const LoadRequest& request, const std::string& model) {
  nlohmann::json body = {{"model", model},
                         {"max_tokens", request.max_tokens},
                         {"temperature", 0.0},
                         {"stream", true},
                         {"ignore_eos", true},
                         {"stream_options", {{"include_usage", true}}}};
  if (request.prompt) {
    body["prompt"] = *request.prompt;
  } else {
    body["prompt"] = request.prompt_ids;
  }
  return body;
}

asio::awaitable<RequestRecord> stream_completion(tcp::endpoint endpoint, const ServerAddress& server,
                                                 LoadRequest request, std::string model, StreamOptions options) {
  RequestRecord r;
  r.send_s = since(options.run_start);
  r.prompt_tokens = static_cast<int64_t>(request.prompt_ids.size());
  const auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.idle_timeout_s));
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  beast::error_code ec;
  auto fail = [&r](const std::string& what) {
    r.ok = false;
    r.error = what;
    return r;
  };

  stream.expires_after(timeout);
  co_await stream.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail("connect: " + ec.message());

  http::request<http::string_body> req{http::verb::post, options.target, 11};
  req.set(http::field::host, host_header(server));
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "text/event-stream");
  req.body() = completion_body(request, model).dump();
  req.prepare_payload();
  stream.expires_after(timeout);
  co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail("write: " + ec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  stream.expires_after(timeout);
  co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail("read header: " + ec.message());
  const unsigned status = parser.get().result_int();

  SseParser sse;
  StreamState st;
  std::string error_body;
  std::array<char, 16384> piece;
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    stream.expires_after(timeout);
    // read_some, not read: a read returns only once the piece is full or the body ends, which
    // would hold every token back until then.
    co_await http::async_read_some(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    // What arrived before an error still counts (an error chunk, then the server closes).
    const std::string_view got(piece.data(), piece.size() - parser.get().body().size);
    if (status != 200) {
      if (error_body.size() < kErrorBodyKept) error_body.append(got.substr(0, kErrorBodyKept - error_body.size()));
    } else {
      for (const SseEvent& event : sse.feed(got)) take_chunk(event.data, r, st, options.run_start);
      if (!st.error.empty()) co_return fail(st.error);
    }
    if (ec) co_return fail("read body: " + ec.message());
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  if (status != 200) co_return fail("HTTP " + std::to_string(status) + ": " + error_body);
  if (!st.done) co_return fail("stream ended without [DONE]");
  if (r.finish_reason.empty()) co_return fail("stream ended without a finish_reason");
  // The server ended it early (drained, or failed): its tokens are not the requested run's.
  if (r.finish_reason == "abort" || r.finish_reason == "error") co_return fail("finish_reason " + r.finish_reason);
  if (!st.saw_output) co_return fail("stream carried no output");
  r.e2e_s = since(options.run_start) - r.send_s;
  r.ok = true;
  co_return r;
}

tcp::endpoint resolve(const ServerAddress& server) {
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  const auto results = resolver.resolve(server.host, std::to_string(server.port), ec);
  MLA_CHECK(!ec && !results.empty(), "cannot resolve {}: {}", server.host, ec.message());
  return results.begin()->endpoint();
}

std::string http_get(const ServerAddress& server, const std::string& target, double timeout_s) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s)));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host_header(server));
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  beast::error_code ec;
  // Asynchronous steps run to completion here, so that the stream's deadline applies.
  stream.async_connect(resolve(server), [&](beast::error_code e) {
    if ((ec = e)) return;
    http::async_write(stream, req, [&](beast::error_code e, size_t) {
      if ((ec = e)) return;
      http::async_read(stream, buffer, res, [&](beast::error_code e, size_t) { ec = e; });
    });
  });
  io.run();
  MLA_CHECK(!ec, "GET {} from {}: {}", target, host_header(server), ec.message());
  MLA_CHECK(res.result_int() == 200, "GET {}: HTTP {}: {}", target, res.result_int(), res.body());
  return res.body();
}

}  // namespace mlaserve::loadgen
