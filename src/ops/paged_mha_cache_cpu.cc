// CPU reference of write_mha_cache / gather_mha_cache (see paged_mha_cache.h).
#include <algorithm>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/paged_mha_cache.h"

namespace mlaserve::ops {
namespace {

void check_cache(std::string_view op, const Tensor& cache, const Tensor& k, const Tensor& v) {
  cpu::check_f32_or_bf16(op, "cache", cache);
  cpu::check_f32(op, "k", k);
  cpu::check_f32(op, "v", v);
  MLA_CHECK(cache.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3 && k.dim(0) == v.dim(0) && k.dim(1) == v.dim(1) &&
                k.dim(1) * (k.dim(2) + v.dim(2)) == cache.dim(2),
            "{}: k {} [T, n, dqk] and v {} [T, n, dv] must fill cache rows of {} [num_blocks, block_size, "
            "n * (dqk + dv)]",
            op, shape_str(k.shape()), shape_str(v.shape()), shape_str(cache.shape()));
}

}  // namespace

void write_mha_cache_cpu(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& cache) {
  constexpr std::string_view kOp = "write_mha_cache_cpu";
  check_cache(kOp, cache, k, v);
  cpu::check_index(kOp, "slot_mapping", slot_mapping);
  const int64_t t = k.dim(0), kw = k.dim(1) * k.dim(2), vw = v.dim(1) * v.dim(2), d = kw + vw;
  cpu::check_shape(kOp, "slot_mapping", slot_mapping, {t});
  const int64_t slots = cache.dim(0) * cache.dim(1);
  std::vector<float> row(static_cast<size_t>(d));
  for (int64_t i = 0; i < t; ++i) {
    const int64_t slot = cpu::index_at(slot_mapping, i);
    if (slot == -1) continue;
    MLA_CHECK(slot >= 0 && slot < slots, "{}: slot_mapping[{}] = {} outside [0, {}) for cache {}", kOp, i, slot,
              slots, shape_str(cache.shape()));
    std::copy_n(k.data<float>() + i * kw, kw, row.begin());
    std::copy_n(v.data<float>() + i * vw, vw, row.begin() + kw);
    if (cache.dtype() == DType::kF32) {
      std::copy(row.begin(), row.end(), cache.data<float>() + slot * d);
    } else {
      bfloat16* dst = cache.data<bfloat16>() + slot * d;
      for (int64_t c = 0; c < d; ++c) dst[c] = float_to_bf16(row[c]);
    }
  }
}

void gather_mha_cache_cpu(const Tensor& cache, const Tensor& block_table, Tensor& k, Tensor& v) {
  constexpr std::string_view kOp = "gather_mha_cache_cpu";
  check_cache(kOp, cache, k, v);
  cpu::check_host(kOp, "block_table", block_table);
  MLA_CHECK(block_table.dtype() == DType::kI32 && block_table.ndim() == 1,
            "{}: block_table {} must be I32 [max_blocks], got {}", kOp, shape_str(block_table.shape()),
            dtype_name(block_table.dtype()));
  const int64_t s = k.dim(0), kw = k.dim(1) * k.dim(2), vw = v.dim(1) * v.dim(2), d = kw + vw;
  const int64_t block_size = cache.dim(1), num_blocks = cache.dim(0);
  MLA_CHECK(s <= block_table.dim(0) * block_size, "{}: {} tokens need more than the {} blocks of block_table", kOp,
            s, block_table.dim(0));
  const int32_t* table = block_table.data<int32_t>();
  std::vector<float> scratch;
  for (int64_t p = 0; p < s; ++p) {
    const int32_t block = table[p / block_size];
    MLA_CHECK(block >= 0 && block < num_blocks, "{}: block_table[{}] = {} outside [0, {})", kOp, p / block_size,
              block, num_blocks);
    const float* row = cpu::f32_span(cache, (block * block_size + p % block_size) * d, d, scratch);
    std::copy_n(row, kw, k.data<float>() + p * kw);
    std::copy_n(row + kw, vw, v.data<float>() + p * vw);
  }
}

}  // namespace mlaserve::ops
