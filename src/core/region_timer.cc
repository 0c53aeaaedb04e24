#include "core/region_timer.h"

#include "core/error.h"

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#endif

namespace mlaserve {

RegionTimer::RegionTimer(Stream stream, bool on_gpu, bool enabled)
    : enabled_(enabled), on_gpu_(on_gpu), stream_(stream) {
#ifndef MLASERVE_WITH_CUDA
  MLA_CHECK(!on_gpu, "RegionTimer on a GPU stream needs the CUDA backend");
#endif
}

RegionTimer::~RegionTimer() {
#ifdef MLASERVE_WITH_CUDA
  for (const Mark& m : marks_) free_events_.push_back(m.event);
  for (void* e : free_events_) {
    if (e != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(e));  // no throw in a destructor
  }
#endif
}

void* RegionTimer::take_event() {
#ifdef MLASERVE_WITH_CUDA
  if (!free_events_.empty()) {
    void* e = free_events_.back();
    free_events_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  MLA_CUDA_CHECK(cudaEventCreate(&e));
  return e;
#else
  return nullptr;
#endif
}

void RegionTimer::mark(const char* region) {
  if (!enabled_) return;
  Mark m{region};
  if (on_gpu_) {
    m.event = take_event();
#ifdef MLASERVE_WITH_CUDA
    MLA_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(m.event), static_cast<cudaStream_t>(stream_.cuda)));
#endif
  } else {
    m.host = std::chrono::steady_clock::now();
  }
  marks_.push_back(m);
}

void RegionTimer::stop() { mark(nullptr); }

void RegionTimer::add_to(RegionTotals& totals) {
  if (!enabled_ || marks_.empty()) return;
#ifdef MLASERVE_WITH_CUDA
  if (on_gpu_) MLA_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(marks_.back().event)));
#endif
  for (size_t i = 0; i + 1 < marks_.size(); ++i) {
    if (marks_[i].region == nullptr) continue;
    double ms = 0;
    if (on_gpu_) {
#ifdef MLASERVE_WITH_CUDA
      float f = 0;
      MLA_CUDA_CHECK(cudaEventElapsedTime(&f, static_cast<cudaEvent_t>(marks_[i].event),
                                          static_cast<cudaEvent_t>(marks_[i + 1].event)));
      ms = f;
#endif
    } else {
      ms = std::chrono::duration<double, std::milli>(marks_[i + 1].host - marks_[i].host).count();
    }
    totals[marks_[i].region] += ms;
  }
  for (const Mark& m : marks_) {
    if (m.event != nullptr) free_events_.push_back(m.event);
  }
  marks_.clear();
}

}  // namespace mlaserve
