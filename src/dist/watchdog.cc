#include "dist/watchdog.h"

#include <chrono>

namespace mlaserve::dist {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

PeerWatchdog::PeerWatchdog(ControlChannel& channel, std::function<void(int rank)> on_lost,
                           std::function<void(double stalled_s)> on_stalled, double stall_limit_s)
    : channel_(channel),
      on_lost_(std::move(on_lost)),
      on_stalled_(std::move(on_stalled)),
      stall_limit_s_(on_stalled_ ? stall_limit_s : 0),
      thread_([this] { loop(); }) {}

void PeerWatchdog::begin_step() {
  if (busy_ == 0) last_progress_ns_ = now_ns();  // before busy_ counts it: the clock starts fresh
  busy_.fetch_add(1);
}

void PeerWatchdog::end_step() {
  last_progress_ns_ = now_ns();
  busy_.fetch_sub(1);
}

bool PeerWatchdog::stalled(double& stalled_s) const {
  if (stall_limit_s_ <= 0 || busy_ <= 0) return false;
  stalled_s = 1e-9 * double(now_ns() - last_progress_ns_);
  return stalled_s > stall_limit_s_;
}

PeerWatchdog::~PeerWatchdog() {
  stop_ = true;
  thread_.join();
}

void PeerWatchdog::loop() {
  while (!stop_) {
    const int lost = channel_.hung_up_peer(/*timeout_ms=*/100);
    if (double stalled_s = 0; lost < 0 && stalled(stalled_s) && !stop_) {
      fired_ = true;
      on_stalled_(stalled_s);
      return;
    }
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
