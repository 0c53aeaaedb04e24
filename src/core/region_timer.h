// RegionTimer: where the time of a step goes, by named regions, on the host or on a GPU stream.
//
//   RegionTimer timer(stream);        // a GPU stream: CUDA events; the host: a steady clock
//   timer.mark("attention");          // the region "attention" starts here (and the last ends)
//   ...                               // queue work
//   timer.mark("ffn");
//   timer.stop();                     // the last region ends
//   timer.add_to(totals);             // waits for the stream, adds each region's ms to totals
//
// GPU marks are events recorded on the stream, so they measure the device's time between two
// points of the queue and cost about a microsecond each, without synchronising; only add_to()
// waits. A timer that is not enabled does nothing, so call sites need no branches.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "core/stream.h"

namespace mlaserve {

using RegionTotals = std::map<std::string, double>;  // region -> milliseconds

class RegionTimer {
 public:
  RegionTimer() = default;  // disabled
  RegionTimer(Stream stream, bool on_gpu, bool enabled = true);
  ~RegionTimer();
  RegionTimer(const RegionTimer&) = delete;
  RegionTimer& operator=(const RegionTimer&) = delete;

  bool enabled() const { return enabled_; }
  // Ends the current region (if any) and starts `region`.
  void mark(const char* region);
  // Ends the current region.
  void stop();
  // Waits for the marks to complete and adds every region's elapsed time to `totals`; the timer
  // is then empty and can be reused.
  void add_to(RegionTotals& totals);

 private:
  struct Mark {
    const char* region;  // nullptr: the end of the previous region
    void* event = nullptr;  // GPU: cudaEvent_t
    std::chrono::steady_clock::time_point host{};
  };
  void* take_event();

  bool enabled_ = false;
  bool on_gpu_ = false;
  Stream stream_;
  std::vector<Mark> marks_;
  std::vector<void*> free_events_;
};

}  // namespace mlaserve
