// latent_rows: the end of MLA's kv branch in one op (MODEL_SPEC §3.2, §4.1), from the output of
// kv_a_proj_with_mqa to the normalised latent, the rotated rope key and, optionally, their cache
// row:
//
//   ckv      [T, dc + dr]  kv_a_proj_with_mqa(a): the compressed latent c (dc), the raw rope key (dr)
//   latent   [T, dc]       RMSNorm(c) · kv_a_layernorm                    (rms_norm.h)
//   k_pe     [T, dr]       RoPE(ckv[:, dc:], positions), interleaved pairs (rope.h, offset 0)
//   cache    cache[slot_mapping[t]] = [latent[t] | k_pe[t]], skipped for slot -1 (latent_cache.h),
//            only when slot_mapping is given (the latent cache layout; the MHA layout writes
//            its own rows)
//
// The CPU reference is exactly those three ops in a row. On the GPU it is one kernel instead of
// two GEMMs over kv_a's row views plus three launches (norm, RoPE, cache write): at decode sizes
// each of those is a few microseconds of latency on the step's serial path.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

struct LatentRowInputs {
  Tensor ckv;          // [T, dc + dr] f32 (CPU) or bf16 (GPU)
  Tensor norm_weight;  // [dc] kv_a_layernorm weight, f32 or bf16
  float eps = 1e-6f;   // rms_norm_eps
  Tensor positions;    // [T] i32 or i64
  Tensor cos_sin;      // [P, dr] f32 RoPE table (rope.h)
};

struct LatentRowOutputs {
  Tensor latent;        // [T, dc], caller-allocated, same dtype as ckv
  Tensor k_pe;          // [T, dr], caller-allocated, same dtype as ckv
  Tensor slot_mapping;  // [T] i32 or i64, or undefined: no cache write
  Tensor cache;         // [num_blocks, block_size, dc + dr], written at slot_mapping (when given)
};

void latent_rows_cpu(const LatentRowInputs& in, LatentRowOutputs& out);

// Dispatch by device (ops/dispatch.h): the model graph calls this.
void latent_rows(const LatentRowInputs& in, LatentRowOutputs& out, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/latent_rows.cu -------------------------------------------------------
// ckv, latent, k_pe and cache bf16 on the GPU, norm_weight f32 or bf16, positions and
// slot_mapping i32/i64, cos_sin f32; asynchronous on stream. Each output rounded once to bf16
// from fp32 (the rms_norm and RoPE kernels' arithmetic; the norm's sum of squares in another
// order). As in rope.h and latent_cache.h, a position outside the table writes zeros into k_pe,
// and a slot of -1 or outside the cache is skipped.
void latent_rows_cuda(const LatentRowInputs& in, LatentRowOutputs& out, cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
