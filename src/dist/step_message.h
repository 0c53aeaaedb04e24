// The step plan rank 0 sends every other rank (over dist/control_channel.h): either "run this
// ForwardBatch" or "stop". A flat little-endian encoding of the batch's vectors; decoding checks
// every length against the message, so a truncated or corrupt message is an error, never a read
// past its end.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/forward_batch.h"

namespace mlaserve::dist {

std::string encode_step(const ForwardBatch& batch);
std::string encode_stop();

// The batch of a step message; nullopt for a stop message.
std::optional<ForwardBatch> decode_step(std::string_view message);

}  // namespace mlaserve::dist
