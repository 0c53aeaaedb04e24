// Sequence: what the scheduler knows of a request. Its tokens are the prompt followed by the
// tokens generated so far; the first num_computed of them have their latent rows in the cache
// (through `blocks`). A step computes tokens [num_computed, num_computed + n); when that reaches
// the end of `tokens`, the step's last row is sampled and the new token appended, so the next
// step computes exactly that one token. There is no prefill or decode phase: a fresh request,
// a half-computed prompt and a preempted sequence being recomputed differ only in how many
// tokens they still need.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/block_table.h"

namespace mlaserve {

using RequestId = uint64_t;

enum class SequenceStatus : uint8_t {
  kWaiting,   // queued (new, or preempted: no blocks, to be recomputed)
  kRunning,   // holds blocks; scheduled every step while budget lasts
  kFinished,  // done or aborted; holds nothing
};

struct Sequence {
  RequestId id = 0;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int64_t num_prompt_tokens = 0;
  int64_t num_computed = 0;     // leading tokens whose rows are in the cache
  BlockTable blocks;
  SequenceStatus status = SequenceStatus::kWaiting;
  int64_t num_cached_prompt_tokens = 0;  // prefix-cache hit when first admitted
  int64_t num_preemptions = 0;

  int64_t num_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
};

}  // namespace mlaserve
