// Device dispatch of merge_attention_states.h (see dispatch.h), and the check of an attention
// op's FP8 output that every device's ops share.
#include "ops/merge_attention_states.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void check_attention_fp8_output(std::string_view op, const AttentionFp8Output& fp8, const Tensor& out) {
  MLA_CHECK(out.ndim() == 3 && out.dim(2) == kFp8BlockSize,
            "{}: an FP8 output needs out [T, n, {}] (one quantisation group a head), got {}", op, kFp8BlockSize,
            shape_str(out.shape()));
  const int64_t t = out.dim(0), n = out.dim(1);
  const Tensor& x_q = fp8.q.x_q;
  const Tensor& scales = fp8.q.scales;
  MLA_CHECK(x_q.device() == out.device() && scales.device() == out.device(), "{}: out_q must be on out's device",
            op);
  MLA_CHECK(x_q.dtype() == DType::kF8E4M3 && x_q.shape() == Shape({t, n * kFp8BlockSize}),
            "{}: out_q.x_q must be F8_E4M3 {}, got {} {}", op, shape_str({t, n * kFp8BlockSize}),
            dtype_name(x_q.dtype()), shape_str(x_q.shape()));
  MLA_CHECK(scales.dtype() == DType::kF32 && scales.shape() == Shape({t, n}), "{}: out_q.scales must be F32 {}, got {} {}",
            op, shape_str({t, n}), dtype_name(scales.dtype()), shape_str(scales.shape()));
  MLA_CHECK(!fp8.q.scales_t.defined(), "{}: out_q.scales_t is not written: leave it undefined", op);
  MLA_CHECK(fp8.params.amax_floor > 0.0f, "{}: amax_floor must be positive, got {}", op, fp8.params.amax_floor);
}

void quantize_attention_output(const Tensor& out, const AttentionFp8Output& fp8, Stream stream) {
  check_attention_fp8_output("quantize_attention_output", fp8, out);
  Fp8Activations q8 = fp8.q;
  quantize_activations_fp8(out.reshape({out.dim(0), out.dim(1) * out.dim(2)}), fp8.params, q8.x_q, q8.scales,
                           stream);  // [T, n·128]
}

void merge_attention_states(const AttentionState& a, const AttentionState& b, AttentionState& merged, Stream stream,
                            const AttentionFp8Output& merged_q) {
  if (!on_gpu(merged.out)) return merge_attention_states_cpu(a, b, merged, merged_q);
#ifdef MLASERVE_WITH_CUDA
  merge_attention_states_cuda(a, b, merged, merged_q, cuda_stream(stream));
#else
  no_gpu_path("merge_attention_states");
#endif
}

}  // namespace mlaserve::ops
