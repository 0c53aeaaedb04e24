// Launch code of the fused absorbed MLA attention kernel (mla_absorbed_sm90.cuh, launched from
// mla_absorbed_sm90.cu, contract ops/mla_absorbed_attention.h): its parameters and the driver's
// count of resident clusters. Host-visible; no device code.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace mlaserve::ops::sm90 {

inline constexpr int kFusedHeads = 16;    // a head group: the cluster's CTAs, one a head
inline constexpr int kFusedMaxGroups = 8; // G = n / 16 head groups (clusters) a sequence: n <= 128
inline constexpr int kFusedMaxSeqs = 8;   // B: sequences a launch
inline constexpr int kFusedNope = 128;    // dn
inline constexpr int kFusedRope = 64;     // dr
inline constexpr int kFusedValue = 128;   // dv
inline constexpr int kFusedLatent = 512;  // dc

// mla_absorbed_sm90_kernel: grid (16, B G) or (16, 2 B G), clusters of (16, 1, 1), n = 16 G heads.
// Sequence b's query is row b.
struct MlaAbsorbedParams {
  const __nv_bfloat16* q;         // [B, n, 192] rope applied, or applied here (positions)
  const __nv_bfloat16* w_kv_b;    // [n · 256, 512]: W_UK[h] rows 256 h .., W_UV[h] rows 256 h + 128 ..
  const __nv_bfloat16* kv_cache;  // [num_blocks, 64, 576]
  const int32_t* block_table;     // [B, max_blocks]
  const int32_t* seq_lens;        // [B] keys per sequence, the new token included
  __nv_bfloat16* o;               // [B, n, 128]
  int32_t groups;                 // G: head groups of 16, one cluster (or two with halves) each
  int32_t max_blocks;             // block_table's row length
  float scale_log2;               // softmax_scale * log2(e): scores go through exp2
  bool early_loads;               // MlaAbsorbedArgs::early_loads
  const void* positions;          // [B] i32 or i64: q's RoPE inside (MlaAbsorbedArgs::positions), or null
  const float* cos_sin;           // [num_positions, 64] the RoPE table (with positions)
  int64_t num_positions;
  bool positions_i64;
};

// Clusters of 16 CTAs of the kernel that the current GPU holds at once (asked of the driver once
// per device, after setting the kernel's shared-memory and cluster-size attributes there); 0 when
// it refuses clusters of 16.
int absorbed_max_active_clusters();

// Launches the kernel for num_seqs sequences of p.groups head groups, num_seqs · p.groups <=
// absorbed_max_active_clusters(), on stream with programmatic dependent launch: two clusters a
// head group by head halves when split_heads and the GPU holds 2 num_seqs p.groups clusters, one
// otherwise (the same bits).
void launch_mla_absorbed(const MlaAbsorbedParams& p, int num_seqs, bool split_heads, cudaStream_t stream);

}  // namespace mlaserve::ops::sm90
