// Dense block-scaled FP8 GEMM for decode batches on Hopper (sm_90a): device code and the launch
// template. Contract: ops/linear_fp8.h; tiling rules: linear_fp8_heuristics.h.
//
//   out[t, n] = Σ_g ( Σ_{κ∈g} x_q[t, κ] · w_q[n, κ] ) · x_scales[t, g] · w_scales[n / 128, g]
//
// Why "swap AB". At T <= 128 tokens the product reads the weight (N·K bytes) and little else:
// 2112 x 7168 is 15 MB against 0.9 MB of activations at T = 128. wgmma's M side is 64 rows, so
// the weight takes it: a tile is 64·WGS weight rows (WGS = 1 or 2 consumer warpgroups, 64 rows
// each, inside one 128-row scale block) x BN tokens (BN = 16, 64 or 128), and each warpgroup
// computes Dᵀ[64 x BN] = W[64 x K] · X[BN x K]ᵀ with both operands K-major in shared memory (fp8
// wgmma takes K-major operands only). Tokens past T get scale 0. No copy reads past T: one token
// tile (T <= BN) has a box of T rows, and the last of several a box of its rows below T
// (x_tail_map), since a box that passes T, which the copy engine fills with zeros, took 1.15-1.25x
// the time of the one-warpgroup plans at 65-80 tokens (H200, bench/NOTES-fp8-gemm.md). The shared
// memory rows past such a box hold stale codes; they meet only the tokens past T, never stored.
//
// Per 128-wide K group g (one pipeline stage: W [64·WGS x 128] + X [BN x 128]):
//   4 wgmma m64nBNk32 into a scratch accumulator, then total += scratch · x_scale[t] · w_scale:
//   the promotion of DeepGEMM and of the reference (each group summed on its own, the scaled
//   group sums added in fp32). At BN = 16 groups go in pairs through two scratch accumulators:
//   both groups' wgmma are issued before the first one's promotion, which then runs beside the
//   second's.
//
// One CTA = WGS consumer warpgroups (the wgmma and the promotion) + a producer warp. Per stage the
// producer waits for the stage to be free, then only issues copies: lane 0 the two TMA copies
// (128-byte swizzle, the wgmma canonical layout) and a 4-byte cp.async of w_scale, lane c the
// cp.async of x_scale[t0 + c] for c = lane, lane + 32, ... < BN (zero-filled past T: scale 0 for
// the padded tokens). A "full" mbarrier per stage completes with the TMA bytes (lane 0's
// expect_tx arrival) and one cp.async arrival of each of the 32 lanes (noinc: the count of 33
// includes them), once their scales have landed; an "empty" mbarrier per stage counts the
// consumer threads releasing it (each its own arrival: an elected arrival after __syncwarp is
// ordered as well, but compute-sanitizer's racecheck does not follow it). The consumers form
// x_scale·w_scale in fp32 at the promotion. 4-6 stages: 60-160 KB in flight per CTA, 1-3 CTAs
// per SM.
//
// Why the scales are copied, not loaded. The producer once read them with plain loads (a
// dependent load, multiply and shared store per token) before starting the stage's TMA copies:
// every stage's issue then waited a global-memory latency, and a CTA's stages were issued one
// latency apart (qkv_a 2112 x 7168 at T = 64: 16.8 us split 8 ways, 7 K groups a CTA, and
// 35.8 us persistent, 56 a CTA, ~0.6 us a stage, for a 3.8 us HBM floor; H200, fp8_gemm_bench,
// bench/results/fp8_gemm_nvidia-h200_20261129-152455-skinny-v3.json).
// cp.async puts no load result on the producer's path: wait empty -> issue copies -> arrive.
//
// Two ways to cover the GPU (linear_fp8_heuristics.h picks):
//   - split K over a cluster of `splits` CTAs (grid z, at most 8), one tile per CTA: each CTA
//     writes its fp32 Dᵀ tile into its own shared memory (over the drained stages), the cluster
//     synchronises, and CTA r adds up the r-th slice of the tile from all CTAs' shared memory
//     (distributed shared memory, 16-byte loads, all ranks in flight), rounds to bf16 (or keeps
//     fp32, SwapAbParams::out_f32) and stores it: no workspace, no atomics, the same summation
//     order every run;
//   - splits = 1: persistent CTAs walk tiles (stride = grid) through one continuous pipeline
//     and store each finished tile straight from registers.

#pragma once

#include <cooperative_groups.h>
#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>
#include <utility>

#include <cute/arch/mma_sm90_gmma.hpp>

#include "core/cuda_check.h"
#include "ops/cuda/sm90_ptx.cuh"
#include "ops/cuda/linear_fp8_heuristics.h"
#include "ops/cuda/linear_fp8_sm90.h"
#include "ops/cuda/linear_fp8_sm90_params.h"

namespace mlaserve::ops::sm90_fp8 {

// Shared-memory map and thread count for token tile BN and WGS consumer warpgroups (byte offsets
// from a 1 KB-aligned base); kThree: 4 stages at BN = 64, so that three CTAs fit an SM
// (swap_ab_three_per_sm).
template <int BN, int WGS, bool kThree = false>
struct Smem {
  static_assert(!kThree || (BN == 64 && WGS == 1), "three CTAs an SM: BN = 64, one warpgroup");
  static constexpr int kThreads = 128 * WGS + 32;           // consumer warpgroups + producer warp
  static constexpr int kRows = kWgRows * WGS;               // weight rows per tile
  static constexpr int kStages =
      kThree ? 4 : (WGS == 1 ? (BN == 16 ? 6 : (BN == 64 ? 5 : 4)) : (BN == 128 ? 5 : 6));
  static constexpr int kWBytes = kRows * kGroup;            // [kRows][128] e4m3
  static constexpr int kXBytes = BN * kGroup;               // [BN][128] e4m3
  static constexpr int kW = 0;                              // W stages
  static constexpr int kX = kW + kStages * kWBytes;         // X stages
  static constexpr int kXScales = kX + kStages * kXBytes;   // [stages][BN] f32 x_scales
  static constexpr int kFull = kXScales + kStages * BN * 4;  // mbarriers
  static constexpr int kEmpty = kFull + kStages * 8;
  static constexpr int kWScales = kEmpty + kStages * 8;     // [stages] f32 w_scale
  static constexpr int kBytes = kWScales + kStages * 4;
  static constexpr int kAlloc = kBytes + 1024;              // + room to align the base
  static constexpr int kPartialStride = kRows + 4;          // f32 per token row of the split-K Dᵀ
                                                            // tile: + 4 keeps the fragment stores
                                                            // conflict-free and rows 16-byte aligned
  static_assert(kXBytes % 1024 == 0 && kWBytes % 1024 == 0, "stages must stay 1 KB-aligned (128-byte swizzle)");
  static_assert(BN * kPartialStride * 4 <= kXScales, "the Dᵀ tile must fit over the drained stages");
  static_assert((kAlloc + 1024) * 3 <= 228 * 1024 || swap_ab_ctas_per_sm(BN, WGS, kThree) < 3,
                "swap_ab_ctas_per_sm promises 3 CTAs per SM");
  static_assert((kAlloc + 1024) * 2 <= 228 * 1024 || swap_ab_ctas_per_sm(BN, WGS, kThree) < 2,
                "swap_ab_ctas_per_sm promises 2 CTAs per SM");
  static_assert(kAlloc + 1024 <= 228 * 1024, "over the shared memory of an SM");
};

// ---- PTX (ops/cuda/sm90_ptx.cuh) --------------------------------------------------------

namespace ptx = ::mlaserve::ops::sm90::ptx;

// Named barrier of the consumer warpgroups alone (barrier 0 is __syncthreads).
template <int WGS>
__device__ __forceinline__ void consumer_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(128 * WGS) : "memory");
}

namespace gmma = cute::SM90::GMMA;

template <int BN>
struct WgmmaOp;
template <>
struct WgmmaOp<16> {
  using Op = gmma::MMA_64x16x32_F32E4M3E4M3_SS_TN<>;
};
template <>
struct WgmmaOp<64> {
  using Op = gmma::MMA_64x64x32_F32E4M3E4M3_SS_TN<>;
};
template <>
struct WgmmaOp<128> {
  using Op = gmma::MMA_64x128x32_F32E4M3E4M3_SS_TN<>;
};

template <int BN, size_t... I>
__device__ __forceinline__ void wgmma_k32(uint64_t a, uint64_t b, float (&d)[BN / 2], gmma::ScaleOut scale,
                                          std::index_sequence<I...>) {
  WgmmaOp<BN>::Op::fma(a, b, d[I]..., scale);
}

// out[i] = v: rounded once to bf16, or fp32 as summed (SwapAbParams::out_f32).
__device__ __forceinline__ void store_out(const SwapAbParams& p, int64_t i, float v) {
  if (p.out_f32) {
    static_cast<float*>(p.out)[i] = v;
  } else {
    static_cast<__nv_bfloat16*>(p.out)[i] = __float2bfloat16(v);
  }
}

// ---- the kernel ------------------------------------------------------------------------------

// Grid: plan.ctas x 1 x splits, clusters of 1 x 1 x splits. With splits > 1 CTA x owns tile x;
// with splits = 1 CTA x walks tiles x, x + grid, ...
template <int BN, int WGS, bool kThree>
__global__ void __launch_bounds__(Smem<BN, WGS, kThree>::kThreads) linear_fp8_sm90_swap_ab_kernel(
    const __grid_constant__ SwapAbParams p) {
  using S = Smem<BN, WGS, kThree>;
  constexpr int kStages = S::kStages, kRows = S::kRows, kThreadsCta = S::kThreads;
  constexpr int kProducerWarp = 4 * WGS;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const uint32_t base = ptx::smem_addr(smem);
  const float* x_sc = reinterpret_cast<const float*>(smem + S::kXScales);  // [stages][BN]
  const float* w_sc = reinterpret_cast<const float*>(smem + S::kWScales);  // [stages]
  const uint32_t full = base + S::kFull, empty = base + S::kEmpty;

  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int splits = static_cast<int>(gridDim.z), split = static_cast<int>(blockIdx.z);
  const int g_begin = split * p.g / splits, g_end = (split + 1) * p.g / splits;  // >= 1 group each
  const int first_tile = static_cast<int>(blockIdx.x), tile_stride = static_cast<int>(gridDim.x);

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      ptx::mbarrier_init(full + 8 * s, 32 + 1);    // the producer's 32 cp.async arrivals + lane 0's expect_tx
      ptx::mbarrier_init(empty + 8 * s, 128 * WGS);  // the consumer threads
    }
    ptx::mbarrier_init_fence();
  }
  __syncthreads();

  float total[BN / 2];  // consumer: this thread's fp32 Dᵀ fragment of the current tile
  if (warp == kProducerWarp) {
    int it = 0;  // stage uses so far, over all tiles
    for (int tile = first_tile; tile < p.tiles; tile += tile_stride) {
      const int n0 = (tile / p.t_tiles) * kRows, t0 = (tile % p.t_tiles) * BN;
      const bool tail = p.tail_stage_bytes != 0 && tile % p.t_tiles == p.t_tiles - 1;
      const CUtensorMap* x_map = tail ? &p.x_tail_map : &p.x_map;
      const uint32_t stage_bytes = tail ? p.tail_stage_bytes : p.stage_bytes;
      const float* w_scales = p.w_scales + static_cast<int64_t>(n0 / 128) * p.g;
      for (int g = g_begin; g < g_end; ++g, ++it) {
        const int s = it % kStages;
        const uint32_t bar = full + 8 * s;
        if (it >= kStages) ptx::mbarrier_wait(empty + 8 * s, ((it / kStages) + 1) & 1);  // use it/kStages - 1 released
        if (lane == 0) {
          ptx::mbarrier_arrive_expect_bytes(bar, stage_bytes);
          ptx::tma_load_2d(base + S::kW + s * S::kWBytes, &p.w_map, g * kGroup, n0, bar);
          ptx::tma_load_2d(base + S::kX + s * S::kXBytes, x_map, g * kGroup, t0, bar);
          ptx::cp_async_4(base + S::kWScales + 4 * s, w_scales + g, true);
        }
        for (int c = lane; c < BN; c += 32) {
          const int t = t0 + c;  // past T: nothing read, scale 0
          ptx::cp_async_4(base + S::kXScales + 4 * (s * BN + c),
                          p.x_scales + (t < p.t ? static_cast<int64_t>(t) * p.g + g : 0), t < p.t);
        }
        ptx::cp_async_arrive_noinc(bar);  // once this lane's scales have landed
      }
    }
  } else {
    const int wg = warp / 4;
    const int r = wg * kWgRows + 16 * (warp % 4) + lane / 4;  // fragment rows r, r + 8 of the tile
    // Two scratch accumulators at BN = 16: a K group's wgmma run while the one before it is
    // promoted. Not at BN = 64 (the pair holds two of its 4-5 stages: the copies run fewer groups
    // ahead, 1.05-1.38x the time at 32-64 tokens on an H200) nor at 128 (the second accumulator
    // would spill, or halve the CTAs an SM).
    constexpr bool kPairs = BN == 16;
    float acc[kPairs ? 2 : 1][BN / 2] = {};
    // Issues the 4 wgmma of stage use `use` (a K group) into a once its copies have landed.
    auto issue_group = [&](int use, float(&a)[BN / 2]) {
      const int s = use % kStages;
      ptx::mbarrier_wait(full + 8 * s, (use / kStages) & 1);
      const uint64_t w_desc = ptx::gmma_desc_k_sw128(base + S::kW + s * S::kWBytes + wg * kWgRows * kGroup);
      const uint64_t x_desc = ptx::gmma_desc_k_sw128(base + S::kX + s * S::kXBytes);
      ptx::fence_registers(a);
      ptx::wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kGroup / 32; ++ks) {  // 32 bytes of K per step, inside the swizzled row
        wgmma_k32<BN>(w_desc + static_cast<uint64_t>((ks * 32) >> 4), x_desc + static_cast<uint64_t>((ks * 32) >> 4),
                      a, ks == 0 ? gmma::ScaleOut::Zero : gmma::ScaleOut::One, std::make_index_sequence<BN / 2>{});
      }
      ptx::wgmma_commit();
    };
    // total += a · x_scale · w_scale of stage use `use` (its wgmma done), then the stage is released.
    auto promote_group = [&](int use, float(&a)[BN / 2]) {
      const int s = use % kStages;
      ptx::fence_registers(a);
      // Fragment: a[4j + {0,1,2,3}] = Dᵀ[r, c], [r, c+1], [r+8, c], [r+8, c+1], c = 8j + 2·(lane%4).
      // Combined scales x_scale·w_scale (fp32, rounded once, as the reference forms them).
      const float* sc = x_sc + s * BN;
      const float w_scale = w_sc[s];
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int c = 8 * j + 2 * (lane % 4);
        const float s0 = sc[c] * w_scale, s1 = sc[c + 1] * w_scale;
        total[4 * j + 0] += a[4 * j + 0] * s0;
        total[4 * j + 1] += a[4 * j + 1] * s1;
        total[4 * j + 2] += a[4 * j + 2] * s0;
        total[4 * j + 3] += a[4 * j + 3] * s1;
      }
      ptx::mbarrier_arrive(empty + 8 * s);  // every consumer thread: its reads of the stage are done
    };
    int it = 0;
    for (int tile = first_tile; tile < p.tiles; tile += tile_stride) {
      const int n0 = (tile / p.t_tiles) * kRows, t0 = (tile % p.t_tiles) * BN;
#pragma unroll
      for (int i = 0; i < BN / 2; ++i) total[i] = 0.0f;
      // K groups in pairs, each pair's wgmma both in flight before the first promotion; every path
      // through the loop body ends with no wgmma pending (ptxas serialises the kernel's wgmma
      // otherwise). The groups are promoted in order: the sums of the one-group loop, bit for bit.
      int g = g_begin;
      if constexpr (kPairs) {
        for (; g + 1 < g_end; g += 2, it += 2) {
          issue_group(it, acc[0]);
          issue_group(it + 1, acc[1]);
          ptx::wgmma_wait<1>();
          promote_group(it, acc[0]);
          ptx::wgmma_wait<0>();
          promote_group(it + 1, acc[1]);
        }
      }
      for (; g < g_end; ++g, ++it) {  // the last group of an odd count; every group without pairs
        issue_group(it, acc[0]);
        ptx::wgmma_wait<0>();
        promote_group(it, acc[0]);
      }
      if (splits == 1) {  // persistent: the tile is complete, straight to out
#pragma unroll
        for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const int t = t0 + 8 * j + 2 * (lane % 4) + (q & 1), n = n0 + r + 8 * (q >> 1);
            if (t < p.t && n < p.n) store_out(p, static_cast<int64_t>(t) * p.n + n, total[4 * j + q]);
          }
        }
      }
    }
    if (splits > 1) {
      // The Dᵀ tile, token-major ([BN][kPartialStride] f32), over the drained stages once every
      // consumer warp is past its last wgmma.
      consumer_sync<WGS>();
      float* partial = reinterpret_cast<float*>(smem);
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int c = 8 * j + 2 * (lane % 4);
        partial[c * S::kPartialStride + r] = total[4 * j + 0];
        partial[(c + 1) * S::kPartialStride + r] = total[4 * j + 1];
        partial[c * S::kPartialStride + r + 8] = total[4 * j + 2];
        partial[(c + 1) * S::kPartialStride + r + 8] = total[4 * j + 3];
      }
    }
  }
  if (splits == 1) return;

  // Reduce over the cluster: CTA `rank` sums its slice of the BN x kRows tile from every CTA,
  // 4 weight rows (16 bytes) at a time, all ranks' loads in flight together.
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int n0 = (first_tile / p.t_tiles) * kRows, t0 = (first_tile % p.t_tiles) * BN;
  float* partial = reinterpret_cast<float*>(smem);
  const int rank = static_cast<int>(cluster.block_rank());
  constexpr int kQuads = BN * kRows / 4;
  const int e_end = (rank + 1) * kQuads / splits;
  for (int e = rank * kQuads / splits + static_cast<int>(threadIdx.x); e < e_end; e += kThreadsCta) {
    const int c = e / (kRows / 4), r = (e % (kRows / 4)) * 4;
    const int at = c * S::kPartialStride + r;
    float4 v[kMaxSplits];
#pragma unroll
    for (int q = 0; q < kMaxSplits; ++q) {
      if (q < splits) v[q] = *reinterpret_cast<const float4*>(cluster.map_shared_rank(partial, q) + at);
    }
    float4 sum = v[0];
#pragma unroll
    for (int q = 1; q < kMaxSplits; ++q) {
      if (q < splits) {
        sum.x += v[q].x;
        sum.y += v[q].y;
        sum.z += v[q].z;
        sum.w += v[q].w;
      }
    }
    const int t = t0 + c, n = n0 + r;
    if (t >= p.t) continue;
    const int64_t at_out = static_cast<int64_t>(t) * p.n + n;
    if (p.n % 4 == 0 && n + 3 < p.n) {  // t·N + n is a multiple of 4: 8-byte (bf16), 16-byte (f32) aligned
      if (p.out_f32) {
        *reinterpret_cast<float4*>(static_cast<float*>(p.out) + at_out) = sum;
      } else {
        const __nv_bfloat162 lo = __floats2bfloat162_rn(sum.x, sum.y), hi = __floats2bfloat162_rn(sum.z, sum.w);
        uint2 packed;
        packed.x = *reinterpret_cast<const uint32_t*>(&lo);
        packed.y = *reinterpret_cast<const uint32_t*>(&hi);
        *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(p.out) + at_out) = packed;
      }
    } else {
      const float f[4] = {sum.x, sum.y, sum.z, sum.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (n + i < p.n) store_out(p, at_out + i, f[i]);
      }
    }
  }
  cluster.sync();  // no CTA leaves while another reads its shared memory
}

// The kernel's launch: a grid of ctas x 1 x splits in clusters of 1 x 1 x splits, its shared
// memory allowed. Not copyable: config points at the cluster attribute.
template <int BN, int WGS, bool kThree>
struct SwapAbLaunch {
  using S = Smem<BN, WGS, kThree>;
  static constexpr auto* kKernel = linear_fp8_sm90_swap_ab_kernel<BN, WGS, kThree>;
  cudaLaunchAttribute cluster{};
  cudaLaunchConfig_t config{};

  SwapAbLaunch(int ctas, int splits, cudaStream_t stream) {
    MLA_CUDA_CHECK(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, S::kAlloc));
    config.gridDim = dim3(static_cast<unsigned>(ctas), 1, static_cast<unsigned>(splits));
    config.blockDim = dim3(S::kThreads);
    config.dynamicSmemBytes = S::kAlloc;
    config.stream = stream;
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = 1;
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = static_cast<unsigned>(splits);
    config.attrs = &cluster;
    config.numAttrs = 1;
  }
  SwapAbLaunch(const SwapAbLaunch&) = delete;
  SwapAbLaunch& operator=(const SwapAbLaunch&) = delete;
};

template <int BN, int WGS, bool kThree>
void launch_swap_ab(const SwapAbParams& p, const SwapAbPlan& plan, cudaStream_t stream) {
  SwapAbLaunch<BN, WGS, kThree> launch(plan.ctas, plan.splits, stream);
  MLA_CUDA_CHECK(cudaLaunchKernelEx(&launch.config, launch.kKernel, p));
}

template <int BN, int WGS, bool kThree>
int swap_ab_max_active_clusters(int splits) {
  SwapAbLaunch<BN, WGS, kThree> launch(1, splits, nullptr);
  int clusters = 0;
  MLA_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, launch.kKernel, &launch.config));
  return clusters;
}

}  // namespace mlaserve::ops::sm90_fp8
