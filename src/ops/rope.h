// Rotary position embedding with YaRN frequencies (MODEL_SPEC §3.4, §3.5), interleaved pairing.
//
// Frequencies: rope_inv_freq(params) gives inv_freq[i], i = 0 .. dr/2 - 1. Without YaRN it is
// theta^(-2i/dr). With YaRN (factor f, original context L0, beta_fast, beta_slow):
//   corr_dim(r) = dr · ln(L0 / (2π r)) / (2 ln theta)
//   low  = max(floor(corr_dim(beta_fast)), 0),  high = min(ceil(corr_dim(beta_slow)), dr - 1)
//   (high += 0.001 when they meet),  ramp[i] = clamp((i - low) / (high - low), 0, 1)
//   inv_freq[i] = theta^(-2i/dr) · (ramp[i] / f + 1 - ramp[i])
// computed in double, rounded once to f32. The cos/sin magnitude mc = yarn_mscale(f, mscale) /
// yarn_mscale(f, mscale_all_dim) (1 for every released checkpoint; 1 without YaRN) is folded
// into the table. The softmax-scale correction m² is not RoPE's business: it is in the model's
// softmax_scale.
//
// Table: cos_sin [P, dr] f32 for positions 0 .. P-1, row p = [mc·cos(θ_0..θ_{dr/2-1}) |
// mc·sin(θ_0..)], θ_i = float(p) · inv_freq[i] in fp32 (as HF and vLLM build theirs).
//
// Rotation, in place, of the dr channels starting at `channel_offset` of every row:
//   x          [T, heads, row] or [T, row] f32; channel_offset + dr <= row
//   positions  [T] i32 or i64, each in [0, P)
//   out[2i]   = x[2i]·cos θ_i − x[2i+1]·sin θ_i
//   out[2i+1] = x[2i]·sin θ_i + x[2i+1]·cos θ_i                 (pairs of adjacent channels)
// This is REF's and vLLM's (is_neox_style=False) layout, applied to the checkpoint's raw channel
// order. Use it for both sides: q_pe = channels 128..191 of q [T, n, 192] (channel_offset 128)
// and k_pe [T, 64] (channel_offset 0). A rotate-half (NeoX) kernel on the raw channels would be
// a different function (§3.4); the test rope_test.cc pins that down.
#pragma once

#include <cstdint>
#include <vector>

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

struct RopeParams {
  int64_t rotary_dim = 64;                 // dr: rotated channels, even
  double theta = 10000.0;                  // rope_theta
  bool yarn = false;                       // rope_scaling type "yarn"; off: plain RoPE, mc = 1
  double factor = 1.0;                     // YaRN f
  int64_t original_max_position = 4096;    // YaRN L0: original_max_position_embeddings
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

// The YaRN blend range in pair indices (low = 10, high = 23 for DeepSeek's released values).
struct YarnCorrectionRange {
  double low = 0.0;
  double high = 0.0;
};

YarnCorrectionRange yarn_correction_range(const RopeParams& params);

// [dr / 2] inverse frequencies.
std::vector<float> rope_inv_freq(const RopeParams& params);

// Fills cos_sin [P, dr] f32 (P = cos_sin.dim(0), the positions to cover).
void build_rope_cos_sin_cpu(const RopeParams& params, Tensor& cos_sin);

void apply_rope_interleaved_cpu(Tensor& x, const Tensor& positions, const Tensor& cos_sin,
                                int64_t channel_offset);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void apply_rope_interleaved(Tensor& x, const Tensor& positions, const Tensor& cos_sin, int64_t channel_offset, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/rope.cu --------------------------------------------------------------
// x bf16 [T, heads, row] or [T, row] rotated in place, positions [T] i32/i64, cos_sin [P, dr]
// f32 (build_rope_cos_sin_cpu's table copied to the GPU), all on the GPU; asynchronous on
// stream. The rotation is fp32, each output channel rounded once to bf16. Positions are not
// checked on the device: the caller builds the table to cover them (DeepSeekModel::rope_table);
// a position outside [0, P) reads nothing and zeroes its rotated channels.
void apply_rope_interleaved_cuda(Tensor& x, const Tensor& positions, const Tensor& cos_sin, int64_t channel_offset,
                                 cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
