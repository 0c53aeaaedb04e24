#include "loadgen/load_runner.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>

#include "loadgen/arrival_schedule.h"

namespace mlaserve::loadgen {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Shared by the dispatcher and the request coroutines (all on one thread: no locks).
struct RunState {
  int64_t in_flight = 0;
  int64_t done = 0;
  int64_t failed = 0;
  size_t total = 0;
  Clock::time_point last_done;
  asio::steady_timer* progress = nullptr;  // cancelled when the last request finishes
};

asio::awaitable<void> run_one(tcp::endpoint endpoint, const LoadOptions& o, const LoadRequest& request,
                              StreamOptions stream_options, RequestRecord& record, RunState& state,
                              asio::steady_timer& slot_freed) {
  try {
    record = co_await stream_completion(endpoint, o.server, request, o.model, stream_options);
  } catch (const std::exception& e) {  // a failed request, never a lost one: the bookkeeping below must run
    record = RequestRecord{};
    record.error = e.what();
  }
  --state.in_flight;
  ++state.done;
  if (!record.ok) ++state.failed;
  state.last_done = Clock::now();
  slot_freed.cancel();  // wakes the dispatcher if it waits for a slot
  if (static_cast<size_t>(state.done) == state.total && state.progress != nullptr) state.progress->cancel();
}

asio::awaitable<void> dispatch(tcp::endpoint endpoint, const std::vector<LoadRequest>& requests, const LoadOptions& o,
                               const std::vector<double>& arrivals, Clock::time_point start,
                               std::vector<RequestRecord>& records, RunState& state) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer wait(executor);
  asio::steady_timer slot_freed(executor);
  StreamOptions stream_options{o.target, o.idle_timeout_s, start};
  boost::system::error_code ec;
  for (size_t i = 0; i < requests.size(); ++i) {
    wait.expires_at(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals[i])));
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    while (o.max_concurrency > 0 && state.in_flight >= o.max_concurrency) {
      slot_freed.expires_at(Clock::time_point::max());
      co_await slot_freed.async_wait(asio::redirect_error(asio::use_awaitable, ec));  // cancelled by run_one
    }
    ++state.in_flight;
    asio::co_spawn(executor, run_one(endpoint, o, requests[i], stream_options, records[i], state, slot_freed),
                   asio::detached);
  }
  // Keep slot_freed alive until the last request has finished with it.
  while (state.in_flight > 0) {
    slot_freed.expires_at(Clock::time_point::max());
    co_await slot_freed.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// A line on stderr every 5 s while the run lasts.
asio::awaitable<void> report_progress(RunState& state, Clock::time_point start) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  state.progress = &timer;
  boost::system::error_code ec;
  while (static_cast<size_t>(state.done) < state.total) {
    timer.expires_after(std::chrono::seconds(5));
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (static_cast<size_t>(state.done) == state.total) break;
    std::fprintf(stderr, "[bench serve] %lld/%zu done (%lld failed), %lld in flight, %.1f s\n",
                 static_cast<long long>(state.done), state.total, static_cast<long long>(state.failed),
                 static_cast<long long>(state.in_flight),
                 std::chrono::duration<double>(Clock::now() - start).count());
  }
  state.progress = nullptr;
}

}  // namespace

LoadResult run_load(const std::vector<LoadRequest>& requests, const LoadOptions& o) {
  const tcp::endpoint endpoint = resolve(o.server);
  const std::vector<double> arrivals = poisson_arrivals(static_cast<int64_t>(requests.size()), o.request_rate, o.seed);
  LoadResult result;
  result.records.resize(requests.size());
  RunState state;
  state.total = requests.size();
  asio::io_context io(1);
  const Clock::time_point start = Clock::now();
  state.last_done = start;
  asio::co_spawn(io, dispatch(endpoint, requests, o, arrivals, start, result.records, state), asio::detached);
  if (o.progress) asio::co_spawn(io, report_progress(state, start), asio::detached);
  io.run();
  state.progress = nullptr;
  result.duration_s = std::chrono::duration<double>(state.last_done - start).count();
  return result;
}

}  // namespace mlaserve::loadgen
