#include "ops/cpu_util.h"
#include "ops/latent_cache.h"
#include "ops/paged_cache_cpu.h"

namespace mlaserve::ops {
namespace {

void check_cache(std::string_view op, const Tensor& cache, const Tensor& latent, const Tensor& k_pe) {
  cpu::check_f32_or_bf16(op, "cache", cache);
  cpu::check_f32(op, "latent", latent);
  cpu::check_f32(op, "k_pe", k_pe);
  MLA_CHECK(cache.ndim() == 3 && latent.ndim() == 2 && k_pe.ndim() == 2 && latent.dim(0) == k_pe.dim(0) &&
                latent.dim(1) + k_pe.dim(1) == cache.dim(2),
            "{}: latent {} [T, dc] and k_pe {} [T, dr] must fill cache rows of {} [num_blocks, "
            "block_size, dc + dr]",
            op, shape_str(latent.shape()), shape_str(k_pe.shape()), shape_str(cache.shape()));
}

}  // namespace

void write_latent_cache_cpu(const Tensor& latent, const Tensor& k_pe, const Tensor& slot_mapping,
                            Tensor& cache) {
  constexpr std::string_view kOp = "write_latent_cache_cpu";
  check_cache(kOp, cache, latent, k_pe);
  cpu::write_paged_rows(kOp, latent, k_pe, slot_mapping, cache);
}

void gather_latent_cache_cpu(const Tensor& cache, const Tensor& block_table, Tensor& latent, Tensor& k_pe) {
  constexpr std::string_view kOp = "gather_latent_cache_cpu";
  check_cache(kOp, cache, latent, k_pe);
  cpu::gather_paged_rows(kOp, cache, block_table, latent, k_pe);
}

}  // namespace mlaserve::ops
