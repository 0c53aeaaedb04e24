// Which kernel runs a dense block-scaled FP8 GEMM (ops/linear_fp8.h), and how the sm90 swap-AB
// kernel (linear_fp8_sm90.cuh) is cut. Plain host code; the rules below were read off
// fp8_gemm_bench on an H200, the split's bandwidth bound (splits_pay) on an H100 and an H200
// (bench/NOTES-fp8-gemm.md has the tables):
//
//   - a few tokens (use_gemv): the CUDA-core GEMV (linear_fp8_gemv.cuh), where the swap-AB kernel
//     is latency-bound (4-10 us on V2-Lite's projections for 0.3-3 us of bytes). At one token
//     (and two with K <= 2048) it also quantises bf16 activations itself (gemv_quantizes), saving
//     the quantiser's launch.
//   - T <= 16: the swap-AB kernel, every DeepSeek shape (1.1-1.9x cuBLASLt with its scale
//     transpose at T = 8). Its bytes are the weight, read once.
//   - T <= 64: the swap-AB kernel too. With its split sized to the GPU (below) it beats cuBLASLt:
//     V3 o_proj at 64 tokens 35.1 against 41.6 us (0.81 of the HBM floor), the dense down 38.9 /
//     45.4, qkv_a 10.0 / 15.6; V2-Lite's q_proj 7.2 / 9.3, o_proj 6.2 / 9.0 (2026-11-29,
//     seventeenth session). Where its plan is persistent (more tiles than two CTAs an SM hold:
//     V3's dense gate_up, q_b_proj, kv_b_proj; V2-Lite's dense gate_up), only with three CTAs an
//     SM (SwapAbPlan::three_per_sm) and K >= kThreePerSmMinK: V3's dense gate_up at 64 tokens
//     75.0 against 84.5 us (0.85 of the floor; at 32 tokens 73.1 / 89.1), q_b_proj 14.7 / 16.5
//     (13.7 / 16.0), V2-Lite's dense gate_up 16.8 / 19.8 (15.5 / 18.8); at K = 512 (kv_b_proj)
//     cuBLASLt stays as fast or faster (2026-11-30, thirtieth session).
//   - T <= 128 and N < 2048 (q_a_proj, kv_a_proj), or N < 4096 with K >= 4096 (V3's qkv_a: 13.2
//     against 16.7 us): the swap-AB kernel; and N <= 3072 with K <= 2048 or a shape cuBLASLt
//     refuses, in two token tiles of 64 (swap_ab_two_token_tiles: V2-Lite's o_proj 7.4 against
//     cuBLASLt's 9.2 us, where one tile of 128 took 14.8). Wider projections lose there (V3 o_proj
//     49.1 against 41.5), the activation tile being re-read from L2 once per 64-128 weight rows.
//   - otherwise cuBLASLt when its layout constraints hold (T, N multiples of 4, N of 8,
//     ceil(K/128) of 4). Where only T % 4 != 0 keeps it out, cuBLASLt on T & ~3 rows and a GEMV
//     on the rest (kCublasLtSplit, lt_split_pays), from kLtSplitMinMacs of work and, where the
//     one-group kernel could take the shape, from kLtSplitOverOneGroupMinTokens. Other shapes
//     cuBLASLt refuses (V2-Lite's K = 10944 or 2816) take, past 128 tokens with K and N multiples
//     of 128 and bf16 out, the grouped MoE FP8 GEMM as one group (kOneGroup: V2-Lite's
//     shared-expert down, 2048 x 2816, where the swap-AB kernel ran 46 us at 1,600 tokens, ~400
//     TFLOPS; H200, ncu, 2026-11-29); else the swap-AB kernel: correct, but it re-reads the weight
//     once per 128 tokens.
//
// Swap-AB tiles: 64·wgs weight rows (wgs consumer warpgroups, 1 or 2) x BN tokens per CTA, BN =
// 16, 64 or 128 (the smallest that holds T, at most 128; more tokens take more tiles; 64 at 65-128
// tokens where swap_ab_two_token_tiles says). Then one of
//   - split K over a cluster of `splits` CTAs (2 .. 8, the portable cluster size, at most one
//     split per 128-wide K group), one tile per CTA: for few tiles and long K (a 576 x 7168
//     projection is 9 tiles of 64 rows);
//   - splits = 1: persistent CTAs, as many as fit the GPU at once, each walking tiles
//     (stride = grid) with one continuous copy pipeline: for many tiles (kv_b_proj's
//     32768 x 512 is 512 tiles of 4 K groups).
// The default cut: persistent where no split pays (splits_pay: K too short, or the persistent CTAs
// already draw the card's HBM bandwidth); else the largest split whose CTAs fill at most
// kSplitFillPercent of the GPU's CTA slots (kSplitFillPercentBn16 at BN = 16) and whose clusters
// the GPU holds all at once (SwapAbGpu::held: one wave); persistent when not even two splits fit. Every split past that lost
// on the H200: V3 qkv_a at 64 tokens (33 tiles) 10.0 us at 6 splits (198 CTAs of 264 slots), 14.4
// at 8 (264); V2-Lite's shared down 7.3 at 7, V3 o_proj 35.1 at 2 (two warpgroups: 112 CTAs of
// 132), 39.9 at 4; V2-Lite's q_proj 7.2 at 4 (192 CTAs), 11.4 persistent. Two warpgroups (half the
// CTAs, each activation tile read for 128 weight rows) at K >= 16384 (o_proj, the dense down:
// 3-17%) and at BN = 128 where N >= 2048 (qkv_a 13.4 against 14.2 us, o_proj 48.9 / 56.2); narrower
// weights keep one (kv_a at 128 tokens: 5 tiles of 128 rows, 10.4 against 7.8 us); and with two
// token tiles where one warpgroup would load the SMs unevenly (two_tiles_take_two_wgs).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mlaserve::ops::sm90_fp8 {

enum class Fp8GemmPath : uint8_t { kSwapAB, kCublasLt, kCublasLtSplit, kGemv, kGemvMma, kOneGroup };

inline constexpr int64_t kGemvMaxTokens = 4;  // linear_fp8_gemv.cuh's kFp8GemvMaxTokens

// Where the GEMV beat the swap-AB kernel on the H200 (fp8_gemm_bench, V2-Lite's projections,
// bench/NOTES-fp8-gemm.md): at one token on every shape measured, N·K up to 45M (q_proj 3072 x
// 2048: 4.3 vs 9.2 us; the dense gate_up 21888 x 2048: 13.0 vs 14.1); at two tokens up to ~12M
// (shared gate_up 7.4 vs 9.6 us; the dense gate_up 17.5 vs 14.5); at three or four only the
// smallest (kv_a 576 x 2048: 3.7 vs 4.1; o_proj 2048 x 2048 already 5.4 vs 4.9). Every CTA
// re-reads and converts all T activation rows, so its cost grows with T·N.
inline bool use_gemv(int64_t t, int64_t n, int64_t k) {
  const int64_t weights = n * k;
  if (t < 1 || t > kGemvMaxTokens || k % 16 != 0) return false;
  if (t == 1) return weights <= (int64_t{48} << 20);
  if (t == 2) return weights <= (int64_t{12} << 20);
  return weights <= (int64_t{3} << 19);
}

// Whether linear_fp8_cuda lets the GEMV quantise its bf16 activations (instead of the quantiser
// pass first): every CTA redoes the T·K divisions, which paid at one token (q_proj 4.2 us for
// both, against 4.3 for the GEMV alone) and at two with K <= 2048 (q_proj 6.4 against 5.0 + the
// quantiser's ~2), not at K = 2816 or more (shared down, two tokens: 11.5 against 5.6 + 2).
inline bool gemv_quantizes(int64_t t, int64_t k) { return t == 1 || (t == 2 && k <= 2048); }

inline constexpr int64_t kSwapAbMaxTokens = 128;  // above this kAuto takes cuBLASLt where it can
inline constexpr int kMaxSplits = 8;              // portable thread-block cluster size

// cuBLASLt's block-scaled FP8 layout constraints (cublaslt_gemm.h); N of 8 keeps bf16 rows of
// out 16-byte aligned. T % 4 != 0 cuBLASLt refuses (CUBLAS_STATUS_NOT_SUPPORTED from its heuristic
// at T = 1, 65-67, 1601, 4097, 4099; cuBLASLt 13.1, H100, tools/cublaslt_fp8_probe.cu).
inline bool cublaslt_fp8_fits(int64_t t, int64_t n, int64_t k) {
  return t % 4 == 0 && n % 8 == 0 && k % 16 == 0 && ((k + 127) / 128) % 4 == 0;
}

// kCublasLtSplit: cuBLASLt on the first T & ~3 rows, kAuto's small-T path (a GEMV) on the last 1-3.
// Over cuBLASLt alone on group-major scales it costs the scale transpose (2.5-5 us) and the GEMV's
// weight pass: 5-9 us on V2-Lite's projections, 9-13 on V3's qkv_a, 23-27 on V2-Lite's dense gate_up
// (H100, fp8_gemm_bench at 1,024 / 1,025, 2,048 / 2,049 and 4,096 / 4,097 tokens, 2026-12-07, s69).
inline bool cublaslt_split_fits(int64_t t, int64_t n, int64_t k) {
  return t % 4 != 0 && t > 4 && cublaslt_fp8_fits(t & ~int64_t{3}, n, k);
}

// Whether kAuto takes the split where T % 4 alone keeps cuBLASLt out. Against the swap-AB kernel,
// which re-reads the weight once per 128 tokens, from kLtSplitMinTokens and kLtSplitMinMacs (T·N·K;
// below 512 tokens nothing was measured): V3's qkv_a (2112 x 7168) at 513 tokens 32.0 against 39.7
// us, at 4,097 122.5 against 197.5; its kv_a (576 x 7168) at 513 (2.1e9) 23.3 against 18.3, at
// 1,025 25.1 against 28.2; V2-Lite's kv_a (576 x 2048) at 1,025 13.9 against 12.5, at 2,049 (2.4e9)
// 14.2 against 16.2. Against the one-group kernel (0.7-0.9x cuBLASLt's speed on these shapes) from
// kLtSplitOverOneGroupMinTokens: at 1,025 / 2,049 / 4,097 / 8,193 tokens V3's o_proj 239 / 405 /
// 800 / 1,573 against 271 / 532 / 906 / 1,937 us, q_b 95 / 159 / 285 / 638 against 95 / 175 / 338 /
// 676, the shared gate_up 62 / 109 / 202 / 399 against 85 / 140 / 242 / 487; V2-Lite's o_proj 15.1
// / 23.0 / 39.4 against 22.6 / 29.9 / 38.5. The one shape that loses throughout is V2-Lite's shared
// gate_up (5632 x 2048): 34.2 / 56.3 / 99.4 against 31.9 / 53.2 / 93.1 (H100, fp8_gemm_bench,
// 2026-12-07, s69; bench/NOTES-fp8-gemm.md).
inline constexpr int64_t kLtSplitMinTokens = 512, kLtSplitMinMacs = int64_t{1} << 31;
inline constexpr int64_t kLtSplitOverOneGroupMinTokens = 1024;
inline bool lt_split_pays(int64_t t, int64_t n, int64_t k, bool one_group_takes) {
  if (!cublaslt_split_fits(t, n, k) || t < kLtSplitMinTokens || t * n * k < kLtSplitMinMacs) return false;
  return !one_group_takes || t >= kLtSplitOverOneGroupMinTokens;
}

// Where the tensor-core GEMV (linear_fp8_gemv_mma.cuh) beat the others on the H200
// (fp8_gemm_bench --shapes v2l. --tokens 1,2,4,8, bench/NOTES-fp8-gemm.md, 2026-11-29): its time
// is the weight pass's until T·K grows past ~24k (q_proj 3072 x 2048: 3.8 / 3.9 / 4.0 / 4.0 us at
// T = 1 / 2 / 4 / 8, against the CUDA-core GEMV's 4.3 / 5.0 / 8.0 and swap-AB's 8.9; the dense
// gate_up at two tokens 13.0 against 14.1; shared_down 2048 x 2816 at eight 4.7 against 5.8), and
// it loses to swap-AB at T·K >= 4 x 10944 (the dense down at four tokens 10.5 against 10.2). On
// quantised x it takes one token too (the dense down 9.5 against the GEMV's 9.9, shared_down 3.4
// against 4.7); on bf16 x the CUDA-core GEMV, quantising inside, keeps one token (4.3 against 5.2).
// Rows of at least kWideRowMinK (V3's and V2's hidden 7168 and 5120) the norms quantise at every
// step (fp8_norm_quantization_pays, ops/rms_norm_fp8.h), and at one token they take the tensor-core
// GEMV on bf16 x too (quantising inside, or after a quantiser pass past gemv_mma_quantizes): the
// kernel the norms' codes feed, so that those change no bit.
inline constexpr int64_t kWideRowMinK = 4096;
inline constexpr int64_t kGemvMmaMaxTokens = 8;  // linear_fp8_gemv_mma.cuh's kFp8GemvMmaMaxTokens
inline bool use_gemv_mma(int64_t t, int64_t k, bool x_quantized) {
  if (t < 1 || t > kGemvMmaMaxTokens || t * k > 24576) return false;
  return t >= 2 || x_quantized || k >= kWideRowMinK;
}

// Whether linear_fp8_cuda lets the tensor-core GEMV quantise its bf16 activations: every CTA redoes
// the T·K divisions, +0.4 us at T·K = 2 x 2048 and +1.4 to 1.7 at 4 x 2048 (the quantiser pass
// costs ~2), +4 at 8 x 2048 and +3 at 2 x 2816.
inline bool gemv_mma_quantizes(int64_t t, int64_t k) { return t * k <= 8192; }

// Whether an MLP's FP8 down projection (silu_mul_linear_fp8_cuda, ops/linear_fp8.h) runs as the
// tensor-core GEMV on its gate_up rows, the SwiGLU and its quantisation inside every CTA
// (Fp8GemvInput::kSwiGlu), instead of the SwiGLU quantiser's pass and then the GEMM on its codes:
// at one token, where T·K <= 8192 (the dense downs of K = 10944 and 18432 keep the two passes).
// H100, fp8_gemm_bench (us, two passes / one launch; bench/NOTES-fp8-gemm.md, s63): V2-Lite's
// shared down 2048 x 2816 8.1 / 5.2 at one token, 8.4 / 8.1 at two, 8.4 / 10.3 at four; V3's
// 7168 x 2048 11.9 / 8.6, 12.2 / 10.0, 12.2 / 12.2; the dense downs lose from one token (V2-Lite
// 14.9 / 15.4). The V2-Lite FP8 decode step gained 1.6% at batch 1 (1.761-1.777 -> 1.738-1.748 ms)
// but lost 2.6% at batch 2 (2.271-2.278 -> 2.330-2.340), though the kernel alone gained there:
// hence one token only.
inline bool gemv_mma_takes_swiglu(int64_t t, int64_t k) { return t == 1 && k <= 8192; }

// The grouped MoE FP8 GEMM's operand constraints (ops/moe_experts.h), which kOneGroup runs.
inline bool one_group_fits(int64_t n, int64_t k) { return n % 128 == 0 && k % 128 == 0; }

// Token tile width of the swap-AB kernel.
inline int swap_ab_bn(int64_t t) { return t <= 16 ? 16 : (t <= 64 ? 64 : 128); }

// At 65-128 tokens, two token tiles of 64 (each weight tile read twice, the second time from L2:
// the walk puts the two token tiles of a weight tile side by side) instead of one of 128, where N
// is narrow and K short, or cuBLASLt refuses the shape. H200, fp8_gemm_bench at 96 and 128 tokens
// (2026-11-30, thirtieth session): V2-Lite's shared down (2048 x 2816, no cuBLASLt) 16.8 -> 8.2
// us, the dense down (2048 x 10944) 28 -> 17.8, o_proj (2048 x 2048) 7.3-7.4 against cuBLASLt's
// 9.2, q_proj (3072 x 2048) 8.5 against 9.4-9.5. V3's K = 7168 projections stay at BN = 128
// (qkv_a 13.1 against 13.3, kv_a 7.8 against 8.0). Where cuBLASLt refuses, at any N: a V3 TP8
// rank's dense down (7168 x 2304) 11.9 against 14.6-14.8 us at BN = 128, its shared down (7168 x
// 256) 4.5 against 5.8-7.8 (H100, fp8_gemm_bench --shapes v3tp8., 2026-12-06, s64).
inline constexpr int64_t kTwoTokenTilesMaxN = 3072, kTwoTokenTilesMaxK = 2048;
inline bool swap_ab_two_token_tiles(int64_t t, int64_t n, int64_t k) {
  return t > 64 && t <= 128 && (!cublaslt_fp8_fits(t, n, k) || (n <= kTwoTokenTilesMaxN && k <= kTwoTokenTilesMaxK));
}

// The token tile plan_swap_ab cuts T into.
inline int swap_ab_plan_bn(int64_t t, int64_t n, int64_t k) {
  return swap_ab_two_token_tiles(t, n, k) ? 64 : swap_ab_bn(t);
}

// CTAs of the swap-AB kernel that fit one SM (its shared memory; linear_fp8_sm90.cuh checks);
// three_per_sm: the BN = 64, one-warpgroup kernel with 4 stages instead of 5.
constexpr int swap_ab_ctas_per_sm(int bn, int wgs, bool three_per_sm = false) {
  if (three_per_sm) return 3;
  if (wgs == 1) return bn == 16 ? 3 : 2;
  return bn == 16 ? 2 : 1;
}

// What the swap-AB plans need of the GPU: its SMs, and for the kernel of each token tile (16, 64,
// 128) and warpgroup count the clusters of s = 1 .. 8 CTAs it holds at once
// (swap_ab_max_active_clusters, linear_fp8_sm90.h; swap_ab_gpu() asks the current device). A
// cluster runs inside one GPC, so the clusters held can fill fewer CTA slots than the SMs have:
// on the H200, 47 clusters of 7 at three CTAs an SM (329 of 396 slots), 32 of 7 at two (224 of
// 264). A split plan with one tile more than that runs a second wave for it: V2-Lite's q_proj at
// 16 tokens, 48 clusters of 7 (the 85% fill then), 9.0 us, where 48 of 6 take 6.2 (fp8_gemm_bench
// --all-splits, 2026-12-02, bench/NOTES-fp8-gemm.md).
struct SwapAbGpu {
  int sms = 0;
  int hbm_gbps = 0;  // peak HBM bandwidth (gpu::device_hbm_gbps); 0: unknown, splits_pay counts none
  std::array<int, 3 * 2 * kMaxSplits> clusters_held{};  // [bn 16, 64, 128][wgs 1, 2][splits 1 .. 8]

  static int index(int bn, int wgs, int splits) {
    return ((bn == 16 ? 0 : (bn == 64 ? 1 : 2)) * 2 + (wgs - 1)) * kMaxSplits + (splits - 1);
  }
  int held(int bn, int wgs, int splits) const { return clusters_held[static_cast<size_t>(index(bn, wgs, splits))]; }
  void set_held(int bn, int wgs, int splits, int clusters) {
    clusters_held[static_cast<size_t>(index(bn, wgs, splits))] = clusters;
  }
  // The GPU as a GEMM beside another kernel finds it: percent of every count of clusters held.
  SwapAbGpu share(int percent) const {
    SwapAbGpu s = *this;
    for (int& c : s.clusters_held) c = c * percent / 100;
    return s;
  }
};

// The share of the clusters a swap-AB plan counts on beside another kernel (GridPlacement::
// kBeside: the query's first projection while kv_a_proj runs on the side stream). H200, FP8 decode
// steps at 16 tokens (decode_step_bench --trace, 2026-12-02): V2-Lite's q_proj beside kv_a 8.4 us
// planned for every cluster (48 clusters of 6; alone 6.2), 5.8 planned for 60% (of 5); V3's q_a at
// 32 tokens 14.4 / 9.6 (alone 8.2). 80% changed nothing, 45% as 60%.
inline constexpr int kBesideHeldPercent = 60;

// Persistent plans at BN = 64 with one warpgroup and more tiles than two CTAs an SM hold run three
// CTAs an SM (4 stages each, 192 KB in flight an SM against 160): all of q_b_proj's 384 tiles at
// once, V3 dense gate_up's 576 in 1.5 rounds instead of 2.2. Split plans keep 5 stages: with one
// or two CTAs an SM the fourth and fifth stage are what is in flight (V3 qkv_a at 64 tokens 10.1
// against 9.7 us with 4; shared down 9.9 / 9.2).
inline bool swap_ab_three_per_sm(int bn, int wgs, int64_t splits, int64_t tiles, int sms) {
  return bn == 64 && wgs == 1 && splits == 1 && tiles > int64_t{sms} * swap_ab_ctas_per_sm(bn, wgs);
}

// K below which cuBLASLt stays as fast as the three-CTA persistent plan or faster (kv_b_proj,
// 32768 x 512: 9.4 against 9.3-9.4 us at 32 tokens; at 64 cuBLASLt's 9.8 beats every swap-AB
// plan); q_b_proj's K = 1536 is the shortest measured win.
inline constexpr int64_t kThreePerSmMinK = 1536;

struct SwapAbPlan {
  int bn = 16;      // tokens per tile
  int wgs = 1;      // consumer warpgroups: 64·wgs weight rows per tile
  int n_tiles = 1;  // ceil(N / (64·wgs))
  int t_tiles = 1;  // ceil(T / bn)
  int splits = 1;   // CTAs per cluster along K (grid z); 1 = persistent CTAs
  int ctas = 1;     // grid x: n_tiles · t_tiles when split, else min(tiles, CTA slots)
  bool three_per_sm = false;  // swap_ab_three_per_sm: the 4-stage kernel, 3 CTAs an SM
  bool operator==(const SwapAbPlan& o) const {  // (.cu files compile as C++17: no = default)
    return bn == o.bn && wgs == o.wgs && n_tiles == o.n_tiles && t_tiles == o.t_tiles && splits == o.splits &&
           ctas == o.ctas && three_per_sm == o.three_per_sm;
  }
};

// A plan's short name, e.g. "bn64.wg1.s1.c384.x3" (fp8_gemm_bench's tables, test_linear_fp8_cuda's messages).
inline std::string swap_ab_plan_name(const SwapAbPlan& p) {
  return "bn" + std::to_string(p.bn) + ".wg" + std::to_string(p.wgs) + ".s" + std::to_string(p.splits) + ".c" +
         std::to_string(p.ctas) + (p.three_per_sm ? ".x3" : "");
}

// A plan's tiles, and the CTA slots of its split forms (SMs x swap_ab_ctas_per_sm: a split plan
// never runs three CTAs an SM), against which the split rules below size a split.
inline int64_t swap_ab_tiles(const SwapAbPlan& p) { return static_cast<int64_t>(p.n_tiles) * p.t_tiles; }
inline int64_t swap_ab_split_slots(const SwapAbPlan& p, int sms) {
  return static_cast<int64_t>(sms) * swap_ab_ctas_per_sm(p.bn, p.wgs);
}

// The plan with wgs warpgroups and `splits` (clamped to 1 .. min(8, K groups)).
inline SwapAbPlan make_swap_ab_plan(int64_t t, int64_t n, int64_t k, int sms, int wgs, int64_t splits, int bn = 0) {
  SwapAbPlan p;
  p.bn = bn > 0 ? bn : swap_ab_bn(t);
  p.wgs = wgs;
  p.n_tiles = static_cast<int>((n + 64 * wgs - 1) / (64 * wgs));
  p.t_tiles = static_cast<int>((t + p.bn - 1) / p.bn);
  const int64_t groups = (k + 127) / 128;
  p.splits = static_cast<int>(std::clamp<int64_t>(splits, 1, std::min<int64_t>(kMaxSplits, groups)));
  const int64_t tiles = swap_ab_tiles(p);
  p.three_per_sm = swap_ab_three_per_sm(p.bn, wgs, p.splits, tiles, sms);
  const int64_t slots = static_cast<int64_t>(sms) * swap_ab_ctas_per_sm(p.bn, wgs, p.three_per_sm);
  p.ctas = static_cast<int>(p.splits > 1 ? tiles : std::min(tiles, slots));
  return p;
}

// Splits that fill every CTA slot at least once, for the tiles of the persistent plan `one`.
inline int64_t filling_splits(const SwapAbPlan& one, int sms) {
  const int64_t tiles = swap_ab_tiles(one);
  return (swap_ab_split_slots(one, sms) + tiles - 1) / tiles;
}

// Percentage of the CTA slots (SMs x swap_ab_ctas_per_sm) a split plan may fill: 85, and 60 at
// BN = 16, where the fuller splits lost on every shape of more than 33 tiles (fp8_gemm_bench
// --all-splits, H200, 2026-12-02, 8 and 16 tokens): V3 o_proj 2 splits 32.6-33.4 us against 4's
// 34.1-34.4, the dense down 35.4-36.0 / 37.5-37.8, shared down 7.7-7.9 / 3's 8.3; V2-Lite's shared
// gate_up 7.1 / 3's 7.3-7.4, q_proj 4-5 splits 5.9 / 6's 6.2.
inline constexpr int64_t kSplitFillPercent = 85, kSplitFillPercentBn16 = 60;

inline int swap_ab_wgs(int bn, int64_t n, int64_t k) { return k >= 16384 || (bn == 128 && n >= 2048) ? 2 : 1; }

// The largest split whose CTAs fill at most kSplitFillPercent of the CTA slots, for the tiles of
// the persistent plan `one` (below 2: no split fits).
inline int64_t fill_percent_splits(const SwapAbPlan& one, int sms) {
  const int64_t percent = one.bn == 16 ? kSplitFillPercentBn16 : kSplitFillPercent;
  return swap_ab_split_slots(one, sms) * percent / (100 * swap_ab_tiles(one));
}

// Whether splitting K can pay over the persistent plan `one` (one tile a CTA where the tiles fit):
//   - K of at least kSplitMinKGroups groups: below, the split's reduction costs more than the K
//     loop it shortens (a V3 TP8 rank's kv_b_proj, 4096 x 512, 64 tiles: 4.4 us persistent against
//     6.0 with 3 splits; its shared down, 7168 x 256: 3.7 against 5.8 with 2);
//   - and `one`'s CTAs, streaming kSwapAbCtaGbps each, fall short of the card's HBM bandwidth: a
//     split then brings more SMs in; where they already draw it, it only adds its reduction. On
//     an H100 (3,352 GB/s) 88 tiles and more need no split: V3's shared down or a TP8 rank's
//     o_proj, 7168 x 2048, 112 tiles, at 32-64 tokens 9.8-10.2 us persistent against 10.9-11.1
//     split 2 ways (cuBLASLt 9.8-10.0), V2-Lite's shared gate_up, 5632 x 2048, 88 tiles, 9.4-9.7
//     against 9.9-10.0; 72 do (a TP8 rank's dense gate_up, 4608 x 7168: 17.2 against 24.2). On
//     an H200 (~4,900 GB/s) the same 112 and 88 tiles gain 6-9% from the split (9.3 against 9.9,
//     8.8 against 9.6; fp8_gemm_bench --all-splits, 2026-12-02). The rate, ~0.4 us a 16 KB K
//     group, is what one CTA's ring was measured at (bench/NOTES-fp8-gemm.md, forty-second
//     session), and a figure both cards' crossings fit: 72 x 40 < 3,352 <= 88 x 40, 112 x 40 <
//     4,900.
inline constexpr int64_t kSplitMinKGroups = 8;
inline constexpr int64_t kSwapAbCtaGbps = 40;
inline bool splits_pay(const SwapAbPlan& one, int64_t k, const SwapAbGpu& gpu) {
  if ((k + 127) / 128 < kSplitMinKGroups) return false;
  return gpu.hbm_gbps <= 0 || int64_t{one.ctas} * kSwapAbCtaGbps < gpu.hbm_gbps;
}

// Two warpgroups (128 weight rows a CTA) for two token tiles at 65-128 tokens, where one warpgroup
// would leave the SMs unevenly loaded:
//   - persistent one-warpgroup tiles past the SMs (two CTAs on some SMs, one on the rest): a TP8
//     rank's dense down (7168 x 2304, 224 tiles of 64 rows, 112 of 128) at 65 / 80 / 96 / 112 / 128
//     tokens 12.7 / 12.1 / 12.3 / 11.9 / 11.9 us against 16.2 / 14.3 / 13.9 / 12.1 / 12.0, its
//     shared down (7168 x 256) 4.5-4.7 against 4.5-4.8;
//   - K of kTwoTilesTwoWgsMinK and more, where the split's CTAs then run one an SM with ~29 K
//     groups each: V2-Lite's dense down (2048 x 10944), 3 splits, 17.8-18.2 against 18.7-23.3.
// Not V2-Lite's shared down (2048 x 2816, 7 groups a CTA): two warpgroups 9.1-9.4 against one's
// 8.8-9.9 (H100, fp8_gemm_bench --all-splits --tokens 64,65,80,96,112,128, 2026-12-06, s66).
inline constexpr int64_t kTwoTilesTwoWgsMinK = 8192;
inline bool two_tiles_take_two_wgs(const SwapAbPlan& one, int64_t k, const SwapAbGpu& gpu) {
  if (one.wgs != 1 || one.bn != 64 || one.t_tiles < 2) return false;  // not two token tiles of one warpgroup
  return k >= kTwoTilesTwoWgsMinK || (!splits_pay(one, k, gpu) && swap_ab_tiles(one) > gpu.sms);
}

inline SwapAbPlan plan_swap_ab(int64_t t, int64_t n, int64_t k, const SwapAbGpu& gpu) {
  const int bn = swap_ab_plan_bn(t, n, k);
  SwapAbPlan one = make_swap_ab_plan(t, n, k, gpu.sms, swap_ab_wgs(bn, n, k), 1, bn);
  if (two_tiles_take_two_wgs(one, k, gpu)) one = make_swap_ab_plan(t, n, k, gpu.sms, 2, 1, bn);
  const int wgs = one.wgs;
  if (!splits_pay(one, k, gpu)) return one;
  const int64_t most = std::min<int64_t>({fill_percent_splits(one, gpu.sms), kMaxSplits, (k + 127) / 128});
  for (int64_t splits = most; splits >= 2; --splits) {
    const SwapAbPlan split = make_swap_ab_plan(t, n, k, gpu.sms, wgs, splits, bn);
    if (swap_ab_tiles(split) <= gpu.held(bn, wgs, split.splits)) return split;
  }
  return one;
}

// bf16_out: the output is bf16 (the grouped GEMM writes no f32). gpu: the swap-AB plan's cut
// decides between it and cuBLASLt at 17-64 tokens.
inline Fp8GemmPath choose_fp8_gemm(int64_t t, int64_t n, int64_t k, const SwapAbGpu& gpu, bool bf16_out = true) {
  if (use_gemv(t, n, k)) return Fp8GemmPath::kGemv;
  const bool lt = cublaslt_fp8_fits(t, n, k);
  if (t <= 16 || (t <= kSwapAbMaxTokens && (n < 2048 || (n < 4096 && k >= 4096)))) return Fp8GemmPath::kSwapAB;
  if (swap_ab_two_token_tiles(t, n, k)) return Fp8GemmPath::kSwapAB;
  if (t <= 64) {
    const SwapAbPlan plan = plan_swap_ab(t, n, k, gpu);
    if (!lt || plan.splits > 1 || (plan.three_per_sm && k >= kThreePerSmMinK)) return Fp8GemmPath::kSwapAB;
  }
  if (lt) return Fp8GemmPath::kCublasLt;
  const bool one_group = t > kSwapAbMaxTokens && bf16_out && one_group_fits(n, k);
  if (lt_split_pays(t, n, k, one_group)) return Fp8GemmPath::kCublasLtSplit;
  return one_group ? Fp8GemmPath::kOneGroup : Fp8GemmPath::kSwapAB;
}

// The plans fp8_gemm_bench times and test_linear_fp8_cuda checks: the default first, then for 1
// and 2 warpgroups the filling split, twice it, and persistent CTAs.
inline std::vector<SwapAbPlan> swap_ab_candidates(int64_t t, int64_t n, int64_t k, const SwapAbGpu& gpu) {
  const int sms = gpu.sms;
  std::vector<SwapAbPlan> plans = {plan_swap_ab(t, n, k, gpu)};
  const auto add = [&](const SwapAbPlan& p) {
    if (std::find(plans.begin(), plans.end(), p) == plans.end()) plans.push_back(p);
  };
  for (int wgs : {1, 2}) {
    const int64_t fill = filling_splits(make_swap_ab_plan(t, n, k, sms, wgs, 1), sms);
    for (int64_t s : {fill, 2 * fill, int64_t{1}}) add(make_swap_ab_plan(t, n, k, sms, wgs, s));
  }
  if (t > 64 && t <= 128) {  // two token tiles of 64: the split that fills 85% of the slots, and persistent CTAs
    for (int wgs : {1, 2}) {
      const SwapAbPlan one = make_swap_ab_plan(t, n, k, sms, wgs, 1, 64);
      for (int64_t s : {std::max<int64_t>(1, fill_percent_splits(one, sms)), int64_t{1}}) {
        add(make_swap_ab_plan(t, n, k, sms, wgs, s, 64));
      }
    }
  }
  return plans;
}

}  // namespace mlaserve::ops::sm90_fp8
