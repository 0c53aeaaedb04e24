// write_mha_cache and gather_mha_cache on the GPU (contract: ops/paged_mha_cache.h): the bf16
// paged MHA cache [num_blocks, block_size, n · (dqk + dv)], rows [K of all heads | V of all heads].
//
// Design: pure copies between row-major bf16 tensors, one thread per 16-byte unit of a cache row
// (8 channels; a 16-head row of 5120 channels is 640 units), grid-stride over (token, unit) with
// 32-bit unit indices within a row. Consecutive threads touch consecutive units, so every warp
// reads and writes full 128-byte lines. The indices are trusted as the CPU reference checks
// them, but never followed outside the cache (see the header).
#include <cuda_bf16.h>

#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/paged_mha_cache.h"

namespace mlaserve::ops {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kUnit = 8;  // bf16 channels per uint4

struct MhaCacheParams {
  uint4* cache;              // [num_blocks * block_size, k_units + v_units]
  uint4* k;                  // [rows, k_units]: read by write, written by gather
  uint4* v;                  // [rows, v_units]
  const void* slots;         // write: slot_mapping [T] i32 or i64
  const int32_t* block_ids;  // gather: block_table [max_blocks]
  int64_t rows;              // write: T new tokens; gather: S positions
  int64_t num_blocks;
  int64_t block_size;
  int32_t k_units;           // n · dqk / 8
  int32_t v_units;           // n · dv / 8
  bool slots_i64;
};

__global__ void __launch_bounds__(kThreads) write_mha_cache_kernel(MhaCacheParams p) {
  const int64_t row_units = p.k_units + p.v_units;
  const int64_t total = p.rows * row_units;
  const int64_t num_slots = p.num_blocks * p.block_size;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / row_units;
    const auto u = static_cast<int32_t>(i % row_units);
    const int64_t slot = p.slots_i64 ? static_cast<const int64_t*>(p.slots)[t] : static_cast<const int32_t*>(p.slots)[t];
    if (slot < 0 || slot >= num_slots) continue;
    p.cache[slot * row_units + u] = u < p.k_units ? p.k[t * p.k_units + u] : p.v[t * p.v_units + (u - p.k_units)];
  }
}

__global__ void __launch_bounds__(kThreads) gather_mha_cache_kernel(MhaCacheParams p) {
  const int64_t row_units = p.k_units + p.v_units;
  const int64_t total = p.rows * row_units;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t pos = i / row_units;
    const auto u = static_cast<int32_t>(i % row_units);
    const int64_t block = p.block_ids[pos / p.block_size];
    uint4 val{};
    if (block >= 0 && block < p.num_blocks) val = p.cache[(block * p.block_size + pos % p.block_size) * row_units + u];
    if (u < p.k_units) {
      p.k[pos * p.k_units + u] = val;
    } else {
      p.v[pos * p.v_units + (u - p.k_units)] = val;
    }
  }
}

MhaCacheParams check_and_make(std::string_view op, const Tensor& cache, const Tensor& k, const Tensor& v) {
  gpu::check_dtype(op, "cache", cache, DType::kBF16);
  gpu::check_dtype(op, "k", k, DType::kBF16);
  gpu::check_dtype(op, "v", v, DType::kBF16);
  MLA_CHECK(cache.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3 && k.dim(0) == v.dim(0) && k.dim(1) == v.dim(1) &&
                k.dim(1) * (k.dim(2) + v.dim(2)) == cache.dim(2),
            "{}: k {} [T, n, dqk] and v {} [T, n, dv] must fill cache rows of {} [num_blocks, block_size, "
            "n * (dqk + dv)]",
            op, shape_str(k.shape()), shape_str(v.shape()), shape_str(cache.shape()));
  const int64_t kw = k.dim(1) * k.dim(2), vw = v.dim(1) * v.dim(2);
  MLA_CHECK(kw % kUnit == 0 && vw % kUnit == 0 && gpu::aligned16(cache) && gpu::aligned16(k) && gpu::aligned16(v),
            "{}: K ({}) and V ({}) widths must be multiples of 8 channels and every tensor 16-byte aligned", op, kw,
            vw);
  MhaCacheParams p{};
  p.cache = gpu::ptr<uint4>(cache);
  p.k = gpu::ptr<uint4>(k);
  p.v = gpu::ptr<uint4>(v);
  p.rows = k.dim(0);
  p.num_blocks = cache.dim(0);
  p.block_size = cache.dim(1);
  p.k_units = static_cast<int32_t>(kw / kUnit);
  p.v_units = static_cast<int32_t>(vw / kUnit);
  return p;
}

}  // namespace

void write_mha_cache_cuda(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& cache,
                          cudaStream_t stream) {
  constexpr std::string_view kOp = "write_mha_cache_cuda";
  MhaCacheParams p = check_and_make(kOp, cache, k, v);
  gpu::check_index(kOp, "slot_mapping", slot_mapping);
  gpu::check_shape(kOp, "slot_mapping", slot_mapping, {k.dim(0)});
  if (p.rows == 0) return;
  p.slots = slot_mapping.raw();
  p.slots_i64 = slot_mapping.dtype() == DType::kI64;
  write_mha_cache_kernel<<<gpu::grid_blocks(p.rows * (p.k_units + p.v_units), kThreads), kThreads, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

void gather_mha_cache_cuda(const Tensor& cache, const Tensor& block_table, Tensor& k, Tensor& v, cudaStream_t stream) {
  constexpr std::string_view kOp = "gather_mha_cache_cuda";
  MhaCacheParams p = check_and_make(kOp, cache, k, v);
  gpu::check_dtype(kOp, "block_table", block_table, DType::kI32);
  MLA_CHECK(block_table.ndim() == 1, "{}: block_table {} must be [max_blocks]", kOp, shape_str(block_table.shape()));
  MLA_CHECK(p.rows <= block_table.dim(0) * cache.dim(1), "{}: {} tokens need more than the {} blocks of block_table",
            kOp, p.rows, block_table.dim(0));
  if (p.rows == 0) return;
  p.block_ids = gpu::ptr<const int32_t>(block_table);
  gather_mha_cache_kernel<<<gpu::grid_blocks(p.rows * (p.k_units + p.v_units), kThreads), kThreads, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops
