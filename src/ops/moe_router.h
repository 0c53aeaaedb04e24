// MoE router: expert selection and weights from router logits (MODEL_SPEC §5.2, §11 items 5-7).
//
//   logits           [T, E] f32 (m · W_gateᵀ computed by the caller in fp32, §5.1)
//   correction_bias  [E] f32 (e_score_correction_bias) for kNoAuxTc; an undefined Tensor
//                    otherwise (other methods have no bias)
//   weights          [T, k] f32, caller-allocated
//   expert_ids       [T, k] i32, caller-allocated, best selection score first
//
// Per token, in fp32:
//  1. scores s = softmax(logits) over all E, or sigmoid(logits) (params.scoring).
//  2. selection scores b = s + correction_bias for kNoAuxTc, else b = s. The bias only selects.
//  3. groups (E split into n_group contiguous groups of E / n_group):
//       kGreedy              no groups
//       kGroupLimitedGreedy  group score = max of b in the group (V2)
//       kNoAuxTc             group score = sum of the two largest b in the group (V3)
//     keep the topk_group best groups; every expert outside them gets b = -inf (never 0: a 0
//     fill lets a masked expert beat negative biased scores, §11 item 5).
//  4. expert_ids = the top_k experts by b; weights = s[expert_ids] (unbiased scores).
//  5. params.weighting:
//       kNormalizeOrScale    V2 family (HF-remote): if top_k > 1 and norm_topk_prob,
//                            w /= Σw + 1e-20 and no scaling; else w *= routed_scaling_factor
//       kNormalizeThenScale  V3 family: if norm_topk_prob, w /= Σw + 1e-20; then always
//                            w *= routed_scaling_factor
// Ties (equal scores, equal group scores) go to the lower index, so selection is deterministic.
//
// The model maps its config onto RouterParams: V2 family -> kNormalizeOrScale, V3 family ->
// kNormalizeThenScale; scoring_func, topk_method, n_group, topk_group, num_experts_per_tok,
// norm_topk_prob and routed_scaling_factor one to one.
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

enum class RouterScoring { kSoftmax, kSigmoid };
enum class RouterTopkMethod { kGreedy, kGroupLimitedGreedy, kNoAuxTc };
enum class RouterWeighting { kNormalizeOrScale, kNormalizeThenScale };

struct RouterParams {
  RouterScoring scoring = RouterScoring::kSoftmax;
  RouterTopkMethod method = RouterTopkMethod::kGreedy;
  RouterWeighting weighting = RouterWeighting::kNormalizeOrScale;
  int64_t n_group = 1;                  // groups for the group-limited methods; E % n_group == 0
  int64_t topk_group = 1;               // groups kept
  int64_t top_k = 1;                    // experts per token (num_experts_per_tok)
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
  // [T] i64 cache slots of the step's rows, or undefined. A row with a negative slot is a padding
  // row (a captured decode graph's, engine/decode_graphs.h: its outputs are never read) and is
  // routed by the logits of row t mod R, R the number of rows with a slot: the real rows come
  // first in a graph, so that row is real, the padding rows add no expert the real rows did not
  // need, and they spread over the real rows (all on row 0, row 0's experts would take more rows
  // than one pass of the experts' GEMV holds). Its ids and weights equal that row's.
  Tensor row_slots;
};

struct RouterOutputs {
  Tensor weights;     // [T, k] f32
  Tensor expert_ids;  // [T, k] i32
};

void moe_route_cpu(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                   RouterOutputs& outputs);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void moe_route(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params, RouterOutputs& outputs, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/moe_router.{cuh,cu} --------------------------------------------------
// logits, correction_bias and weights f32, expert_ids i32, all on the GPU; asynchronous on
// stream. Every rule above, one warp per token, E <= 256, n_group <= 32, top_k <= 32. The fp32
// operations are the CPU reference's, in its order (one lane adds the softmax sum in expert
// order; exp is rounded correctly, as glibc's expf), so expert_ids equal moe_route_cpu's on the
// same logits and weights agree to the last bit or so.
void moe_route_cuda(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                    RouterOutputs& outputs, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
