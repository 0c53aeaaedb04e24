// write_latent_cache and gather_latent_cache on the GPU (contract: ops/latent_cache.h): the bf16
// paged latent cache [num_blocks, block_size, dc + dr], rows [c_n (dc) | k_pe (dr)].
//
// Design: both are pure copies between row-major bf16 tensors (no conversion), one thread per
// 16-byte unit of a cache row (8 channels; a 576-channel row is 72 units: 64 of latent, 8 of
// k_pe), grid-stride over (token, unit) with 32-bit index arithmetic. A warp covers about half a
// row, so reads and writes are full 128-byte lines. Widths or bases that are not multiples of 8
// channels use 2-byte units (tiny test models).
//
// The indices are trusted as the CPU reference checks them, but never followed outside the
// cache: write skips a token whose slot is -1 (padding) or outside [0, num_blocks · block_size);
// gather writes zeros for a position whose block id is outside [0, num_blocks).
#include <cuda_bf16.h>

#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/latent_cache.h"

namespace mlaserve::ops {
namespace {

constexpr int kThreads = 256;

// Widths are in units of the copy (Unit = uint4: 8 bf16 channels; uint16_t: one).
template <typename Unit>
struct LatentCacheParams {
  Unit* cache;               // [num_blocks * block_size, latent_units + pe_units]
  Unit* latent;              // [T or S, latent_units]: read by write, written by gather
  Unit* k_pe;                // [T or S, pe_units]
  const void* slots;         // write: slot_mapping [T] i32 or i64
  const int32_t* block_ids;  // gather: block_table [max_blocks]
  int64_t rows;              // write: T new tokens; gather: S positions
  int64_t num_blocks;
  int64_t block_size;
  int32_t latent_units;      // dc / units
  int32_t pe_units;          // dr / units
  bool slots_i64;            // slot_mapping is i64 (else i32)
};

template <typename Unit>
__global__ void __launch_bounds__(kThreads) write_latent_cache_kernel(LatentCacheParams<Unit> p) {
  const uint32_t row_units = p.latent_units + p.pe_units;
  const auto total = static_cast<uint32_t>(p.rows * row_units);
  const int64_t num_slots = p.num_blocks * p.block_size;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const uint32_t t = i / row_units, u = i % row_units;
    const int64_t slot = p.slots_i64 ? static_cast<const int64_t*>(p.slots)[t] : static_cast<const int32_t*>(p.slots)[t];
    if (slot < 0 || slot >= num_slots) continue;
    const Unit v = u < static_cast<uint32_t>(p.latent_units) ? p.latent[int64_t{t} * p.latent_units + u]
                                                              : p.k_pe[int64_t{t} * p.pe_units + (u - p.latent_units)];
    p.cache[slot * row_units + u] = v;
  }
}

template <typename Unit>
__global__ void __launch_bounds__(kThreads) gather_latent_cache_kernel(LatentCacheParams<Unit> p) {
  const uint32_t row_units = p.latent_units + p.pe_units;
  const auto total = static_cast<uint32_t>(p.rows * row_units);
  const auto block_size = static_cast<uint32_t>(p.block_size);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const uint32_t pos = i / row_units, u = i % row_units;
    const int64_t block = p.block_ids[pos / block_size];
    Unit v{};
    if (block >= 0 && block < p.num_blocks) v = p.cache[(block * block_size + pos % block_size) * row_units + u];
    if (u < static_cast<uint32_t>(p.latent_units)) {
      p.latent[int64_t{pos} * p.latent_units + u] = v;
    } else {
      p.k_pe[int64_t{pos} * p.pe_units + (u - p.latent_units)] = v;
    }
  }
}

// Shape checks shared by both ops (all bf16 on the GPU); returns true when 16-byte units fit.
bool check_cache(std::string_view op, const Tensor& cache, const Tensor& latent, const Tensor& k_pe) {
  gpu::check_dtype(op, "cache", cache, DType::kBF16);
  gpu::check_dtype(op, "latent", latent, DType::kBF16);
  gpu::check_dtype(op, "k_pe", k_pe, DType::kBF16);
  MLA_CHECK(cache.ndim() == 3 && latent.ndim() == 2 && k_pe.ndim() == 2 && latent.dim(0) == k_pe.dim(0) &&
                latent.dim(1) + k_pe.dim(1) == cache.dim(2),
            "{}: latent {} [T, dc] and k_pe {} [T, dr] must fill cache rows of {} [num_blocks, block_size, dc + dr]",
            op, shape_str(latent.shape()), shape_str(k_pe.shape()), shape_str(cache.shape()));
  MLA_CHECK(latent.dim(0) * cache.dim(2) < (int64_t{1} << 31), "{}: {} rows; the kernels index units with 32 bits",
            op, latent.dim(0));
  return latent.dim(1) % 8 == 0 && k_pe.dim(1) % 8 == 0 && gpu::aligned16(cache) && gpu::aligned16(latent) &&
         gpu::aligned16(k_pe);
}

template <typename Unit>
LatentCacheParams<Unit> make_params(const Tensor& cache, const Tensor& latent, const Tensor& k_pe) {
  constexpr int64_t kChannels = sizeof(Unit) / sizeof(__nv_bfloat16);
  LatentCacheParams<Unit> p{};
  p.cache = gpu::ptr<Unit>(cache);
  p.latent = gpu::ptr<Unit>(latent);
  p.k_pe = gpu::ptr<Unit>(k_pe);
  p.rows = latent.dim(0);
  p.num_blocks = cache.dim(0);
  p.block_size = cache.dim(1);
  p.latent_units = static_cast<int32_t>(latent.dim(1) / kChannels);
  p.pe_units = static_cast<int32_t>(k_pe.dim(1) / kChannels);
  return p;
}

template <typename Unit>
void launch_write(const Tensor& latent, const Tensor& k_pe, const Tensor& slot_mapping, Tensor& cache,
                  cudaStream_t stream) {
  LatentCacheParams<Unit> p = make_params<Unit>(cache, latent, k_pe);
  p.slots = slot_mapping.raw();
  p.slots_i64 = slot_mapping.dtype() == DType::kI64;
  const int64_t total = p.rows * (p.latent_units + p.pe_units);
  write_latent_cache_kernel<Unit><<<gpu::grid_blocks(total, kThreads), kThreads, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

template <typename Unit>
void launch_gather(const Tensor& cache, const Tensor& block_table, Tensor& latent, Tensor& k_pe, cudaStream_t stream) {
  LatentCacheParams<Unit> p = make_params<Unit>(cache, latent, k_pe);
  p.block_ids = gpu::ptr<const int32_t>(block_table);
  const int64_t total = p.rows * (p.latent_units + p.pe_units);
  gather_latent_cache_kernel<Unit><<<gpu::grid_blocks(total, kThreads), kThreads, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void write_latent_cache_cuda(const Tensor& latent, const Tensor& k_pe, const Tensor& slot_mapping, Tensor& cache,
                             cudaStream_t stream) {
  constexpr std::string_view kOp = "write_latent_cache_cuda";
  const bool vec = check_cache(kOp, cache, latent, k_pe);
  gpu::check_index(kOp, "slot_mapping", slot_mapping);
  gpu::check_shape(kOp, "slot_mapping", slot_mapping, {latent.dim(0)});
  if (latent.dim(0) == 0) return;
  if (vec) return launch_write<uint4>(latent, k_pe, slot_mapping, cache, stream);
  launch_write<uint16_t>(latent, k_pe, slot_mapping, cache, stream);
}

void gather_latent_cache_cuda(const Tensor& cache, const Tensor& block_table, Tensor& latent, Tensor& k_pe,
                              cudaStream_t stream) {
  constexpr std::string_view kOp = "gather_latent_cache_cuda";
  const bool vec = check_cache(kOp, cache, latent, k_pe);
  gpu::check_dtype(kOp, "block_table", block_table, DType::kI32);
  MLA_CHECK(block_table.ndim() == 1, "{}: block_table {} must be [max_blocks]", kOp, shape_str(block_table.shape()));
  MLA_CHECK(latent.dim(0) <= block_table.dim(0) * cache.dim(1), "{}: {} tokens need more than the {} blocks of block_table",
            kOp, latent.dim(0), block_table.dim(0));
  if (latent.dim(0) == 0) return;
  if (vec) return launch_gather<uint4>(cache, block_table, latent, k_pe, stream);
  launch_gather<uint16_t>(cache, block_table, latent, k_pe, stream);
}

}  // namespace mlaserve::ops
