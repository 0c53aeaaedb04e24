// DistContext: this process's place in a model split over processes (one per GPU) and its
// connections to the others. Made once at start-up, before anything touches the GPU.
//
// Launch. Under mpirun (OMPI_COMM_WORLD_RANK / _LOCAL_RANK / _SIZE set) each process already is
// one rank. Otherwise the engine launches itself: on each of --nnodes machines one process is
// started with its --node-rank, and it forks the node's other ranks (world / nnodes per node;
// the process that was started is local rank 0); global rank = node_rank · ranks_per_node +
// local rank, and a rank uses the GPU of its local rank.
//
// Then rank 0 makes the NCCL unique id and hands it out over the TCP rendezvous at
// --master-addr:--master-port (dist/control_channel.h), which stays open as the step-plan
// channel; every rank joins the NCCL world (world(): all ranks, numbered by global rank, which
// carries only a pipeline's logits, dist/distributed_runner.h) and splits it into its
// tensor-parallel group (same stage) and its pipeline group (same tensor-parallel rank). NVLink
// SHARP multicast (NCCL_NVLS_ENABLE) is turned off before NCCL starts: the shared machines this
// engine is tested on must not use it, and the all-reduces here are far too small to gain from it.
//
// A failed step on any rank ends the run on every rank (dist/watchdog.h): each rank watches its
// control connections while it is inside a step (rank 0: while its runner lives). Rank 0, when
// a rank leaves or its own step fails (fail()), aborts its NCCL communicators, so that its
// blocked work ends and every later step fails with the reason, and closes its connections; a
// follower whose step fails calls fail() and ends, and one that sees rank 0 close while inside
// a step logs why and exits at once (its NCCL work would never complete).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/collectives.h"
#include "dist/control_channel.h"
#include "dist/parallel_config.h"
#include "dist/watchdog.h"

namespace mlaserve::dist {

struct LaunchOptions {
  int tp_size = 1;   // --tensor-parallel-size
  int pp_size = 1;   // --pipeline-parallel-size
  ExpertSplit expert_split = ExpertSplit::kExperts;  // --expert-split (ParallelConfig::expert_split)
  int nnodes = 1;    // --nnodes: machines
  int node_rank = 0; // --node-rank: this machine
  std::string master_addr = "127.0.0.1";  // --master-addr: rank 0's machine
  int master_port = 29500;                // --master-port
  // Pipelines: micro-batches each step is cut into (dist/micro_batch.h; each re-reads the
  // stage's weights), and steps in flight at once (dist/distributed_runner.h; 0: one per stage).
  int micro_batches = 1;
  int steps_in_flight = 0;
  // --step-timeout: seconds the run may go without a step ending while steps are queued before it
  // ends with an error (dist/watchdog.h); 0: never.
  double step_timeout_s = 600;
  // --peer-all-reduce-max-kib: tensor-parallel all-reduces of up to this many KiB go through the
  // GPUs' memory of each other when the group is on one machine (dist/peer_all_reduce.h); 0: NCCL.
  int64_t peer_all_reduce_max_kib = 2048;
  // What else every rank must share, as the command states it (the model's identity, the
  // scheduler's limits): with the fields above, each rank's fingerprint at the rendezvous, so
  // that nodes started with different settings fail at once instead of hanging or computing
  // wrong steps.
  std::string run_fingerprint;

  int world_size() const { return tp_size * pp_size; }
  // The rendezvous fingerprint: the launch fields every rank must share, then run_fingerprint.
  std::string fingerprint() const;
};

// The GPUs this machine shows this process, counted in a child process: CUDA initialised before a
// fork cannot be used by the forked ranks, so a process that is to fork them (DistContext::start)
// must not touch it first. 0 in a build without NCCL.
int visible_gpus();

class DistContext {
 public:
  // Forks this node's other ranks (unless under mpirun), then, in every rank, selects its GPU,
  // meets the others and joins the NCCL communicators. Fails at once, before forking, when this
  // machine shows fewer GPUs than its ranks.
  static std::unique_ptr<DistContext> start(const LaunchOptions& options);
  // The part after the launch: this process is `rank`, on GPU `local_rank` (tests that start
  // their processes themselves).
  static std::unique_ptr<DistContext> join(const LaunchOptions& options, int rank, int local_rank);
  ~DistContext();  // the launching process waits for the ranks it forked

  const ParallelConfig& parallel() const { return parallel_; }
  const LaunchOptions& options() const { return options_; }
  bool is_leader() const { return parallel_.rank == 0; }
  ControlChannel& channel() { return *channel_; }
  Collectives* world() { return world_.get(); }
  Collectives* tp_group() { return tp_.get(); }
  Collectives* pp_group() { return pp_.get(); }

  // The smallest of every rank's value (the cache blocks every rank can hold), on every rank.
  int64_t min_over_ranks(int64_t value);

  // Arms the watchdog inside steps; disarm before a planned end.
  PeerWatchdog& watchdog() { return *watchdog_; }
  // Ends this rank's part of the run (once; any thread): logs `why`, aborts the NCCL
  // communicators and closes the control connections, so that every other rank learns it.
  void fail(const std::string& why);
  bool failed() const { return failed_; }
  // `hook` runs in fail(), after the communicators are aborted: for waits of this rank's own that
  // an NCCL abort does not end (dist/logits_ring.h). Register before the run starts.
  void on_fail(std::function<void()> hook) { fail_hooks_.push_back(std::move(hook)); }
  std::string failure() const;

 private:
  DistContext() = default;
  void on_peer_lost(int rank);
  void on_stalled(double seconds);
  LaunchOptions options_;
  ParallelConfig parallel_;
  std::unique_ptr<ControlChannel> channel_;
  std::unique_ptr<Collectives> world_, tp_, pp_;
  std::vector<pid_t> children_;
  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mutex_;
  std::string failure_;
  std::vector<std::function<void()>> fail_hooks_;
  std::unique_ptr<PeerWatchdog> watchdog_;  // last: its thread stops first
};

}  // namespace mlaserve::dist
