// LocalCollectives: the Collectives of a group of threads in one process, over shared host
// memory. It runs a model split across ranks on the CPU backend (each rank a thread), which is
// how the CPU tests check tensor and pipeline parallelism against the unsplit model.
//
// Every rank posts its tensor and waits at a barrier; then each rank reads all posted tensors
// (sums or gathers them in rank order, in f32, so every rank gets the same bits) and waits at a
// second barrier before the tensors may change. Send/recv go through a queue per (from, to) pair.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/collectives.h"

namespace mlaserve::dist {

// The state the threads of one group share.
class LocalGroup {
 public:
  explicit LocalGroup(int size);
  int size() const { return size_; }

 private:
  friend class LocalCollectives;
  void barrier();

  const int size_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  int64_t generation_ = 0;
  std::vector<const Tensor*> posted_;
  std::map<std::pair<int, int>, std::deque<Tensor>> mail_;  // (from, to) -> tensors in flight
};

class LocalCollectives final : public Collectives {
 public:
  LocalCollectives(std::shared_ptr<LocalGroup> group, int rank);

  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  void all_reduce_sum(Tensor& t, Stream stream) override;
  void all_gather_columns(const Tensor& in, Tensor& out, Stream stream) override;
  void send(const Tensor& t, int peer, Stream stream) override;
  void recv(Tensor& t, int peer, Stream stream) override;

 private:
  std::shared_ptr<LocalGroup> group_;
  int rank_;
};

}  // namespace mlaserve::dist
