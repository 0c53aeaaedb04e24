#include "dist/context.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "core/logging.h"
#ifdef MLASERVE_WITH_NCCL
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "dist/nccl_api.h"
#include "dist/nccl_collectives.h"
#endif

namespace mlaserve::dist {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

#ifndef MLASERVE_WITH_NCCL
[[noreturn]] void no_nccl(int world) {
  MLA_FAIL("tensor and pipeline parallelism run one process per GPU over NCCL: this build has no CUDA backend or no "
           "nccl.h ({} ranks asked for)", world);
}
#endif

}  // namespace

std::string LaunchOptions::fingerprint() const {
  return fmt::format("tp {} pp {} expert-split {} nodes {} micro-batches {} steps-in-flight {} peer-all-reduce {} KiB; {}",
                     tp_size, pp_size, expert_split == ExpertSplit::kChannels ? "channels" : "experts", nnodes,
                     micro_batches, steps_in_flight, peer_all_reduce_max_kib, run_fingerprint);
}

int visible_gpus() {
#ifdef MLASERVE_WITH_NCCL
  const pid_t pid = fork();
  MLA_CHECK(pid >= 0, "fork failed ({})", std::strerror(errno));
  if (pid == 0) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
    _exit(std::min(n, 255));
  }
  int status = 0;
  MLA_CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed ({})", std::strerror(errno));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
#else
  return 0;
#endif
}

std::unique_ptr<DistContext> DistContext::start(const LaunchOptions& o) {
  const int world = o.world_size();
  MLA_CHECK(world > 1, "DistContext for a single rank");
#ifndef MLASERVE_WITH_NCCL
  no_nccl(world);  // before forking ranks that would fail alike
#endif
  MLA_CHECK(o.nnodes >= 1 && o.node_rank >= 0 && o.node_rank < o.nnodes, "--node-rank {} of --nnodes {}", o.node_rank,
            o.nnodes);
  int rank = 0, local_rank = 0;
  std::vector<pid_t> children;
  if (std::getenv("OMPI_COMM_WORLD_RANK") != nullptr) {  // mpirun made the processes
    rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    MLA_CHECK(env_int("OMPI_COMM_WORLD_SIZE", world) == world, "mpirun started {} processes for {} ranks",
              env_int("OMPI_COMM_WORLD_SIZE", 0), world);
  } else {
    MLA_CHECK(world % o.nnodes == 0, "{} ranks do not split evenly over {} nodes", world, o.nnodes);
    const int per_node = world / o.nnodes;
#ifdef MLASERVE_WITH_NCCL
    // Before forking: a rank without a GPU would fail, and rank 0 would wait for it at the rendezvous.
    const int gpus = visible_gpus();
    MLA_CHECK(per_node <= gpus, "{} ranks on this machine ({} x {} over {} nodes) need {} GPUs; it shows {}",
              per_node, o.tp_size, o.pp_size, o.nnodes, per_node, gpus);
#endif
    for (int local = 1; local < per_node; ++local) {
      const pid_t pid = fork();  // before any CUDA call: each child initialises its own GPU
      MLA_CHECK(pid >= 0, "fork failed ({})", std::strerror(errno));
      if (pid == 0) {
        children.clear();
        local_rank = local;
        break;
      }
      children.push_back(pid);
    }
    rank = o.node_rank * per_node + local_rank;
  }
  std::unique_ptr<DistContext> ctx = join(o, rank, local_rank);
  ctx->children_ = std::move(children);
  return ctx;
}

std::unique_ptr<DistContext> DistContext::join(const LaunchOptions& o, int rank, int local_rank) {
  const int world = o.world_size();
  MLA_CHECK(o.micro_batches >= 1, "--pipeline-micro-batches must be at least 1");
  MLA_CHECK(o.steps_in_flight >= 0, "--pipeline-steps-in-flight must not be negative");
#ifndef MLASERVE_WITH_NCCL
  (void)rank;
  (void)local_rank;
  no_nccl(world);
#else
  std::unique_ptr<DistContext> ctx(new DistContext());
  ctx->options_ = o;
  ctx->parallel_ = ParallelConfig{o.tp_size, o.pp_size, rank, o.expert_split};
  ctx->parallel_.validate();
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  MLA_CUDA_CHECK(cudaSetDevice(local_rank));

  ncclUniqueId id{};
  std::string blob;
  if (rank == 0) {
    MLA_NCCL_CALL(get_unique_id, &id);
    blob.assign(reinterpret_cast<const char*>(&id), sizeof(id));
  }
  ctx->channel_ = std::make_unique<ControlChannel>(ControlChannel::rendezvous(
      RendezvousOptions{o.master_addr, o.master_port, world, rank, 300.0, o.fingerprint()}, blob));
  MLA_CHECK(blob.size() == sizeof(id), "rendezvous: an NCCL id of {} bytes", blob.size());
  std::memcpy(&id, blob.data(), sizeof(id));
  auto world_comm = NcclCollectives::init_world(id, world, rank);
  const ParallelConfig& pc = ctx->parallel_;
  if (pc.tp_size > 1) {
    std::unique_ptr<NcclCollectives> tp = world_comm->split(pc.pp_rank(), pc.tp_rank());
    if (o.peer_all_reduce_max_kib > 0) {
      const std::string why = tp->enable_peer_all_reduce(static_cast<size_t>(o.peer_all_reduce_max_kib) * 1024);
      if (pc.tp_rank() == 0) {
        if (why.empty()) {
          MLA_LOG_INFO("rank {}: tensor-parallel all-reduces of up to {} KiB through peer memory", rank,
                       o.peer_all_reduce_max_kib);
        } else {
          MLA_LOG_INFO("rank {}: tensor-parallel all-reduces by NCCL: {}", rank, why);
        }
      }
    }
    ctx->tp_ = std::move(tp);
  }
  if (pc.pp_size > 1) ctx->pp_ = world_comm->split(pc.tp_rank(), pc.pp_rank());
  ctx->world_ = std::move(world_comm);
  DistContext* self = ctx.get();
  ctx->watchdog_ = std::make_unique<PeerWatchdog>(
      *ctx->channel_, [self](int lost) { self->on_peer_lost(lost); },
      [self](double seconds) { self->on_stalled(seconds); }, o.step_timeout_s);
  MLA_LOG_INFO("rank {} of {} (tp {}/{}, pp {}/{}) on GPU {}", rank, world, pc.tp_rank(), pc.tp_size, pc.pp_rank(),
               pc.pp_size, local_rank);
  return ctx;
#endif
}

DistContext::~DistContext() {
  watchdog_.reset();
  tp_.reset();
  pp_.reset();
  world_.reset();
  channel_.reset();
  for (pid_t pid : children_) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      MLA_LOG_ERROR("a forked rank (pid {}) ended with status {}", pid, status);
    }
  }
}

void DistContext::on_peer_lost(int rank) {
  if (failed_) return;  // this rank ended the run itself (fail() closed its own connections)
  if (is_leader()) {
    fail(fmt::format("rank {} left the run in the middle of it (its step failed or its process ended; see its log)",
                     rank));
    return;
  }
  // Inside a step whose NCCL work waits for ranks that are gone, it would never complete. A step
  // that was about to end anyway (rank 0 closes at a planned end only after every step's logits
  // came back) gets a grace period; its next receive then reports the closed connection.
  for (int i = 0; i < 40 && watchdog_->armed(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!watchdog_->armed()) return;
  MLA_LOG_ERROR("rank {}: rank 0 ended the run in the middle of a step (a rank's step failed or a rank left; "
                "see rank 0's log); this rank stops",
                parallel_.rank);
  std::_Exit(1);
}

void DistContext::on_stalled(double seconds) {
  // Aborting the communicators ends whatever NCCL work hangs (rank 0's engine then fails its
  // steps; a follower's step throws), and closing the connections tells every other rank.
  fail(fmt::format("rank {}: no step ended for {:.0f} s while steps were queued (--step-timeout {:.0f}): a hung "
                   "NCCL transfer or kernel",
                   parallel_.rank, seconds, options_.step_timeout_s));
}

void DistContext::fail(const std::string& why) {
  {
    std::lock_guard lock(failure_mutex_);
    if (failed_) return;
    failure_ = why;
    failed_ = true;
  }
  MLA_LOG_ERROR("rank {}: the split run ends: {}", parallel_.rank, why);
#ifdef MLASERVE_WITH_NCCL
  for (Collectives* c : {world_.get(), tp_.get(), pp_.get()}) {
    if (c != nullptr) static_cast<NcclCollectives*>(c)->abort();  // join() made every one of them
  }
#endif
  for (const std::function<void()>& hook : fail_hooks_) hook();
  channel_->close();
}

std::string DistContext::failure() const {
  std::lock_guard lock(failure_mutex_);
  return failure_;
}

int64_t DistContext::min_over_ranks(int64_t value) {
  std::string mine(reinterpret_cast<const char*>(&value), sizeof(value));
  if (!is_leader()) {
    channel_->send_to_leader(mine);
    const std::string got = channel_->receive();
    MLA_CHECK(got.size() == sizeof(value), "min_over_ranks: a reply of {} bytes", got.size());
    std::memcpy(&value, got.data(), sizeof(value));
    return value;
  }
  for (const std::string& m : channel_->gather()) {
    MLA_CHECK(m.size() == sizeof(value), "min_over_ranks: a message of {} bytes", m.size());
    int64_t v = 0;
    std::memcpy(&v, m.data(), sizeof(v));
    value = std::min(value, v);
  }
  channel_->broadcast(std::string(reinterpret_cast<const char*>(&value), sizeof(value)));
  return value;
}

}  // namespace mlaserve::dist
