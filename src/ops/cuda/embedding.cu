// embedding and gather_fp8_rows on the GPU (contract: ops/embedding.h): row gathers
// out[t, :] = table[ids[t], :].
//
// Design: memory-bound copy, one thread per vector of 8 elements (16 bytes of bf16) when the
// width and both bases allow it, else per element. Blocks tile the row (blockIdx.x) and walk the
// rows (blockIdx.y, grid-stride): a 7168-wide bf16 row is 896 vectors, 4 blocks of 256 threads.
// Values pass through fp32 registers, so the same kernel converts f32 <-> bf16; bf16 -> bf16 and
// f32 -> f32 are exact copies.
//
// Ids are not validated here: checking on the device would need a synchronisation to report.
// Callers validate them on the host (DeepSeekModel::forward checks every token id and logit row;
// the MoE row gather's ids come from moe_group_by_expert, in range by construction). The kernel
// still never reads outside the table: a row whose id is outside [0, V) is written as zeros.
//
// gather_fp8_rows copies bytes, two planes of rows under the same ids (the e4m3 codes and their
// f32 scales), in one launch: gather_row_units_kernel flattens (row, unit of either plane) over a
// grid-stride loop, kUnitsInFlight loads a thread before their stores, so that a narrow plane (a
// V2-Lite row's 64 bytes of scales) fills no CTA of its own. Units are 16 bytes where both
// planes' row widths and all bases allow it, else 4 or 1. The same zero rows for ids outside
// [0, T) as above.
//
// Launched with programmatic dependent launch (pdl.cuh): a CTA waits for the kernel before it
// (the final norm, before lm_head's row gather; the quantisation, before the MoE's) before its
// first load, then lets the next kernel launch.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/embedding.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "embedding_cuda";
constexpr int kThreads = 256;
constexpr int kUnitsInFlight = 4;  // gather_row_units_kernel: loads a thread issues before its stores

template <typename In, typename Out>
struct GatherRowsParams {
  const void* ids;     // [T] i32 or i64
  const In* table;     // [V, H]
  Out* out;            // [T, H]
  int64_t rows;        // T
  int64_t table_rows;  // V
  int64_t width;       // H
  bool ids_i64;        // ids are i64 (else i32)
};

// grid (ceil(H / kVec / kThreads), min(T, 65535)), block kThreads; launched with
// launch_programmatic.
template <typename In, typename Out, int kVec>
__global__ void __launch_bounds__(kThreads) gather_rows_kernel(GatherRowsParams<In, Out> p) {
  gpu::grid_dependency_wait();
  gpu::launch_dependents();
  const int64_t vectors = p.width / kVec;
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    const int64_t id = gpu::load_index(p.ids, p.ids_i64, r);
    const bool valid = id >= 0 && id < p.table_rows;
    const In* src = p.table + (valid ? id : 0) * p.width;
    Out* dst = p.out + r * p.width;
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < vectors;
         c += int64_t{gridDim.x} * blockDim.x) {
      float v[kVec];
      if (valid) {
        gpu::load_vec<kVec>(src + c * kVec, v);
      } else {
        gpu::fill_vec<kVec>(v, 0.0f);
      }
      gpu::store_vec<kVec>(dst + c * kVec, v);
    }
  }
}

template <typename In, typename Out>
void launch(const Tensor& ids, const Tensor& table, Tensor& out, cudaStream_t stream) {
  GatherRowsParams<In, Out> p{ids.raw(), gpu::ptr<const In>(table), gpu::ptr<Out>(out), out.dim(0), table.dim(0),
                              out.dim(1), ids.dtype() == DType::kI64};
  const bool vec8 = p.width % 8 == 0 && gpu::aligned16(table) && gpu::aligned16(out);
  const int64_t vectors = vec8 ? p.width / 8 : p.width;
  const dim3 grid(static_cast<unsigned>((vectors + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min<int64_t>(p.rows, 65535)));
  if (vec8) {
    gpu::launch_programmatic(gather_rows_kernel<In, Out, 8>, grid, kThreads, 0, stream, p);
  } else {
    gpu::launch_programmatic(gather_rows_kernel<In, Out, 1>, grid, kThreads, 0, stream, p);
  }
}

// Two planes of rows gathered under the same ids, in units of Unit (16, 4 or 1 bytes).
template <typename Unit>
struct GatherUnitsParams {
  const void* ids;        // [P] i32 or i64
  const Unit* src[2];     // [T, units[i]] each
  Unit* dst[2];           // [P, units[i]] each
  int64_t units[2];       // row width of each plane, in units
  int64_t rows;           // P
  int64_t table_rows;     // T
  bool ids_i64;           // ids are i64 (else i32)
};

// grid-stride over P x (units[0] + units[1]), block kThreads; launched with launch_programmatic.
template <typename Unit>
__global__ void __launch_bounds__(kThreads) gather_row_units_kernel(GatherUnitsParams<Unit> p) {
  gpu::grid_dependency_wait();
  gpu::launch_dependents();
  const int64_t row_units = p.units[0] + p.units[1], total = p.rows * row_units;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i0 = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i0 < total; i0 += stride * kUnitsInFlight) {
    Unit v[kUnitsInFlight];
    Unit* dst[kUnitsInFlight];
#pragma unroll
    for (int u = 0; u < kUnitsInFlight; ++u) {
      const int64_t i = i0 + u * stride;
      if (i >= total) continue;
      const int64_t r = i / row_units, c = i % row_units;
      const bool codes = c < p.units[0];  // selects, not an index into the parameters (no local copy)
      const int64_t col = codes ? c : c - p.units[0], width = codes ? p.units[0] : p.units[1];
      const int64_t id = gpu::load_index(p.ids, p.ids_i64, r);
      v[u] = id >= 0 && id < p.table_rows ? (codes ? p.src[0] : p.src[1])[id * width + col] : Unit{};
      dst[u] = (codes ? p.dst[0] : p.dst[1]) + r * width + col;
    }
#pragma unroll
    for (int u = 0; u < kUnitsInFlight; ++u) {
      if (i0 + u * stride < total) *dst[u] = v[u];
    }
  }
}

// src[i] [T, row_bytes[i]] and dst[i] [P, row_bytes[i]] as bytes; row_bytes[i] a multiple of
// sizeof(Unit).
template <typename Unit>
void launch_units(const Tensor& ids, const Tensor* const (&src)[2], Tensor* const (&dst)[2],
                  const int64_t (&row_bytes)[2], cudaStream_t stream) {
  GatherUnitsParams<Unit> p{};
  p.ids = ids.raw();
  for (int i = 0; i < 2; ++i) {
    p.src[i] = gpu::ptr<const Unit>(*src[i]);
    p.dst[i] = gpu::ptr<Unit>(*dst[i]);
    p.units[i] = row_bytes[i] / static_cast<int64_t>(sizeof(Unit));
  }
  p.rows = ids.dim(0);
  p.table_rows = src[0]->dim(0);
  p.ids_i64 = ids.dtype() == DType::kI64;
  const int64_t total = p.rows * (p.units[0] + p.units[1]);
  gpu::launch_programmatic(gather_row_units_kernel<Unit>, gpu::grid_blocks(total, kThreads * kUnitsInFlight),
                           kThreads, 0, stream, p);
}

}  // namespace

void embedding_cuda(const Tensor& ids, const Tensor& table, Tensor& out, cudaStream_t stream) {
  gpu::check_index(kOp, "ids", ids);
  gpu::check_f32_or_bf16(kOp, "table", table);
  gpu::check_f32_or_bf16(kOp, "out", out);
  MLA_CHECK(ids.ndim() == 1 && table.ndim() == 2, "{}: ids {} must be [T] and table {} [V, H]", kOp,
            shape_str(ids.shape()), shape_str(table.shape()));
  gpu::check_shape(kOp, "out", out, {ids.dim(0), table.dim(1)});
  if (out.numel() == 0) return;
  const bool in_bf16 = table.dtype() == DType::kBF16, out_bf16 = out.dtype() == DType::kBF16;
  if (in_bf16 && out_bf16) return launch<__nv_bfloat16, __nv_bfloat16>(ids, table, out, stream);
  if (in_bf16) return launch<__nv_bfloat16, float>(ids, table, out, stream);
  if (out_bf16) return launch<float, __nv_bfloat16>(ids, table, out, stream);
  launch<float, float>(ids, table, out, stream);
}

void gather_fp8_rows_cuda(const Tensor& ids, const Tensor& x_q, const Tensor& x_scales, Tensor& out_q,
                          Tensor& out_scales, cudaStream_t stream) {
  constexpr std::string_view kFp8Op = "gather_fp8_rows_cuda";
  gpu::check_index(kFp8Op, "ids", ids);
  gpu::check_dtype(kFp8Op, "x_q", x_q, DType::kF8E4M3);
  gpu::check_dtype(kFp8Op, "x_scales", x_scales, DType::kF32);
  gpu::check_dtype(kFp8Op, "out_q", out_q, DType::kF8E4M3);
  gpu::check_dtype(kFp8Op, "out_scales", out_scales, DType::kF32);
  MLA_CHECK(ids.ndim() == 1 && x_q.ndim() == 2, "{}: ids {} must be [P] and x_q {} [T, K]", kFp8Op,
            shape_str(ids.shape()), shape_str(x_q.shape()));
  const int64_t p = ids.dim(0), t = x_q.dim(0), k = x_q.dim(1), g = fp8_num_blocks(k);
  gpu::check_shape(kFp8Op, "x_scales", x_scales, {t, g});
  gpu::check_shape(kFp8Op, "out_q", out_q, {p, k});
  gpu::check_shape(kFp8Op, "out_scales", out_scales, {p, g});
  if (p == 0) return;
  const Tensor* const src[2] = {&x_q, &x_scales};
  Tensor* const dst[2] = {&out_q, &out_scales};
  const int64_t row_bytes[2] = {k, g * static_cast<int64_t>(sizeof(float))};  // codes, scales
  const bool vec16 = k % 16 == 0 && g % 4 == 0 && gpu::aligned16(x_q) && gpu::aligned16(x_scales) &&
                     gpu::aligned16(out_q) && gpu::aligned16(out_scales);
  const bool vec4 = k % 4 == 0 && reinterpret_cast<uintptr_t>(x_q.raw()) % 4 == 0 &&
                    reinterpret_cast<uintptr_t>(out_q.raw()) % 4 == 0;  // f32 scales are 4-byte aligned
  if (vec16) return launch_units<uint4>(ids, src, dst, row_bytes, stream);
  if (vec4) return launch_units<uint32_t>(ids, src, dst, row_bytes, stream);
  launch_units<uint8_t>(ids, src, dst, row_bytes, stream);
}

}  // namespace mlaserve::ops
