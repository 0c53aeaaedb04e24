#include "dist/logits_ring.h"

#include "core/error.h"

#ifdef MLASERVE_WITH_NCCL
#include <cuda_runtime_api.h>

#include <cstring>

#include "core/cuda_check.h"
#include "dist/host_name.h"
#endif

namespace mlaserve::dist {

#ifdef MLASERVE_WITH_NCCL
// logits_ring_kernels.cu
void launch_store_flag(int64_t* flag, int64_t step, cudaStream_t stream);
void launch_wait_flag(const int64_t* flag, int64_t step, const int32_t* abort_flag, cudaStream_t stream);

namespace {

// The handle message: rank 0's host name, then the ring's shape and its IPC memory handle.
struct RingMessage {
  char host[64];
  int64_t slots, max_rows, vocab;
  cudaIpcMemHandle_t mem;
};

size_t ring_bytes(int64_t slots, int64_t max_rows, int64_t vocab) {
  // the slots, then one 64-byte line per flag
  return static_cast<size_t>(slots * max_rows * vocab) * sizeof(float) + static_cast<size_t>(slots) * 64;
}

}  // namespace

std::unique_ptr<LogitsRing> LogitsRing::create(int64_t slots, int64_t max_rows, int64_t vocab) {
  MLA_CHECK(slots >= 1 && max_rows >= 1 && vocab >= 1, "LogitsRing: {} slots of [{}, {}]", slots, max_rows, vocab);
  std::unique_ptr<LogitsRing> r(new LogitsRing());
  r->slots_ = slots;
  r->max_rows_ = max_rows;
  r->vocab_ = vocab;
  const size_t bytes = ring_bytes(slots, max_rows, vocab);
  MLA_CUDA_CHECK(cudaMalloc(&r->base_, bytes));  // IPC maps whole allocations: not the caching allocator
  for (int64_t s = 0; s < slots; ++s) {
    const int64_t none = -1;
    MLA_CUDA_CHECK(cudaMemcpy(r->flag(s), &none, sizeof(none), cudaMemcpyHostToDevice));
  }
  MLA_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&r->abort_flag_), sizeof(int32_t), cudaHostAllocMapped));
  *r->abort_flag_ = 0;
  MLA_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&r->abort_on_device_), r->abort_flag_, 0));
  return r;
}

std::unique_ptr<LogitsRing> LogitsRing::open(const std::string& handle, std::string& why) {
  MLA_CHECK(handle.size() == sizeof(RingMessage), "LogitsRing: a handle of {} bytes", handle.size());
  RingMessage m;
  std::memcpy(&m, handle.data(), sizeof(m));
  m.host[sizeof(m.host) - 1] = '\0';
  if (host_name() != m.host) {
    why = "rank 0 is on another machine";
    return nullptr;
  }
  void* base = nullptr;
  const cudaError_t err = cudaIpcOpenMemHandle(&base, m.mem, cudaIpcMemLazyEnablePeerAccess);
  if (err != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it
    why = std::string("cudaIpcOpenMemHandle: ") + cudaGetErrorString(err);
    return nullptr;
  }
  std::unique_ptr<LogitsRing> r(new LogitsRing());
  r->slots_ = m.slots;
  r->max_rows_ = m.max_rows;
  r->vocab_ = m.vocab;
  r->base_ = base;
  r->mapped_ = true;
  return r;
}

LogitsRing::~LogitsRing() {  // no throw in a destructor
  if (mapped_) {
    cudaIpcCloseMemHandle(base_);
    return;
  }
  cudaFree(base_);
  cudaFreeHost(abort_flag_);
}

std::string LogitsRing::handle() const {
  MLA_CHECK(!mapped_, "LogitsRing: only rank 0's ring has a handle");
  RingMessage m{};
  const std::string host = host_name();
  std::strncpy(m.host, host.c_str(), sizeof(m.host) - 1);
  m.slots = slots_;
  m.max_rows = max_rows_;
  m.vocab = vocab_;
  MLA_CUDA_CHECK(cudaIpcGetMemHandle(&m.mem, base_));
  return std::string(reinterpret_cast<const char*>(&m), sizeof(m));
}

float* LogitsRing::slot(int64_t step) const {
  return static_cast<float*>(base_) + (step % slots_) * max_rows_ * vocab_;
}

int64_t* LogitsRing::flag(int64_t step) const {
  char* flags = static_cast<char*>(base_) + static_cast<size_t>(slots_ * max_rows_ * vocab_) * sizeof(float);
  return reinterpret_cast<int64_t*>(flags + (step % slots_) * 64);
}

void LogitsRing::put(const Tensor& logits, int64_t step, Stream stream) {
  MLA_CHECK(mapped_, "LogitsRing::put: the sender's mapped ring only");
  MLA_CHECK(logits.dtype() == DType::kF32 && logits.ndim() == 2 && logits.dim(1) == vocab_ && fits(logits.dim(0)),
            "LogitsRing::put: logits {} do not fit a slot of [{}, {}] f32", shape_str(logits.shape()), max_rows_,
            vocab_);
  const auto s = static_cast<cudaStream_t>(stream.cuda);
  MLA_CUDA_CHECK(cudaMemcpyAsync(slot(step), logits.raw(), logits.nbytes(), cudaMemcpyDeviceToDevice, s));
  launch_store_flag(flag(step), step, s);
}

Tensor LogitsRing::take(int64_t step, int64_t rows, Stream stream) {
  MLA_CHECK(!mapped_ && fits(rows), "LogitsRing::take: rank 0's ring, {} rows of at most {}", rows, max_rows_);
  launch_wait_flag(flag(step), step, abort_on_device_, static_cast<cudaStream_t>(stream.cuda));
  return Tensor::view_of(slot(step), {rows, vocab_}, DType::kF32, Device::kCUDA, nullptr);
}

#else  // a build without NCCL has no pipelines across processes, so no ring is ever made

std::unique_ptr<LogitsRing> LogitsRing::create(int64_t, int64_t, int64_t) {
  MLA_FAIL("LogitsRing needs the CUDA build with NCCL");
}
std::unique_ptr<LogitsRing> LogitsRing::open(const std::string&, std::string& why) {
  why = "built without NCCL";
  return nullptr;
}
LogitsRing::~LogitsRing() = default;
std::string LogitsRing::handle() const { MLA_FAIL("LogitsRing needs the CUDA build with NCCL"); }
void LogitsRing::put(const Tensor&, int64_t, Stream) { MLA_FAIL("LogitsRing needs the CUDA build with NCCL"); }
Tensor LogitsRing::take(int64_t, int64_t, Stream) { MLA_FAIL("LogitsRing needs the CUDA build with NCCL"); }

#endif

void LogitsRing::abort() {
  if (abort_flag_ != nullptr) reinterpret_cast<volatile int32_t*>(abort_flag_)[0] = 1;
}

}  // namespace mlaserve::dist
