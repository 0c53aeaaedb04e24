#include "engine/request_stream.h"

#include "core/error.h"

namespace mlaserve {

RequestStream::RequestStream(RequestId id, std::function<void()> on_output)
    : id_(id), on_output_(std::move(on_output)) {}

std::optional<RequestOutput> RequestStream::pop_locked() {
  if (events_.empty()) return std::nullopt;
  RequestOutput ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

std::optional<RequestOutput> RequestStream::next() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [&] { return !events_.empty() || final_queued_; });
  return pop_locked();
}

std::optional<RequestOutput> RequestStream::try_next() {
  std::lock_guard lock(mutex_);
  return pop_locked();
}

bool RequestStream::finished() const {
  std::lock_guard lock(mutex_);
  return final_queued_;
}

void RequestStream::push(RequestOutput event) {
  {
    std::lock_guard lock(mutex_);
    MLA_CHECK(!final_queued_, "request {}: an event after the final one", id_);
    final_queued_ = event.finished;
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
  if (on_output_) on_output_();
}

}  // namespace mlaserve
