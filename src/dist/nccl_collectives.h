// NcclCollectives: Collectives over one NCCL communicator (one process per GPU), queued on the
// caller's stream. Communicators are made once per process: the world from the unique id rank 0
// handed out (dist/control_channel.h), the tensor-parallel and pipeline groups split from it.
// A group within one machine may sum its small f32 all-reduces through the GPUs' memory of each
// other instead (enable_peer_all_reduce, dist/peer_all_reduce.h): the tensor-parallel groups do.
// abort() (dist/watchdog.h: another rank left the run) ends the communicator from any thread:
// NCCL work still queued on it ends with an error, and every later call throws.
#pragma once

#include <nccl.h>

#include <atomic>
#include <memory>

#include "core/collectives.h"
#include "dist/peer_all_reduce.h"

namespace mlaserve::dist {

class NcclCollectives final : public Collectives {
 public:
  // Joins the world of `size` ranks named by `id` (blocks until every rank has joined).
  static std::unique_ptr<NcclCollectives> init_world(const ncclUniqueId& id, int size, int rank);
  // The sub-group of the ranks that pass the same color, numbered by key (every rank of this
  // communicator must call it).
  std::unique_ptr<NcclCollectives> split(int color, int key) const;
  ~NcclCollectives() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_sum(Tensor& t, Stream stream) override;
  void all_gather_columns(const Tensor& in, Tensor& out, Stream stream) override;
  void send(const Tensor& t, int peer, Stream stream) override;
  void recv(Tensor& t, int peer, Stream stream) override;
  void abort();

  // Every rank of the group calls it: from then on the all-reduces that PeerAllReduce::fits (f32,
  // up to max_bytes) go through it. Returns "" when every rank could map the others' buffers, else
  // why not (the group keeps NCCL for every all-reduce).
  std::string enable_peer_all_reduce(size_t max_bytes);
  size_t peer_all_reduce_bytes() const { return peer_ ? peer_->max_bytes() : 0; }  // 0: NCCL only

 private:
  NcclCollectives(ncclComm_t comm, int size, int rank) : comm_(comm), size_(size), rank_(rank) {}
  ncclComm_t live() const;  // the communicator, or an error once aborted
  // A call already past live() when abort() runs can still reach NCCL with the freed
  // communicator; NCCL offers no way to close that window for a blocking communicator, and the
  // run is ending anyway.
  std::atomic<ncclComm_t> comm_;
  int size_, rank_;
  std::unique_ptr<PeerAllReduce> peer_;  // set before the run, then only read
};

}  // namespace mlaserve::dist
