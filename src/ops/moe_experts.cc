// Device dispatch of moe_experts.h (see dispatch.h).
#include "ops/moe_experts.h"

#include "ops/dispatch.h"
#include "ops/embedding.h"

#ifdef MLASERVE_WITH_CUDA
#include "ops/cuda/moe_experts_gemv.h"
#endif

namespace mlaserve::ops {

void moe_experts(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights, const ActQuantParams& act,
                 Tensor& hidden, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return moe_experts_cpu(x, expert_offsets, weights, act, out);
#ifdef MLASERVE_WITH_CUDA
  if (weights.is_fp8()) return moe_experts_fp8_cuda(x, expert_offsets, weights, act, hidden, out, cuda_stream(stream));
  moe_experts_cuda(x, expert_offsets, weights, hidden, out, cuda_stream(stream));
#else
  no_gpu_path("moe_experts");
#endif
}

bool moe_experts_takes_quantized_rows(Device device, int64_t rows, const ExpertWeights& weights) {
#ifdef MLASERVE_WITH_CUDA
  return device == Device::kCUDA && weights.is_fp8() && !runs_moe_gemv(MoeExpertsPath::kAuto, rows, weights);
#else
  return false;
#endif
}

void moe_experts_quantized(const Tensor& x_q, const Tensor& x_scales, const Tensor& expert_offsets,
                           const ExpertWeights& weights, const ActQuantParams& act, Tensor& hidden, Tensor& out,
                           Stream stream) {
  MLA_CHECK(on_gpu(out), "moe_experts_quantized: GPU only (moe_experts_cpu quantises its rows itself)");
#ifdef MLASERVE_WITH_CUDA
  moe_experts_fp8_cuda(x_q, x_scales, expert_offsets, weights, act, hidden, out, cuda_stream(stream));
#else
  no_gpu_path("moe_experts_quantized");
#endif
}

bool moe_experts_reads_token_rows(Device device, int64_t tokens, int64_t rows, const ExpertWeights& weights) {
#ifdef MLASERVE_WITH_CUDA
  return device == Device::kCUDA &&
         gpu::use_moe_gemv_token_rows(tokens, rows, weights.is_fp8(), weights.intermediate());
#else
  return false;
#endif
}

bool moe_experts_wants_token_codes(Device device, int64_t tokens, int64_t rows, const ExpertWeights& weights) {
#ifdef MLASERVE_WITH_CUDA
  return device == Device::kCUDA &&
         gpu::moe_gemv_wants_token_codes(tokens, rows, weights.is_fp8(), weights.intermediate());
#else
  return false;
#endif
}

void moe_experts_token_rows(const Tensor& x, const Fp8Activations& x_q, const Tensor& sorted_tokens,
                            const Tensor& expert_offsets, const ExpertWeights& weights, const ActQuantParams& act,
                            Tensor& hidden, Tensor& out, Stream stream, GridPlacement placement) {
  if (!on_gpu(out)) {
    Tensor rows = Tensor::empty({sorted_tokens.numel(), x.dim(1)}, DType::kF32, Device::kCPU);  // [P, H]
    embedding_cpu(sorted_tokens, x, rows);
    return moe_experts_cpu(rows, expert_offsets, weights, act, out);
  }
#ifdef MLASERVE_WITH_CUDA
  moe_experts_gemv_token_rows_cuda(x, x_q, sorted_tokens, expert_offsets, weights, act, hidden, out,
                                   cuda_stream(stream), gpu::kMoeGemvDefault, placement);
#else
  no_gpu_path("moe_experts_token_rows");
#endif
}

}  // namespace mlaserve::ops
