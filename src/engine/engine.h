// Engine: requests in, token (and text) streams out, over one ModelRunner.
//
// Front door (thread-safe, for the server's threads):
//   std::shared_ptr<RequestStream> s = engine.add_request(GenerationRequest{prompt, params});
//       validates (throws mlaserve::Error with a message for the API's 400 reply) and queues;
//       the request joins the scheduler at the start of the next step
//   engine.abort(s->id());   the request ends at the start of the next step: its blocks
//       return to the pool before that step schedules, and its stream gets a final kAbort event
//   s->next() / s->try_next()   the request's events (request.h: RequestOutput)
// The loop runs on a thread of its own (start() / stop()), or a caller drives it with step()
// (benchmarks, tests); never both at once.
//
// One step (step()):
//   1. take new requests and aborts from the front door;
//   2. while fewer than ModelRunner::max_in_flight() steps are in flight: Scheduler::schedule()
//      picks the chunks of sequences not in flight (scheduler.cc states the rule),
//      build_step_batch() lays them out, ModelRunner::submit() queues them;
//   3. ModelRunner::wait() gives the oldest step's logits; Scheduler::commit() advances its
//      sequences and indexes their full blocks;
//   4. for each of its sequences that samples: penalties + sampling (sampler.h), the token
//      appended, stop conditions checked (EOS, stop ids, stop strings, max_tokens), an event
//      streamed; finished sequences leave the scheduler and free their blocks.
// With a synchronous runner (one step in flight) that is schedule, execute, sample. With a
// pipelined one (a model split into stages, dist/distributed_runner.h) the next steps are
// already queued, from other sequences, while the oldest runs: while stage 1 runs step n,
// stage 0 runs step n + 1. An abort of a sequence in flight takes effect when its step returns:
// its blocks are written until then, so they are freed only then, and it samples no token.
// A step that throws fails only the requests in it (kError); the engine keeps serving.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/region_timer.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/text_decoder.h"
#include "kv/kv_cache_manager.h"

namespace mlaserve {

struct ActiveRequest;  // engine.cc: a request between add_request and its final event

struct EngineOptions {
  SchedulerOptions scheduler;
  bool enable_prefix_caching = true;
  // Longest prompt + output. 0: the model's max_position_embeddings, capped by the cache (one
  // sequence of max_model_len tokens must fit in the whole pool).
  int64_t max_model_len = 0;
  int32_t max_logprobs = 20;  // the largest SamplingParams::logprobs accepted
  uint64_t seed = 0;          // requests without a seed get one derived from it and their id
  bool profile = false;       // time the host phases of every step (Engine::profile())
};

struct EngineStats {
  int64_t num_steps = 0;
  int64_t num_running = 0;
  int64_t num_waiting = 0;
  int64_t num_preemptions = 0;
  int64_t prefix_query_tokens = 0;
  int64_t prefix_hit_tokens = 0;
  int64_t num_scheduled_tokens = 0;  // all tokens run through the model
  int64_t num_generated_tokens = 0;
  int32_t num_cache_blocks = 0;
  int32_t num_free_blocks = 0;  // free or evictable
};

class Engine {
 public:
  // `runner` (and `text`, if given) must outlive the engine. Without `text`, requests get no
  // text and may not use stop strings.
  Engine(ModelRunner& runner, EngineOptions options = {}, const TextDecoderFactory* text = nullptr);
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- Front door: any thread ----
  std::shared_ptr<RequestStream> add_request(GenerationRequest request);
  // Ends a request (no-op if it is unknown or already finished).
  void abort(RequestId id);
  EngineStats stats() const;
  // With EngineOptions::profile: milliseconds spent in each phase of step() (schedule,
  // build_batch, execute, sample) summed over the steps. Loop thread (or step()'s caller) only.
  const RegionTotals& profile() const { return profile_; }
  int64_t max_model_len() const { return max_model_len_; }
  int64_t vocab_size() const { return info_.vocab_size; }

  // ---- The loop ----
  // Runs steps on a background thread until stop().
  void start();
  // Stops the background loop (if any); every unfinished request ends with kAbort.
  void stop();
  // Runs one step on the calling thread (queues steps up to the runner's limit, completes the
  // oldest); false when there was nothing to run.
  bool step();
  // Whether some request has not had its final event yet. Any thread.
  bool has_unfinished() const { return num_unfinished_.load() > 0; }

 private:
  void run_loop();
  // A scheduled step between submit and its logits.
  struct InFlightStep {
    SchedulerOutput out;
    std::vector<size_t> sampled;  // per logits row: its chunk in out.chunks
  };
  void take_front_door();
  void submit(SchedulerOutput out);
  void complete_oldest();
  // Waits for every step in flight and commits it without sampling (before the engine ends
  // its requests: their blocks may be freed only once no step writes them).
  void drain();
  // Ends the requests of a step that failed (kError).
  void fail_step(const SchedulerOutput& out, const std::string& error);
  void sample_and_stream(const SchedulerOutput& out, const std::vector<size_t>& sampled, Tensor& logits);
  // sample_tokens for the rows of logits [B, V] f32 that on_host names, by row (the others left
  // default): host logits in place (every row), GPU ones through host copies of those rows.
  std::vector<SampledToken> sample_on_host(Tensor& logits, std::span<const SamplerRow> inputs,
                                           const std::function<bool(size_t)>& on_host);
  // The stop conditions after a token was sampled; fills the event, returns why it finished.
  FinishReason accept_token(ActiveRequest& r, const SampledToken& token, RequestOutput& event);
  // Ends a request: out of the scheduler (blocks freed), final event, forgotten.
  void finish(ActiveRequest& r, RequestOutput event);
  // Ends every request (those still at the front door too).
  void finish_all(FinishReason reason, const std::string& error);
  void publish_stats();

  ModelRunner& runner_;
  const ModelRunnerInfo info_;
  const EngineOptions options_;
  const TextDecoderFactory* text_;
  int64_t max_model_len_ = 0;
  KvCacheManager kv_;
  Scheduler scheduler_;
  std::unordered_map<RequestId, std::unique_ptr<ActiveRequest>> requests_;  // loop thread only
  std::deque<InFlightStep> in_flight_;  // submitted, oldest first; loop thread only
  int64_t num_steps_ = 0, num_scheduled_tokens_ = 0, num_generated_tokens_ = 0;
  RegionTimer timer_;  // host phases, when profiling
  RegionTotals profile_;

  // Shared with the front door, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<ActiveRequest>> pending_adds_;
  std::vector<RequestId> pending_aborts_;
  bool stop_requested_ = false;
  EngineStats stats_;
  std::atomic<RequestId> next_id_{1};
  std::atomic<int64_t> num_unfinished_{0};
  std::thread loop_;
};

}  // namespace mlaserve
