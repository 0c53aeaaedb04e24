#include "core/side_stream.h"

#include <utility>

#include "core/error.h"

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#endif

namespace mlaserve {

SideStream SideStream::create(bool on_gpu) {
  SideStream s;
  if (!on_gpu) return s;
#ifdef MLASERVE_WITH_CUDA
  cudaStream_t stream = nullptr;
  cudaEvent_t forked = nullptr, joined = nullptr;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  s.stream_ = stream;
  MLA_CUDA_CHECK(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming));
  s.forked_ = forked;
  MLA_CUDA_CHECK(cudaEventCreateWithFlags(&joined, cudaEventDisableTiming));
  s.joined_ = joined;
#else
  MLA_FAIL("SideStream on the GPU needs the CUDA backend");
#endif
  return s;
}

SideStream::~SideStream() {
#ifdef MLASERVE_WITH_CUDA
  if (joined_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(joined_));
  if (forked_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(forked_));
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
#endif
}

SideStream::SideStream(SideStream&& other) noexcept
    : stream_(std::exchange(other.stream_, nullptr)),
      forked_(std::exchange(other.forked_, nullptr)),
      joined_(std::exchange(other.joined_, nullptr)) {}

SideStream& SideStream::operator=(SideStream&& other) noexcept {
  if (this != &other) {
    SideStream old(std::move(*this));
    stream_ = std::exchange(other.stream_, nullptr);
    forked_ = std::exchange(other.forked_, nullptr);
    joined_ = std::exchange(other.joined_, nullptr);
  }
  return *this;
}

ForkedBranch::ForkedBranch(SideStream& side, Stream main) : side_(side), main_(main), branch_(main) {
  if (!side.enabled()) return;
#ifdef MLASERVE_WITH_CUDA
  const auto forked = static_cast<cudaEvent_t>(side.forked_);
  MLA_CUDA_CHECK(cudaEventRecord(forked, static_cast<cudaStream_t>(main.cuda)));
  MLA_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(side.stream_), forked, 0));
  branch_ = Stream{side.stream_};
  defer_.emplace();
#endif
}

void ForkedBranch::join() {
  if (joined_) return;
  joined_ = true;
  if (!side_.enabled()) return;
#ifdef MLASERVE_WITH_CUDA
  const auto joined = static_cast<cudaEvent_t>(side_.joined_);
  MLA_CUDA_CHECK(cudaEventRecord(joined, static_cast<cudaStream_t>(side_.stream_)));
  MLA_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(main_.cuda), joined, 0));
  defer_.reset();  // the held blocks' later owners queue behind the join on main
#endif
}

ForkedBranch::~ForkedBranch() {
  if (joined_ || !side_.enabled()) return;
#ifdef MLASERVE_WITH_CUDA
  // An exception left the branch: still order main after it, so that the held blocks are safe.
  cudaEventRecord(static_cast<cudaEvent_t>(side_.joined_), static_cast<cudaStream_t>(side_.stream_));
  cudaStreamWaitEvent(static_cast<cudaStream_t>(main_.cuda), static_cast<cudaEvent_t>(side_.joined_), 0);
#endif
}

}  // namespace mlaserve
