// The messages rank 0 sends every other rank (over dist/control_channel.h): "run this
// ForwardBatch" (a step plan), "here is the logits ring" (once, before the first plan:
// dist/logits_ring.h; every rank answers with send_to_leader) or "stop". A flat little-endian
// encoding of the batch's vectors; decoding checks every length against the message, so a
// truncated or corrupt message is an error, never a read past its end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/forward_batch.h"

namespace mlaserve::dist {

struct StepMessage {
  enum class Kind { kStep, kRing, kStop };
  Kind kind = Kind::kStop;
  ForwardBatch batch;       // kStep
  int64_t graph_batch = 0;  // kStep: > 0, every stage replays its decode graph of that size
  std::string ring;         // kRing: LogitsRing::handle()
};

std::string encode_step(const ForwardBatch& batch, int64_t graph_batch = 0);
std::string encode_ring(const std::string& handle);
std::string encode_stop();

StepMessage decode_message(std::string_view message);

}  // namespace mlaserve::dist
