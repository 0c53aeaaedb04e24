// The streaming client and the load runner against a fake server on loopback that answers
// with scripted bytes (written in pieces, with pauses), so the HTTP chunked framing, the SSE
// parsing, the timing and every failure path are exercised without the engine.
#include <gtest/gtest.h>

#include <utility>  // before Boost 1.74's awaitable.hpp

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <cstdio>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <thread>

#include "loadgen/arrival_schedule.h"
#include "loadgen/completion_client.h"
#include "loadgen/load_runner.h"

namespace mlaserve::loadgen {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// What the fake server writes: pieces with a pause before each.
struct Piece {
  std::string bytes;
  int pause_ms = 0;
};

// Accepts connections on a free loopback port until destroyed; each one is served on a
// thread of its own: the request is read (head and Content-Length body), then `script`
// decides the pieces to write, then the connection is closed.
class FakeServer {
 public:
  using Script = std::function<std::vector<Piece>(const std::string& request)>;

  explicit FakeServer(Script script) : script_(std::move(script)), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    boost::system::error_code ec;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);  // wakes accept()
    thread_.join();
    for (std::thread& t : workers_) t.join();
  }

  uint16_t port() const { return port_; }
  int max_concurrent() const { return max_concurrent_.load(); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  void accept_loop() {
    while (true) {
      tcp::socket s(io_);
      boost::system::error_code ec;
      acceptor_.accept(s, ec);
      if (stop_ || ec) return;
      workers_.emplace_back([this, sock = std::move(s)]() mutable { serve(std::move(sock)); });
    }
  }

  void serve(tcp::socket s) {
    const int now = ++concurrent_;
    for (int m = max_concurrent_.load(); now > m && !max_concurrent_.compare_exchange_weak(m, now);) {
    }
    bool counted = true;
    auto uncount = [&] {
      if (counted) --concurrent_;
      counted = false;
    };
    boost::system::error_code ec;
    std::string in;
    const size_t head_end = asio::read_until(s, asio::dynamic_buffer(in), "\r\n\r\n", ec);
    if (!ec) {
      size_t length = 0;
      const size_t at = in.find("Content-Length: ");
      if (at != std::string::npos) length = std::stoul(in.substr(at + 16));
      while (in.size() < head_end + length && !ec) {
        char buf[4096];
        const size_t n = s.read_some(asio::buffer(buf), ec);
        in.append(buf, n);
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(in);
      }
      const std::vector<Piece> pieces = script_(in);
      for (size_t i = 0; i < pieces.size() && !ec; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(pieces[i].pause_ms));
        if (i + 1 == pieces.size()) uncount();  // before the client can see the end
        asio::write(s, asio::buffer(pieces[i].bytes), ec);
      }
    }
    uncount();
    s.shutdown(tcp::socket::shutdown_both, ec);
    s.close(ec);
  }

  Script script_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<int> concurrent_{0}, max_concurrent_{0};
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

std::string chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return size + data + "\r\n";
}

const std::string kStreamHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

std::string text_chunk(const std::string& text, const char* finish) {
  nlohmann::json c = {{"object", "text_completion"},
                      {"choices", {{{"index", 0}, {"text", text}, {"finish_reason", finish ? nlohmann::json(finish) : nlohmann::json()}}}}};
  return "data: " + c.dump() + "\n\n";
}

// A normal stream: 3 tokens 30 ms apart, the usage chunk, [DONE]; SSE events split across
// HTTP chunks and HTTP chunks split across writes.
std::vector<Piece> good_stream(int delay_ms) {
  const std::string events = text_chunk("a", nullptr) + text_chunk("b", nullptr);
  return {{kStreamHead, delay_ms},
          {chunk(events.substr(0, 10)), 0},
          {chunk(events.substr(10, 30)), 0},
          {chunk(events.substr(40)).substr(0, 7), 0},
          {chunk(events.substr(40)).substr(7), delay_ms},
          {chunk(text_chunk("c", "length")), delay_ms},
          {chunk("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":3,\"total_tokens\":7}}\n\n"), 0},
          {chunk("data: [DONE]\n\n") + "0\r\n\r\n", 0}};
}

RequestRecord run_one(uint16_t port, const LoadRequest& request) {
  asio::io_context io;
  ServerAddress server{"127.0.0.1", port};
  StreamOptions options;
  options.idle_timeout_s = 5;
  options.run_start = Clock::now();
  std::future<RequestRecord> result = asio::co_spawn(
      io, stream_completion(resolve(server), server, request, "tiny", options), asio::use_future);
  io.run();
  return result.get();
}

LoadRequest ids_request() {
  LoadRequest r;
  r.prompt_ids = {1, 2, 3, 4};
  r.max_tokens = 3;
  return r;
}

TEST(CompletionClient, StreamInPieces) {
  FakeServer server([](const std::string&) { return good_stream(30); });
  const RequestRecord r = run_one(server.port(), ids_request());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.output_tokens, 3);
  EXPECT_EQ(r.prompt_tokens, 4);
  ASSERT_EQ(r.itl_s.size(), 2u);  // a -> b (same write burst), b -> c (30 ms)
  EXPECT_GE(r.ttft_s, 0.025);
  EXPECT_GE(r.itl_s[1], 0.025);
  EXPECT_LT(r.itl_s[0], r.itl_s[1]);
  EXPECT_GE(r.e2e_s, r.ttft_s + r.itl_s[0] + r.itl_s[1] - 1e-9);

  const std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].rfind("POST /v1/completions HTTP/1.1\r\n", 0), 0u);
  const nlohmann::json body = nlohmann::json::parse(requests[0].substr(requests[0].find("\r\n\r\n") + 4));
  EXPECT_EQ(body, completion_body(ids_request(), "tiny"));
}

TEST(CompletionClient, CountsChunksWithoutUsage) {
  FakeServer server([](const std::string&) {
    return std::vector<Piece>{{kStreamHead + chunk(text_chunk("a", nullptr) + text_chunk("", nullptr) +
                                                   text_chunk("b", nullptr) + text_chunk("", "length") +
                                                   "data: [DONE]\n\n") + "0\r\n\r\n", 0}};
  });
  const RequestRecord r = run_one(server.port(), ids_request());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.output_tokens, 3);  // an empty text is a token too (a partial character); the last chunk only ends
  EXPECT_EQ(r.prompt_tokens, 4);  // the request's ids
}

TEST(CompletionClient, FailuresSayWhy) {
  const std::vector<std::pair<std::vector<Piece>, std::string>> cases = {
      {{{"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 43\r\n\r\n"
         "{\"error\":{\"message\":\"'max_tokens' is bad\"}}",
         0}},
       "HTTP 400: {\"error\":{\"message\":\"'max_tokens' is bad\"}}"},
      {{{kStreamHead + chunk(text_chunk("a", "length")) + "0\r\n\r\n", 0}}, "without [DONE]"},
      {{{kStreamHead + chunk(text_chunk("a", nullptr) + "data: [DONE]\n\n") + "0\r\n\r\n", 0}},
       "without a finish_reason"},
      {{{kStreamHead + chunk(text_chunk("a", nullptr)), 0}}, "read body"},  // the server goes away mid-stream
      {{{kStreamHead + chunk("data: {\"error\": {\"message\": \"boom\"}}\n\n"), 0}}, "error chunk"},
      {{{kStreamHead + chunk("data: not json\n\n"), 0}}, "not a JSON object"},
      {{}, "read header"},  // closed without an answer
      // Ended by the server (a drain past its timeout): not a completed request.
      {{{kStreamHead + chunk(text_chunk("a", "abort") + "data: [DONE]\n\n") + "0\r\n\r\n", 0}}, "finish_reason abort"},
      {{{kStreamHead + chunk(text_chunk("a", "length") +
                             "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": null}}\n\n" + "data: [DONE]\n\n") +
             "0\r\n\r\n",
         0}},
       "usage.prompt_tokens is not an integer"},
  };
  for (const auto& [pieces, expect] : cases) {
    FakeServer server([&pieces = pieces](const std::string&) { return pieces; });
    const RequestRecord r = run_one(server.port(), ids_request());
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find(expect), std::string::npos) << r.error << " (expected " << expect << ")";
  }
}

TEST(CompletionClient, ConnectionRefused) {
  uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  const RequestRecord r = run_one(port, ids_request());
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("connect"), std::string::npos) << r.error;
}

// The runner keeps at most --max-concurrency requests in flight, and without a limit sends
// everything at once when the rate is infinite.
TEST(LoadRunner, ConcurrencyLimitAndRate) {
  FakeServer server([](const std::string&) { return good_stream(40); });
  RandomWorkloadOptions w;
  w.num_requests = 12;
  w.input_len = 4;
  w.output_len = 3;
  const std::vector<LoadRequest> requests = random_workload(w);
  LoadOptions o;
  o.server = {"127.0.0.1", server.port()};
  o.model = "tiny";
  o.request_rate = std::numeric_limits<double>::infinity();
  o.max_concurrency = 3;
  o.progress = false;
  LoadResult result = run_load(requests, o);
  ASSERT_EQ(result.records.size(), 12u);
  for (const RequestRecord& r : result.records) EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(server.max_concurrent(), 3);
  // 4 waves of 3, each ~80 ms (head 40 ms, 2 more gaps of 40).
  EXPECT_GE(result.duration_s, 4 * 0.08);

  FakeServer unlimited([](const std::string&) { return good_stream(100); });
  o.server.port = unlimited.port();
  o.max_concurrency = 0;
  result = run_load(requests, o);
  for (const RequestRecord& r : result.records) EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(unlimited.max_concurrent(), 12);

  // 8 requests at 20/s: the last leaves about 7 Poisson gaps after the first.
  FakeServer paced([](const std::string&) { return good_stream(0); });
  o.server.port = paced.port();
  o.request_rate = 20;
  o.seed = 9;
  const std::vector<LoadRequest> eight(requests.begin(), requests.begin() + 8);
  result = run_load(eight, o);
  const std::vector<double> arrivals = poisson_arrivals(8, 20, 9);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_TRUE(result.records[i].ok) << result.records[i].error;
    EXPECT_GE(result.records[i].send_s, arrivals[i] - 1e-3) << i;
    EXPECT_LE(result.records[i].send_s, arrivals[i] + 0.1) << i;  // a loaded machine may run late
  }
}

}  // namespace
}  // namespace mlaserve::loadgen
