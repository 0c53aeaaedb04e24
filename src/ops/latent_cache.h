// The paged latent KV cache of one layer (MODEL_SPEC §4.1, §4.4): writing new rows and reading
// a sequence's rows back.
//
//   cache  [num_blocks, block_size (64), dc + dr (576)] f32 or bf16; row = [c_n (512) | k_pe (64)]
//   slot   = block · block_size + offset: token slot s lives at cache[s / block_size, s % block_size]
//
// write_latent_cache_cpu: for each new token t with slot_mapping[t] >= 0,
//   cache[slot] = [latent[t] | k_pe[t]], rounded to the cache dtype (bf16: nearest even);
//   slot_mapping[t] = -1 skips the token (padding). Slots must be distinct.
//     latent        [T, dc] f32  kv_a_layernorm(c), the normalised latent
//     k_pe          [T, dr] f32  the rope key after RoPE
//     slot_mapping  [T] i32 or i64
// The two halves come in separately (as vLLM's concat_and_cache_mla takes them) because the
// graph needs both on their own anyway: latent feeds kv_b_proj in the MHA form and k_pe is
// broadcast to every head. They come from kv_a_proj_with_mqa [576, H] as two GEMMs against its
// row slices [0, 512) and [512, 576) (Tensor::slice; for FP8 the scale rows [0, 4) and [4, 5)).
//
// gather_latent_cache_cpu: the first S tokens of one sequence (positions 0 .. S-1), for the MHA
// form over cached context (chunked prefill, prefix-cache hits):
//     block_table  [max_blocks] i32, that sequence's block ids (position p -> block p / block_size)
//     latent       [S, dc] f32, k_pe [S, dr] f32, caller-allocated (S = latent.dim(0))
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void write_latent_cache_cpu(const Tensor& latent, const Tensor& k_pe, const Tensor& slot_mapping,
                            Tensor& cache);

void gather_latent_cache_cpu(const Tensor& cache, const Tensor& block_table, Tensor& latent, Tensor& k_pe);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void write_latent_cache(const Tensor& latent, const Tensor& k_pe, const Tensor& slot_mapping, Tensor& cache, Stream stream = {});
void gather_latent_cache(const Tensor& cache, const Tensor& block_table, Tensor& latent, Tensor& k_pe, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/latent_cache.cu ------------------------------------------------------
// cache, latent and k_pe bf16 on the GPU (copies, no rounding), slot_mapping i32/i64 and
// block_table i32 on the GPU; asynchronous on stream. The index contents are not checked on the
// device (that would need a synchronisation): the model validates block tables on the host and
// the engine owns the slots. They are never followed outside the cache: write skips a token whose
// slot is -1 or outside the cache; gather writes zeros for a position whose block id is outside
// [0, num_blocks).
void write_latent_cache_cuda(const Tensor& latent, const Tensor& k_pe, const Tensor& slot_mapping, Tensor& cache,
                             cudaStream_t stream);
void gather_latent_cache_cuda(const Tensor& cache, const Tensor& block_table, Tensor& latent, Tensor& k_pe,
                              cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
