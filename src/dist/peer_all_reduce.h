// PeerAllReduce: the tensor-parallel group's small all-reduces among the GPUs of one machine, in
// one kernel that writes into the other GPUs' memory (CUDA IPC over NVLink) instead of NCCL's
// protocol. A decode step all-reduces each layer's partial outputs twice (TP2 V2-Lite: 54 sums of
// 8-16 KiB a step), and for such sizes the latency of each sum is what counts.
//
// Buffers. Every rank holds one cudaMalloc allocation that the others map and write into, and
// epoch counters of its own. Each call runs kPeerBlocks blocks on every rank (the same on every
// call, so that each block's counters count the same calls everywhere); block b takes the b-th
// share of the tensor, with epoch e = its counter + 1 and slot e % 2, by one of two protocols
// (peer_all_reduce_kernel.h has the layout):
//   - packets, up to kPeerPacketBytes (the decode steps' sums): block b writes its share into
//     every rank's packet region [slot][rank] as 16-byte packets of two values, each beside e, so
//     the data carries its own arrival; it then waits on its own region [slot][p] until every
//     packet of every rank p shows e, and sums. No fence or flag: one trip over NVLink.
//   - flags, above that: block b writes its share into every rank's region [slot][rank], then
//     stores e into flag (b, rank) of every rank (release, system scope), waits until its own flag
//     (b, p) reaches e for every rank p (acquire), and sums.
// Either way the sum runs in rank order, in f32: every rank adds the same numbers in the same
// order and gets the same bits. A slot is written again two calls (of its protocol) later; by then
// every rank that reads it has finished: the writer received every peer's share of the call
// between, so every peer had started that call's kernel and so finished the one before (the calls
// are ordered on one stream on every rank), and a stale packet carries an older epoch.
//
// The kernel's arguments (buffer addresses, tensor address, size) and its counters in device
// memory make it safe to capture into a CUDA graph and replay (engine/decode_graphs.h), mixed with
// eager calls. Every rank must make the same calls in the same order, as for NCCL.
//
// Launch: programmatic (ops/cuda/pdl.cuh). The kernel first waits for the one before it, then lets
// the next one launch, so that the norm after a sum (rms_norm.cu, launched the same way) is
// resident, its weight prefetched, while this one waits for its peers: 8 KiB sums back to back
// 3.25 -> 2.47 us each on two H200s.
//
// Abort: abort() sets a flag in host memory that every wait also reads, so a run that ends (a rank
// lost) never leaves a kernel spinning; the sums of that call are then garbage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nccl.h>

#include "core/stream.h"
#include "core/tensor.h"
#include "dist/peer_all_reduce_kernel.h"

namespace mlaserve::dist {

class PeerAllReduce {
 public:
  // Every rank of the group (the ranks of `comm`, this one `rank` of `size` <= kPeerMaxRanks) calls it
  // with the same max_bytes, on its own GPU; the handles travel by an NCCL all-gather on `comm`.
  // Null on every rank when one of them cannot map the others' buffers (another machine, no peer
  // access); `why` then says why.
  static std::unique_ptr<PeerAllReduce> create(int rank, int size, size_t max_bytes, ncclComm_t comm,
                                               std::string& why);
  ~PeerAllReduce();
  PeerAllReduce(const PeerAllReduce&) = delete;
  PeerAllReduce& operator=(const PeerAllReduce&) = delete;

  size_t max_bytes() const { return max_bytes_; }
  // f32, 16-byte aligned, a multiple of 4 values, at most max_bytes.
  bool fits(const Tensor& t) const;
  void all_reduce_sum(Tensor& t, Stream stream);
  void abort();  // thread-safe, idempotent

 private:
  PeerAllReduce() = default;

  size_t max_bytes_ = 0;
  int32_t* abort_flag_ = nullptr;  // host memory mapped for the device
  // The kernel's view, made once: every rank's buffer as this process maps it (base[rank] is this
  // rank's own allocation), this rank's epoch counters, the abort flag as the device addresses it.
  PeerBuffers buffers_{};
};

}  // namespace mlaserve::dist
