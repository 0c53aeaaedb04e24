// Partial attention results and their log-sum-exp merge (MODEL_SPEC §4.3, chunked prefill).
//
// An AttentionState is softmax attention restricted to some set of keys:
//   out  [T, n, dv] f32  the softmax-weighted sum of values over those keys
//   lse  [T, n]     f32  log Σ exp(score) over those keys (natural log; -inf for no keys)
//
// Two states over DISJOINT key sets A and B merge into the state over A ∪ B:
//   lse = log(exp(lse_a) + exp(lse_b))            (computed as m + log(e^(lse_a-m) + e^(lse_b-m)))
//   out = exp(lse_a - lse) · out_a + exp(lse_b - lse) · out_b
// A side with lse = -inf contributes nothing; two empty sides give out = 0, lse = -inf. The
// merged state may be `a` itself (in place). fp32 throughout.
#pragma once

#include <string_view>

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/fp8_quant.h"

namespace mlaserve::ops {

struct AttentionState {
  Tensor out;  // [T, n, dv] f32
  Tensor lse;  // [T, n] f32
};

// An attention op's final output quantised for an FP8 reader (the FP8 o_proj), per token and 128
// channels (ops/fp8_quant.h), i.e. per (token, head), dv being 128: exactly
// quantize_activations_fp8 of out as [T, n·dv] as the op would store it (bf16 on the GPU), without
// the pass that would read it back. The op writes q instead of out, whose contents are then
// unspecified (the GPU kernels leave it as it was, the CPU ops use it as work space); lse is
// written.
//   q.x_q     [T, n·dv] e4m3
//   q.scales  [T, n] f32, token-major; q.scales_t stays undefined (cuBLASLt's reader transposes)
struct AttentionFp8Output {
  Fp8Activations q;
  ActQuantParams params;

  bool defined() const { return q.defined(); }
  // Rows [begin, end) of the output (undefined stays undefined).
  AttentionFp8Output rows(int64_t begin, int64_t end) const {
    if (!defined()) return {};
    return {{q.x_q.slice(begin, end), q.scales.slice(begin, end), Tensor()}, params};
  }
};

// Checks a defined fp8 against the output out [T, n, dv] it quantises (device and dtypes, dv =
// 128, the shapes above); `op` names the caller in the message.
void check_attention_fp8_output(std::string_view op, const AttentionFp8Output& fp8, const Tensor& out);

// out [T, n, 128] (f32 on the host, bf16 on the GPU) into fp8 by a quantiser pass of its own
// (quantize_activations_fp8): the bits the ops' fused forms write. For the CPU ops and for rows no
// op here writes (the model's absorbed-form rows of a prefill step).
void quantize_attention_output(const Tensor& out, const AttentionFp8Output& fp8, Stream stream = {});

// merged_q, when defined: merged.out quantised in its place, as AttentionFp8Output says.
void merge_attention_states_cpu(const AttentionState& a, const AttentionState& b, AttentionState& merged,
                                const AttentionFp8Output& merged_q = {});

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void merge_attention_states(const AttentionState& a, const AttentionState& b, AttentionState& merged, Stream stream = {},
                            const AttentionFp8Output& merged_q = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/merge_attention_states.cu --------------------------------------------
// out bf16 [T, n, dv] and lse f32 [T, n] for all three states, on the GPU; asynchronous on
// stream. Weights and the merged lse in fp32, out rounded once to bf16; merged may be a or b.
// A side with lse = -inf is not read at all, so its out may hold anything (even NaN). merged_q:
// the merged rows' bf16 values quantised and written in their place.
void merge_attention_states_cuda(const AttentionState& a, const AttentionState& b, AttentionState& merged,
                                 const AttentionFp8Output& merged_q, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
