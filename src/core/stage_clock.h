// StageClock: the GPU time of each forward by region, without ever waiting for the GPU.
//
//   StageClock clock(stream, /*on_gpu=*/true);
//   RegionTimer& t = clock.begin();   // per forward: a GPU timer (events on `stream`)
//   t.mark("input"); ... t.mark("layers"); ... t.stop();
//   clock.end();                      // adds the forwards queued more than `lag` forwards ago
//   clock.totals();                   // at the end of a run: waits for the rest, the sums
//
// RegionTimer::add_to waits for its last event; here it runs only on timers `lag` forwards old,
// whose events the GPU has passed long before when steps follow each other (a pipeline stage
// queues the next step while the GPU runs earlier ones), so the run keeps its pace. What it
// measures is the device's time between the marks, including any time the stream waited there
// (for a receive, or for the host to queue the next kernel). On the host clock (a CPU model,
// whose forward returns when its work is done) the marks are host times and nothing lags.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "core/region_timer.h"

namespace mlaserve {

class StageClock {
 public:
  StageClock(Stream stream, bool on_gpu, int lag = 2);

  RegionTimer& begin();  // the timer of a new forward
  void end();            // that forward's marks are queued
  // Waits for the forwards still unread and returns every region's milliseconds summed over all
  // forwards since construction.
  const RegionTotals& totals();
  int64_t forwards() const { return forwards_; }

 private:
  void read_oldest();

  Stream stream_;
  bool on_gpu_;
  int lag_;
  std::deque<std::unique_ptr<RegionTimer>> queued_;  // oldest first; back() is the current forward
  std::vector<std::unique_ptr<RegionTimer>> spare_;
  RegionTotals totals_;
  int64_t forwards_ = 0;
};

}  // namespace mlaserve
