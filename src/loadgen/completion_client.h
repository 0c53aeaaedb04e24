// The HTTP side of `mlaserve bench serve`: one streamed POST /v1/completions per request, as
// a coroutine on the caller's io_context (Boost.Beast over Asio: many connections share one
// thread, none has a thread of its own), and a blocking GET for the few calls made before and
// after a run (/v1/models, /metrics).
//
// A request is sent with stream = true, ignore_eos = true (so max_tokens is the exact output
// length) and stream_options.include_usage, on a connection of its own that is closed once the
// response ends. Each "data:" event of the SSE body is one OpenAI completion chunk; a chunk
// with a choice is an output event (TTFT at the first, ITL between the next), the usage chunk
// gives the token counts, "data: [DONE]" ends the stream. The request fails (a record with
// ok = false and the reason) on a transport error, a timeout, a non-200 status, an error
// chunk, or a stream that ends without [DONE] or without a finish_reason.
#pragma once

#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "loadgen/metrics.h"
#include "loadgen/workload.h"

namespace mlaserve::loadgen {

using Clock = std::chrono::steady_clock;

struct ServerAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
};

// The JSON body of one streamed completion request.
nlohmann::json completion_body(const LoadRequest& request, const std::string& model);

struct StreamOptions {
  std::string target = "/v1/completions";
  double idle_timeout_s = 600;  // the longest wait for any one connect, write or read
  Clock::time_point run_start;  // send and latency times are measured from here
};

// Sends one request to `endpoint` and follows its stream to the end. Never throws for a
// failed request: the record says what went wrong.
boost::asio::awaitable<RequestRecord> stream_completion(boost::asio::ip::tcp::endpoint endpoint,
                                                        const ServerAddress& server, LoadRequest request,
                                                        std::string model, StreamOptions options);

// Blocking GET; returns the body of a 200 response, throws mlaserve::Error otherwise.
std::string http_get(const ServerAddress& server, const std::string& target, double timeout_s = 30);

// The first resolved endpoint of the server (throws if the name does not resolve).
boost::asio::ip::tcp::endpoint resolve(const ServerAddress& server);

}  // namespace mlaserve::loadgen
