// embedding on the GPU (contract: ops/embedding.h): a row gather out[t, :] = table[ids[t], :].
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
// Launched with programmatic dependent launch (pdl.cuh): a CTA waits for the kernel before it
// (the final norm, before lm_head's row gather) before its first load, then lets the next
// kernel launch.
#include <cuda_bf16.h>

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/embedding.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "embedding_cuda";
constexpr int kThreads = 256;

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

}  // namespace mlaserve::ops
