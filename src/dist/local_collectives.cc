#include "dist/local_collectives.h"

#include <cstring>

namespace mlaserve::dist {

LocalGroup::LocalGroup(int size) : size_(size), posted_(static_cast<size_t>(size), nullptr) {
  MLA_CHECK(size >= 1, "a group of {} ranks", size);
}

void LocalGroup::barrier() {
  std::unique_lock lock(mutex_);
  const int64_t gen = generation_;
  if (++waiting_ == size_) {
    waiting_ = 0;
    ++generation_;
    cv_.notify_all();
    return;
  }
  cv_.wait(lock, [&] { return generation_ != gen; });
}

LocalCollectives::LocalCollectives(std::shared_ptr<LocalGroup> group, int rank) : group_(std::move(group)), rank_(rank) {
  MLA_CHECK(rank >= 0 && rank < group_->size(), "rank {} outside a group of {}", rank, group_->size());
}

void LocalCollectives::all_reduce_sum(Tensor& t, Stream) {
  MLA_CHECK(t.is_cpu() && t.dtype() == DType::kF32, "LocalCollectives: all_reduce_sum needs an f32 host tensor");
  {
    std::lock_guard lock(group_->mutex_);
    group_->posted_[static_cast<size_t>(rank_)] = &t;
  }
  group_->barrier();
  std::vector<float> sum(static_cast<size_t>(t.numel()), 0.0f);
  for (const Tensor* p : group_->posted_) {  // rank order: the same sum on every rank
    MLA_CHECK(p->numel() == t.numel(), "all_reduce_sum: shapes differ across ranks");
    const float* v = p->data<float>();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += v[i];
  }
  group_->barrier();
  std::memcpy(t.raw(), sum.data(), t.nbytes());
}

void LocalCollectives::all_gather_columns(const Tensor& in, Tensor& out, Stream) {
  MLA_CHECK(in.is_cpu() && out.is_cpu() && in.ndim() == 2 && out.ndim() == 2 && in.dim(0) == out.dim(0) &&
                in.dtype() == out.dtype(),
            "LocalCollectives: all_gather_columns of {} into {}", shape_str(in.shape()), shape_str(out.shape()));
  const int64_t rows = in.dim(0), c = in.dim(1), total = out.dim(1);
  MLA_CHECK(total <= c * size(), "all_gather_columns: {} columns from {} ranks of {}", total, size(), c);
  {
    std::lock_guard lock(group_->mutex_);
    group_->posted_[static_cast<size_t>(rank_)] = &in;
  }
  group_->barrier();
  const size_t elem = dtype_size(in.dtype());
  for (int p = 0; p < size(); ++p) {
    const Tensor* src = group_->posted_[static_cast<size_t>(p)];
    const int64_t width = std::min(c, total - p * c);
    if (width <= 0) continue;
    copy_bytes_2d(static_cast<char*>(out.raw()) + p * c * elem, total * elem, Device::kCPU, src->raw(), c * elem,
                  Device::kCPU, width * elem, rows);
  }
  group_->barrier();
}

void LocalCollectives::send(const Tensor& t, int peer, Stream) {
  MLA_CHECK(t.is_cpu() && peer >= 0 && peer < size() && peer != rank_, "LocalCollectives: send to {}", peer);
  std::lock_guard lock(group_->mutex_);
  group_->mail_[{rank_, peer}].push_back(t.clone());
  group_->cv_.notify_all();
}

void LocalCollectives::recv(Tensor& t, int peer, Stream) {
  MLA_CHECK(t.is_cpu() && peer >= 0 && peer < size() && peer != rank_, "LocalCollectives: recv from {}", peer);
  std::unique_lock lock(group_->mutex_);
  auto& queue = group_->mail_[{peer, rank_}];
  group_->cv_.wait(lock, [&] { return !queue.empty(); });
  Tensor got = std::move(queue.front());
  queue.pop_front();
  MLA_CHECK(got.nbytes() == t.nbytes() && got.dtype() == t.dtype(), "recv: {} sent {}, expected {}", peer,
            shape_str(got.shape()), shape_str(t.shape()));
  std::memcpy(t.raw(), got.raw(), t.nbytes());
}

}  // namespace mlaserve::dist
