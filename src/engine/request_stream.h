// RequestStream: one request's events, queued by the engine's thread and taken by whoever
// submitted the request (a server connection, a benchmark). Thread-safe.
//
//   auto stream = engine.add_request(std::move(req));
//   while (auto ev = stream->next()) { ... if (ev->finished) break; }
//
// Events are never merged or dropped; after the final event (finished == true) has been
// taken, next() returns nullopt at once.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include "engine/request.h"

namespace mlaserve {

class RequestStream {
 public:
  RequestStream(RequestId id, std::function<void()> on_output);

  RequestId id() const { return id_; }

  // The next event, waiting for it; nullopt once the final event has been taken.
  std::optional<RequestOutput> next();
  // The next event if one is queued (nullopt otherwise, or once the final one was taken).
  std::optional<RequestOutput> try_next();
  // Whether the final event has been queued.
  bool finished() const;

  // Engine side: queues an event and runs the on_output callback.
  void push(RequestOutput event);

 private:
  std::optional<RequestOutput> pop_locked();

  const RequestId id_;
  const std::function<void()> on_output_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<RequestOutput> events_;
  bool final_queued_ = false;
};

}  // namespace mlaserve
