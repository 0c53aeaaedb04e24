// mla_expand_kv on the GPU (contract: ops/mla_expand_kv.h): per-head K and V for the MHA form,
// bf16 copies, no arithmetic.
//
//   kv [S, n, dn + dv] -> k [S, n, dn + dr] = [kv[s, h, :dn] | k_pe[s]],  v [S, n, dv] = kv[s, h, dn:]
//
// Design: one thread per 16-byte unit (8 channels) of the concatenated output row [k (dn + dr) |
// v (dv)] of one (s, h): 40 units for DeepSeek (dn = dv = 128, dr = 64), grid-stride over
// (s, h, unit) with 32-bit index arithmetic. Reads of kv are contiguous per row; the k_pe row of
// a token is read once per head from L1/L2 (its S x 128 bytes are small next to kv's S x n x 512).
// Widths or bases that are not multiples of 8 channels use 2-byte units.
#include <cuda_bf16.h>

#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/mla_expand_kv.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "mla_expand_kv_cuda";
constexpr int kThreads = 256;

// Widths in units of the copy (Unit = uint4: 8 bf16 channels; uint16_t: one).
template <typename Unit>
struct ExpandKvParams {
  const Unit* kv;    // [S * n, nope + value]
  const Unit* k_pe;  // [S, rope]
  Unit* k;           // [S * n, nope + rope]
  Unit* v;           // [S * n, value]
  int64_t rows;      // S * n
  int32_t heads;     // n
  int32_t nope;      // dn / units
  int32_t rope;      // dr / units
  int32_t value;     // dv / units
};

template <typename Unit>
__global__ void __launch_bounds__(kThreads) mla_expand_kv_kernel(ExpandKvParams<Unit> p) {
  const uint32_t k_units = p.nope + p.rope, row_units = k_units + p.value;
  const auto total = static_cast<uint32_t>(p.rows * row_units);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const uint32_t row = i / row_units, u = i % row_units;
    const Unit* kv = p.kv + int64_t{row} * (p.nope + p.value);
    if (u < static_cast<uint32_t>(p.nope)) {
      p.k[int64_t{row} * k_units + u] = kv[u];
    } else if (u < k_units) {
      p.k[int64_t{row} * k_units + u] = p.k_pe[int64_t{row / p.heads} * p.rope + (u - p.nope)];
    } else {
      p.v[int64_t{row} * p.value + (u - k_units)] = kv[p.nope + (u - k_units)];
    }
  }
}

template <typename Unit>
void launch(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v, cudaStream_t stream) {
  constexpr int64_t kChannels = sizeof(Unit) / sizeof(__nv_bfloat16);
  const int64_t dv = v.dim(2), dn = kv.dim(2) - dv, dr = k_pe.dim(1);
  const ExpandKvParams<Unit> p{gpu::ptr<const Unit>(kv),
                               gpu::ptr<const Unit>(k_pe),
                               gpu::ptr<Unit>(k),
                               gpu::ptr<Unit>(v),
                               kv.dim(0) * kv.dim(1),
                               static_cast<int32_t>(kv.dim(1)),
                               static_cast<int32_t>(dn / kChannels),
                               static_cast<int32_t>(dr / kChannels),
                               static_cast<int32_t>(dv / kChannels)};
  const int64_t total = p.rows * (p.nope + p.rope + p.value);
  mla_expand_kv_kernel<Unit><<<gpu::grid_blocks(total, kThreads), kThreads, 0, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void mla_expand_kv_cuda(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v, cudaStream_t stream) {
  gpu::check_dtype(kOp, "kv", kv, DType::kBF16);
  gpu::check_dtype(kOp, "k_pe", k_pe, DType::kBF16);
  gpu::check_dtype(kOp, "k", k, DType::kBF16);
  gpu::check_dtype(kOp, "v", v, DType::kBF16);
  MLA_CHECK(kv.ndim() == 3 && k_pe.ndim() == 2 && v.ndim() == 3 && kv.dim(2) > v.dim(2),
            "{}: kv {} must be [S, n, dn + dv], k_pe {} [S, dr], v {} [S, n, dv]", kOp, shape_str(kv.shape()),
            shape_str(k_pe.shape()), shape_str(v.shape()));
  const int64_t s = kv.dim(0), n = kv.dim(1), dv = v.dim(2), dn = kv.dim(2) - dv, dr = k_pe.dim(1);
  gpu::check_shape(kOp, "k_pe", k_pe, {s, dr});
  gpu::check_shape(kOp, "k", k, {s, n, dn + dr});
  gpu::check_shape(kOp, "v", v, {s, n, dv});
  if (s == 0 || n == 0) return;
  MLA_CHECK(s * n * (dn + dr + dv) < (int64_t{1} << 31), "{}: {} x {} rows; the kernel indexes channels with 32 bits",
            kOp, s, n);
  const bool vec = dn % 8 == 0 && dv % 8 == 0 && dr % 8 == 0 && gpu::aligned16(kv) && gpu::aligned16(k_pe) &&
                   gpu::aligned16(k) && gpu::aligned16(v);
  if (vec) return launch<uint4>(kv, k_pe, k, v, stream);
  launch<uint16_t>(kv, k_pe, k, v, stream);
}

}  // namespace mlaserve::ops
