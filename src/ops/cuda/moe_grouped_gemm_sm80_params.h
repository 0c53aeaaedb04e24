// Launch parameters of the grouped MoE GEMM (moe_grouped_gemm_sm80.cuh): one plain struct passed
// by value, every pointer to device memory. Symbols of ops/moe_experts.h: P gathered rows, E
// experts, H hidden size, Im expert intermediate size.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::sm80 {

// One grouped GEMM over all experts: for every row r of expert e,
//   plain:   out[r, j] = Σ_k a[r, k] · b[e, j, k]                          (down: N = H)
//   SwiGLU:  out[r, j] = silu(Σ_k a[r, k] · b[e, j, k]) · Σ_k a[r, k] · b[e, Im + j, k]
//            (gate_up: gate rows [0, Im), up rows [Im, 2·Im) of each expert)
struct MoeGemmParams {
  const __nv_bfloat16* a;          // [P, K] the rows of all experts, in expert order
  const __nv_bfloat16* b;          // [E, b_rows, K] stacked expert weights
  __nv_bfloat16* out;              // [P, n_out]
  const int32_t* expert_offsets;   // [E + 1] expert e owns rows [offsets[e], offsets[e + 1]),
                                   // read on the device (clamped to [0, P])
  int32_t num_rows;                // P
  int32_t num_experts;             // E
  int32_t k;                       // K: H (gate_up) or Im (down), a multiple of the 64-wide K tile
  int32_t b_rows;                  // rows of one expert's weight: 2·Im (gate_up) or H (down)
  int32_t n_out;                   // output columns: Im (SwiGLU) or H (plain)
  int32_t n_tiles;                 // column tiles per expert: n_out / (BN / 2) or n_out / BN
};

}  // namespace mlaserve::ops::sm80
