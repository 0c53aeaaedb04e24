#include "core/stage_clock.h"

#include "core/error.h"

namespace mlaserve {

StageClock::StageClock(Stream stream, bool on_gpu, int lag)
    : stream_(stream), on_gpu_(on_gpu), lag_(on_gpu ? lag : 0) {
  MLA_CHECK(lag >= 0, "StageClock: lag {} < 0", lag);
}

RegionTimer& StageClock::begin() {
  if (spare_.empty()) {
    queued_.push_back(std::make_unique<RegionTimer>(stream_, on_gpu_));
  } else {
    queued_.push_back(std::move(spare_.back()));
    spare_.pop_back();
  }
  return *queued_.back();
}

void StageClock::end() {
  ++forwards_;
  while (static_cast<int>(queued_.size()) > lag_) read_oldest();
}

const RegionTotals& StageClock::totals() {
  while (!queued_.empty()) read_oldest();
  return totals_;
}

void StageClock::read_oldest() {
  queued_.front()->add_to(totals_);
  spare_.push_back(std::move(queued_.front()));
  queued_.pop_front();
}

}  // namespace mlaserve
