// Per-head K and V for the MHA form of MLA (MODEL_SPEC §3.1, §3.2), from the up-projected latent.
//
//   kv    [S, n, dn + dv] f32  c_n · kv_b_projᵀ viewed per head: [k_nope (dn) | v (dv)] blocks
//   k_pe  [S, dr] f32          the shared rope key after RoPE
//   k     [S, n, dn + dr] f32  k[s, h] = [kv[s, h, 0:dn] | k_pe[s]]  (k_pe broadcast to all heads)
//   v     [S, n, dv] f32       v[s, h] = kv[s, h, dn:dn+dv]
// k and v are caller-allocated; dv = v.dim(2), dn = kv width - dv, dr = k_pe.dim(1). These are
// the k and v of mha_attention.h.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void mla_expand_kv_cpu(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void mla_expand_kv(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/mla_expand_kv.cu -----------------------------------------------------
// kv, k_pe, k and v bf16 on the GPU (copies, no rounding); asynchronous on stream.
void mla_expand_kv_cuda(const Tensor& kv, const Tensor& k_pe, Tensor& k, Tensor& v, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
