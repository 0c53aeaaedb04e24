// MoE routing, grouping and row gather as one op: moe_route (moe_router.h), then
// moe_group_and_gather (moe_dispatch.h) on its expert ids. The outputs are exactly those of the
// two ops in sequence, so the model can call this one in their place.
//
//   logits           [T, E] f32 router logits; correction_bias, params as moe_route
//   x                [T, H] the tokens' rows (the MoE input m)
//   route            weights [T, k] f32, expert_ids [T, k] i32           (moe_route)
//   grouping         expert_offsets [E + 1], sorted_pairs, sorted_tokens [T·k] i32
//   gathered         [T·k, H] the token rows in expert order             (moe_group_and_gather)
//                    or an undefined Tensor: route and group only (moe_route, then
//                    moe_group_by_expert), for a caller that gathers other rows itself (the FP8
//                    MoE gathers its quantised rows, ffn_block.cc)
//
// Why one op: at decode sizes each of the two is a microseconds-long launch of one or a few
// CTAs in the serial chain of a step; on the GPU, up to kRouteGatherMaxPairs = 64 pairs (T <= 10
// tokens of V2-Lite's top-6, T <= 8 of V3's top-8) one CTA does both.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/moe_dispatch.h"
#include "ops/moe_router.h"

namespace mlaserve::ops {

struct MoeRouteGatherOutputs {
  RouterOutputs route;   // [T, k] weights and expert ids
  MoeGrouping grouping;  // the pairs sorted by expert
  Tensor gathered;       // [T·k, H] rows in expert order, or undefined: no gather
};

// moe_router_route_and_gather: the router's linear too, logits = x · router_weightᵀ in fp32
// (MODEL_SPEC §5.1), then moe_route_and_gather on them.
//   router_weight    [E, H]
//   logits           [T, E] f32, written (the routing's input, kept as a workspace)
//   arrivals         [1] i32 on the GPU (unused on the CPU): zero before the first call; every call
//                    leaves it zero. The one-kernel path's CTAs count their arrivals in it.
// On the GPU, up to kGemvMaxTokens = 8 tokens with the one-kernel limits of moe_route_and_gather
// and bf16 x and router_weight, one kernel does all of it (moe_route_gather.cuh): the router's
// GEMV CTAs, of which the last to finish routes, groups and gathers; V3's routing by groups past
// 4 tokens runs that GEMV, then moe_route_cuda and the grouping (a CTA a token instead of one CTA
// for all). Its logits are the CUDA-core GEMV's bits and its outputs those of
// moe_route_and_gather on them.

// x and gathered f32 (host tensors).
void moe_route_and_gather_cpu(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                              const Tensor& x, MoeRouteGatherOutputs& out);

void moe_router_route_and_gather_cpu(const Tensor& x, const Tensor& router_weight, const Tensor& correction_bias,
                                     const RouterParams& params, Tensor& logits, MoeRouteGatherOutputs& out);

// Dispatch by device (ops/dispatch.h; the device of out.route.weights): the model graph calls these.
void moe_route_and_gather(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                          const Tensor& x, MoeRouteGatherOutputs& out, Stream stream = {});
void moe_router_route_and_gather(const Tensor& x, const Tensor& router_weight, const Tensor& correction_bias,
                                 const RouterParams& params, Tensor& logits, Tensor& arrivals,
                                 MoeRouteGatherOutputs& out, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/moe_route_gather.{cuh,cu} --------------------------------------------
// The tensors of moe_route_cuda and moe_group_and_gather_cuda (x and gathered bf16), on the GPU;
// asynchronous on stream. Up to 64 pairs, H a multiple of 8 and x, gathered 16-byte aligned: one
// kernel (moe_route_gather.cuh) whose outputs equal the two ops' bit for bit (the same routing
// code; an integer sort; a copy); otherwise moe_route_cuda then moe_group_and_gather_cuda. With
// gathered undefined: the one kernel up to 64 pairs, without its copy; else moe_route_cuda then
// moe_group_by_expert_cuda.
void moe_route_and_gather_cuda(const Tensor& logits, const Tensor& correction_bias, const RouterParams& params,
                               const Tensor& x, MoeRouteGatherOutputs& out, cudaStream_t stream);
// moe_router_route_and_gather on the GPU: x bf16, router_weight bf16 (else linear_cuda, then the
// op above), arrivals as described there.
void moe_router_route_and_gather_cuda(const Tensor& x, const Tensor& router_weight, const Tensor& correction_bias,
                                      const RouterParams& params, Tensor& logits, Tensor& arrivals,
                                      MoeRouteGatherOutputs& out, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
