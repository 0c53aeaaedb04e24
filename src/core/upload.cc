#include "core/upload.h"

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/staging_ring.h"

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#endif

namespace mlaserve {

#ifdef MLASERVE_WITH_CUDA
namespace {

// Four chunks of 4 MiB: a decode step of 256 sequences uploads a few KB plus its block tables
// (4 bytes per block), so the host runs several steps ahead before it can wait for a chunk.
constexpr size_t kStagingChunks = 4;
constexpr size_t kStagingChunkBytes = size_t{4} << 20;

// Pinned chunks and one event per chunk, all on the device that was current when it was made.
class PinnedStaging final : public StagingBackend {
 public:
  PinnedStaging(cudaStream_t stream, size_t num_chunks) : stream_(stream), events_(num_chunks) {
    for (cudaEvent_t& e : events_) MLA_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~PinnedStaging() override {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }

  void* allocate(size_t bytes) override {
    void* p = nullptr;
    MLA_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
    return p;
  }
  void release(void* p) override { MLA_CUDA_CHECK(cudaFreeHost(p)); }
  void mark(size_t chunk) override { MLA_CUDA_CHECK(cudaEventRecord(events_.at(chunk), stream_)); }
  // An event never recorded counts as complete: a chunk that no copy has read yet.
  void wait(size_t chunk) override { MLA_CUDA_CHECK(cudaEventSynchronize(events_.at(chunk))); }

 private:
  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;
};

struct StreamStaging {
  explicit StreamStaging(cudaStream_t stream)
      : backend(stream, kStagingChunks), ring(backend, kStagingChunks, kStagingChunkBytes) {}
  std::mutex mutex;  // one upload at a time: reserve, fill, queue, mark
  PinnedStaging backend;
  StagingRing ring;
};

// The staging of (current device, stream), made on first use. Never destroyed: the pinned
// memory may still be read by copies queued at exit, and the CUDA runtime may be gone by then.
StreamStaging& staging_for(cudaStream_t stream) {
  static auto* mutex = new std::mutex();
  static auto* stagings = new std::map<std::pair<int, cudaStream_t>, std::unique_ptr<StreamStaging>>();
  int device = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard lock(*mutex);
  std::unique_ptr<StreamStaging>& s = (*stagings)[{device, stream}];
  if (!s) s = std::make_unique<StreamStaging>(stream);
  return *s;
}

}  // namespace
#endif

Tensor upload_async(const void* data, Shape shape, DType dtype, Stream stream) {
#ifdef MLASERVE_WITH_CUDA
  const auto s = static_cast<cudaStream_t>(stream.cuda);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  MLA_CUDA_CHECK(cudaStreamIsCapturing(s, &capture));
  MLA_CHECK(capture == cudaStreamCaptureStatusNone,
            "upload_async: the stream is being captured into a CUDA graph; a captured copy would read staging "
            "memory that later uploads overwrite (fill the graph's input tensors before the capture instead)");
  Tensor out = Tensor::empty(std::move(shape), dtype, Device::kCUDA);
  const size_t bytes = out.nbytes();
  if (bytes == 0) return out;
  MLA_CHECK(data != nullptr, "upload_async: no source for {} bytes", bytes);
  StreamStaging& staging = staging_for(s);
  std::lock_guard lock(staging.mutex);
  void* staged = staging.ring.reserve(bytes);
  std::memcpy(staged, data, bytes);
  MLA_CUDA_CHECK(cudaMemcpyAsync(out.raw(), staged, bytes, cudaMemcpyHostToDevice, s));
  staging.ring.queued();
  return out;
#else
  (void)data;
  (void)stream;
  MLA_FAIL("upload_async of a {} {} tensor needs the CUDA backend", shape_str(shape), dtype_name(dtype));
#endif
}

}  // namespace mlaserve
