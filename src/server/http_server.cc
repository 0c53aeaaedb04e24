#include "server/http_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstdio>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/logging.h"
#include "server/http_listener.h"

namespace mlaserve::server {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Samples the engine's counters for /metrics' rates once a second until the server stops.
void sample_rates(ServingState& state, net::steady_timer& timer) {
  state.metrics().sample_rates(state.engine().stats(), Clock::now());
  timer.expires_after(std::chrono::seconds(1));
  timer.async_wait([&state, &timer](boost::system::error_code ec) {
    if (!ec) sample_rates(state, timer);
  });
}

}  // namespace

void HttpServer::run() {
  const ServerOptions& o = state_.options();
  boost::system::error_code ec;
  const net::ip::address address = net::ip::make_address(o.host == "localhost" ? "127.0.0.1" : o.host, ec);
  MLA_CHECK(!ec, "--host {} is not an IP address: {}", o.host, ec.message());

  net::io_context ioc(o.http_threads);
  auto listener = std::make_shared<HttpListener>(ioc, tcp::endpoint(address, o.port), state_);
  listener->run();
  std::printf("mlaserve: listening on http://%s:%u (model '%s')\n", o.host.c_str(), unsigned{listener->port()},
              o.model_name.c_str());
  std::fflush(stdout);

  net::steady_timer rate_timer(ioc);
  sample_rates(state_, rate_timer);

  // Draining: poll for the in-flight tasks to end, abort them at the deadline, then stop.
  net::steady_timer drain_timer(ioc);
  Clock::time_point deadline;
  bool engine_stopped = false;
  std::function<void()> poll_drain = [&] {
    if (state_.num_active_tasks() > 0 && Clock::now() < deadline) {
      drain_timer.expires_after(std::chrono::milliseconds(20));
      drain_timer.async_wait([&](boost::system::error_code e) {
        if (!e) poll_drain();
      });
      return;
    }
    if (!engine_stopped) {
      if (state_.num_active_tasks() > 0) {
        MLA_LOG_WARN("drain timeout: aborting {} requests", state_.num_active_tasks());
      }
      state_.engine().stop();  // ends what is left (kAbort); their connections finish their replies
      engine_stopped = true;
      deadline = Clock::now() + std::chrono::milliseconds(500);  // time for the last replies' writes
    }
    if (Clock::now() < deadline) {
      drain_timer.expires_after(std::chrono::milliseconds(20));
      drain_timer.async_wait([&](boost::system::error_code e) {
        if (!e) poll_drain();
      });
      return;
    }
    ioc.stop();
  };

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& e,
                                                                              int sig) {
    if (e) return;
    if (state_.draining()) {
      MLA_LOG_WARN("second signal: stopping now");
      ioc.stop();
      return;
    }
    MLA_LOG_INFO("signal {}: draining {} in-flight requests (up to {} s)", sig, state_.num_active_tasks(),
                 o.drain_timeout_s);
    state_.start_draining();
    listener->stop();
    rate_timer.cancel();
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.drain_timeout_s));
    poll_drain();
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  std::vector<std::thread> threads;
  for (int32_t i = 1; i < o.http_threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (std::thread& t : threads) t.join();
  // The engine stops before the io_context goes: its last events post to a live context.
  state_.engine().stop();
  MLA_LOG_INFO("server stopped");
}

}  // namespace mlaserve::server
