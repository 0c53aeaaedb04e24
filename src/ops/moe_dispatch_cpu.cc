#include <vector>

#include "ops/cpu_util.h"
#include "ops/embedding.h"
#include "ops/moe_dispatch.h"

namespace mlaserve::ops {
namespace {

void check_i32(std::string_view op, std::string_view name, const Tensor& t) {
  cpu::check_host(op, name, t);
  MLA_CHECK(t.dtype() == DType::kI32, "{}: {} {} must be I32, got {}", op, name, shape_str(t.shape()),
            dtype_name(t.dtype()));
}

}  // namespace

void moe_group_by_expert_cpu(const Tensor& expert_ids, int64_t num_experts, MoeGrouping& grouping) {
  constexpr std::string_view kOp = "moe_group_by_expert_cpu";
  check_i32(kOp, "expert_ids", expert_ids);
  MLA_CHECK(expert_ids.ndim() == 2 && num_experts >= 1, "{}: expert_ids {} must be [T, k], E = {} >= 1",
            kOp, shape_str(expert_ids.shape()), num_experts);
  const int64_t k = expert_ids.dim(1), pairs = expert_ids.numel();
  check_i32(kOp, "expert_offsets", grouping.expert_offsets);
  check_i32(kOp, "sorted_pairs", grouping.sorted_pairs);
  check_i32(kOp, "sorted_tokens", grouping.sorted_tokens);
  cpu::check_shape(kOp, "expert_offsets", grouping.expert_offsets, {num_experts + 1});
  cpu::check_shape(kOp, "sorted_pairs", grouping.sorted_pairs, {pairs});
  cpu::check_shape(kOp, "sorted_tokens", grouping.sorted_tokens, {pairs});

  const int32_t* ids = expert_ids.data<int32_t>();
  int32_t* offsets = grouping.expert_offsets.data<int32_t>();
  std::vector<int32_t> count(static_cast<size_t>(num_experts), 0);
  for (int64_t p = 0; p < pairs; ++p) {
    MLA_CHECK(ids[p] >= 0 && ids[p] < num_experts, "{}: expert_ids[{}, {}] = {} outside [0, {})", kOp,
              p / k, p % k, ids[p], num_experts);
    ++count[ids[p]];
  }
  offsets[0] = 0;
  for (int64_t e = 0; e < num_experts; ++e) offsets[e + 1] = offsets[e] + count[e];
  std::vector<int32_t> next(offsets, offsets + num_experts);  // counting sort: stable
  for (int64_t p = 0; p < pairs; ++p) {
    const int32_t pos = next[ids[p]]++;
    grouping.sorted_pairs.data<int32_t>()[pos] = static_cast<int32_t>(p);
    grouping.sorted_tokens.data<int32_t>()[pos] = static_cast<int32_t>(p / k);
  }
}

void moe_group_and_gather_cpu(const Tensor& expert_ids, int64_t num_experts, const Tensor& x, MoeGrouping& grouping,
                              Tensor& gathered) {
  moe_group_by_expert_cpu(expert_ids, num_experts, grouping);
  embedding_cpu(grouping.sorted_tokens, x, gathered);
}

void moe_combine_cpu(const Tensor& expert_out, const Tensor& sorted_pairs, const Tensor& weights, Tensor& y,
                     const MoeCombineScope& scope) {
  constexpr std::string_view kOp = "moe_combine_cpu";
  cpu::check_f32(kOp, "expert_out", expert_out);
  check_i32(kOp, "sorted_pairs", sorted_pairs);
  cpu::check_f32(kOp, "weights", weights);
  cpu::check_f32(kOp, "y", y);
  MLA_CHECK(weights.ndim() == 2 && y.ndim() == 2 && expert_out.ndim() == 2,
            "{}: weights {} must be [T, k], y {} [T, H], expert_out {} [T·k, H]", kOp,
            shape_str(weights.shape()), shape_str(y.shape()), shape_str(expert_out.shape()));
  const int64_t t = weights.dim(0), k = weights.dim(1), h = y.dim(1), pairs = t * k;
  cpu::check_shape(kOp, "y", y, {t, h});
  cpu::check_shape(kOp, "expert_out", expert_out, {pairs, h});
  cpu::check_shape(kOp, "sorted_pairs", sorted_pairs, {pairs});

  std::vector<int32_t> position(static_cast<size_t>(pairs), -1);  // pair -> sorted position
  const int32_t* sorted = sorted_pairs.data<int32_t>();
  for (int64_t pos = 0; pos < pairs; ++pos) {
    MLA_CHECK(sorted[pos] >= 0 && sorted[pos] < pairs && position[sorted[pos]] < 0,
              "{}: sorted_pairs[{}] = {} is not a permutation of [0, {})", kOp, pos, sorted[pos], pairs);
    position[sorted[pos]] = static_cast<int32_t>(pos);
  }
  int64_t lo = 0, hi = pairs;  // the sorted positions that hold rows
  if (scope.held_offsets.defined()) {
    check_i32(kOp, "held_offsets", scope.held_offsets);
    const int64_t n = scope.held_offsets.numel();
    MLA_CHECK(n >= 1, "{}: held_offsets needs an entry", kOp);
    lo = scope.held_offsets.data<int32_t>()[0];
    hi = scope.held_offsets.data<int32_t>()[n - 1];
    MLA_CHECK(0 <= lo && lo <= hi && hi <= pairs, "{}: held positions [{}, {}) outside [0, {})", kOp, lo, hi, pairs);
  }
  const float* w = weights.data<float>();
  const float* out = expert_out.data<float>();
  float* dst = y.data<float>();
  if (!scope.accumulate) y.fill_bytes(0);
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t pos = position[i * k + j];
      if (pos >= lo && pos < hi) cpu::axpy(w[i * k + j], out + pos * h, dst + i * h, h);
    }
  }
}

}  // namespace mlaserve::ops
