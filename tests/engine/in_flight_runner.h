// InFlightRunner: a pipelined ModelRunner made from a synchronous one, for testing the engine
// with steps in flight on the CPU (what dist::DistributedRunner does with pipeline stages).
// It holds up to k submitted steps and runs each at a random moment between its submit() and
// its wait(), in submission order as a pipeline does, so nothing may depend on when a step's
// cache writes happen. It checks the asynchronous contract as it goes:
//   - at most k steps in flight, wait() only with one in flight;
//   - no cache block that a step in flight writes appears in the block table of another step
//     in flight: that would be a sequence in two steps at once, or a block freed (abort,
//     preemption) and handed to another sequence while its step still writes it.
// A step fails at wait() when fail_at_wait says so (the batch is the step's).
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <set>

#include "core/error.h"
#include "engine/model_runner.h"
#include "kv/latent_cache.h"

namespace mlaserve::testing {

class InFlightRunner final : public ModelRunner {
 public:
  InFlightRunner(ModelRunner& inner, int max_in_flight, uint64_t seed)
      : inner_(inner), k_(max_in_flight), rng_(seed) {
    MLA_CHECK(k_ >= 1, "InFlightRunner: k = {}", k_);
  }

  ModelRunnerInfo info() const override { return inner_.info(); }
  int max_in_flight() const override { return k_; }

  Tensor execute(const ForwardBatch& batch) override {
    MLA_CHECK(steps_.empty(), "InFlightRunner: execute() with steps in flight");
    return inner_.execute(batch);
  }

  void submit(const ForwardBatch& batch) override {
    MLA_CHECK(static_cast<int>(steps_.size()) < k_, "InFlightRunner: more than {} steps in flight", k_);
    Step s{batch, written_blocks(batch), table_blocks(batch), std::nullopt};
    for (const Step& other : steps_) {
      MLA_CHECK(disjoint(s.written, other.tables) && disjoint(other.written, s.tables),
                "InFlightRunner: two steps in flight share a block that one of them writes");
    }
    steps_.push_back(std::move(s));
    max_seen = std::max(max_seen, static_cast<int>(steps_.size()));
    run_some(0);
  }

  Tensor wait() override {
    MLA_CHECK(!steps_.empty(), "InFlightRunner: wait() without a step in flight");
    run_some(1);
    Step s = std::move(steps_.front());
    steps_.pop_front();
    if (fail_at_wait && fail_at_wait(s.batch)) throw Error("the pipeline fell over");
    return std::move(*s.logits);
  }

  std::function<bool(const ForwardBatch&)> fail_at_wait;
  int max_seen = 0;  // the most steps that were in flight at once

 private:
  struct Step {
    ForwardBatch batch;
    std::set<int64_t> written, tables;  // block ids
    std::optional<Tensor> logits;       // once it ran
  };

  static std::set<int64_t> written_blocks(const ForwardBatch& b) {
    std::set<int64_t> out;
    for (int64_t slot : b.slot_mapping) out.insert(slot / kCacheBlockSize);
    return out;
  }
  static std::set<int64_t> table_blocks(const ForwardBatch& b) {
    std::set<int64_t> out;
    for (const SequenceSlice& s : b.sequences) out.insert(s.block_table.begin(), s.block_table.end());
    return out;
  }
  static bool disjoint(const std::set<int64_t>& a, const std::set<int64_t>& b) {
    return std::none_of(a.begin(), a.end(), [&](int64_t x) { return b.count(x) != 0; });
  }

  // Runs the oldest not-yet-run steps: at least `at_least`, and each further one with
  // probability 1/2.
  void run_some(size_t at_least) {
    for (Step& s : steps_) {
      if (s.logits) continue;
      if (at_least == 0 && rng_() % 2 == 0) return;
      s.logits = inner_.execute(s.batch);
      if (at_least > 0) --at_least;
    }
  }

  ModelRunner& inner_;
  const int k_;
  std::mt19937_64 rng_;
  std::deque<Step> steps_;
};

}  // namespace mlaserve::testing
