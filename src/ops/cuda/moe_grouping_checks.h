// Host-side check of a MoeGrouping (ops/moe_dispatch.h) that a CUDA op is about to fill: the
// counting sort of moe_group_by_expert and the fused routing + gather of moe_route_and_gather
// write the same three tensors. Only src/ops/cuda includes this.
#pragma once

#include <cstdint>
#include <string_view>

#include "ops/cuda/gpu_checks.h"
#include "ops/moe_dispatch.h"

namespace mlaserve::ops::gpu {

// expert_offsets [E + 1], sorted_pairs [P] and sorted_tokens [P], all I32 on the GPU.
inline void check_grouping(std::string_view op, const MoeGrouping& g, int64_t num_experts, int64_t pairs) {
  check_dtype(op, "expert_offsets", g.expert_offsets, DType::kI32);
  check_dtype(op, "sorted_pairs", g.sorted_pairs, DType::kI32);
  check_dtype(op, "sorted_tokens", g.sorted_tokens, DType::kI32);
  check_shape(op, "expert_offsets", g.expert_offsets, {num_experts + 1});
  check_shape(op, "sorted_pairs", g.sorted_pairs, {pairs});
  check_shape(op, "sorted_tokens", g.sorted_tokens, {pairs});
}

}  // namespace mlaserve::ops::gpu
