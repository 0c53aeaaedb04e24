// PeerWatchdog: notices that another rank left the run, so that a failed step on one rank ends
// the run on every rank instead of leaving the others blocked forever inside NCCL.
//
// A rank whose step failed cannot tell the others through NCCL: they wait inside a collective
// or a receive that will never be matched, and nothing in NCCL times out. The control channel
// (dist/control_channel.h) carries the news instead: the failing rank closes its connections
// (ControlChannel::close(), or its process ends), and every rank runs this watchdog, a thread
// that polls its connections for the peer's hang-up. While armed (the rank is inside a step, or
// rank 0 has steps running), a hang-up calls on_lost once, from the watchdog's thread:
// DistContext then ends this rank's part (dist/context.h: rank 0 aborts its NCCL communicators,
// so that the engine's step fails with the reason, and closes its connections; a follower logs
// the reason and exits). Rank 0 is connected to every rank, so the news goes from any rank to
// rank 0 and from rank 0 to all the others. Disarmed (between steps, or at a planned end: rank 0
// disarms before it sends stop), a hang-up is left to the next receive, which fails with "the
// peer closed the connection".
//
// It also notices a run that stopped moving with every rank still there (NCCL can hang without
// an error, e.g. NCCL_P2P_USE_CUDA_MEMCPY=1 on the H200 image, bench/NOTES-dist.md): between
// begin_step() and the matching end_step() (rank 0: from a submitted step to its logits; a
// follower: while it queues a step), if no step ends for stall_limit seconds, on_stalled is
// called once with the seconds waited, and DistContext ends the run as for a lost rank.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "dist/control_channel.h"

namespace mlaserve::dist {

class PeerWatchdog {
 public:
  // `channel` must outlive the watchdog; on_lost gets the rank whose connection hung up.
  // stall_limit_s > 0 (with on_stalled) also watches for a run that stopped moving (above).
  PeerWatchdog(ControlChannel& channel, std::function<void(int rank)> on_lost,
               std::function<void(double stalled_s)> on_stalled = {}, double stall_limit_s = 0);
  ~PeerWatchdog();  // stops the thread (on_lost is not called after)
  PeerWatchdog(const PeerWatchdog&) = delete;
  PeerWatchdog& operator=(const PeerWatchdog&) = delete;

  void arm() { armed_ = true; }
  void disarm() { armed_ = false; }
  bool armed() const { return armed_; }
  bool fired() const { return fired_; }

  // A step was queued / a step ended, called by one thread (rank 0's engine, a follower's step
  // loop). The stall clock runs while steps are queued and restarts at every begin from idle
  // and at every end.
  void begin_step();
  void end_step();

 private:
  void loop();
  bool stalled(double& stalled_s) const;

  ControlChannel& channel_;
  std::function<void(int)> on_lost_;
  std::function<void(double)> on_stalled_;
  const double stall_limit_s_;
  std::atomic<int> busy_{0};                 // steps queued and not ended
  std::atomic<int64_t> last_progress_ns_{0};  // steady clock, at the last begin from idle or end
  std::atomic<bool> armed_{false}, stop_{false}, fired_{false};
  std::thread thread_;
};

}  // namespace mlaserve::dist
