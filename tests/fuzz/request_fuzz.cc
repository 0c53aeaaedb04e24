// Fuzz target: an HTTP request through the routes (router.h) to the point where its generation
// would start: body parsing and validation, chat template rendering, tokenization, the
// engine's admission. The engine runs the fake runner of tests/engine on the tiny tokenizer.
// Input: a method byte (GET, POST or other), the target up to the first '\n', then the body.
// Every request must get a reply or a task, never an escaped exception, and never a 5xx
// other than 503 (a 500 is an exception the routes did not expect: a bug). A task is started
// and run as a connection runs it, for at most kPolls wake-ups: what it writes must be SSE
// events of JSON objects (streamed) or a JSON answer that is not a 5xx; then it is dropped
// (its destructor aborts what is unfinished), as when a client goes away.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "fuzz/fuzz_server.h"
#include "server/router.h"

namespace mlaserve::server {
namespace {

using fuzz::FuzzServer;
using fuzz::is_json;
using fuzz::is_sse;

HttpRequest to_request(std::string_view input) {
  static constexpr const char* kMethods[] = {"GET", "POST", "PUT"};
  HttpRequest request;
  request.method = input.empty() ? "POST" : kMethods[static_cast<uint8_t>(input[0]) % 3];
  if (!input.empty()) input.remove_prefix(1);
  const size_t newline = input.find('\n');
  request.target = std::string(input.substr(0, newline));
  request.body = newline == std::string_view::npos ? "" : std::string(input.substr(newline + 1));
  request.authorization = std::string("Bearer ") + fuzz::kApiKey;
  return request;
}

// Runs `task` as HttpSession does (start, then poll on each wake-up) for at most kPolls
// wake-ups, and checks what it wrote.
void run_briefly(GenerationTask& task) {
  constexpr int kPolls = 32;
  struct Wake {  // shared with the engine thread, which may call wake after the task is gone
    std::mutex m;
    std::condition_variable cv;
    bool woken = false;
  };
  auto wake = std::make_shared<Wake>();
  try {
    task.start([wake] {
      std::lock_guard lock(wake->m);
      wake->woken = true;
      wake->cv.notify_all();
    });
  } catch (const ApiError& e) {
    if (e.status() >= 500 && e.status() != 503) std::abort();
    return;
  }
  std::string out;
  for (int i = 0; i < kPolls && !task.finished(); ++i) {
    std::unique_lock lock(wake->m);
    wake->cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return wake->woken; });
    wake->woken = false;
    lock.unlock();
    out += task.poll();
  }
  if (task.streaming()) {
    if (!is_sse(out)) std::abort();
  } else if (task.finished()) {
    if (task.reply_status() >= 500 || !is_json(task.reply_body())) std::abort();
  }
}

}  // namespace
}  // namespace mlaserve::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlaserve::server;
  static FuzzServer* server = new FuzzServer(fuzz::base_server_options());  // lives for the whole run, as the server's state does
  const HttpRequest request = to_request(std::string_view(reinterpret_cast<const char*>(data), size));
  Routed routed = route_request(server->state, request);
  if (routed.reply && routed.reply->status >= 500 && routed.reply->status != 503) std::abort();
  if (routed.reply.has_value() == (routed.task != nullptr)) std::abort();
  if (routed.task) run_briefly(*routed.task);
  return 0;
}
