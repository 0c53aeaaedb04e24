// The per-head GEMVs of the MLA absorption for a few tokens: parameters and launches, called by
// mla_absorb_cuda.cc, which checks the shapes. Design note and kernels: mla_absorb_gemv.cuh.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace mlaserve::ops::gpu {

inline constexpr int kAbsorbGemvMaxTokens = 8;  // up to here the GEMVs replace cuBLASLt

struct MlaAbsorbGemvParams {
  const __nv_bfloat16* q;    // [T, n, dn + dr]
  const __nv_bfloat16* w;    // [n·rph, dc] w_kv_b
  __nv_bfloat16* q_abs;      // [T, n, dc + dr]
  int32_t t, n, dn, dr, dc, rph;
};

struct MlaUpGemvParams {
  const __nv_bfloat16* o_lat;  // [T, n, dc]
  const __nv_bfloat16* w;      // [n·rph, dc] w_kv_b; W_UV[h] = rows h·rph + dn ..
  __nv_bfloat16* o;            // [T, n, dv]
  int32_t t, n, dn, dv, dc, rph;
};

// q_abs = [W_UK[h]ᵀ·q_nope[h] | q_pe[h]] per token and head; needs dc % 8 == 0, w 16-byte aligned.
void launch_mla_absorb_gemv(const MlaAbsorbGemvParams& p, cudaStream_t stream);
// o = W_UV[h]·o_lat[h] per token and head; needs dc % 8 == 0, w and o_lat 16-byte aligned.
void launch_mla_up_gemv(const MlaUpGemvParams& p, cudaStream_t stream);

}  // namespace mlaserve::ops::gpu
