// mla_absorb_query_cuda and mla_up_project_output_cuda (ops/mla_absorb.h): one strided batched
// cuBLASLt GEMM each, batched over heads, with the per-head operands read in place.
//
// Layouts (elements; n heads, rph = dn + dv rows of w_kv_b per head):
//   absorb:  batch h:  D [T, dc] = A [T, dn] · B [dn, dc]           (B as [K, N]: kKN)
//            A = q + h·(dn+dr)            row stride n·(dn+dr)
//            B = w_kv_b + h·rph·dc        row stride dc            (W_UK[h], rows h·rph ..)
//            D = q_abs + h·(dc+dr)        row stride n·(dc+dr)
//            then q_pe [T·n rows, dr] -> q_abs channels [dc, dc+dr): one 2-D copy
//   up:      batch h:  D [T, dv] = A [T, dc] · B [dv, dc]ᵀ          (B as [N, K]: kNK)
//            A = o_lat + h·dc             row stride n·dc
//            B = w_kv_b + (h·rph + dn)·dc row stride dc            (W_UV[h])
//            D = o + h·dv                 row stride n·dv
// A decode step's T is small (one row per sequence), so both are weight-bound: every head's
// 128 x 512 slice is read once per call, 128 KB a head. Up to kAbsorbGemvMaxTokens = 8 tokens
// per-head GEMV kernels run instead (mla_absorb_gemv.cuh: no cuBLASLt tile overhead, the q_pe
// copy inside the absorb kernel, programmatic dependent launch with the weights prefetched).
// The absorption alone also has a kernel of ours up to kAbsorbMmaMaxTokens = 256 rows (a per-head
// mma.sync GEMM, mla_absorb_mma.cuh): under pipeline parallelism (eager steps) rank 0's host spent
// ~200 us a layer inside cuBLASLt's call at these T (bench/NOTES-dist.md). The up-projection keeps
// cuBLASLt past 8 tokens (~15 us of host a call there): a kernel of ours on the same tiling
// (grid dv / 128 x ceil(T / 64) x n, 16 CTAs at 16 heads, each streaming its 128 KB W_UV slice)
// took 6.47 / 9.64 / 9.80 us of GPU a call at T = 16 / 64 / 256 against cuBLASLt's 3.39 / 3.47 /
// 3.79 (H200, 16 heads, decode_gemv_bench, 2026-11-28), and was dropped.
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/cublaslt_gemm.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/mla_absorb_gemv.h"
#include "ops/cuda/mla_absorb_mma.h"
#include "ops/mla_absorb.h"

namespace mlaserve::ops {
namespace {

void check_gpu_bf16(std::string_view op, std::string_view name, const Tensor& t, int ndim) {
  MLA_CHECK(t.device() == Device::kCUDA, "{}: {} must be on the GPU", op, name);
  MLA_CHECK(t.dtype() == DType::kBF16, "{}: {} must be BF16, got {}", op, name, dtype_name(t.dtype()));
  MLA_CHECK(t.ndim() == ndim, "{}: {} must have {} dimensions, got {}", op, name, ndim, shape_str(t.shape()));
}

// dc, dr, dn and rph of mla_absorb_query_cuda's operands, after checking their shapes.
struct AbsorbDims {
  int64_t dc, dr, dn, rph;
};

AbsorbDims check_absorb_query(std::string_view op, const Tensor& q, const Tensor& w_kv_b, const Tensor& q_abs) {
  check_gpu_bf16(op, "q", q, 3);
  check_gpu_bf16(op, "w_kv_b", w_kv_b, 2);
  check_gpu_bf16(op, "q_abs", q_abs, 3);
  const int64_t t = q.dim(0), n = q.dim(1), dc = w_kv_b.dim(1), dr = q_abs.dim(2) - dc;
  const int64_t dn = q.dim(2) - dr, rph = n > 0 ? w_kv_b.dim(0) / n : 0;
  MLA_CHECK(n > 0 && dr > 0 && dn > 0 && w_kv_b.dim(0) % n == 0 && rph > dn && q_abs.dim(0) == t && q_abs.dim(1) == n,
            "{}: inconsistent shapes q {}, w_kv_b {}, q_abs {} (dc = {}, dr = {}, dn = {})", op, shape_str(q.shape()),
            shape_str(w_kv_b.shape()), shape_str(q_abs.shape()), dc, dr, dn);
  return {dc, dr, dn, rph};
}

// The cuBLASLt GEMM and the 2-D copy of q_pe (shapes checked).
void absorb_query_lt(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs, const AbsorbDims& dims,
                     cudaStream_t stream) {
  const auto [dc, dr, dn, rph] = dims;
  const int64_t t = q.dim(0), n = q.dim(1);
  cuda::GemmProblem p;
  p.m = t;
  p.n = dc;
  p.k = dn;
  p.batch = n;
  p.b_layout = cuda::BLayout::kKN;
  p.a = {q.raw(), n * (dn + dr), dn + dr};
  p.b = {w_kv_b.raw(), dc, rph * dc};
  p.d = q_abs.raw();
  p.d_row_stride = n * (dc + dr);
  p.d_batch_stride = dc + dr;
  cuda::lt_gemm(p, stream);

  const bfloat16* q_pe = q.data<bfloat16>() + dn;  // [T·n rows, dr], row pitch dn + dr
  bfloat16* dst = q_abs.data<bfloat16>() + dc;     // [T·n rows, dr], row pitch dc + dr
  constexpr size_t kElem = sizeof(bfloat16);
  MLA_CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(dc + dr) * kElem, q_pe, static_cast<size_t>(dn + dr) * kElem,
                                   static_cast<size_t>(dr) * kElem, static_cast<size_t>(t * n),
                                   cudaMemcpyDeviceToDevice, stream));
}

}  // namespace

void mla_absorb_query_cuda(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs, cudaStream_t stream) {
  const AbsorbDims dims = check_absorb_query("mla_absorb_query_cuda", q, w_kv_b, q_abs);
  const int64_t t = q.dim(0), n = q.dim(1);
  if (t == 0) return;
  const gpu::MlaAbsorbGemvParams p{
      gpu::ptr<const __nv_bfloat16>(q), gpu::ptr<const __nv_bfloat16>(w_kv_b), gpu::ptr<__nv_bfloat16>(q_abs),
      static_cast<int32_t>(t),          static_cast<int32_t>(n),               static_cast<int32_t>(dims.dn),
      static_cast<int32_t>(dims.dr),    static_cast<int32_t>(dims.dc),         static_cast<int32_t>(dims.rph)};
  if (t <= gpu::kAbsorbGemvMaxTokens && dims.dc % 8 == 0 && gpu::aligned16(w_kv_b)) {
    return gpu::launch_mla_absorb_gemv(p, stream);  // decode batches: per-head GEMVs
  }
  if (gpu::mla_absorb_mma_applies(p)) return gpu::launch_mla_absorb_mma(p, stream);  // up to 256 rows
  absorb_query_lt(q, w_kv_b, q_abs, dims, stream);
}

void mla_absorb_query_cublaslt(const Tensor& q, const Tensor& w_kv_b, Tensor& q_abs, cudaStream_t stream) {
  const AbsorbDims dims = check_absorb_query("mla_absorb_query_cublaslt", q, w_kv_b, q_abs);
  if (q.dim(0) > 0) absorb_query_lt(q, w_kv_b, q_abs, dims, stream);
}

void mla_up_project_output_cuda(const Tensor& o_lat, const Tensor& w_kv_b, Tensor& o, cudaStream_t stream) {
  constexpr std::string_view kOp = "mla_up_project_output_cuda";
  check_gpu_bf16(kOp, "o_lat", o_lat, 3);
  check_gpu_bf16(kOp, "w_kv_b", w_kv_b, 2);
  check_gpu_bf16(kOp, "o", o, 3);
  const int64_t t = o_lat.dim(0), n = o_lat.dim(1), dc = o_lat.dim(2), dv = o.dim(2);
  const int64_t rph = n > 0 ? w_kv_b.dim(0) / n : 0, dn = rph - dv;
  MLA_CHECK(n > 0 && dv > 0 && w_kv_b.dim(1) == dc && w_kv_b.dim(0) % n == 0 && dn > 0 && o.dim(0) == t &&
                o.dim(1) == n,
            "{}: inconsistent shapes o_lat {}, w_kv_b {}, o {}", kOp, shape_str(o_lat.shape()),
            shape_str(w_kv_b.shape()), shape_str(o.shape()));
  if (t == 0) return;
  if (t <= gpu::kAbsorbGemvMaxTokens && dc % 8 == 0 && gpu::aligned16(w_kv_b) && gpu::aligned16(o_lat)) {
    return gpu::launch_mla_up_gemv(  // decode batches: per-head GEMVs
        {gpu::ptr<const __nv_bfloat16>(o_lat), gpu::ptr<const __nv_bfloat16>(w_kv_b), gpu::ptr<__nv_bfloat16>(o),
         static_cast<int32_t>(t), static_cast<int32_t>(n), static_cast<int32_t>(dn), static_cast<int32_t>(dv),
         static_cast<int32_t>(dc), static_cast<int32_t>(rph)},
        stream);
  }

  cuda::GemmProblem p;
  p.m = t;
  p.n = dv;
  p.k = dc;
  p.batch = n;
  p.b_layout = cuda::BLayout::kNK;
  p.a = {o_lat.raw(), n * dc, dc};
  p.b = {w_kv_b.data<bfloat16>() + dn * dc, dc, rph * dc};
  p.d = o.raw();
  p.d_row_stride = n * dv;
  p.d_batch_stride = dv;
  cuda::lt_gemm(p, stream);
}

}  // namespace mlaserve::ops
