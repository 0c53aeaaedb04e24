#include "dist/distributed_runner.h"

#include <chrono>
#include <optional>

#include "core/logging.h"
#include "dist/step_message.h"
#include "engine/deepseek_runner.h"
#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "engine/decode_graphs.h"
#endif

namespace mlaserve::dist {
namespace {

StepGroups groups_of(DistContext& dist) {
  return StepGroups{dist.parallel(), dist.world(), dist.options().micro_batches};
}

#ifdef MLASERVE_WITH_NCCL
cudaStream_t cuda_stream(void* s) { return static_cast<cudaStream_t>(s); }
cudaEvent_t cuda_event(void* e) { return static_cast<cudaEvent_t>(e); }
#endif

constexpr std::string_view kRingMapped = "mapped";  // the logits sender's answer to offer_ring

// This rank's share of a step: run_share, or with graph_batch > 0 (rank 0's choice for the step)
// the replay of `graphs`' decode graph of that many sequences, whose logits (on the rank that
// sends them) are copied out of the graph's output on the model's stream, so that they stay
// valid while a later replay runs.
Tensor stage_share(DeepSeekModel& model, LatentCache& cache, const ForwardBatch& batch, const StepGroups& groups,
                   DecodeGraphs* graphs, int64_t graph_batch) {
  if (graph_batch == 0) return run_share(model, cache, batch, groups);
#ifdef MLASERVE_WITH_CUDA
  MLA_CHECK(graphs != nullptr, "rank 0 runs the step as a graph of {} sequences, rank {} has no graphs", graph_batch,
            groups.parallel.rank);
  const Tensor out = graphs->run(batch, graph_batch);
  if (groups.parallel.rank != logits_sender(groups.parallel) || !out.defined()) return Tensor();
  Tensor logits = Tensor::empty(out.shape(), out.dtype(), out.device());
  MLA_CUDA_CHECK(cudaMemcpyAsync(logits.raw(), out.raw(), out.nbytes(), cudaMemcpyDeviceToDevice,
                                 static_cast<cudaStream_t>(model.stream().cuda)));
  return logits;
#else
  (void)graphs;
  MLA_FAIL("a graph of {} sequences needs the CUDA backend", graph_batch);
#endif
}

// The graph size rank 0 sends with `batch` (DecodeGraphs::graph_size): 0 without graphs.
int64_t stage_graph_size(const DecodeGraphs* graphs, const ForwardBatch& batch) {
#ifdef MLASERVE_WITH_CUDA
  return graphs != nullptr ? graphs->graph_size(batch) : 0;
#else
  (void)graphs, (void)batch;
  return 0;
#endif
}

#ifdef MLASERVE_WITH_CUDA
// Decode graphs of this rank's share (engine/decode_graphs.h) for up to max_graph_batch sequences
// (0: none), in the layouts they have run in on GPUs: tensor parallelism alone (2026-11-30: TP2)
// and two pipeline stages without it (2026-11-29), one micro-batch a step; null otherwise (more
// stages, and TP x PP, keep eager steps until measured). The ranks must agree: rank 0 sends each
// step's graph size, the others replay it.
std::unique_ptr<DecodeGraphs> stage_graphs(DeepSeekModel& model, LatentCache& cache, const StepGroups& groups,
                                           int64_t max_graph_batch) {
  const ParallelConfig& pc = groups.parallel;
  const bool layout_run = pc.pp_size == 1 || (pc.pp_size == 2 && pc.tp_size == 1);
  if (max_graph_batch <= 0 || !layout_run || groups.micro_batches != 1 || !decode_graphs_supported(model)) {
    return nullptr;
  }
  const auto blocks = static_cast<int32_t>(cache.num_blocks());
  return std::make_unique<DecodeGraphs>(model, cache, max_graph_batch, decode_graph_max_context(model, blocks));
}
#endif

}  // namespace

DistributedRunner::DistributedRunner(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist,
                                     int64_t max_logit_rows, bool cuda_graphs)
    : DistributedRunner(model, num_cache_blocks, dist.channel(), groups_of(dist), dist.options().steps_in_flight,
                        max_logit_rows, cuda_graphs ? max_logit_rows : 0) {
  dist_ = &dist;
  if (ring_) dist.on_fail([ring = ring_] { ring->abort(); });  // the hook may outlive the runner
  dist.watchdog().arm();  // from now on a rank that leaves ends the run
}

DistributedRunner::DistributedRunner(DeepSeekModel& model, int32_t num_cache_blocks, ControlChannel& channel,
                                     const StepGroups& groups, int steps_in_flight, int64_t max_logit_rows,
                                     int64_t max_graph_batch)
    : model_(model),
      channel_(channel),
      cache_(model.make_cache(num_cache_blocks)),
      groups_(groups) {
  const ParallelConfig& pc = groups.parallel;
  MLA_CHECK(pc.rank == 0 && channel.rank() == 0, "DistributedRunner runs on rank 0; the other ranks run run_follower");
  MLA_CHECK(steps_in_flight >= 0, "{} steps in flight", steps_in_flight);
#ifdef MLASERVE_WITH_CUDA
  graphs_ = stage_graphs(model, cache_, groups, max_graph_batch);
#else
  (void)max_graph_batch;
#endif
  const int wanted = pipeline_steps_in_flight(pc, steps_in_flight);
#ifdef MLASERVE_WITH_NCCL
  if (wanted > 1 && model.weights().embed.device() == Device::kCUDA) {
    max_in_flight_ = wanted;
    cudaStream_t s = nullptr;
    MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    sampling_stream_ = s;
    // The copy-engine ring where it has run on GPUs (2026-11-28: test_dist_cuda world 2 and the PP2
    // benchmarks); pipelines with tensor parallelism or more stages keep NCCL until measured.
    if (pc.pp_size == 2 && pc.tp_size == 1) offer_ring(max_logit_rows);
  }
#else
  (void)wanted;
  (void)max_logit_rows;
#endif
  MLA_LOG_INFO("rank 0: up to {} steps in flight, logits by {}, decode steps {}", max_in_flight_,
               ring_ ? "copy engine" : "NCCL", graphs() != nullptr ? "in CUDA graphs" : "eager");
}

void DistributedRunner::offer_ring(int64_t max_logit_rows) {
#ifdef MLASERVE_WITH_NCCL
  ring_ = LogitsRing::create(max_in_flight_, max_logit_rows, model_.config().vocab_size);
  channel_.broadcast(encode_ring(ring_->handle()));
  const int sender = logits_sender(groups_.parallel);
  const std::vector<std::string> answers = channel_.gather();  // ranks 1 .. n - 1
  const std::string& answer = answers.at(static_cast<size_t>(sender - 1));
  if (answer != kRingMapped) {
    MLA_LOG_INFO("rank 0: the logits come by NCCL: rank {} {}", sender, answer);
    ring_.reset();
  }
#else
  (void)max_logit_rows;
#endif
}

DistributedRunner::~DistributedRunner() {
  try {
    while (!in_flight_.empty()) wait();
    if (dist_ != nullptr) dist_->watchdog().disarm();  // the followers close their connections next
#ifdef MLASERVE_WITH_NCCL
    if (sampling_stream_ != nullptr) {
      MLA_CUDA_CHECK(cudaStreamSynchronize(cuda_stream(sampling_stream_)));
      MLA_CUDA_CHECK(cudaStreamDestroy(cuda_stream(sampling_stream_)));
    }
#endif
  } catch (const std::exception& e) {
    MLA_LOG_ERROR("the steps in flight did not finish: {}", e.what());
  }
  if (dist_ != nullptr && dist_->failed()) return;  // the others have ended already
  try {
    channel_.broadcast(encode_stop());
  } catch (const std::exception& e) {
    MLA_LOG_ERROR("could not stop the other ranks: {}", e.what());
  }
}

DecodeGraphs* DistributedRunner::graphs() const {
#ifdef MLASERVE_WITH_CUDA
  return graphs_.get();
#else
  return nullptr;
#endif
}

void DistributedRunner::check_alive() const {
  if (dist_ != nullptr && dist_->failed()) MLA_FAIL("the split run has ended: {}", dist_->failure());
}

void DistributedRunner::fail(const std::exception& e) {
  if (dist_ != nullptr) dist_->fail(fmt::format("rank 0's step failed: {}", e.what()));
}

ModelRunnerInfo DistributedRunner::info() const {
  return model_runner_info(model_, static_cast<int32_t>(cache_.num_blocks()));
}

Tensor DistributedRunner::execute(const ForwardBatch& batch) {
  MLA_CHECK(in_flight_.empty(), "DistributedRunner: execute() with steps in flight");
  submit(batch);
  return wait();
}

void DistributedRunner::submit(const ForwardBatch& batch) {
  MLA_CHECK(static_cast<int>(in_flight_.size()) < max_in_flight_, "DistributedRunner: more than {} steps in flight",
            max_in_flight_);
  check_alive();
  if (dist_ != nullptr) dist_->watchdog().begin_step();
  try {
    queue_step(batch);
  } catch (const std::exception& e) {
    fail(e);
    throw;
  }
}

void DistributedRunner::queue_step(const ForwardBatch& batch) {
  const int64_t graph_batch = stage_graph_size(graphs(), batch);
  channel_.broadcast(encode_step(batch, graph_batch));
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size()), step = steps_++;
  if (groups_.parallel.pp_size == 1) {  // tensor parallelism only: rank 0's share ends with the logits
    in_flight_.push_back(
        {step, rows, true, stage_share(model_, cache_, batch, groups_, graphs(), graph_batch), nullptr});
    return;
  }
  stage_share(model_, cache_, batch, groups_, graphs(), graph_batch);  // stage 0: ends with the hand-off
  // Behind it, once the steps in flight fill every slot but this one's, the oldest step's logits.
  const bool full = static_cast<int>(in_flight_.size()) == max_in_flight_ - 1;
  if (full && !in_flight_.empty() && !in_flight_.front().received) receive_logits(in_flight_.front());
  in_flight_.push_back({step, rows, false, Tensor(), nullptr});
}

void DistributedRunner::receive_logits(InFlight& f) {
  if (ring_ && ring_->fits(f.rows)) {
    f.logits = ring_->take(f.step, f.rows, model_.stream());
  } else {
    f.logits = Tensor::empty({f.rows, model_.config().vocab_size}, DType::kF32, model_.weights().embed.device());
    groups_.world->recv(f.logits, logits_sender(groups_.parallel), model_.stream());
  }
  f.received = true;
#ifdef MLASERVE_WITH_NCCL
  if (f.logits.device() == Device::kCUDA) {
    cudaEvent_t arrived = nullptr;
    MLA_CUDA_CHECK(cudaEventCreateWithFlags(&arrived, cudaEventDisableTiming));
    MLA_CUDA_CHECK(cudaEventRecord(arrived, cuda_stream(model_.stream().cuda)));
    f.arrived = arrived;
  }
#endif
}

Tensor DistributedRunner::wait() {
  MLA_CHECK(!in_flight_.empty(), "DistributedRunner: wait() without a step in flight");
  InFlight f = std::move(in_flight_.front());
  in_flight_.pop_front();
  struct Ended {  // the step ended (or failed) however wait() leaves
    DistContext* dist;
    ~Ended() {
      if (dist != nullptr) dist->watchdog().end_step();
    }
  } ended{dist_};
  try {
    if (!f.received) receive_logits(f);  // no step followed it
#ifdef MLASERVE_WITH_NCCL
    if (f.arrived != nullptr) {
      // The host waits for the logits (the engine then samples them on sampling_stream(), which
      // has no GPU-side wait for them), then checks that the run did not end meanwhile: an
      // aborted receive also "arrives", with no logits in the buffer.
      const cudaError_t err = cudaEventSynchronize(cuda_event(f.arrived));
      cudaEventDestroy(cuda_event(f.arrived));
      check_alive();
      MLA_CUDA_CHECK(err);
    }
#endif
    check_alive();
  } catch (const std::exception& e) {
    fail(e);
    throw;
  }
  return std::move(f.logits);
}

namespace {

// The last stage's logits on their way to rank 0, each sent from a stream of its own once the
// model's stream has computed them: the model's stream goes on to the next step's input at once,
// and rank 0 receives them when it chooses (dist/distributed_runner.h). By rank 0's logits ring
// when this process could map it (dist/logits_ring.h: the copy engine), else by NCCL. A buffer
// goes back to the caching allocator only behind a wait of the model's stream for its send,
// queued with the next send (long completed by then), so the model's stream never reuses it early.
class LogitsSender {
 public:
  LogitsSender(Collectives* world, Stream model_stream) : world_(world), model_stream_(model_stream) {}
  LogitsSender(const LogitsSender&) = delete;
  LogitsSender& operator=(const LogitsSender&) = delete;
  ~LogitsSender() {
#ifdef MLASERVE_WITH_NCCL
    if (pending_) {  // no throw in a destructor
      cudaEventSynchronize(cuda_event(pending_->sent));
      cudaEventDestroy(cuda_event(pending_->sent));
    }
    if (stream_ != nullptr) cudaStreamDestroy(cuda_stream(stream_));
#endif
  }

  // Maps rank 0's ring (its handle message); returns kRingMapped, or why not.
  std::string map_ring(const std::string& handle) {
#ifdef MLASERVE_WITH_NCCL
    std::string why;
    ring_ = LogitsRing::open(handle, why);
    return ring_ ? std::string(kRingMapped) : "keeps NCCL: " + why;
#else
    (void)handle;
    return "keeps NCCL: built without NCCL";
#endif
  }

  // The logits of step number `step` (counted from 0 in plan order, as rank 0 counts).
  void send(Tensor logits, int64_t step) {
    if (logits.device() != Device::kCUDA) return world_->send(logits, 0, model_stream_);
#ifdef MLASERVE_WITH_NCCL
    const cudaStream_t model = cuda_stream(model_stream_.cuda);
    if (pending_) {
      MLA_CUDA_CHECK(cudaStreamWaitEvent(model, cuda_event(pending_->sent), 0));
      MLA_CUDA_CHECK(cudaEventDestroy(cuda_event(pending_->sent)));  // released once the wait has passed it
      pending_.reset();
    }
    if (stream_ == nullptr) {
      cudaStream_t s = nullptr;
      MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      stream_ = s;
    }
    cudaEvent_t computed = nullptr, sent = nullptr;
    MLA_CUDA_CHECK(cudaEventCreateWithFlags(&computed, cudaEventDisableTiming));
    MLA_CUDA_CHECK(cudaEventRecord(computed, model));
    MLA_CUDA_CHECK(cudaStreamWaitEvent(cuda_stream(stream_), computed, 0));
    MLA_CUDA_CHECK(cudaEventDestroy(computed));
    if (ring_ && ring_->fits(logits.dim(0))) {
      ring_->put(logits, step, Stream{stream_});
    } else {
      world_->send(logits, 0, Stream{stream_});
    }
    MLA_CUDA_CHECK(cudaEventCreateWithFlags(&sent, cudaEventDisableTiming));
    MLA_CUDA_CHECK(cudaEventRecord(sent, cuda_stream(stream_)));
    pending_ = Pending{std::move(logits), sent};
#endif
  }

 private:
  struct Pending {
    Tensor logits;
    void* sent;  // cudaEvent_t recorded after the send
  };

  Collectives* world_;
  Stream model_stream_;
  void* stream_ = nullptr;  // cudaStream_t, made at the first GPU send
  std::optional<Pending> pending_;
  std::unique_ptr<LogitsRing> ring_;  // rank 0's ring, mapped here
};

// The follower loop; with `dist`, its watchdog is armed inside each step and a step that throws
// ends the run on every rank.
void follow(DeepSeekModel& model, int32_t num_cache_blocks, ControlChannel& channel, const StepGroups& groups,
            int64_t max_graph_batch, DistContext* dist) {
  using Clock = std::chrono::steady_clock;
  LatentCache cache = model.make_cache(num_cache_blocks);
#ifdef MLASERVE_WITH_CUDA
  const std::unique_ptr<DecodeGraphs> owned_graphs = stage_graphs(model, cache, groups, max_graph_batch);
  DecodeGraphs* graphs = owned_graphs.get();
#else
  DecodeGraphs* graphs = nullptr;
  (void)max_graph_batch;
#endif
  int64_t steps = 0;
  // From the first plan on: the time this rank's host waited for the next plan. The step's
  // metadata uploads do not wait for the GPU (core/upload.h), so the host queues a step as soon as
  // its plan arrives, while the GPU may still run earlier ones.
  Clock::duration waited{}, total{};
  Clock::time_point first;
  const bool sends_logits = groups.parallel.pp_size > 1 && groups.parallel.rank == logits_sender(groups.parallel);
  LogitsSender logits_out(groups.world, model.stream());
  while (true) {
    const Clock::time_point t = Clock::now();
    StepMessage m;
    try {
      m = decode_message(channel.receive());
    } catch (const std::exception& e) {
      // Rank 0 is gone between steps (its own failure, another rank's, or it was killed): this
      // rank's NCCL work still queued or a logits send to it would never complete, and the
      // communicators' teardown would wait on them; fail() aborts them first.
      if (dist != nullptr) dist->fail(fmt::format("rank {}: rank 0's connection ended: {}", groups.parallel.rank, e.what()));
      throw;
    }
    if (m.kind == StepMessage::Kind::kRing) {  // before the first plan (DistributedRunner::offer_ring)
      std::string answer = "-";
      if (sends_logits) answer = logits_out.map_ring(m.ring);
      channel.send_to_leader(answer);
      continue;
    }
    if (steps > 0) waited += Clock::now() - t;
    if (steps == 0) first = Clock::now();
    if (m.kind == StepMessage::Kind::kStop) break;
    if (dist != nullptr) {
      dist->watchdog().arm();
      dist->watchdog().begin_step();
    }
    try {
      Tensor logits = stage_share(model, cache, m.batch, groups, graphs, m.graph_batch);
      if (sends_logits) logits_out.send(std::move(logits), steps);
    } catch (const std::exception& e) {
      if (dist != nullptr) dist->fail(fmt::format("rank {}'s step failed: {}", groups.parallel.rank, e.what()));
      throw;
    }
    if (dist != nullptr) {
      dist->watchdog().end_step();
      dist->watchdog().disarm();
    }
    ++steps;
  }
  if (steps > 0) total = Clock::now() - first;
  MLA_LOG_INFO("rank {}: stopped after {} steps; its host waited {:.2f} s of {:.2f} s for step plans",
               groups.parallel.rank, steps, std::chrono::duration<double>(waited).count(),
               std::chrono::duration<double>(total).count());
  if (model.stage_clock_on()) {
    std::string regions;
    for (const auto& [region, ms] : model.stage_profile()) {
      regions += fmt::format(" {} {:.3f}", region, ms / static_cast<double>(std::max<int64_t>(steps, 1)));
    }
    MLA_LOG_INFO("rank {}: GPU ms a step (stage clock):{}", groups.parallel.rank, regions);
  }
}

}  // namespace

void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, DistContext& dist, int64_t max_graph_batch) {
  MLA_CHECK(!dist.is_leader(), "rank 0 runs the engine, not a follower loop");
  follow(model, num_cache_blocks, dist.channel(), groups_of(dist), max_graph_batch, &dist);
}

void run_follower(DeepSeekModel& model, int32_t num_cache_blocks, ControlChannel& channel, const StepGroups& groups,
                  int64_t max_graph_batch) {
  follow(model, num_cache_blocks, channel, groups, max_graph_batch, nullptr);
}

}  // namespace mlaserve::dist
