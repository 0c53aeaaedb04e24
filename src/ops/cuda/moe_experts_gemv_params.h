// Launch parameters of the routed experts' grouped GEMV (moe_experts_gemv.cuh): one plain struct
// passed by value, every pointer to device memory. Symbols of ops/moe_experts.h: P gathered rows,
// E experts, H hidden size, Im expert intermediate size.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::gpu {

// One of the two launches, over every expert with rows: for each row r of expert e,
//   gate_up (SwiGLU):  out[r, j] = silu(Σ_k a[r, k] · w[e, j, k]) · Σ_k a[r, k] · w[e, Im + j, k]
//   down (plain):      out[r, j] = Σ_k a[r, k] · w[e, j, k]
// with e4m3 weights: a quantised per row and 128 channels inside the kernel, each 128-wide K
// group's sum scaled by a_scale · w_scale (fp8_quant.h, linear_fp8.h).
struct MoeGemvParams {
  const __nv_bfloat16* a;          // [P, K] x (gate_up) or hidden (down), rows in expert order;
                                   // gate_up with row_tokens: [T, K] the token rows
  const int32_t* row_tokens;       // gate_up only, or null: [P] the token of each row in expert order
                                   // (MoeGrouping::sorted_tokens), a holding the T token rows
  int32_t num_tokens;              // T with row_tokens
  bool all_tokens;                 // with row_tokens: a pass stages all T token rows (T <= rows_per_pass),
                                   // else each pass's rows from their tokens (moe_experts_gemv.cuh)
  const uint8_t* a_codes;          // e4m3 gate_up with row_tokens, indexed, or null: [T, K] e4m3 codes of
  const float* a_scales;           // the token rows and [T, K / 128] their scales, copied, not quantised
  const void* w;                   // [E, w_rows, K] bf16 or e4m3 stacked expert weights
  const float* w_scales;           // e4m3: [E, w_rows / 128, K / 128] f32 multipliers; else null
  __nv_bfloat16* out;              // [P, n_out]: hidden (gate_up) or out (down)
  const int32_t* expert_offsets;   // [E + 1] expert e owns rows [offsets[e], offsets[e + 1]), read
                                   // on the device (clamped to [0, P])
  int32_t num_rows;                // P
  int32_t num_experts;             // E
  int32_t k;                       // K: H (gate_up) or Im (down), a multiple of 128
  int32_t w_rows;                  // rows of one expert's weight: 2·Im (gate_up) or H (down)
  int32_t n_out;                   // output columns: Im (gate_up) or H (down)
  float amax_floor;                // e4m3: the activation quantiser's (ActQuantParams)
  bool ue8m0;                      // e4m3: power-of-two activation scales
  // The launch shape (moe_experts_gemv.cu from MoeGemvConfig): grid (ctas_per_slot, min(P, E)).
  int32_t tiles;                   // 16-row weight tiles an expert: Im / 8 (gate_up) or H / 16 (down)
  int32_t max_tiles_per_cta;       // ceil(tiles / gridDim.x): the partial sums' shared memory
  int32_t rows_per_pass;           // activation rows staged in shared memory at a time, 1 .. 8
};

}  // namespace mlaserve::ops::gpu
