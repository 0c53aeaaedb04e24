// Scheduler: the rule's cases one by one (decode first, chunked prefill within the budget, FIFO
// admission, preemption of the newest, prefix hits on admission), then randomised runs of add,
// step, abort and preemption against the fake runner's simulated cache, checking after every
// step that the token budget and sequence cap hold, that no block leaks, is shared while
// written or read back wrong, and at the end that every request finished with the tokens of an
// uninterrupted run.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <set>

#include "engine/batch_builder.h"
#include "engine/scheduler.h"
#include "fake_runner.h"

namespace mlaserve {
namespace {

using testing::FakeRunner;
using testing::FakeRunnerOptions;

constexpr int64_t kB = kCacheBlockSize;
constexpr int64_t kVocab = 101;

// The engine's step without sampling options or streams: schedule, run on the fake runner,
// commit, append the greedy token, finish sequences at their max_tokens.
struct Harness {
  Harness(SchedulerOptions options, int32_t num_blocks, bool prefix_caching = true)
      : runner(FakeRunnerOptions{kVocab, num_blocks, 1 << 20, {}}),
        kv({num_blocks, prefix_caching}),
        scheduler(options, kv) {}

  Sequence& add(std::vector<int32_t> prompt, int64_t max_tokens) {
    auto s = std::make_unique<Sequence>();
    s->id = static_cast<RequestId>(seqs.size());
    s->num_prompt_tokens = static_cast<int64_t>(prompt.size());
    s->tokens = std::move(prompt);
    seqs.push_back(std::move(s));
    max_tokens_of.push_back(max_tokens);
    scheduler.add(*seqs.back());
    return *seqs.back();
  }

  SchedulerOutput step() {
    SchedulerOutput out = scheduler.schedule();
    if (out.empty()) return out;
    StepBatch b = build_step_batch(out);
    Tensor logits = runner.execute(b.batch);
    scheduler.commit(out);
    for (size_t r = 0; r < b.sampled.size(); ++r) {
      Sequence& s = *out.chunks[b.sampled[r]].seq;
      const float* row = logits.data<float>() + static_cast<int64_t>(r) * kVocab;
      s.tokens.push_back(static_cast<int32_t>(std::max_element(row, row + kVocab) - row));
      if (s.num_output_tokens() >= max_tokens_of[s.id]) scheduler.remove(s);
    }
    return out;
  }

  // The randomised tests' arrivals: 0-2 requests, each a random shared prefix plus 1-64 own
  // tokens (at most max_len - 8 in all) and 1-8 output tokens, until num_requests were added.
  void add_random_requests(std::mt19937_64& rng, const std::vector<std::vector<int32_t>>& prefixes, int64_t max_len,
                           int num_requests, int& added) {
    for (int n = static_cast<int>(rng() % 3); n > 0 && added < num_requests; --n, ++added) {
      std::vector<int32_t> p = prefixes[rng() % prefixes.size()];
      for (auto m = 1 + rng() % kB; m > 0; --m) p.push_back(static_cast<int32_t>(rng() % kVocab));
      p.resize(std::min<size_t>(p.size(), static_cast<size_t>(max_len - 8)));
      add(std::move(p), 1 + static_cast<int64_t>(rng() % 8));
    }
  }

  // Every block's reference count is exactly the number of live tables that hold it; finished
  // sequences hold none.
  void check_block_references(int32_t num_blocks) {
    std::vector<int32_t> refs(static_cast<size_t>(num_blocks), 0);
    for (auto& s : seqs) {
      if (s->status == SequenceStatus::kFinished) {
        ASSERT_TRUE(s->blocks.empty());
      }
      for (BlockId b : s->blocks.blocks) ++refs[static_cast<size_t>(b)];
    }
    for (BlockId b = 0; b < num_blocks; ++b) ASSERT_EQ(kv.pool().ref_count(b), refs[static_cast<size_t>(b)]);
  }

  // Every request that was not aborted has the tokens of an uninterrupted greedy run.
  void expect_uninterrupted_tokens(const std::set<RequestId>& aborted, uint64_t seed) {
    for (auto& s : seqs) {
      if (aborted.count(s->id)) continue;
      const std::vector<int32_t> prompt(s->tokens.begin(), s->tokens.begin() + s->num_prompt_tokens);
      ASSERT_EQ(std::vector<int32_t>(s->tokens.begin() + s->num_prompt_tokens, s->tokens.end()),
                testing::reference_greedy(prompt, max_tokens_of[s->id], kVocab))
          << "seed " << seed << ", request " << s->id;
    }
  }

  FakeRunner runner;
  KvCacheManager kv;
  Scheduler scheduler;
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<int64_t> max_tokens_of;
};

// The randomised tests' limits: a budget of 1-160 tokens, 1-12 sequences, chunked prefill.
SchedulerOptions random_options(std::mt19937_64& rng) {
  SchedulerOptions opt;
  opt.max_num_batched_tokens = 1 + static_cast<int64_t>(rng() % 160);
  opt.max_num_seqs = 1 + static_cast<int64_t>(rng() % 12);
  opt.chunked_prefill = true;
  return opt;
}

std::vector<int32_t> tokens(int64_t n, int32_t salt) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + salt) % kVocab);
  return t;
}

TEST(Scheduler, RunningSequencesGetTheirTokenFirstThenPromptChunksFillTheBudget) {
  Harness h({/*max_num_batched_tokens=*/10, /*max_num_seqs=*/8, true}, 16);
  for (int i = 0; i < 3; ++i) h.add(tokens(2, i), 100);
  SchedulerOutput first = h.step();
  EXPECT_EQ(first.num_tokens, 6);
  Sequence& big = h.add(tokens(20, 9), 100);
  SchedulerOutput out = h.step();
  ASSERT_EQ(out.chunks.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out.chunks[static_cast<size_t>(i)].num_tokens, 1);
  EXPECT_EQ(out.chunks[3].seq, &big);
  EXPECT_EQ(out.chunks[3].num_tokens, 7);
  EXPECT_FALSE(out.chunks[3].samples);
  EXPECT_EQ(out.num_tokens, 10);
  out = h.step();  // the decoders again, then the prompt's next chunk
  EXPECT_EQ(out.chunks[3].context_len, 7);
  EXPECT_EQ(out.chunks[3].num_tokens, 7);
  out = h.step();
  EXPECT_EQ(out.chunks[3].num_tokens, 6);
  EXPECT_TRUE(out.chunks[3].samples);
  EXPECT_EQ(big.num_output_tokens(), 1);
}

TEST(Scheduler, WithoutChunkedPrefillAPromptWaitsUntilItFitsWhole) {
  Harness h({10, 8, /*chunked_prefill=*/false}, 16);
  h.add(tokens(4, 0), 100);
  h.add(tokens(4, 1), 100);
  Sequence& c = h.add(tokens(5, 2), 100);
  SchedulerOutput out = h.step();
  EXPECT_EQ(out.chunks.size(), 2u);  // 4 + 4; 5 more would exceed 10
  out = h.step();                     // 1 + 1 + 5
  ASSERT_EQ(out.chunks.size(), 3u);
  EXPECT_EQ(out.chunks[2].seq, &c);
  EXPECT_EQ(out.chunks[2].num_tokens, 5);
}

TEST(Scheduler, AdmissionIsFifoAndStopsAtTheFirstRequestThatDoesNotFit) {
  Harness h({1000, 8, true}, 3);
  h.add(tokens(kB, 0), 100);      // one block, then a second once it generates
  h.step();
  Sequence& a = h.add(tokens(2 * kB, 1), 10);  // two blocks: only one is left
  Sequence& b = h.add(tokens(3, 2), 10);       // would fit, but must not overtake a
  SchedulerOutput out = h.step();
  EXPECT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(a.status, SequenceStatus::kWaiting);
  EXPECT_EQ(b.status, SequenceStatus::kWaiting);
}

TEST(Scheduler, WhenBlocksRunOutTheNewestRunningSequenceIsPreemptedAndRecomputedLater) {
  Harness h({1000, 8, true}, 2, /*prefix_caching=*/false);
  Sequence& old_seq = h.add(tokens(kB, 0), 3);
  Sequence& new_seq = h.add(tokens(kB, 1), 3);
  SchedulerOutput out = h.step();  // both prompts, one block each; both sample
  ASSERT_EQ(out.chunks.size(), 2u);
  out = h.step();  // both need a second block: the newest gives way
  ASSERT_EQ(out.preempted.size(), 1u);
  EXPECT_EQ(out.preempted[0], &new_seq);
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].seq, &old_seq);
  EXPECT_EQ(new_seq.status, SequenceStatus::kWaiting);
  EXPECT_TRUE(new_seq.blocks.empty());
  EXPECT_EQ(new_seq.num_computed, 0);
  EXPECT_EQ(new_seq.num_output_tokens(), 1);  // kept: recomputed, not regenerated
  while (h.scheduler.has_unfinished()) h.step();
  EXPECT_EQ(old_seq.num_output_tokens(), 3);
  EXPECT_EQ(new_seq.num_output_tokens(), 3);
  EXPECT_EQ(new_seq.num_preemptions, 1);
  EXPECT_EQ(std::vector<int32_t>(new_seq.tokens.begin() + kB, new_seq.tokens.end()),
            testing::reference_greedy(tokens(kB, 1), 3, kVocab));
  EXPECT_EQ(h.kv.num_available_blocks(), 2);
}

TEST(Scheduler, AdmissionTakesCachedPrefixBlocksAndComputesTheRest) {
  Harness h({1000, 8, true}, 8);
  std::vector<int32_t> shared = tokens(2 * kB + 10, 3);
  h.add(shared, 1);
  h.step();  // computes and indexes two full blocks, then finishes
  std::vector<int32_t> second = shared;
  second.resize(2 * kB + 3);
  Sequence& s = h.add(second, 1);
  SchedulerOutput out = h.step();
  ASSERT_EQ(out.chunks.size(), 1u);
  EXPECT_EQ(out.chunks[0].context_len, 2 * kB);
  EXPECT_EQ(out.chunks[0].num_tokens, 3);
  EXPECT_EQ(s.num_cached_prompt_tokens, 2 * kB);
  EXPECT_EQ(h.scheduler.stats().prefix_hit_tokens, 2 * kB);
  EXPECT_EQ(s.tokens.back(), testing::reference_greedy(second, 1, kVocab)[0]);
}

// Steps in flight: a sequence that needs a block while the only others holding blocks are in
// flight waits (no self-preemption, its blocks kept); once they return, the newest is preempted.
TEST(Scheduler, ASequenceWaitsForBlocksHeldByStepsInFlightThenPreemptsTheNewest) {
  Harness h({/*max_num_batched_tokens=*/kB, /*max_num_seqs=*/8, true}, 2, /*prefix_caching=*/false);
  Sequence& a = h.add(tokens(kB, 1), 10);
  Sequence& b = h.add(tokens(kB, 2), 10);
  const SchedulerOutput sa = h.scheduler.schedule();  // a's prompt: the whole budget
  const SchedulerOutput sb = h.scheduler.schedule();  // b's prompt, while a's is in flight
  ASSERT_EQ(sa.chunks.size(), 1u);
  ASSERT_EQ(sb.chunks.size(), 1u);
  EXPECT_EQ(sa.chunks[0].seq, &a);
  EXPECT_EQ(sb.chunks[0].seq, &b);
  EXPECT_TRUE(h.scheduler.schedule().empty());  // nothing left that is not in flight
  h.scheduler.commit(sa);
  a.tokens.push_back(7);  // a's 65th token needs a second block; b (in flight) holds it
  const SchedulerOutput waits = h.scheduler.schedule();
  EXPECT_TRUE(waits.empty());
  EXPECT_TRUE(waits.preempted.empty());
  EXPECT_EQ(a.status, SequenceStatus::kRunning);
  EXPECT_EQ(a.blocks.blocks.size(), 1u);
  h.scheduler.commit(sb);
  b.tokens.push_back(7);
  const SchedulerOutput next = h.scheduler.schedule();  // b is back: the newest, preempted for a
  ASSERT_EQ(next.chunks.size(), 1u);
  EXPECT_EQ(next.chunks[0].seq, &a);
  ASSERT_EQ(next.preempted.size(), 1u);
  EXPECT_EQ(next.preempted[0], &b);
  EXPECT_EQ(b.status, SequenceStatus::kWaiting);
  h.scheduler.commit(next);
  h.scheduler.remove(a);
  h.scheduler.remove(b);
  EXPECT_EQ(h.kv.num_available_blocks(), 2);
}

TEST(Scheduler, NeverRunsMoreThanMaxNumSeqs) {
  Harness h({1000, 2, true}, 16);
  for (int i = 0; i < 5; ++i) h.add(tokens(3, i), 4);
  while (h.scheduler.has_unfinished()) {
    SchedulerOutput out = h.step();
    EXPECT_LE(out.chunks.size(), 2u);
    EXPECT_LE(h.scheduler.num_running(), 2u);
  }
}

// Randomised: requests with shared prefixes arrive over time, some are aborted, the pool is
// small enough to preempt. Checked after every step and at the end (see the file comment).
TEST(Scheduler, RandomWorkloadsKeepBudgetsNeverLeakBlocksAndFinishEveryRequest) {
  int64_t total_preemptions = 0, total_hits = 0;
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    std::mt19937_64 rng(seed);
    const SchedulerOptions opt = random_options(rng);
    const int64_t max_len = 3 * kB;
    const auto num_blocks = static_cast<int32_t>(blocks_for_tokens(max_len) + rng() % 10);
    Harness h(opt, num_blocks, rng() % 4 != 0);
    std::vector<std::vector<int32_t>> prefixes;
    for (int i = 0; i < 3; ++i) prefixes.push_back(tokens(static_cast<int64_t>(rng() % (2 * kB)), i));
    std::set<RequestId> aborted;
    const int num_requests = 30;
    int added = 0, steps = 0;
    while (added < num_requests || h.scheduler.has_unfinished()) {
      ASSERT_LT(++steps, 20000) << "seed " << seed << ": requests starve";
      h.add_random_requests(rng, prefixes, max_len, num_requests, added);
      if (rng() % 10 == 0) {  // abort a random unfinished request
        std::vector<Sequence*> live;
        for (auto& s : h.seqs) {
          if (s->status != SequenceStatus::kFinished) live.push_back(s.get());
        }
        if (!live.empty()) {
          Sequence* s = live[rng() % live.size()];
          aborted.insert(s->id);
          h.scheduler.remove(*s);
        }
      }
      const bool had_work = h.scheduler.has_unfinished();
      SchedulerOutput out = h.step();
      ASSERT_TRUE(!had_work || !out.empty() || !out.preempted.empty()) << "a step with work scheduled nothing";
      ASSERT_LE(out.num_tokens, opt.max_num_batched_tokens);
      ASSERT_LE(static_cast<int64_t>(out.chunks.size()), opt.max_num_seqs);
      ASSERT_LE(static_cast<int64_t>(h.scheduler.num_running()), opt.max_num_seqs);
      int64_t sum = 0;
      std::set<const Sequence*> seen;
      for (const ScheduledChunk& c : out.chunks) {
        ASSERT_GE(c.num_tokens, 1);
        ASSERT_TRUE(seen.insert(c.seq).second) << "a sequence scheduled twice in one step";
        sum += c.num_tokens;
      }
      for (const Sequence* p : out.preempted) ASSERT_FALSE(seen.count(p)) << "a preempted sequence ran";
      ASSERT_EQ(sum, out.num_tokens);
      ASSERT_NO_FATAL_FAILURE(h.check_block_references(num_blocks));
    }
    EXPECT_EQ(h.kv.num_available_blocks(), num_blocks) << "seed " << seed << ": blocks leaked";
    ASSERT_NO_FATAL_FAILURE(h.expect_uninterrupted_tokens(aborted, seed));
    total_preemptions += h.scheduler.stats().num_preemptions;
    total_hits += h.scheduler.stats().prefix_hit_tokens;
  }
  EXPECT_GT(total_preemptions, 0) << "the workloads never preempted";
  EXPECT_GT(total_hits, 0) << "the workloads never hit the prefix cache";
}

// Steps in flight (a pipelined runner): up to k steps are scheduled before the oldest commits.
// Randomised as above, with aborts that reach sequences in flight (they are removed when their
// step returns, as the engine does). After every schedule: the steps in flight hold disjoint
// sequences, each within the token budget and max_num_seqs; after every commit: reference counts
// equal the live tables' holdings; at the end no block is leaked and every request that was not
// aborted has the tokens of an uninterrupted run.
TEST(Scheduler, StepsInFlightHoldDisjointSequencesAndKeepBudgetsAndBlocks) {
  int64_t total_preemptions = 0, total_deferred_aborts = 0, most_in_flight = 0;
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    std::mt19937_64 rng(seed);
    const auto k = static_cast<size_t>(2 + seed % 3);
    const SchedulerOptions opt = random_options(rng);
    const int64_t max_len = 3 * kB;
    const auto num_blocks = static_cast<int32_t>(blocks_for_tokens(max_len) + rng() % 12);
    Harness h(opt, num_blocks, rng() % 4 != 0);
    std::vector<std::vector<int32_t>> prefixes;
    for (int i = 0; i < 3; ++i) prefixes.push_back(tokens(static_cast<int64_t>(rng() % (2 * kB)), i));
    struct Flight {
      SchedulerOutput out;
      StepBatch batch;
      Tensor logits;
    };
    std::deque<Flight> flight;
    std::set<RequestId> aborted;
    std::set<Sequence*> abort_pending;  // aborted while in flight
    const int num_requests = 30;
    int added = 0, steps = 0;
    while (added < num_requests || h.scheduler.has_unfinished()) {
      ASSERT_LT(++steps, 20000) << "seed " << seed << ": requests starve";
      h.add_random_requests(rng, prefixes, max_len, num_requests, added);
      if (rng() % 8 == 0) {  // abort a random unfinished request
        std::vector<Sequence*> live;
        for (auto& s : h.seqs) {
          if (s->status != SequenceStatus::kFinished && !abort_pending.count(s.get())) live.push_back(s.get());
        }
        if (!live.empty()) {
          Sequence* s = live[rng() % live.size()];
          aborted.insert(s->id);
          if (h.scheduler.in_flight(*s)) {
            EXPECT_THROW(h.scheduler.remove(*s), Error);
            abort_pending.insert(s);
            ++total_deferred_aborts;
          } else {
            h.scheduler.remove(*s);
          }
        }
      }
      // Queue steps up to k (sometimes fewer), each from the sequences not in flight.
      while (flight.size() < k && (flight.empty() || rng() % 4 != 0)) {
        SchedulerOutput out = h.scheduler.schedule();
        if (out.empty()) break;
        ASSERT_LE(out.num_tokens, opt.max_num_batched_tokens);
        ASSERT_LE(static_cast<int64_t>(out.chunks.size()), opt.max_num_seqs);
        std::set<const Sequence*> others;
        for (const Flight& f : flight) {
          for (const ScheduledChunk& c : f.out.chunks) others.insert(c.seq);
        }
        int64_t sum = 0;
        for (const ScheduledChunk& c : out.chunks) {
          ASSERT_TRUE(others.insert(c.seq).second) << "seed " << seed << ": a sequence in two steps in flight";
          ASSERT_TRUE(h.scheduler.in_flight(*c.seq));
          sum += c.num_tokens;
        }
        for (const Sequence* p : out.preempted) ASSERT_FALSE(others.count(p)) << "a sequence in flight was preempted";
        ASSERT_EQ(sum, out.num_tokens);
        StepBatch b = build_step_batch(out);
        Tensor logits = h.runner.execute(b.batch);  // writes the cache now; its tokens come at commit
        flight.push_back({std::move(out), std::move(b), std::move(logits)});
        most_in_flight = std::max<int64_t>(most_in_flight, static_cast<int64_t>(flight.size()));
      }
      ASSERT_LE(static_cast<int64_t>(h.scheduler.num_running()), static_cast<int64_t>(k) * opt.max_num_seqs);
      if (flight.empty()) continue;
      Flight f = std::move(flight.front());
      flight.pop_front();
      h.scheduler.commit(f.out);
      for (size_t r = 0; r < f.batch.sampled.size(); ++r) {
        Sequence& s = *f.out.chunks[f.batch.sampled[r]].seq;
        if (abort_pending.count(&s)) continue;
        const float* row = f.logits.data<float>() + static_cast<int64_t>(r) * kVocab;
        s.tokens.push_back(static_cast<int32_t>(std::max_element(row, row + kVocab) - row));
        if (s.num_output_tokens() >= h.max_tokens_of[s.id]) h.scheduler.remove(s);
      }
      for (const ScheduledChunk& c : f.out.chunks) {
        if (abort_pending.erase(c.seq)) h.scheduler.remove(*c.seq);
      }
      ASSERT_NO_FATAL_FAILURE(h.check_block_references(num_blocks));
    }
    EXPECT_EQ(h.scheduler.num_in_flight(), 0u);
    EXPECT_EQ(h.kv.num_available_blocks(), num_blocks) << "seed " << seed << ": blocks leaked";
    ASSERT_NO_FATAL_FAILURE(h.expect_uninterrupted_tokens(aborted, seed));
    total_preemptions += h.scheduler.stats().num_preemptions;
  }
  EXPECT_GT(total_preemptions, 0) << "the workloads never preempted";
  EXPECT_GT(total_deferred_aborts, 0) << "no abort reached a sequence in flight";
  EXPECT_GE(most_in_flight, 4) << "never four steps in flight";
}

}  // namespace
}  // namespace mlaserve
