// The routed experts at decode sizes as a grouped GEMV: device code. Contract: ops/moe_experts.h
// (moe_experts_cuda, moe_experts_fp8_cuda with MoeExpertsPath::kGemv or kAuto); launch code in
// moe_experts_gemv.cu, when it runs in moe_experts_gemv_heuristics.h, parameters in
// moe_experts_gemv_params.h.
//
// Symbols: P gathered rows (T·k), E experts, H hidden, Im expert intermediate, K the input width
// of a launch (H for gate_up, Im for down); expert e owns rows [offsets[e], offsets[e + 1]) of x,
// the offsets in device memory only.
//
// Why. At one token a V2-Lite MoE layer reads 6 experts' weights, 104 MB in BF16 (24.7 us at
// 4.2 TB/s) or 52 MB in e4m3 (12.4 us); the grouped GEMMs (moe_grouped_gemm_sm80.cuh and
// _fp8_sm89.cuh, 16-row M tiles through a cp.async ring, plus two quantiser launches for FP8)
// take ~37 us and ~40 us (bench/NOTES-engine.md, NOTES-fp8-gemm.md). Two launches that stream
// each chosen expert's weights once, with many 16-byte loads in flight and the activation
// quantisation inside, should run near the HBM rate.
//
// Shape of the work. Two kernels, the same template:
//   1. gate_up (kSwiGlu): grid (Im / 8, S). hidden[r, j] = bf16(silu(g) · u), g and u the fp32 dot
//      products of row r with gate row j and up row Im + j; rounded as the grouped GEMM's epilogue
//      (g / (1 + __expf(-g)) · u, one round to bf16).
//   2. down: grid (H / 16, S). out[r, j] = bf16(hidden[r] · down row j).
//   S = min(P, E) expert slots: CTA (x, s) works for the s-th expert, in expert order, whose
//   clamped row range is non-empty (expert_of_slot: every warp reads the E + 1 offsets from L2 in
//   one trip, ballots the non-empty experts 32 at a time and counts to s); slots past the number
//   of such experts exit. The host knows P and E only, so S is the bound min(P, E).
//
// One CTA = one 16-row tile of an expert's weight (gate_up: gate rows j .. j + 7 and the up rows
// of the same 8 channels; down: 16 consecutive rows) against up to 8 activation rows of that
// expert at a time (a "pass"; an expert with more rows takes several passes, re-reading its tile,
// from L2 when the passes follow closely: at decode sizes an expert has at most T rows). The dot
// products run on the tensor cores as swapped-operand mma.sync: A (16 x k) = the weight rows,
// B (k x 8) = the activation rows, D (16 x 8) fp32. m16n8k16 bf16 or m16n8k32 e4m3: the same bytes
// at the same lanes (moe_grouped_gemm_fp8_sm89.cuh), so one load scheme serves both. The CUDA
// cores could not keep up with the weights in e4m3: widening 16 codes to fp32 costs ~24
// instructions per row before the FMAs (linear_fp8_gemv.cuh at 2+ tokens is compute-bound), while
// one mma consumes 512 bytes of the warp's weight loads.
//
// Loads straight into mma fragments, no shared-memory staging of the weights. A k-block is 64
// bytes of a row (32 bf16 or 64 e4m3); lane (g, t) = (lane / 4, lane % 4) loads bytes
// [16t, 16t + 16) of the k-block of weight rows g and g + 8 and of activation row g (zeros for
// g >= the pass's rows). An mma step takes 8 of those bytes: [8s, 8s + 4) as the low k-slots of the
// A and B fragments (a0 row g, a1 row g + 8, b0), [8s + 4, 8s + 8) as the high ones (a2, a3, b1).
// A and B lanes with the same t use the same bytes for the same k-slots, so the mma sums the right
// products: the k order inside the instruction is permuted, the sum is the row's dot product. D's
// c0, c1 are (row g; activation rows 2t, 2t + 1), c2, c3 the same for row g + 8: with gate_up's
// tile (rows g: gate, g + 8: up of the same channel) a lane holds gate and up of its outputs.
//
// K is cut into units of 128 bytes (two k-blocks: 64 bf16, or one 128-wide e4m3 scale group);
// warp w of the 8 takes units w, w + 8, ..., kMoeGemvUnroll units per step, all their loads (4 a
// unit and lane) issued before the first mma. After the K loop the warps' fp32 tiles are summed
// through shared memory in warp order 0 .. 7 (deterministic) and warp 0 writes the pass's rows.
//
// e4m3 weights (W8A8, the grouped FP8 GEMM's arithmetic): each pass first quantises its
// activation rows into shared memory, all 256 threads, 16 per (row, 128-wide group): amax over the
// group by shuffles, max'ed with the floor, scale and quotients by IEEE division, RNE saturating
// e4m3 (fp8_quant.cuh: bit-identical to quantize_activations_fp8_cuda, so no quantiser launch).
// Each unit (one group) is summed by its 4 mma steps into a fresh fp32 tile, then promoted:
// acc += part · (a_scale[row, g] · w_scale[e, row / 128, g]), as linear_fp8_w8a8_cpu and the
// grouped FP8 GEMM. The tile's 8 gate and 8 up rows (or 16 down rows) each lie in one 128-row scale
// block (Im and H are multiples of 128). The hidden state goes through bf16 between the two
// kernels, as on the grouped path, and the down kernel quantises it the same way.
//
// Programmatic dependent launch (pdl.cuh). gate_up waits first thing: its expert comes from the
// offsets, written by the kernel just before it, so not even its weights can be loaded before the
// wait; then it lets the down kernel launch. The down kernel finds its expert and issues its first
// step's weight loads before its wait: the offsets were written two kernels back (gate_up's CTAs
// all passed their wait before any down CTA could start, so those writes are visible; read through
// L2 as the grouped GEMM's down does), and no kernel of a step writes a weight. hidden, which
// gate_up writes, is read only after the wait. Every CTA, even one with no expert, waits before it
// exits.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/fp8_quant.cuh"
#include "ops/cuda/moe_experts_gemv_params.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm89.cuh"  // sm89::mma_16832_e4m3, sm80::mma_16816, clamp_rows
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/vec.cuh"

namespace mlaserve::ops::gpu {

inline constexpr int kMoeGemvWarps = 8;              // warps per CTA, each over a share of K
inline constexpr int kMoeGemvThreads = 32 * kMoeGemvWarps;
inline constexpr int kMoeGemvRowsPerPass = 8;        // activation rows per pass: the mma's N
inline constexpr int kMoeGemvUnitBytes = 128;        // bytes of a weight row per unit of K
inline constexpr int kMoeGemvUnroll = 2;             // units per warp and step
inline constexpr int kMoeGemvGateUpChannels = 8;     // gate_up: hidden channels per CTA (16 weight rows)
inline constexpr int kMoeGemvDownChannels = 16;      // down: output channels per CTA
inline constexpr int kMoeGemvCodePad = 64;           // bytes after each quantised row in shared memory
// CTAs an SM the registers must allow (<= 85 registers a thread): with 8 warps each, 24 warps an SM
// keep 8 16-byte loads a lane in flight, 96 KB an SM, ~12 MB over the H200 (the HBM rate needs
// ~8.4 MB: 4.2 TB/s x ~2 us).
inline constexpr int kMoeGemvMinCtasPerSm = 3;
static_assert(128 % kMoeGemvGateUpChannels == 0 && 128 % kMoeGemvDownChannels == 0,
              "a CTA's weight rows lie in one 128-row scale block");

// Dynamic shared memory of an e4m3 launch: activation scales [8][K / 128] f32, then `rows` rows of
// codes, K + kMoeGemvCodePad bytes apart (the pad puts rows g and g + 1, read by one quarter warp,
// in different banks). BF16 launches use none.
inline constexpr int64_t moe_gemv_smem_bytes(int64_t k, int64_t rows) {
  return int64_t{kMoeGemvRowsPerPass} * (k / 128) * 4 + rows * (k + kMoeGemvCodePad);
}

inline constexpr unsigned kFullMask = 0xffffffffu;

struct ExpertSlot {
  int expert;      // < 0: fewer experts have rows than the slot's index
  int begin, end;  // its rows, clamped to [0, P] (sm80::clamp_rows)
};

// The slot-th expert (counting from 0, in expert order) whose clamped row range is non-empty.
// Every lane of the warp calls it and gets the same answer. Lane l reads offsets[32c + l] for
// 8 chunks c at a time (E <= 256: one batch, one trip to L2, ld.global.cg); the end of an expert's
// range is the next lane's value (lane 31: the next chunk's first).
__device__ __forceinline__ ExpertSlot expert_of_slot(const int32_t* offsets, int num_experts, int num_rows,
                                                     int slot) {
  constexpr int kBatch = 8;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  int remaining = slot;
  for (int c0 = 0; c0 * 32 < num_experts; c0 += kBatch) {
    int o[kBatch + 1];  // o[c] = offsets[32 (c0 + c) + lane], o[kBatch] = offsets[32 (c0 + kBatch)] (clamped to E)
#pragma unroll
    for (int c = 0; c < kBatch; ++c) o[c] = __ldcg(offsets + min((c0 + c) * 32 + lane, num_experts));
    o[kBatch] = __ldcg(offsets + min((c0 + kBatch) * 32, num_experts));
#pragma unroll
    for (int c = 0; c < kBatch; ++c) {
      const int first_of_next = __shfl_sync(kFullMask, o[c + 1], 0);
      int next = __shfl_down_sync(kFullMask, o[c], 1);
      if (lane == 31) next = first_of_next;
      int begin, end;
      sm80::clamp_rows(o[c], next, num_rows, begin, end);
      const bool has_rows = (c0 + c) * 32 + lane < num_experts && end > begin;
      unsigned mask = __ballot_sync(kFullMask, has_rows);
      const int count = __popc(mask);
      if (remaining < count) {  // warp-uniform
        for (int i = 0; i < remaining; ++i) mask &= mask - 1;
        const int src = __ffs(static_cast<int>(mask)) - 1;
        return {(c0 + c) * 32 + src, __shfl_sync(kFullMask, begin, src), __shfl_sync(kFullMask, end, src)};
      }
      remaining -= count;
    }
  }
  return {-1, 0, 0};
}

// Word i (0 .. 3) of a 16-byte vector.
__device__ __forceinline__ uint32_t vec_word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The two mma steps of one 64-byte k-block (the note at the top): w_lo, w_hi this lane's 16 bytes
// of weight rows g and g + 8, act those of activation row g.
template <bool kFp8>
__device__ __forceinline__ void mma_k_block(float (&d)[4], const uint4& w_lo, const uint4& w_hi, const uint4& act) {
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const uint32_t a[4] = {vec_word(w_lo, 2 * s), vec_word(w_hi, 2 * s), vec_word(w_lo, 2 * s + 1),
                           vec_word(w_hi, 2 * s + 1)};
    if constexpr (kFp8) {
      sm89::mma_16832_e4m3(d, a, vec_word(act, 2 * s), vec_word(act, 2 * s + 1));
    } else {
      sm80::mma_16816(d, a, vec_word(act, 2 * s), vec_word(act, 2 * s + 1));
    }
  }
}

// Rows [row0, row0 + n) of p.a quantised to e4m3 per 128-wide group into shared memory: codes of
// row j at codes + j · code_stride, scales[j · K / 128 + group]. Every thread of the CTA calls it;
// half-warps take the (row, group) tasks, 8 values a lane, kBatch tasks a half-warp with their
// loads issued together (one trip to L2 per 32 tasks: a row of V2-Lite's H, two of V3's). Two,
// not more: the FP8 kernels hold the first step's weights (32 registers) across this, and four
// doubled their spills (ptxas).
__device__ __forceinline__ void quantize_rows(const MoeGemvParams& p, int row0, int n, float* scales, uint8_t* codes,
                                              int code_stride) {
  constexpr int kBatch = 2, kStride = 2 * kMoeGemvWarps;  // tasks apart within a batch
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int half = lane / 16, l16 = lane % 16;
  const int groups = p.k / 128, tasks = n * groups;
  for (int base = 2 * warp + half; base - half < tasks; base += kStride * kBatch) {  // warp-uniform trip count
    uint4 raw[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int task = base + b * kStride, j = task / groups, q = task - j * groups;
      raw[b] = task < tasks ? __ldcg(reinterpret_cast<const uint4*>(p.a + int64_t{row0 + j} * p.k + q * 128 + 8 * l16))
                            : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int task = base + b * kStride, j = task / groups, q = task - j * groups;
      float v[8];
      unpack_bf16x8(raw[b], v);
      float amax = p.amax_floor;
#pragma unroll
      for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(v[i]));  // fmaxf skips NaN, as the quantiser
#pragma unroll
      for (int d = 1; d < 16; d <<= 1) amax = fmaxf(amax, __shfl_xor_sync(kFullMask, amax, d));  // the half-warp
      const float scale = fp8_act_scale(amax, p.ue8m0);
      uint32_t lo = 0, hi = 0;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        lo |= static_cast<uint32_t>(fp8_act_quantize(v[i], scale)) << (8 * i);
        hi |= static_cast<uint32_t>(fp8_act_quantize(v[4 + i], scale)) << (8 * i);
      }
      if (task < tasks) {
        *reinterpret_cast<uint2*>(codes + j * code_stride + q * 128 + 8 * l16) = make_uint2(lo, hi);
        if (l16 == 0) scales[j * groups + q] = scale;
      }
    }
  }
}

// grid (n_out / channels, min(P, E)), block kMoeGemvThreads, dynamic shared memory
// moe_gemv_smem_bytes(K, min(P, 8)) for e4m3 (else 0); launched with launch_programmatic.
template <bool kFp8, bool kSwiGlu>
__global__ void __launch_bounds__(kMoeGemvThreads, kMoeGemvMinCtasPerSm)
    moe_experts_gemv_kernel(const MoeGemvParams p) {
  extern __shared__ __align__(16) uint8_t smem[];  // e4m3: scales [8][K / 128] f32, then codes (see above)
  __shared__ float4 partial[kMoeGemvWarps][32];     // each warp's D tile, for the sum over warps
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  constexpr int kElemBytes = kFp8 ? 1 : 2;
  const int64_t row_bytes = int64_t{p.k} * kElemBytes;  // of a weight row
  const int units = static_cast<int>(row_bytes / kMoeGemvUnitBytes);

  if constexpr (kSwiGlu) {  // the expert comes from offsets the kernel just before wrote
    grid_dependency_wait();
    launch_dependents();
  }
  const ExpertSlot slot = expert_of_slot(p.expert_offsets, p.num_experts, p.num_rows, static_cast<int>(blockIdx.y));

  // This lane's two weight rows within the expert: A rows g and g + 8 of the tile.
  int row_lo, row_hi;
  if constexpr (kSwiGlu) {
    row_lo = static_cast<int>(blockIdx.x) * kMoeGemvGateUpChannels + g;  // gate row = hidden channel
    row_hi = p.n_out + row_lo;                                           // the up row of the same channel
  } else {
    row_lo = static_cast<int>(blockIdx.x) * kMoeGemvDownChannels + g;
    row_hi = row_lo + 8;
  }
  const int64_t expert = slot.expert < 0 ? 0 : slot.expert;
  const uint8_t* w_expert = static_cast<const uint8_t*>(p.w) + expert * p.w_rows * row_bytes + 16 * t;
  const uint8_t* w_lo = w_expert + row_lo * row_bytes;
  const uint8_t* w_hi = w_expert + row_hi * row_bytes;

  // Warp w's units: w + 8 (kMoeGemvUnroll · step + i); `steps` steps of up to kMoeGemvUnroll.
  const auto unit_of = [&](int step, int i) { return warp + kMoeGemvWarps * (step * kMoeGemvUnroll + i); };
  const int warp_units = units > warp ? (units - warp + kMoeGemvWarps - 1) / kMoeGemvWarps : 0;
  const int steps = (warp_units + kMoeGemvUnroll - 1) / kMoeGemvUnroll;

  uint4 wv[kMoeGemvUnroll][2][2];  // [unit][k-block][row g, row g + 8], zeros past K
  const auto load_weights = [&](int step) {
#pragma unroll
    for (int i = 0; i < kMoeGemvUnroll; ++i) {
      const int u = unit_of(step, i);
      const bool in_k = u < units;
#pragma unroll
      for (int kb = 0; kb < 2; ++kb) {
        const uint32_t at = static_cast<uint32_t>(u) * kMoeGemvUnitBytes + kb * 64;  // < 2^31: a row
        wv[i][kb][0] = in_k ? __ldcs(reinterpret_cast<const uint4*>(w_lo + at)) : make_uint4(0, 0, 0, 0);
        wv[i][kb][1] = in_k ? __ldcs(reinterpret_cast<const uint4*>(w_hi + at)) : make_uint4(0, 0, 0, 0);
      }
    }
  };

  // The first step's weights: the down kernel before its wait (the note at the top), gate_up now.
  if (slot.expert >= 0 && steps > 0) load_weights(0);
  if constexpr (!kSwiGlu) {
    grid_dependency_wait();
    launch_dependents();
  }
  if (slot.expert < 0) return;  // the whole CTA: the slot is the same in every warp

  const int groups = p.k / 128;
  float* act_scales = reinterpret_cast<float*>(smem);                                 // [8][groups]
  uint8_t* act_codes = smem + int64_t{kMoeGemvRowsPerPass} * groups * sizeof(float);  // [rows][K + pad]
  const int code_stride = p.k + kMoeGemvCodePad;
  const float* w_scale_lo = nullptr;
  const float* w_scale_hi = nullptr;
  if constexpr (kFp8) {
    const float* w_scales = p.w_scales + expert * (p.w_rows / 128) * groups;
    w_scale_lo = w_scales + (row_lo / 128) * groups;
    w_scale_hi = w_scales + (row_hi / 128) * groups;
  }

  for (int row0 = slot.begin; row0 < slot.end; row0 += kMoeGemvRowsPerPass) {
    const int n = min(kMoeGemvRowsPerPass, slot.end - row0);  // this pass's activation rows
    if (row0 != slot.begin) {
      __syncthreads();  // the last pass's shared memory has been read
      if (steps > 0) load_weights(0);
    }
    if constexpr (kFp8) {
      quantize_rows(p, row0, n, act_scales, act_codes, code_stride);
      __syncthreads();
    }
    const bool has_row = g < n;  // activation row g of the pass (B column g)
    const uint8_t* act_row = reinterpret_cast<const uint8_t*>(p.a + int64_t{row0 + (has_row ? g : 0)} * p.k) + 16 * t;
    uint4 av[kMoeGemvUnroll][2];  // bf16: [unit][k-block] this lane's activation bytes
    const auto load_acts = [&](int step) {
#pragma unroll
      for (int i = 0; i < kMoeGemvUnroll; ++i) {
        const int u = unit_of(step, i);
#pragma unroll
        for (int kb = 0; kb < 2; ++kb) {
          const uint32_t at = static_cast<uint32_t>(u) * kMoeGemvUnitBytes + kb * 64;
          av[i][kb] =
              has_row && u < units ? __ldcg(reinterpret_cast<const uint4*>(act_row + at)) : make_uint4(0, 0, 0, 0);
        }
      }
    };

    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // D: (row g; cols 2t, 2t + 1), (row g + 8; the same)
    for (int step = 0; step < steps; ++step) {
      if (step > 0) load_weights(step);
      if constexpr (!kFp8) load_acts(step);
#pragma unroll
      for (int i = 0; i < kMoeGemvUnroll; ++i) {
        const int u = unit_of(step, i);
        if (u >= units) break;  // warp-uniform
        if constexpr (kFp8) {
          const float ws_lo = __ldg(w_scale_lo + u), ws_hi = __ldg(w_scale_hi + u);
          const float as0 = 2 * t < n ? act_scales[2 * t * groups + u] : 0.0f;
          const float as1 = 2 * t + 1 < n ? act_scales[(2 * t + 1) * groups + u] : 0.0f;
          float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // this group's sums
#pragma unroll
          for (int kb = 0; kb < 2; ++kb) {
            const uint4 codes = has_row ? *reinterpret_cast<const uint4*>(act_codes + g * code_stride +
                                                                          u * kMoeGemvUnitBytes + kb * 64 + 16 * t)
                                        : make_uint4(0, 0, 0, 0);
            mma_k_block<true>(part, wv[i][kb][0], wv[i][kb][1], codes);
          }
          acc[0] += part[0] * (as0 * ws_lo);
          acc[1] += part[1] * (as1 * ws_lo);
          acc[2] += part[2] * (as0 * ws_hi);
          acc[3] += part[3] * (as1 * ws_hi);
        } else {
          mma_k_block<false>(acc, wv[i][0][0], wv[i][0][1], av[i][0]);
          mma_k_block<false>(acc, wv[i][1][0], wv[i][1][1], av[i][1]);
        }
      }
    }

    // The sum over the warps (in order), then warp 0 writes this pass's rows: lane (g, t) has
    // activation rows 2t and 2t + 1 of weight rows g and g + 8.
    partial[warp][lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
    __syncthreads();
    if (warp == 0) {
      float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
      for (int w = 0; w < kMoeGemvWarps; ++w) {
        const float4 v = partial[w][lane];
        sum[0] += v.x;
        sum[1] += v.y;
        sum[2] += v.z;
        sum[3] += v.w;
      }
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = 2 * t + c;
        if (col >= n) continue;
        __nv_bfloat16* out_row = p.out + int64_t{row0 + col} * p.n_out;
        if constexpr (kSwiGlu) {
          const float gate = sum[c], up = sum[2 + c];
          out_row[row_lo] = __float2bfloat16_rn(gate / (1.0f + __expf(-gate)) * up);
        } else {
          out_row[row_lo] = __float2bfloat16_rn(sum[c]);
          out_row[row_hi] = __float2bfloat16_rn(sum[2 + c]);
        }
      }
    }
  }
}

}  // namespace mlaserve::ops::gpu
