// Launch parameters of the grouped block-FP8 MoE GEMM (moe_grouped_gemm_fp8_sm89.cuh): one plain
// struct passed by value, every pointer to device memory. Symbols of ops/moe_experts.h: P gathered
// rows, E experts, H hidden size, Im expert intermediate size; KB = K / 128 scale groups along K.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mlaserve::ops::sm89 {

// One grouped GEMM over all experts, W8A8 with DeepSeek's block scales: for every row r of
// expert e, with a_q/b_q e4m3 and g running over the 128-wide K groups,
//   acc[r, j] = Σ_g (Σ_{κ∈g} a_q[r, κ] · b_q[e, j, κ]) · a_scales[r, g] · b_scales[e, j/128, g]
//   plain:   out[r, j] = acc[r, j]                                         (down: N = H)
//   SwiGLU:  out[r, j] = silu(acc[r, j]) · acc[r, Im + j]                  (gate_up: N = Im)
struct MoeFp8GemmParams {
  const uint8_t* a;               // [P, K] e4m3, the rows of all experts in expert order
  const float* a_scales;          // [P, KB] f32 multipliers (fp8_quant.h)
  const uint8_t* b;               // [E, b_rows, K] e4m3 stacked expert weights
  const float* b_scales;          // [E, b_rows / 128, KB] f32 block multipliers (fp8_block.h)
  __nv_bfloat16* out;             // [P, n_out]
  const int32_t* expert_offsets;  // [E + 1] expert e owns rows [offsets[e], offsets[e + 1]),
                                  // read on the device (clamped to [0, P])
  int32_t num_rows;               // P
  int32_t num_experts;            // E
  int32_t k;                      // K: H (gate_up) or Im (down), a multiple of 128
  int32_t b_rows;                 // rows of one expert's weight: 2·Im (gate_up) or H (down), a multiple of 128
  int32_t n_out;                  // output columns: Im (SwiGLU) or H (plain)
  int32_t n_tiles;                // column runs per expert (the grid's columns): n_out / (BN / 2) or
                                  // n_out / BN column tiles, over n_run
  int32_t n_run;                  // column tiles a CTA takes in turn through one pipeline (column_run)
};

}  // namespace mlaserve::ops::sm89
