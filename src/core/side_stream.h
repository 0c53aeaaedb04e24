// SideStream: a second GPU stream for a branch of a step that does not depend on the work beside
// it, so that two chains of small kernels overlap (at decode sizes each kernel holds a few SMs
// and the step is a serial chain of them; DeepSeekModel runs the shared experts beside the
// router and the routed experts).
//
//   SideStream side = SideStream::create(true);  // once, next to the main stream
//   {
//     ForkedBranch branch(side, main);   // the side stream waits for main's queued work
//     queue_on(branch.stream());         // the branch
//     queue_on(main);                    // the work beside it
//     branch.join();                     // main waits for the branch (also on destruction)
//   }
//
// Between fork and join, GPU blocks freed on this thread are held back (DeferFreesScope,
// below), since the two streams are not ordered against each other. Both streams
// can be captured into one CUDA graph: the fork's event pulls the side stream into the capture
// and the join merges it back. A disabled SideStream (the default; CPU models) runs the branch on
// the main stream, in order.
#pragma once

#include <optional>

#include "core/stream.h"

namespace mlaserve {

// Deferred frees, for work forked onto a second stream (SideStream below). The caching
// allocator's reuse is stream-ordered: a freed block's next owner queues its work behind the old
// owner's on the same stream. Between a fork and its join two streams run unordered, so a block
// freed by one branch must not go to the other. While a DeferFreesScope is alive on a thread, GPU
// blocks freed on that thread are held back; the scope's end (after the join is queued) releases
// them. Scopes nest: an inner scope's blocks pass to the outer one.
class DeferFreesScope {
 public:
  DeferFreesScope();
  ~DeferFreesScope();
  DeferFreesScope(const DeferFreesScope&) = delete;
  DeferFreesScope& operator=(const DeferFreesScope&) = delete;

 private:
  void* previous_ = nullptr;  // the enclosing scope's list
  void* held_ = nullptr;      // this scope's list of blocks
};

class SideStream {
 public:
  SideStream() = default;  // disabled
  static SideStream create(bool on_gpu);  // on_gpu: a non-blocking CUDA stream and two events
  ~SideStream();
  SideStream(SideStream&& other) noexcept;
  SideStream& operator=(SideStream&& other) noexcept;
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  bool enabled() const { return stream_ != nullptr; }

 private:
  friend class ForkedBranch;
  void* stream_ = nullptr;  // cudaStream_t
  void* forked_ = nullptr;  // cudaEvent_t recorded on the main stream at a fork
  void* joined_ = nullptr;  // cudaEvent_t recorded on the side stream at a join
};

class ForkedBranch {
 public:
  ForkedBranch(SideStream& side, Stream main);
  ~ForkedBranch();  // joins if join() was not called (never throws)
  ForkedBranch(const ForkedBranch&) = delete;
  ForkedBranch& operator=(const ForkedBranch&) = delete;

  Stream stream() const { return branch_; }  // where the branch's work goes
  void join();

 private:
  SideStream& side_;
  Stream main_, branch_;
  bool joined_ = false;
  std::optional<DeferFreesScope> defer_;
};

}  // namespace mlaserve
