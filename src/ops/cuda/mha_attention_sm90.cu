// MHA-form attention for MLA prefill on Hopper (sm_90a): launch code and argument checks. The
// design note and the kernels are in mha_attention_sm90.cuh, the tiling and grid order in
// mha_attention_sm90_heuristics.h.
#include "ops/cuda/mha_attention_sm90.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/tensor_map.h"
#include "ops/fp8_quant.h"
#include "ops/mha_attention.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "mha_attention_cuda";
namespace mha = sm90::mha;

void check_tensor(const Tensor& t, std::string_view name, DType dtype, const Shape& shape) {
  MLA_CHECK(t.device() == Device::kCUDA, "{}: {} must be on the GPU", kOp, name);
  MLA_CHECK(t.dtype() == dtype, "{}: {} must be {}, got {}", kOp, name, dtype_name(dtype), dtype_name(t.dtype()));
  MLA_CHECK(t.shape() == shape, "{}: {} must be {}, got {}", kOp, name, shape_str(shape), shape_str(t.shape()));
  MLA_CHECK(reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0, "{}: {} must be 16-byte aligned (TMA, vector stores)",
            kOp, name);
}

// t = [T, n, dim] bf16 as a 3-D map (channel, head, row), read in boxes of 64 channels x 1 head x
// kBlockN rows with the 128-byte swizzle of the kernel's tiles; rows past T read as zeros.
CUtensorMap head_tile_map(const Tensor& t) {
  const int64_t rows = t.dim(0), n = t.dim(1), dim = t.dim(2);
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(dim), static_cast<cuuint64_t>(n), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(dim) * 2, static_cast<cuuint64_t>(n * dim) * 2};
  const cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(mha::kBlockN)};
  return tma::tiled_map(kOp, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, t.raw(), 3, dims, strides, box);
}

int device_attribute(cudaDeviceAttr attr) {
  int device = 0, value = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  MLA_CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

}  // namespace

void mha_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const MhaParams& params,
                        AttentionState& out, const AttentionFp8Output& out_q, cudaStream_t stream) {
  MLA_CHECK(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3, "{}: q {}, k {}, v {} must be [T, n, head_dim]", kOp,
            shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  const int64_t tq = q.dim(0), n = q.dim(1), tk = k.dim(0);
  check_tensor(q, "q", DType::kBF16, {tq, n, mha::kHeadDimQk});
  check_tensor(k, "k", DType::kBF16, {tk, n, mha::kHeadDimQk});
  check_tensor(v, "v", DType::kBF16, {tk, n, mha::kHeadDimV});
  check_tensor(out.out, "out.out", DType::kBF16, {tq, n, mha::kHeadDimV});
  check_tensor(out.lse, "out.lse", DType::kF32, {tq, n});
  MLA_CHECK(std::isfinite(params.softmax_scale) && params.softmax_scale > 0.0f,
            "{}: softmax_scale must be positive and finite, got {}", kOp, params.softmax_scale);
  MLA_CHECK(!params.causal || tk >= tq, "{}: causal attention needs Tk >= Tq, got q {} and k {}", kOp,
            shape_str(q.shape()), shape_str(k.shape()));
  MLA_CHECK(n >= 1 && tq * n < (int64_t{1} << 31) && tk * n < (int64_t{1} << 31),
            "{}: the kernel indexes rows and heads with 32-bit integers, got q {} and k {}", kOp,
            shape_str(q.shape()), shape_str(k.shape()));
  if (out_q.defined()) {
    check_attention_fp8_output(kOp, out_q, out.out);
    check_tensor(out_q.q.x_q, "out_q.x_q", DType::kF8E4M3, {tq, n * mha::kHeadDimV});
  }
  if (tq == 0) return;

  if (tk == 0) {  // non-causal over no keys
    const mha::MhaEmptyParams p{static_cast<__nv_bfloat16*>(out.out.raw()), static_cast<float*>(out.lse.raw()),
                                tq * n};
    const int64_t chunks = tq * n * mha::kHeadDimV * 2 / 16;
    const int blocks = static_cast<int>(std::min<int64_t>((chunks + mha::kEmptyThreads - 1) / mha::kEmptyThreads, 1024));
    mha::mha_empty_sm90_kernel<<<blocks, mha::kEmptyThreads, 0, stream>>>(p);
    MLA_CUDA_CHECK_LAUNCH();
    // Zeros and the floor's scale, by a pass of its own (the model never calls Tk = 0).
    if (out_q.defined()) quantize_attention_output(out.out, out_q, Stream{stream});
    return;
  }

  mha::MhaPrefillParams p{};
  p.q_map = head_tile_map(q);
  p.k_map = head_tile_map(k);
  p.v_map = head_tile_map(v);
  p.out = static_cast<__nv_bfloat16*>(out.out.raw());
  p.lse = static_cast<float*>(out.lse.raw());
  if (out_q.defined()) {
    p.out_q = static_cast<uint8_t*>(out_q.q.x_q.raw());
    p.out_scales = static_cast<float*>(out_q.q.scales.raw());
    p.amax_floor = out_q.params.amax_floor;
    p.ue8m0 = out_q.params.scale_format == Fp8ScaleFormat::kUE8M0 ? 1 : 0;
  }
  p.tq = static_cast<int32_t>(tq);
  p.tk = static_cast<int32_t>(tk);
  p.n_heads = static_cast<int32_t>(n);
  p.num_m_blocks = static_cast<int32_t>((tq + mha::kBlockM - 1) / mha::kBlockM);
  p.heads_per_group = mha::heads_per_group(n, tk, device_attribute(cudaDevAttrL2CacheSize));
  p.causal = params.causal ? 1 : 0;
  p.scale_log2 = params.softmax_scale * 1.4426950408889634f;

  MLA_CUDA_CHECK(cudaFuncSetAttribute(mha::mha_prefill_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      mha::kSmemBytes));
  const int64_t ctas = n * p.num_m_blocks;
  mha::mha_prefill_sm90_kernel<<<static_cast<unsigned>(ctas), mha::kThreads, mha::kSmemBytes, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops
