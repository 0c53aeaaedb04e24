// HttpServer: the io_context, its threads, the listener, and the life cycle:
//   run()  binds (throws mlaserve::Error when it cannot), prints "listening on http://HOST:PORT",
//          serves until SIGINT or SIGTERM, then drains: stops accepting, /health answers 503,
//          new generation requests 503, in-flight requests run to their end for up to
//          ServerOptions::drain_timeout_s (then they are aborted), and returns after the engine
//          has stopped. A second signal stops at once.
#pragma once

#include "server/serving_state.h"

namespace mlaserve::server {

class HttpServer {
 public:
  explicit HttpServer(ServingState& state) : state_(state) {}
  void run();

 private:
  ServingState& state_;
};

}  // namespace mlaserve::server
