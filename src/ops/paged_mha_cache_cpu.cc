// CPU reference of write_mha_cache / gather_mha_cache (see paged_mha_cache.h).
#include "ops/cpu_util.h"
#include "ops/paged_mha_cache.h"
#include "ops/paged_cache_cpu.h"

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
  const int64_t t = k.dim(0);
  cpu::write_paged_rows(kOp, k.reshape({t, k.dim(1) * k.dim(2)}), v.reshape({t, v.dim(1) * v.dim(2)}), slot_mapping,
                        cache);
}

void gather_mha_cache_cpu(const Tensor& cache, const Tensor& block_table, Tensor& k, Tensor& v) {
  constexpr std::string_view kOp = "gather_mha_cache_cpu";
  check_cache(kOp, cache, k, v);
  const int64_t s = k.dim(0);
  Tensor k_rows = k.reshape({s, k.dim(1) * k.dim(2)}), v_rows = v.reshape({s, v.dim(1) * v.dim(2)});
  cpu::gather_paged_rows(kOp, cache, block_table, k_rows, v_rows);
}

}  // namespace mlaserve::ops
