// Scheduler: which tokens run in the next step. The rule is stated once, in scheduler.cc.
//
// Inputs: the running and waiting queues of Sequences and the KvCacheManager. Output of
// schedule(): the step's chunks (a sequence and how many of its tokens to compute) and the
// sequences preempted to make room. commit() is called once the step's forward pass has written
// those rows: it advances each sequence and indexes its newly full blocks in the prefix cache
// (never before, so a failed step leaves no half-written block in the index). The engine then
// appends sampled tokens and remove()s finished or aborted sequences, which frees their blocks.
// With a pipelined runner several steps are in flight at once, each from schedule() to its
// commit() or, when it failed, cancel(); their sequences are disjoint (scheduler.cc).
//
// The scheduler does not own sequences; every Sequence passed to add() must stay alive until
// remove(). Not thread-safe: the engine's step loop is its only caller.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_set>
#include <vector>

#include "engine/sequence.h"
#include "kv/kv_cache_manager.h"

namespace mlaserve {

struct SchedulerOptions {
  int64_t max_num_batched_tokens = 2048;  // token budget of one step
  int64_t max_num_seqs = 256;             // sequences running at once (and so per step)
  bool chunked_prefill = true;            // false: a prompt is admitted only whole
};

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int64_t context_len = 0;  // the sequence's tokens in the cache before this step
  int64_t num_tokens = 0;   // tokens computed this step: [context_len, context_len + num_tokens)
  bool samples = false;     // the chunk reaches the sequence's last token, whose logits give the next
};

struct SchedulerOutput {
  std::vector<ScheduledChunk> chunks;  // running sequences oldest first, then newly admitted ones
  std::vector<Sequence*> preempted;    // blocks freed; back at the head of the waiting queue
  int64_t num_tokens = 0;              // sum of the chunks' tokens <= max_num_batched_tokens

  bool empty() const { return chunks.empty(); }
};

struct SchedulerStats {
  int64_t num_preemptions = 0;
  int64_t prefix_query_tokens = 0;  // tokens of sequences admitted (or re-admitted)
  int64_t prefix_hit_tokens = 0;    // of which found in the prefix cache
};

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, KvCacheManager& kv);

  const SchedulerOptions& options() const { return options_; }

  // Queues a new sequence (status kWaiting, no blocks, nothing computed) at the tail.
  void add(Sequence& seq);
  // Takes a finished or aborted sequence out of its queue and releases its blocks. Not while
  // it is in flight.
  void remove(Sequence& seq);

  // The next step, from the sequences not in flight; they are in flight from now on.
  SchedulerOutput schedule();
  // The step ran: its sequences advance, their full blocks are indexed, none is in flight.
  void commit(const SchedulerOutput& out);
  // The step failed: its sequences are no longer in flight and did not advance.
  void cancel(const SchedulerOutput& out);
  // Every step in flight has ended, but some whose SchedulerOutput was lost (an exception before
  // the engine held it) were neither committed nor cancelled: none of their sequences is in
  // flight any more, and none advanced.
  void cancel_untracked() { in_flight_.clear(); }

  bool has_unfinished() const { return !running_.empty() || !waiting_.empty(); }
  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return waiting_.size(); }
  bool in_flight(const Sequence& seq) const { return in_flight_.count(&seq) != 0; }
  size_t num_in_flight() const { return in_flight_.size(); }
  const SchedulerStats& stats() const { return stats_; }

 private:
  struct ScheduleState {
    int64_t budget;           // tokens left in this step
    size_t in_flight_before;  // sequences in the steps already in flight
    bool waits_for_blocks;    // a sequence waits for blocks the steps in flight hold
  };
  // The two stages of schedule(), each consuming st.budget.
  void schedule_running(SchedulerOutput& out, ScheduleState& st);
  void admit_waiting(SchedulerOutput& out, ScheduleState& st);
  // Grows seq's blocks to num_tokens, preempting the newest running sequences not in flight
  // until they fit. False when seq itself had to be preempted or waits (st.waits_for_blocks).
  bool allocate_or_preempt(Sequence& seq, int64_t num_tokens, SchedulerOutput& out, ScheduleState& st);
  void preempt(Sequence& seq, SchedulerOutput& out);

  SchedulerOptions options_;
  KvCacheManager& kv_;
  std::vector<Sequence*> running_;  // admission order: oldest first
  std::deque<Sequence*> waiting_;   // FIFO; preempted sequences re-enter at the head
  std::unordered_set<const Sequence*> in_flight_;  // scheduled, not yet committed or cancelled
  SchedulerStats stats_;
};

}  // namespace mlaserve
