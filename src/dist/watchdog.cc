#include "dist/watchdog.h"

#include <chrono>

namespace mlaserve::dist {

PeerWatchdog::PeerWatchdog(ControlChannel& channel, std::function<void(int rank)> on_lost)
    : channel_(channel), on_lost_(std::move(on_lost)), thread_([this] { loop(); }) {}

PeerWatchdog::~PeerWatchdog() {
  stop_ = true;
  thread_.join();
}

void PeerWatchdog::loop() {
  while (!stop_) {
    const int lost = channel_.hung_up_peer(/*timeout_ms=*/100);
    if (lost < 0) continue;
    if (armed_ && !stop_) {
      fired_ = true;
      on_lost_(lost);
      return;
    }
    // Disarmed: the hang-up stays visible; look again later in case a step starts first.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace mlaserve::dist
