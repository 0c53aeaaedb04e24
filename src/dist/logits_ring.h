// LogitsRing: the pipeline's logits from the last stage to rank 0 within one machine, by the copy
// engine instead of an NCCL send/receive pair.
//
// Rank 0's GPU holds `slots` buffers of [max_rows, vocab] f32 and one int64 flag per slot, in one
// allocation that the sender's process maps (CUDA IPC). Step s uses slot s % slots. The sender
// copies the step's logits into the slot (cudaMemcpyAsync across the two GPUs: the copy engine,
// over NVLink) and then stores s into the slot's flag from a one-thread kernel (release, system
// scope); rank 0 queues, on its model stream between two shares of work, a one-warp kernel that
// spins until the flag reaches s (acquire), and reads the slot in place. So no SM waits beside
// the model's work on either GPU, and 92 MB of logits (V2-Lite, 225 rows) move at copy-engine
// speed instead of NCCL p2p's (bench/NOTES-dist.md, 2026-11-28: the NCCL transfer was inferred to
// take 3-5 ms of PP2's ~21 ms step).
//
// Reuse of a slot: the sender writes slot s % slots for step s + slots only after it has received
// that step's plan, which rank 0 sends after it has sampled step s (the engine keeps at most
// `slots` steps in flight and reads a step's logits before it queues the next).
//
// Abort: abort() sets a flag in host memory that every spinning wait also reads, so a run that
// ends (a rank lost, a step failed) never leaves rank 0's stream spinning.
//
// Handle: rank 0's create() makes the ring and handle() the message the sender's open() takes
// (it names rank 0's host: a sender on another machine cannot map it and keeps NCCL).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::dist {

class LogitsRing {
 public:
  // Rank 0: a ring on the current device.
  static std::unique_ptr<LogitsRing> create(int64_t slots, int64_t max_rows, int64_t vocab);
  // The sender: maps rank 0's ring on the current device, or returns null when it cannot (another
  // machine, no peer access between the two GPUs); `why` then says why.
  static std::unique_ptr<LogitsRing> open(const std::string& handle, std::string& why);
  ~LogitsRing();
  LogitsRing(const LogitsRing&) = delete;
  LogitsRing& operator=(const LogitsRing&) = delete;

  std::string handle() const;  // rank 0's ring only
  bool fits(int64_t rows) const { return rows <= max_rows_; }

  // The sender: queues on `stream` the copy of logits [R, vocab] f32 (R <= max_rows) into step
  // `step`'s slot and the store of `step` into its flag.
  void put(const Tensor& logits, int64_t step, Stream stream);
  // Rank 0: queues on `stream` the wait for step `step`'s flag; returns the slot's [rows, vocab]
  // view (valid until step + slots is put).
  Tensor take(int64_t step, int64_t rows, Stream stream);
  // Rank 0: ends every wait queued or to come (thread-safe, idempotent).
  void abort();

 private:
  LogitsRing() = default;
  float* slot(int64_t step) const;
  int64_t* flag(int64_t step) const;

  int64_t slots_ = 0, max_rows_ = 0, vocab_ = 0;
  void* base_ = nullptr;         // rank 0: its allocation; the sender: the mapping of it
  bool mapped_ = false;          // the sender's mapping (closed, not freed)
  int32_t* abort_flag_ = nullptr;      // rank 0: host memory mapped for the device
  int32_t* abort_on_device_ = nullptr;  // the same flag as the device addresses it
};

}  // namespace mlaserve::dist
