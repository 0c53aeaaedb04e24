#include "engine/engine.h"

#include <algorithm>

#include "core/error.h"
#include "core/logging.h"
#include "engine/batch_builder.h"
#include "engine/output_text.h"

namespace mlaserve {

struct ActiveRequest {
  Sequence seq;
  SamplingParams params;
  uint64_t seed = 0;
  int64_t max_tokens = 0;
  OutputText text;
  std::shared_ptr<RequestStream> stream;
  bool abort_requested = false;  // aborted while its step was in flight: ends when the step returns
};

namespace {

// An event carrying the request's id and usage so far, nothing new yet.
RequestOutput event_for(const ActiveRequest& r) {
  RequestOutput ev;
  ev.id = r.seq.id;
  ev.num_prompt_tokens = r.seq.num_prompt_tokens;
  ev.num_output_tokens = r.seq.num_output_tokens();
  ev.num_cached_tokens = r.seq.num_cached_prompt_tokens;
  return ev;
}

RequestOutput final_event(const ActiveRequest& r, FinishReason reason, const std::string& error) {
  RequestOutput ev = event_for(r);
  ev.finished = true;
  ev.finish_reason = reason;
  ev.error = error;
  return ev;
}

bool contains(const std::vector<int32_t>& ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

}  // namespace

Engine::Engine(ModelRunner& runner, EngineOptions options, const TextDecoderFactory* text)
    : runner_(runner),
      info_(runner.info()),
      options_(options),
      text_(text),
      kv_({info_.num_cache_blocks, options.enable_prefix_caching}),
      scheduler_(options.scheduler, kv_),
      timer_(Stream{}, /*on_gpu=*/false, options.profile) {
  const int64_t capacity = int64_t{info_.num_cache_blocks} * kCacheBlockSize;
  max_model_len_ = options_.max_model_len > 0 ? options_.max_model_len
                                              : std::min(info_.max_position_embeddings, capacity);
  MLA_CHECK(max_model_len_ >= 2 && max_model_len_ <= info_.max_position_embeddings,
            "max_model_len {} must be in [2, {}] (the model's max_position_embeddings)", max_model_len_,
            info_.max_position_embeddings);
  MLA_CHECK(max_model_len_ <= capacity, "max_model_len {} does not fit the KV cache: {} blocks hold {} tokens",
            max_model_len_, info_.num_cache_blocks, capacity);
  MLA_CHECK(options_.scheduler.chunked_prefill || options_.scheduler.max_num_batched_tokens >= max_model_len_,
            "without chunked prefill the token budget ({}) must hold a whole sequence (max_model_len {})",
            options_.scheduler.max_num_batched_tokens, max_model_len_);
  publish_stats();
}

Engine::~Engine() { stop(); }

std::shared_ptr<RequestStream> Engine::add_request(GenerationRequest request) {
  const auto n = static_cast<int64_t>(request.prompt.size());
  MLA_CHECK(n > 0, "the prompt is empty");
  for (int32_t id : request.prompt) {
    MLA_CHECK(id >= 0 && id < info_.vocab_size, "prompt token id {} outside the vocabulary [0, {})", id,
              info_.vocab_size);
  }
  validate(request.params, options_.max_logprobs, info_.vocab_size);
  MLA_CHECK(request.params.stop.empty() || text_ != nullptr, "stop strings need a tokenizer; this engine has none");
  MLA_CHECK(n < max_model_len_, "the prompt has {} tokens; the maximum context length is {} (prompt and output)", n,
            max_model_len_);
  const int64_t max_tokens = request.params.max_tokens.value_or(max_model_len_ - n);
  MLA_CHECK(max_tokens <= max_model_len_ - n,  // not n + max_tokens: a huge max_tokens would overflow
            "the prompt ({} tokens) and max_tokens ({}) exceed the maximum context length {}", n, max_tokens,
            max_model_len_);

  auto r = std::make_unique<ActiveRequest>();
  const RequestId id = next_id_++;
  r->seq.id = id;
  r->seq.tokens = std::move(request.prompt);
  r->seq.num_prompt_tokens = n;
  r->params = std::move(request.params);
  r->seed = r->params.seed.value_or(options_.seed ^ (id * 0x9e3779b97f4a7c15ull));
  r->max_tokens = max_tokens;
  if (text_ != nullptr) r->text = OutputText(text_->make(r->params.skip_special_tokens), r->params.stop);
  r->stream = std::make_shared<RequestStream>(id, std::move(request.on_output));
  std::shared_ptr<RequestStream> stream = r->stream;
  {
    std::lock_guard lock(mutex_);
    pending_adds_.push_back(std::move(r));
    ++num_unfinished_;
  }
  wake_.notify_all();
  return stream;
}

void Engine::abort(RequestId id) {
  {
    std::lock_guard lock(mutex_);
    pending_aborts_.push_back(id);
  }
  wake_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Engine::start() {
  MLA_CHECK(!loop_.joinable(), "the engine loop is already running");
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = false;
  }
  loop_ = std::thread([this] { run_loop(); });
}

void Engine::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  if (loop_.joinable()) loop_.join();
  drain();
  take_front_door();
  finish_all(FinishReason::kAbort, "");
  publish_stats();
}

void Engine::run_loop() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_requested_ || !pending_adds_.empty() || !pending_aborts_.empty() || scheduler_.has_unfinished();
      });
      if (stop_requested_) return;
    }
    try {
      step();
    } catch (const std::exception& e) {  // a bug, not a model failure (submit and complete_oldest handle those)
      MLA_LOG_ERROR("engine step failed, ending every request: {}", e.what());
      drain();
      finish_all(FinishReason::kError, e.what());
    }
  }
}

bool Engine::step() {
  MLA_CHECK(!loop_.joinable() || std::this_thread::get_id() == loop_.get_id(),
            "Engine::step() called while the background loop runs");
  timer_.mark("schedule");
  take_front_door();
  const auto max_in_flight = static_cast<size_t>(std::max(1, runner_.max_in_flight()));
  bool ran = false;
  while (in_flight_.size() < max_in_flight) {
    SchedulerOutput out = scheduler_.schedule();
    if (out.empty()) break;
    ++num_steps_;
    num_scheduled_tokens_ += out.num_tokens;
    submit(std::move(out));
    ran = true;
    timer_.mark("schedule");
  }
  if (!in_flight_.empty()) {
    complete_oldest();
    ran = true;
  }
  publish_stats();
  timer_.stop();
  timer_.add_to(profile_);
  return ran;
}

void Engine::take_front_door() {
  std::vector<std::unique_ptr<ActiveRequest>> adds;
  std::vector<RequestId> aborts;
  {
    std::lock_guard lock(mutex_);
    adds.swap(pending_adds_);
    aborts.swap(pending_aborts_);
  }
  for (std::unique_ptr<ActiveRequest>& r : adds) {
    scheduler_.add(r->seq);
    const RequestId id = r->seq.id;
    requests_.emplace(id, std::move(r));
  }
  for (RequestId id : aborts) {
    auto it = requests_.find(id);
    if (it == requests_.end()) continue;
    if (scheduler_.in_flight(it->second->seq)) {
      it->second->abort_requested = true;  // its step still writes its blocks
    } else {
      finish(*it->second, final_event(*it->second, FinishReason::kAbort, ""));
    }
  }
}

void Engine::submit(SchedulerOutput out) {
  std::vector<size_t> sampled;
  try {
    timer_.mark("build_batch");
    StepBatch step = build_step_batch(out);
    timer_.mark("submit");
    runner_.submit(step.batch);
    sampled = std::move(step.sampled);
  } catch (const std::exception& e) {
    MLA_LOG_ERROR("model step of {} tokens failed: {}", out.num_tokens, e.what());
    scheduler_.cancel(out);
    fail_step(out, e.what());
    return;
  }
  in_flight_.push_back(InFlightStep{std::move(out), std::move(sampled)});
}

void Engine::complete_oldest() {
  InFlightStep step = std::move(in_flight_.front());
  in_flight_.pop_front();
  Tensor logits;
  try {
    timer_.mark("wait");
    logits = runner_.wait();
    MLA_CHECK(logits.ndim() == 2 && logits.dim(0) == static_cast<int64_t>(step.sampled.size()) &&
                  logits.dim(1) == info_.vocab_size,
              "the model runner returned logits {} for {} sampled rows of {} tokens", shape_str(logits.shape()),
              step.sampled.size(), info_.vocab_size);
  } catch (const std::exception& e) {
    MLA_LOG_ERROR("model step of {} tokens failed: {}", step.out.num_tokens, e.what());
    scheduler_.cancel(step.out);
    fail_step(step.out, e.what());
    return;
  }
  timer_.mark("commit+sample");
  // The ids first: sampling may finish a request, and its sequence (which c.seq points to) goes.
  std::vector<RequestId> ids;
  for (const ScheduledChunk& c : step.out.chunks) ids.push_back(c.seq->id);
  scheduler_.commit(step.out);
  sample_and_stream(step.out, step.sampled, logits);
  for (RequestId id : ids) {  // aborted while in flight: they end now
    auto it = requests_.find(id);
    if (it != requests_.end() && it->second->abort_requested) {
      finish(*it->second, final_event(*it->second, FinishReason::kAbort, ""));
    }
  }
}

void Engine::drain() {
  while (!in_flight_.empty()) {
    InFlightStep step = std::move(in_flight_.front());
    in_flight_.pop_front();
    try {
      runner_.wait();
      scheduler_.commit(step.out);
    } catch (const std::exception& e) {
      MLA_LOG_ERROR("model step of {} tokens failed while draining: {}", step.out.num_tokens, e.what());
      scheduler_.cancel(step.out);
    }
  }
  // A step lost to an exception between schedule() and in_flight_ (a bug) left its sequences
  // marked; no step of theirs runs now, so they may be finished.
  scheduler_.cancel_untracked();
}

void Engine::fail_step(const SchedulerOutput& out, const std::string& error) {
  for (const ScheduledChunk& c : out.chunks) {
    ActiveRequest& r = *requests_.at(c.seq->id);
    finish(r, final_event(r, FinishReason::kError, error));
  }
}

void Engine::sample_and_stream(const SchedulerOutput& out, const std::vector<size_t>& sampled, Tensor& logits) {
  // Logits on the GPU stay there: the rows without penalties sample there in one launch and
  // only their token ids come back (sampler.h). Rows with penalties are copied to the host and
  // sample there together, as do the rows of logits on the host (side by side on its cores);
  // rows that ask for logprobs copy their row for them.
  std::vector<SamplerRow> inputs;
  for (size_t c : sampled) {
    const ActiveRequest& r = *requests_.at(out.chunks[c].seq->id);
    const std::span<const int32_t> tokens(r.seq.tokens);
    const auto prompt_len = static_cast<size_t>(r.seq.num_prompt_tokens);
    inputs.push_back(SamplerRow{&r.params, tokens.first(prompt_len), tokens.subspan(prompt_len), r.seed});
  }
  std::vector<int32_t> gpu_tokens;  // -1: sample on the host
  if (!logits.is_cpu()) gpu_tokens = sample_tokens_gpu(logits, inputs, runner_.sampling_stream());
  const auto on_host = [&](size_t row) { return gpu_tokens.empty() || gpu_tokens[row] < 0; };
  std::vector<SampledToken> host_tokens;  // by row: those on_host
  std::string host_error;
  try {
    host_tokens = sample_on_host(logits, inputs, on_host);
  } catch (const std::exception& e) {  // a bug: the rows sampled on the host fail, the others go on
    host_error = e.what();
  }
  for (size_t row = 0; row < sampled.size(); ++row) {
    ActiveRequest& r = *requests_.at(out.chunks[sampled[row]].seq->id);
    if (r.abort_requested) continue;  // ends without a token (complete_oldest)
    RequestOutput ev = event_for(r);
    FinishReason reason = FinishReason::kNone;
    try {
      MLA_CHECK(!on_host(row) || host_error.empty(), "{}", host_error);
      SampledToken token = on_host(row) ? host_tokens[row] : SampledToken{gpu_tokens[row], std::nullopt};
      MLA_CHECK(token.token >= 0, "every token of the row is masked (-inf), or its logits hold NaN");
      if (!on_host(row) && r.params.logprobs) {
        const Tensor row_logits = logits.slice(static_cast<int64_t>(row), static_cast<int64_t>(row) + 1);
        token.logprobs = token_logprobs(row_logits.to(Device::kCPU), token.token, *r.params.logprobs);
      }
      reason = accept_token(r, token, ev);
    } catch (const std::exception& e) {
      ev = final_event(r, FinishReason::kError, e.what());
      reason = FinishReason::kError;
    }
    if (reason == FinishReason::kNone) {
      r.stream->push(std::move(ev));
    } else {
      finish(r, std::move(ev));
    }
  }
}

std::vector<SampledToken> Engine::sample_on_host(Tensor& logits, std::span<const SamplerRow> inputs,
                                                 const std::function<bool(size_t)>& on_host) {
  if (logits.is_cpu()) return sample_tokens(logits, inputs);  // every row, in place
  MLA_CHECK(logits.dtype() == DType::kF32, "sample_on_host: logits must be F32, got {}", dtype_name(logits.dtype()));
  std::vector<size_t> rows;
  for (size_t row = 0; row < inputs.size(); ++row) {
    if (on_host(row)) rows.push_back(row);
  }
  std::vector<SampledToken> out(inputs.size());
  if (rows.empty()) return out;
  const size_t row_bytes = static_cast<size_t>(logits.dim(1)) * sizeof(float);
  Tensor host = Tensor::empty({static_cast<int64_t>(rows.size()), logits.dim(1)}, DType::kF32);
  std::vector<SamplerRow> host_inputs;
  for (size_t i = 0; i < rows.size(); ++i) {
    copy_bytes(static_cast<char*>(host.raw()) + i * row_bytes, Device::kCPU,
               static_cast<const char*>(logits.raw()) + rows[i] * row_bytes, logits.device(), row_bytes);
    host_inputs.push_back(inputs[rows[i]]);
  }
  const std::vector<SampledToken> drawn = sample_tokens(host, host_inputs);
  for (size_t i = 0; i < rows.size(); ++i) out[rows[i]] = drawn[i];
  return out;
}

FinishReason Engine::accept_token(ActiveRequest& r, const SampledToken& token, RequestOutput& ev) {
  r.seq.tokens.push_back(token.token);
  ++num_generated_tokens_;
  ev.token_ids.push_back(token.token);
  if (token.logprobs) ev.logprobs.push_back(*token.logprobs);
  ev.num_output_tokens = r.seq.num_output_tokens();

  FinishReason reason = FinishReason::kNone;
  if ((!r.params.ignore_eos && contains(info_.eos_token_ids, token.token)) ||
      contains(r.params.stop_token_ids, token.token)) {
    reason = FinishReason::kStop;  // the stop token's own text is not part of the output
    ev.stop_token_id = token.token;
    r.text.finish();
  } else if (r.text.append(token.token)) {
    reason = FinishReason::kStop;
  } else if (r.seq.num_output_tokens() >= r.max_tokens) {
    reason = r.text.finish() ? FinishReason::kStop : FinishReason::kLength;
  }
  ev.stop_string = r.text.matched_stop();
  ev.text = r.text.take(reason != FinishReason::kNone);
  ev.finished = reason != FinishReason::kNone;
  ev.finish_reason = reason;
  return reason;
}

void Engine::finish(ActiveRequest& r, RequestOutput event) {
  const RequestId id = r.seq.id;
  scheduler_.remove(r.seq);
  r.stream->push(std::move(event));
  requests_.erase(id);
  --num_unfinished_;
}

void Engine::finish_all(FinishReason reason, const std::string& error) {
  std::vector<RequestId> ids;
  for (const auto& [id, r] : requests_) ids.push_back(id);
  for (RequestId id : ids) {
    ActiveRequest& r = *requests_.at(id);
    finish(r, final_event(r, reason, error));
  }
}

void Engine::publish_stats() {
  EngineStats s;
  s.num_steps = num_steps_;
  s.num_running = static_cast<int64_t>(scheduler_.num_running());
  s.num_waiting = static_cast<int64_t>(scheduler_.num_waiting());
  s.num_preemptions = scheduler_.stats().num_preemptions;
  s.prefix_query_tokens = scheduler_.stats().prefix_query_tokens;
  s.prefix_hit_tokens = scheduler_.stats().prefix_hit_tokens;
  s.num_scheduled_tokens = num_scheduled_tokens_;
  s.num_generated_tokens = num_generated_tokens_;
  s.num_cache_blocks = kv_.num_blocks();
  s.num_free_blocks = kv_.num_available_blocks();
  std::lock_guard lock(mutex_);
  stats_ = s;
}

}  // namespace mlaserve
