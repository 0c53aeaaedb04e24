// The scheduling rule (DESIGN.md idea 4), in words:
//
//   Each step has a budget of max_num_batched_tokens tokens and runs at most max_num_seqs
//   sequences. There is no prefill or decode phase: every sequence simply needs its tokens that
//   are not yet in the cache computed, and the step hands out budget in this order:
//
//   1. Running sequences, oldest first. Each gets all the tokens it still needs (one for a
//      sequence that is generating, the next chunk of a prompt that did not fit last time),
//      capped by the budget left, and the blocks to hold them. When the pool has no block
//      left, the newest running sequence is preempted: its blocks are freed and it goes back
//      to the head of the waiting queue, to be recomputed from its prompt and the tokens it
//      has generated, which it keeps (nothing is lost or streamed twice). The oldest running
//      sequence therefore always makes progress, and no sequence starves.
//   2. Then, unless this step preempted, waiting sequences in FIFO order: each first takes the
//      cached blocks that already hold a prefix of its tokens, then a chunk of what remains up
//      to the budget left (the whole remainder when chunked prefill is off), and the blocks
//      for it. Admission stops at the first sequence that does not fit, so none is overtaken.
//
// A step's chunks are these sequences' token ranges; the last token of a sequence that is
// reached this step is sampled.
//
// Steps in flight (a pipelined runner, engine/model_runner.h): a step is in flight from
// schedule() until commit() (it ran) or cancel() (it failed). Its sequences are in flight with
// it, and a sequence in flight is invisible to the next schedule(): it is not scheduled again
// (its next token is not known yet), never preempted (the step still writes its blocks) and
// never removed (the engine ends an aborted one when its step returns). So the steps in flight
// hold disjoint sets of sequences, and the rule above applies to the sequences that are not in
// flight, with two changes:
//   - max_num_seqs caps one step, not all steps in flight: a step takes at most max_num_seqs
//     running sequences (when steps in flight return together there can be more; the rest go
//     to the next step), and admission stops when the running sequences outside the other
//     steps in flight reach it (so each pipeline stage gets a whole step's batch, as one GPU
//     would);
//   - the victim of a preemption is the newest running sequence not in flight. When that is the
//     sequence being scheduled itself while other steps are in flight, it is not preempted but
//     waits, keeping its blocks, and this step stops scheduling (no admission either): the
//     steps in flight return their sequences, and once none is in flight the rule is the one
//     above, under which the oldest sequence always makes progress.
#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace mlaserve {

Scheduler::Scheduler(SchedulerOptions options, KvCacheManager& kv) : options_(options), kv_(kv) {
  MLA_CHECK(options_.max_num_batched_tokens >= 1 && options_.max_num_seqs >= 1,
            "scheduler: max_num_batched_tokens ({}) and max_num_seqs ({}) must be positive",
            options_.max_num_batched_tokens, options_.max_num_seqs);
}

void Scheduler::add(Sequence& seq) {
  MLA_CHECK(seq.num_tokens() > 0 && seq.blocks.empty() && seq.num_computed == 0,
            "scheduler: request {} must arrive with tokens and nothing cached", seq.id);
  seq.status = SequenceStatus::kWaiting;
  waiting_.push_back(&seq);
}

void Scheduler::remove(Sequence& seq) {
  MLA_CHECK(!in_flight(seq), "scheduler: request {} removed while its step is in flight", seq.id);
  if (auto it = std::find(running_.begin(), running_.end(), &seq); it != running_.end()) running_.erase(it);
  if (auto it = std::find(waiting_.begin(), waiting_.end(), &seq); it != waiting_.end()) waiting_.erase(it);
  kv_.release(seq.blocks);
  seq.num_computed = 0;
  seq.status = SequenceStatus::kFinished;
}

SchedulerOutput Scheduler::schedule() {
  SchedulerOutput out;
  ScheduleState st{options_.max_num_batched_tokens, in_flight_.size(), false};
  schedule_running(out, st);
  if (out.preempted.empty() && !st.waits_for_blocks) admit_waiting(out, st);
  out.num_tokens = options_.max_num_batched_tokens - st.budget;
  return out;
}

void Scheduler::schedule_running(SchedulerOutput& out, ScheduleState& st) {
  // Victims are running sequences not in flight, the newest first; every sequence before index
  // i is in flight (an earlier step's, or scheduled earlier in this loop), so a victim sits at
  // i or after it and erasing it leaves the sequences before i in place.
  for (size_t i = 0; i < running_.size() && st.budget > 0; ++i) {
    Sequence& seq = *running_[i];
    if (in_flight(seq)) continue;
    if (static_cast<int64_t>(out.chunks.size()) == options_.max_num_seqs) break;
    const int64_t n = std::min(seq.num_tokens() - seq.num_computed, st.budget);
    MLA_CHECK(n > 0, "scheduler: running request {} has nothing to compute", seq.id);
    if (!allocate_or_preempt(seq, seq.num_computed + n, out, st)) break;
    out.chunks.push_back({&seq, seq.num_computed, n, seq.num_computed + n == seq.num_tokens()});
    in_flight_.insert(&seq);
    st.budget -= n;
  }
}

void Scheduler::admit_waiting(SchedulerOutput& out, ScheduleState& st) {
  int64_t& budget = st.budget;
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int64_t>(running_.size() - st.in_flight_before) < options_.max_num_seqs &&
         static_cast<int64_t>(out.chunks.size()) < options_.max_num_seqs) {
    Sequence& seq = *waiting_.front();
    // Always compute at least the last token: its logits give the next one.
    const int64_t hit = kv_.acquire_cached_prefix(seq.blocks, seq.tokens, seq.num_tokens() - 1);
    const int64_t remaining = seq.num_tokens() - hit;
    const int64_t n = std::min(remaining, budget);
    if ((n < remaining && !options_.chunked_prefill) || !kv_.allocate(seq.blocks, hit + n)) {
      kv_.release(seq.blocks);
      return;
    }
    stats_.prefix_query_tokens += seq.num_tokens();
    stats_.prefix_hit_tokens += hit;
    if (seq.num_preemptions == 0) seq.num_cached_prompt_tokens = hit;
    seq.num_computed = hit;
    seq.status = SequenceStatus::kRunning;
    waiting_.pop_front();
    running_.push_back(&seq);
    in_flight_.insert(&seq);
    out.chunks.push_back({&seq, hit, n, n == remaining});
    budget -= n;
  }
}

bool Scheduler::allocate_or_preempt(Sequence& seq, int64_t num_tokens, SchedulerOutput& out, ScheduleState& st) {
  while (!kv_.allocate(seq.blocks, num_tokens)) {
    auto victim = std::find_if(running_.rbegin(), running_.rend(), [&](const Sequence* s) { return !in_flight(*s); });
    MLA_CHECK(victim != running_.rend(), "scheduler: request {} is running, not in flight, and not found", seq.id);
    if (*victim == &seq && st.in_flight_before > 0) {  // wait for the steps in flight instead
      st.waits_for_blocks = true;
      return false;
    }
    Sequence& v = **victim;
    running_.erase(std::next(victim).base());
    preempt(v, out);
    if (&v == &seq) return false;
  }
  return true;
}

void Scheduler::preempt(Sequence& seq, SchedulerOutput& out) {
  kv_.release(seq.blocks);
  seq.num_computed = 0;
  seq.status = SequenceStatus::kWaiting;
  ++seq.num_preemptions;
  ++stats_.num_preemptions;
  waiting_.push_front(&seq);
  out.preempted.push_back(&seq);
}

void Scheduler::commit(const SchedulerOutput& out) {
  for (const ScheduledChunk& c : out.chunks) {
    Sequence& seq = *c.seq;
    MLA_CHECK(in_flight_.erase(&seq) == 1, "scheduler: request {} committed but not in flight", seq.id);
    MLA_CHECK(seq.num_computed == c.context_len, "scheduler: request {} changed between schedule and commit", seq.id);
    seq.num_computed = c.context_len + c.num_tokens;
    kv_.index_computed_blocks(seq.blocks, seq.tokens, seq.num_computed);
  }
}

void Scheduler::cancel(const SchedulerOutput& out) {
  for (const ScheduledChunk& c : out.chunks) {
    MLA_CHECK(in_flight_.erase(c.seq) == 1, "scheduler: request {} cancelled but not in flight", c.seq->id);
  }
}

}  // namespace mlaserve
