// The paged MHA KV cache of one layer (KvCacheLayout::kMha, issue #7): per token the K and V of
// every head, as an MHA model caches them, in the same paged storage as the latent cache
// (kv/latent_cache.h) with wider rows.
//
//   cache  [num_blocks, block_size (64), n · (dqk + dv)] f32 or bf16
//          row = [K of heads 0 .. n-1 (n · dqk) | V of heads 0 .. n-1 (n · dv)]
//   slot   = block · block_size + offset: token slot s lives at cache[s / block_size, s % block_size]
// With dqk = 192 (k_nope 128 | rotated k_pe 64) and dv = 128 a row is n · 320 values against the
// latent cache's 576: 5120 for 16 heads (8.9x), 40960 for 128 heads (71x).
//
// write_mha_cache_cpu: for each new token t with slot_mapping[t] >= 0,
//   cache[slot] = [k[t] | v[t]] (flattened), rounded to the cache dtype (bf16: nearest even);
//   slot_mapping[t] = -1 skips the token (padding). Slots must be distinct.
//     k  [T, n, dqk] f32,  v  [T, n, dv] f32  (mla_expand_kv.h builds them), slot_mapping [T] i32/i64
//
// gather_mha_cache_cpu: the first S tokens of one sequence (positions 0 .. S-1), for the prefill
// chunks' attention over cached context; no up-projection.
//     block_table  [max_blocks] i32, that sequence's block ids (position p -> block p / block_size)
//     k [S, n, dqk] f32, v [S, n, dv] f32, caller-allocated (S = k.dim(0))
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace mlaserve::ops {

void write_mha_cache_cpu(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& cache);
void gather_mha_cache_cpu(const Tensor& cache, const Tensor& block_table, Tensor& k, Tensor& v);

// Dispatch by device (ops/dispatch.h): the model graph calls these.
void write_mha_cache(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& cache, Stream stream = {});
void gather_mha_cache(const Tensor& cache, const Tensor& block_table, Tensor& k, Tensor& v, Stream stream = {});

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

namespace mlaserve::ops {

// ---- CUDA: src/ops/cuda/paged_mha_cache.cu ---------------------------------------------------
// cache, k and v bf16 on the GPU, contiguous, 16-byte aligned, n · dqk and n · dv multiples of 8
// (copies in 16-byte units, no rounding); slot_mapping i32/i64 and block_table i32 on the GPU;
// asynchronous on stream. As for the latent cache, indices are never followed outside the
// cache: write skips a token whose slot is -1 or outside it, gather writes zeros for a position
// whose block id is outside [0, num_blocks).
void write_mha_cache_cuda(const Tensor& k, const Tensor& v, const Tensor& slot_mapping, Tensor& cache,
                          cudaStream_t stream);
void gather_mha_cache_cuda(const Tensor& cache, const Tensor& block_table, Tensor& k, Tensor& v,
                           cudaStream_t stream);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
