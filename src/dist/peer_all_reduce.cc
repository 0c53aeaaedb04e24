#include "dist/peer_all_reduce.h"

#include <cstring>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "dist/host_name.h"
#include "dist/nccl_api.h"

namespace mlaserve::dist {
namespace {

// What each rank tells the others: its host name and its buffer's IPC handle.
struct PeerMessage {
  char host[64];
  cudaIpcMemHandle_t mem;
};

// Every rank's message, by an NCCL all-gather on `comm` (the legacy stream, waited for).
std::vector<PeerMessage> all_gather_messages(const PeerMessage& mine, int rank, int size, ncclComm_t comm) {
  void* d = nullptr;
  MLA_CUDA_CHECK(cudaMalloc(&d, size * sizeof(PeerMessage)));
  std::vector<PeerMessage> all(static_cast<size_t>(size));
  char* slot = static_cast<char*>(d) + rank * sizeof(PeerMessage);
  try {
    MLA_CUDA_CHECK(cudaMemcpy(slot, &mine, sizeof(PeerMessage), cudaMemcpyHostToDevice));
    MLA_NCCL_CALL(all_gather, slot, d, sizeof(PeerMessage), ncclUint8, comm, nullptr);
    MLA_CUDA_CHECK(cudaMemcpy(all.data(), d, size * sizeof(PeerMessage), cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(d);
    throw;
  }
  MLA_CUDA_CHECK(cudaFree(d));
  return all;
}

// Whether every rank's `ok` holds, by an NCCL min-reduce on `comm`.
bool all_ranks(bool ok, ncclComm_t comm) {
  int32_t* d = nullptr;
  MLA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), sizeof(int32_t)));
  int32_t v = ok ? 1 : 0;
  try {
    MLA_CUDA_CHECK(cudaMemcpy(d, &v, sizeof(v), cudaMemcpyHostToDevice));
    MLA_NCCL_CALL(all_reduce, d, d, 1, ncclInt32, ncclMin, comm, nullptr);
    MLA_CUDA_CHECK(cudaMemcpy(&v, d, sizeof(v), cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(d);
    throw;
  }
  MLA_CUDA_CHECK(cudaFree(d));
  return v == 1;
}

}  // namespace

std::unique_ptr<PeerAllReduce> PeerAllReduce::create(int rank, int size, size_t max_bytes, ncclComm_t comm,
                                                     std::string& why) {
  MLA_CHECK(size >= 2 && size <= kPeerMaxRanks && rank >= 0 && rank < size,
            "PeerAllReduce: rank {} of {} (2 to {} ranks)", rank, size, kPeerMaxRanks);
  MLA_CHECK(max_bytes > 0 && max_bytes % 16 == 0, "PeerAllReduce: max_bytes {} is not a positive multiple of 16",
            max_bytes);
  std::unique_ptr<PeerAllReduce> r(new PeerAllReduce());
  r->max_bytes_ = max_bytes;
  PeerBuffers& b = r->buffers_;
  b.rank = rank;
  b.size = size;
  b.region_bytes = static_cast<int64_t>(max_bytes);
  const auto bytes = static_cast<size_t>(peer_buffer_bytes(size, b.region_bytes));
  void* own = nullptr;
  MLA_CUDA_CHECK(cudaMalloc(&own, bytes));  // IPC maps whole allocations: not the caching allocator
  b.base[rank] = static_cast<char*>(own);
  MLA_CUDA_CHECK(cudaMemset(own, 0, bytes));
  MLA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&b.counters), 2 * kPeerBlocks * sizeof(uint32_t)));
  MLA_CUDA_CHECK(cudaMemset(b.counters, 0, 2 * kPeerBlocks * sizeof(uint32_t)));
  MLA_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&r->abort_flag_), sizeof(int32_t), cudaHostAllocMapped));
  *r->abort_flag_ = 0;
  int32_t* abort_on_device = nullptr;
  MLA_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&abort_on_device), r->abort_flag_, 0));
  b.abort_flag = abort_on_device;
  MLA_CUDA_CHECK(cudaDeviceSynchronize());  // the zeroed buffer before any peer writes into it

  PeerMessage mine{};
  const std::string host = host_name();
  std::strncpy(mine.host, host.c_str(), sizeof(mine.host) - 1);
  MLA_CUDA_CHECK(cudaIpcGetMemHandle(&mine.mem, own));
  const std::vector<PeerMessage> all = all_gather_messages(mine, rank, size, comm);
  bool ok = true;
  for (int p = 0; p < size && ok; ++p) {
    if (p == rank) continue;
    PeerMessage m = all[static_cast<size_t>(p)];
    m.host[sizeof(m.host) - 1] = '\0';
    if (host != m.host) {
      why = "rank " + std::to_string(p) + " of the group is on another machine";
      ok = false;
      continue;
    }
    void* mapped = nullptr;
    const cudaError_t err = cudaIpcOpenMemHandle(&mapped, m.mem, cudaIpcMemLazyEnablePeerAccess);
    if (err == cudaSuccess) {
      b.base[p] = static_cast<char*>(mapped);
    } else {
      cudaGetLastError();  // not sticky: clear it
      why = std::string("cudaIpcOpenMemHandle of rank ") + std::to_string(p) + "'s buffer: " + cudaGetErrorString(err);
      ok = false;
    }
  }
  if (!all_ranks(ok, comm)) {
    if (ok) why = "another rank of the group cannot map the buffers";
    return nullptr;
  }
  return r;
}

PeerAllReduce::~PeerAllReduce() {  // no throw in a destructor
  const PeerBuffers& b = buffers_;
  for (int p = 0; p < b.size; ++p) {
    if (p != b.rank && b.base[p] != nullptr) cudaIpcCloseMemHandle(b.base[p]);
  }
  cudaFree(b.base[b.rank]);
  cudaFree(b.counters);
  cudaFreeHost(abort_flag_);
}

bool PeerAllReduce::fits(const Tensor& t) const {
  return t.dtype() == DType::kF32 && !t.is_cpu() && t.numel() % 4 == 0 && t.nbytes() <= max_bytes_ &&
         reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0;
}

void PeerAllReduce::all_reduce_sum(Tensor& t, Stream stream) {
  MLA_CHECK(fits(t), "PeerAllReduce: a {} tensor {} of {} bytes does not fit (f32, 4-value multiples, {} bytes)",
            dtype_name(t.dtype()), shape_str(t.shape()), t.nbytes(), max_bytes_);
  if (t.numel() == 0) return;  // every rank has the same shape: none of them reduces
  launch_peer_all_reduce(buffers_, t.data<float>(), t.numel(), static_cast<cudaStream_t>(stream.cuda));
}

void PeerAllReduce::abort() {
  if (abort_flag_ != nullptr) reinterpret_cast<volatile int32_t*>(abort_flag_)[0] = 1;
}

}  // namespace mlaserve::dist
