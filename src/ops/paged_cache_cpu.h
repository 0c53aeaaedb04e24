// What the CPU references of the paged caches share. Both caches hold a row per token made of
// two parts side by side, [a | b]: the latent cache [normalised latent | rotated rope key]
// (latent_cache.h) and the MHA-layout cache [K of every head | V of every head]
// (paged_mha_cache.h); their decode attentions (mla_decode.h, paged_mha_decode.h) take the same
// batch of sequences over block tables.
//
//   cache         [num_blocks, block_size, wa + wb] f32 or bf16
//   a, b          [T, wa], [T, wb] f32 (contiguous)
//   slot_mapping  [T] i32/i64: the flat slot (block · block_size + offset) of each token; -1 skips it
//   block_table   [max_blocks] i32: a sequence's blocks in order
#pragma once

#include <string_view>

#include "core/tensor.h"

namespace mlaserve::ops::cpu {

// cache[slot_mapping[t]] = [a[t] | b[t]] (rounded to bf16 for a bf16 cache).
void write_paged_rows(std::string_view op, const Tensor& a, const Tensor& b, const Tensor& slot_mapping,
                      Tensor& cache);

// a[p], b[p] = the two parts of position p of the sequence, for p < a.dim(0).
void gather_paged_rows(std::string_view op, const Tensor& cache, const Tensor& block_table, Tensor& a, Tensor& b);

// A decode batch over T query rows: block_table [B, max_blocks], seq_lens [B] and
// query_start [B + 1], host i32. query_start runs from 0 to T and increases, every sequence has
// a query row at least and no more than its seq_len, and the blocks it uses lie in
// [0, num_blocks) of a cache of block_size-token blocks.
void check_decode_batch(std::string_view op, const Tensor& block_table, const Tensor& seq_lens,
                        const Tensor& query_start, int64_t t, int64_t block_size, int64_t num_blocks);

}  // namespace mlaserve::ops::cpu
