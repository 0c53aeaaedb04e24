#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops {
namespace {

void check_block_shapes(std::string_view op, const Tensor& w_q, const Tensor& scale_inv) {
  cpu::check_host(op, "w_q", w_q);
  MLA_CHECK(w_q.dtype() == DType::kF8E4M3 && w_q.ndim() == 2, "{}: w_q {} must be F8_E4M3 [N, K], got {}",
            op, shape_str(w_q.shape()), dtype_name(w_q.dtype()));
  cpu::check_f32(op, "scale_inv", scale_inv);
  cpu::check_shape(op, "scale_inv", scale_inv, {fp8_num_blocks(w_q.dim(0)), fp8_num_blocks(w_q.dim(1))});
}

}  // namespace

void dequantize_block_fp8_cpu(const Tensor& w_q, const Tensor& scale_inv, Tensor& out) {
  constexpr std::string_view kOp = "dequantize_block_fp8_cpu";
  check_block_shapes(kOp, w_q, scale_inv);
  cpu::check_f32_or_bf16(kOp, "out", out);
  cpu::check_shape(kOp, "out", out, w_q.shape());
  const int64_t n = w_q.dim(0), k = w_q.dim(1), scale_cols = scale_inv.dim(1);
  const float8_e4m3* q = w_q.data<float8_e4m3>();
  const float* s = scale_inv.data<float>();
  bfloat16* out_bf16 = out.dtype() == DType::kBF16 ? out.data<bfloat16>() : nullptr;
  float* out_f32 = out_bf16 == nullptr ? out.data<float>() : nullptr;
  for (int64_t r = 0; r < n; ++r) {
    const float* scale_row = s + (r / kFp8BlockSize) * scale_cols;
    for (int64_t c = 0; c < k; ++c) {
      const float v = e4m3_to_float(q[r * k + c]) * scale_row[c / kFp8BlockSize];
      if (out_bf16 != nullptr) {
        out_bf16[r * k + c] = float_to_bf16(v);
      } else {
        out_f32[r * k + c] = v;
      }
    }
  }
}

void quantize_weight_block_fp8_cpu(const Tensor& w, Tensor& w_q, Tensor& scale_inv) {
  constexpr std::string_view kOp = "quantize_weight_block_fp8_cpu";
  cpu::check_f32_or_bf16(kOp, "w", w);
  check_block_shapes(kOp, w_q, scale_inv);
  cpu::check_shape(kOp, "w_q", w_q, w.shape());
  const int64_t n = w.dim(0), k = w.dim(1);
  const Tensor wf = w.to_f32();  // [N, K]
  const float* src = wf.data<float>();
  float8_e4m3* q = w_q.data<float8_e4m3>();
  float* s = scale_inv.data<float>();
  for (int64_t br = 0; br < fp8_num_blocks(n); ++br) {
    for (int64_t bc = 0; bc < fp8_num_blocks(k); ++bc) {
      const int64_t r0 = br * kFp8BlockSize, r1 = std::min(n, r0 + kFp8BlockSize);
      const int64_t c0 = bc * kFp8BlockSize, c1 = std::min(k, c0 + kFp8BlockSize);
      float amax = kFp8AmaxFloor;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::abs(src[r * k + c]));
      }
      const float to_fp8 = kE4M3Max / amax;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) q[r * k + c] = float_to_e4m3(src[r * k + c] * to_fp8);
      }
      s[br * fp8_num_blocks(k) + bc] = amax / kE4M3Max;
    }
  }
}

}  // namespace mlaserve::ops
