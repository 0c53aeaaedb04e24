// moe_combine_add_rms_norm and its FP8 form on the GPU: argument checks and launches. The design note and the
// kernels are in moe_combine_norm.cuh; the rule that picks one, moe_dispatch_kernels.h.
#include "ops/cuda/moe_combine_norm.cuh"

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/moe_dispatch_kernels.h"
#include "ops/fp8_quant.h"
#include "ops/moe_combine_norm.h"

namespace mlaserve::ops {
namespace {

template <int kVec, bool kQuant>
void launch_kernel(gpu::MoeCombineNormParams p, MoeCombineKernel kernel, cudaStream_t stream) {
  const int64_t vectors = p.hidden / kVec;
  const int threads = gpu::rms_norm_threads(vectors);
  p.sum_threads = threads;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(p.tokens, 65535));
  if (kernel == MoeCombineKernel::kScan) {
    if constexpr (kVec == 8) {
      if (gpu::rms_norm_wide(p.tokens, vectors)) {  // a decode step's few wide rows: one thread a vector
        gpu::launch_programmatic(gpu::moe_combine_add_rms_norm_kernel<8, kQuant, true>, blocks,
                                 gpu::rms_norm_wide_threads(vectors), 0, stream, p);
        return;
      }
    }
    gpu::launch_programmatic(gpu::moe_combine_add_rms_norm_kernel<kVec, kQuant, false>, blocks, threads, 0, stream, p);
    return;
  }
  const int64_t pairs = p.tokens * p.top_k;
  const Tensor position = gpu::invert_pairs(p.sorted_pairs, pairs, stream);  // [T·k] the inverse of sorted_pairs
  p.position = gpu::ptr<const int32_t>(position);
  gpu::launch_programmatic(gpu::moe_combine_add_rms_norm_rows_kernel<kVec, kQuant>, blocks, threads, 0, stream, p);
}

void launch(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
            cudaStream_t stream, MoeCombineKernel kernel, const gpu::NormFp8Request* quant) {
  const std::string_view kOp =
      quant != nullptr ? "moe_combine_add_rms_norm_fp8_cuda" : "moe_combine_add_rms_norm_cuda";
  gpu::check_dtype(kOp, "expert_out", in.expert_out, DType::kBF16);
  gpu::check_dtype(kOp, "sorted_pairs", in.sorted_pairs, DType::kI32);
  gpu::check_dtype(kOp, "weights", in.weights, DType::kF32);
  gpu::check_dtype(kOp, "residual", residual, DType::kBF16);
  gpu::check_f32_or_bf16(kOp, "weight", weight);
  gpu::check_dtype(kOp, "out", out, DType::kBF16);
  MLA_CHECK(in.weights.ndim() == 2 && residual.ndim() == 2 && in.expert_out.ndim() == 2 && weight.ndim() == 1,
            "{}: weights {} must be [T, k], residual {} [T, H], expert_out {} [T·k, H], weight {} [H]", kOp,
            shape_str(in.weights.shape()), shape_str(residual.shape()), shape_str(in.expert_out.shape()),
            shape_str(weight.shape()));
  const int64_t t = in.weights.dim(0), k = in.weights.dim(1), h = residual.dim(1), pairs = t * k;
  gpu::check_shape(kOp, "residual", residual, {t, h});
  gpu::check_shape(kOp, "out", out, {t, h});
  gpu::check_shape(kOp, "weight", weight, {h});
  gpu::check_shape(kOp, "expert_out", in.expert_out, {pairs, h});
  gpu::check_shape(kOp, "sorted_pairs", in.sorted_pairs, {pairs});
  const bool has_shared = in.shared_out.defined();
  if (has_shared) {
    gpu::check_dtype(kOp, "shared_out", in.shared_out, DType::kBF16);
    gpu::check_shape(kOp, "shared_out", in.shared_out, {t, h});
    MLA_CHECK(residual.raw() != in.shared_out.raw(), "{}: residual must not alias shared_out", kOp);
  }
  MLA_CHECK(residual.raw() != out.raw() && residual.raw() != in.expert_out.raw(),
            "{}: residual must not alias out or expert_out", kOp);
  MLA_CHECK(pairs < (int64_t{1} << 31), "{}: {} pairs do not fit i32 positions", kOp, pairs);
  MLA_CHECK(eps > 0.0f, "{}: eps must be positive, got {}", kOp, eps);
  check_combine_top_k(kOp, k, kernel);
  // 16-byte vectors when every row is: the condition under which moe_combine_cuda and
  // add_rms_norm_cuda both take theirs (the header's bit-for-bit promise).
  const bool vec8 = h % 8 == 0 && gpu::aligned16(in.expert_out) && gpu::aligned16(residual) &&
                    gpu::aligned16(weight) && gpu::aligned16(out) && (!has_shared || gpu::aligned16(in.shared_out));
  const gpu::NormFp8Out fused = gpu::norm_fp8_out(kOp, out, quant, vec8);
  if (t == 0 || h == 0) return;
  if (kernel == MoeCombineKernel::kAuto) kernel = choose_combine_kernel(pairs, k);

  const gpu::MoeCombineNormParams p{gpu::ptr<const __nv_bfloat16>(in.expert_out),
                                    gpu::ptr<const int32_t>(in.sorted_pairs),
                                    nullptr,
                                    gpu::ptr<const float>(in.weights),
                                    has_shared ? gpu::ptr<const __nv_bfloat16>(in.shared_out) : nullptr,
                                    gpu::ptr<__nv_bfloat16>(residual),
                                    weight.raw(),
                                    gpu::ptr<__nv_bfloat16>(out),
                                    t,
                                    static_cast<int32_t>(k),
                                    h,
                                    eps,
                                    weight.dtype() == DType::kBF16,
                                    gpu::aligned16(weight) && weight.nbytes() % 16 == 0,
                                    fused,
                                    in.early_inputs,
                                    0};
  if (fused.x_q != nullptr) {  // (norm_fp8_out sets it on the 16-byte path only)
    launch_kernel<8, true>(p, kernel, stream);
  } else if (vec8) {
    launch_kernel<8, false>(p, kernel, stream);
  } else {
    launch_kernel<1, false>(p, kernel, stream);
  }
  gpu::quantize_unfused(quant, fused, out, stream);
}

}  // namespace

void moe_combine_add_rms_norm_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                   Tensor& out, cudaStream_t stream) {
  launch(in, residual, weight, eps, out, stream, MoeCombineKernel::kAuto, nullptr);
}

void moe_combine_add_rms_norm_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                   Tensor& out, cudaStream_t stream, MoeCombineKernel kernel) {
  launch(in, residual, weight, eps, out, stream, kernel, nullptr);
}

void moe_combine_add_rms_norm_fp8_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                       Tensor& out, const ActQuantParams& act, Fp8Activations& out_q,
                                       cudaStream_t stream) {
  moe_combine_add_rms_norm_fp8_cuda(in, residual, weight, eps, out, act, out_q, stream, MoeCombineKernel::kAuto);
}

void moe_combine_add_rms_norm_fp8_cuda(const MoeCombineInputs& in, Tensor& residual, const Tensor& weight, float eps,
                                       Tensor& out, const ActQuantParams& act, Fp8Activations& out_q,
                                       cudaStream_t stream, MoeCombineKernel kernel) {
  const gpu::NormFp8Request quant{act, out_q};
  launch(in, residual, weight, eps, out, stream, kernel, &quant);
}

}  // namespace mlaserve::ops
