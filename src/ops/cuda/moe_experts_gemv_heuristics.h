// When the routed experts run as the grouped GEMV (moe_experts_gemv.cuh) rather than the grouped
// GEMMs (moe_grouped_gemm_sm80.cuh, moe_grouped_gemm_fp8_sm89.cuh / _sm90.cuh), and the GEMV's
// launch shape (MoeGemvConfig). Host-only, no CUDA types; moe_experts_cuda and
// moe_experts_fp8_cuda ask use_moe_gemv under MoeExpertsPath::kAuto.
//
// The host knows P (gathered rows, T·k), E and the weights' type, not how the rows split over
// experts. Measured on one H200 (2026-11-29 03:31, bench/NOTES-engine.md; V2-Lite shapes, E 64,
// top-6; moe_fp8_bench --sections v2l-layer, each path forced, random routings rotated past L2),
// the GEMV at its default shape against the grouped GEMMs, us:
//   tokens (rows)   1 (6)         2 (12)        4 (24)        8 (48)
//   BF16            32.4 / 34.1   53.7 / 54.1   93.0 / 92.1   166.3 / 150.6
//   e4m3            27.2 / 41.4   38.8 / 58.9   59.0 / 80.9   106.5 / 112.5
// and in the decode step (decode_step_bench): BF16 batch 1 2.273-2.292 -> 2.176-2.179 ms against the
// first GEMV design, e4m3 batch 1 / 2 / 4 / 8 2.23 / 2.97 / 4.03 / 5.14 -> 1.98-2.05 / 2.57 / 3.65 /
// 4.99 ms against the grouped GEMM.
//
// The limits are set by the decode step, not by the kernels alone (bench/NOTES-engine.md,
// 2026-11-29 19:59 and 20:46; one H200, V2-Lite, graph ms, the limit raised against kept, two
// rounds each):
//   e4m3, 96 rows against 48: batch 10 5.04 / 4.90, 16 5.50 / 5.42: slower, so 48 rows (eight
//     V2-Lite tokens). Past it the GEMV quantises bf16 rows the routing gathers, where the grouped
//     GEMM reads the e4m3 rows the norm wrote.
//   BF16, 48 rows against 8: batch 2 2.73 / 2.83, 4 3.99 / 4.08, 6 5.45 / 5.59, 8 5.87 / 5.99; 96
//     against 48: batch 12 6.71 / 6.91, 16 7.37 / 7.54. So 96 rows (16 V2-Lite tokens, 12 of V3's;
//     past it not timed). Alone the GEMV only ties the grouped GEMM there: in the step the down
//     GEMV's weights load before its dependency wait.
// V3's e4m3 shapes alone (2026-11-29 19:55, moe_fp8_bench --sections layers, GEMV / grouped GEMM,
// us): 1 token 107.2 / 146.5, 2 tokens 200.0 / 210.4, 4 354.8 / 354.2, 6 532.1 / 525.0.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cuda/gemv_mma_config.h"
#include "ops/grid_placement.h"

namespace mlaserve::ops::gpu {

inline constexpr int64_t kMoeGemvMaxRowsBf16 = 96;
inline constexpr int64_t kMoeGemvMaxRowsFp8 = 48;

// Tokens up to which the model's experts, on the GEMV, read the token rows rather than rows the
// routing kernel gathers (use_moe_gemv_token_rows below), and up to which gate_up
// stages all T token rows in each CTA (all tokens) rather than its pass's rows from their tokens,
// which it must read first (indexed; moe_experts_gemv.cuh). The decode step on one H200
// (bench/NOTES-engine.md, 2026-11-29 22:30-23:15; graph ms, two rounds; V3: decode_step_bench
// --preset deepseek-v3 --num-layers 5, 3 dense + 2 MoE layers). A batch runs in the graph of the
// next captured size, as in the engine (padded_graph_batch, engine/decode_graphs.cc: 3 -> 4,
// 6 -> 8, 10-14 -> 16 tokens, the extra ones padding rows), so the token counts the experts see
// are those sizes:
//   BF16 V2-Lite, gathered / all tokens: batch 1 2.121, 2.102 / 2.095, 2.091; 4 3.996, 3.974 /
//     3.886, 3.877; 8 5.886, 5.869 / 5.723, 5.711. Past 8 tokens, gathered / indexed: 10 6.349,
//     6.340 / 6.357, 6.349; 12 6.634, 6.625 / 6.692, 6.693; 16 7.248, 7.247 / 7.173, 7.172: no
//     clear gain, so bf16 reads token rows up to the 8 a pass holds.
//   e4m3 V2-Lite, gathered / all tokens: batch 1 2.027, 2.020 / 1.991, 1.971; 2 2.396, 2.396 /
//     2.345, 2.342; 4 3.081, 3.087 / 3.022, 3.022; but 8 4.647, 4.633 / 4.688, 4.694, and V3 batch
//     6 2.528, 2.537 / 2.566, 2.561 (each CTA quantises T rows where it needs 1-2).
//   e4m3, all tokens up to 2 and indexed past that, against gathered past 4 and all tokens below:
//     V2-Lite batch 3 2.984, 2.990 / 2.906, 2.911; 4 3.020, 3.047 / 2.932, 2.936; 6 4.200, 4.220
//     (the expert's tokens at their own columns, an earlier form) / 4.148, 4.147; 8 4.451, 4.451 /
//     4.396, 4.409, gathered there 4.695, 4.693; V3 batch 4 2.165, 2.166 / 2.143, 2.132; 6 2.480,
//     2.474 / 2.458, 2.450, gathered 2.549, 2.542.
//   e4m3 at 9-16 tokens, past the gathered GEMV's 48 rows (kMoeGemvMaxRowsFp8: there it quantised
//     rows the routing gathered), indexed from the norm's codes of the token rows (copied, not
//     quantised; the norm quantises past 8 tokens a step), against the grouped FP8 GEMM on the
//     gathered codes (run09, e2d06cd / this): V2-Lite batch 10 4.921, 4.926 / 4.878, 4.858; 12
//     5.097, 5.118 / 4.970, 4.963; 14 5.342, 5.342 / 5.236, 5.233; 16 5.435, 5.425 / 5.325, 5.336;
//     V3 batch 10 2.745, 2.733 / 2.673, 2.692; 12 2.836, 2.836 / 2.788, 2.803.
// (The V3 figures above ran on dummy weights whose correction bias sent most tokens to the same
// experts; the dummy bias is near 0 since 2026-11-30, bench/NOTES-v3-headline.md.) Re-measured on
// the balanced routing (2026-11-30 20:40, V3 5 layers, graph ms, two rounds; these limits / no
// token rows, the gathered GEMV up to 48 rows / the grouped GEMM only): batch 1 1.499, 1.497 /
// 1.513, 1.508 / 1.621, 1.611; 2 1.758, 1.759 / 1.782, 1.777 / 1.821, 1.820; 4 2.181, 2.181 / 2.232,
// 2.225 / 2.199, 2.207; 6 2.570, 2.562 / 2.611, 2.609 / 2.614, 2.613; 8 2.818, 2.817 / 2.862, 2.869
// / 2.874, 2.870. They hold.
// So e4m3 token rows up to 16 tokens and 96 rows. Without the norm's codes (quantize_in_norms off)
// the same GEMV quantises them itself: the same kernel choice and the same bits either way.
inline constexpr int64_t kMoeGemvTokenRowsMaxBf16 = 8;
inline constexpr int64_t kMoeGemvTokenRowsMaxFp8 = 16;
inline constexpr int64_t kMoeGemvAllTokensMaxBf16 = 8;
inline constexpr int64_t kMoeGemvAllTokensMaxFp8 = 2;
inline constexpr int64_t kMoeGemvTokenRowsMaxRowsFp8 = 96;

// Narrow e4m3 experts, of at most kMoeGemvNarrowImFp8 intermediate channels (a tensor-parallel
// rank's channel share of every expert, --expert-split channels: V3's Im 2048 over 8 or 4 ranks), take
// the GEMV for up to kMoeGemvNarrowMaxRowsFp8 rows only (two V3 tokens'): past that the grouped
// GEMM, whose CTAs take runs of column tiles over the short down K (column_run,
// moe_grouped_gemm_fp8_sm89_heuristics.h), streams them faster. Alone (moe_fp8_bench --sections
// channels-layer, one H200, 2026-12-01; V3's 256 experts at Im 256, random top-8 routings), us,
// GEMV / grouped GEMM: 1 token 27.5 / 48.4, 2 56.4 / 50.9, 4 92.2 / 75.8, 8 166.6 / 141.9, 12
// 218.0 / 151.6, 16 262.8 / 179.3. In the step the GEMV keeps two tokens (it reads the token rows;
// the grouped GEMM needs their gathered codes): a V3 FP8 TP8 channel rank (decode_step_bench
// --tp-rank-of 8 --expert-split channels, graph ms, two rounds, bench/NOTES-dist.md), the GEMV to
// 96 rows / to 8 rows: batch 2 7.25, 7.29 / 7.65, 7.61; 4 9.48, 9.47 / 8.62, 8.62; 8 14.75, 14.71
// / 13.54, 13.61; 12 14.57, 14.55 / 14.72, 14.80. With the four-CTA decode tile
// (use_four_ctas_decode_tile), a TP4 channel rank (Im 512, 20 layers), Im <= 256 / <= 512: batch 3
// 3.78, 3.78 / 3.72, 3.71; 4 4.39, 4.39 / 4.04, 4.04; 6 5.49, 5.48 / 4.84, 4.85; 8 5.79, 5.79 / 5.66,
// 5.65; 2, 12 and 16 within 0.6%. A TP2 rank (Im 1024) lost 1-3% at 3-4 tokens that way, so whole
// experts and TP2's share keep the GEMV's own limits.
inline constexpr int64_t kMoeGemvNarrowImFp8 = 512;
inline constexpr int64_t kMoeGemvNarrowMaxRowsFp8 = 16;

inline bool narrow_fp8_experts(bool fp8_weights, int64_t intermediate) {
  return fp8_weights && intermediate <= kMoeGemvNarrowImFp8;
}

// Whether the experts (intermediate size Im) over P gathered rows run as the GEMV.
inline bool use_moe_gemv(int64_t rows, bool fp8_weights, int64_t intermediate) {
  const int64_t max_rows = narrow_fp8_experts(fp8_weights, intermediate) ? kMoeGemvNarrowMaxRowsFp8
                           : fp8_weights                                 ? kMoeGemvMaxRowsFp8
                                                                         : kMoeGemvMaxRowsBf16;
  return rows >= 1 && rows <= max_rows;
}

// Whether the model's experts over T tokens and P = T·k rows read the token rows
// (moe_experts_gemv_token_rows_cuda) instead of rows the routing gathers: bf16 where the GEMV
// runs, up to kMoeGemvTokenRowsMaxBf16 tokens; e4m3 up to kMoeGemvTokenRowsMaxFp8 tokens and
// kMoeGemvTokenRowsMaxRowsFp8 rows, past the gathered GEMV's limit; narrow e4m3 experts where the
// GEMV runs. Whether the norm's codes are at hand only changes where the rows are quantised, not
// the bits, so it does not enter the choice.
inline bool use_moe_gemv_token_rows(int64_t tokens, int64_t rows, bool fp8_weights, int64_t intermediate) {
  const int64_t max_rows = narrow_fp8_experts(fp8_weights, intermediate) ? kMoeGemvNarrowMaxRowsFp8
                           : fp8_weights                                 ? kMoeGemvTokenRowsMaxRowsFp8
                                                                         : kMoeGemvMaxRowsBf16;
  const int64_t max_tokens = fp8_weights ? kMoeGemvTokenRowsMaxFp8 : kMoeGemvTokenRowsMaxBf16;
  return rows >= 1 && rows <= max_rows && tokens >= 1 && tokens <= max_tokens;
}

// Whether the model's experts over T tokens would rather copy the token rows' e4m3 codes (the norm
// before them writing those, as it does from two tokens a step) than quantise the rows themselves:
// e4m3 experts on the token-row GEMV from two tokens. Each gate_up CTA quantises the rows it stages,
// the same rows in every CTA: ncu of a TP8 channel share's gate_up at one token inside the decode
// graph (one H200, 2026-12-01, bench/NOTES-dist.md) put ~40% of its warps' stall samples in that
// quantisation (the IEEE divisions of 7168 values a CTA). At one token the norm's quantisation
// costs the chain what the GEMV saves (trace: gate_up 8.8 -> 6.4 us, the norm 4.0 -> 5.0 us, the
// router after it 7.6 -> 8.3); from two it pays. Decode step, graph ms (decode_step_bench, FP8,
// context 1024; one H200, 2026-12-01; the GEMV quantising / copying the norm's codes):
//   V3 TP8 channel rank (--tp-rank-of 8 --expert-split channels, two rounds): batch 1 4.919, 4.927
//     / 4.922, 4.922; 2 7.185, 7.198 / 6.791, 6.811.
//   one round: V3 10 layers batch 1 2.492 / 2.515, 2 3.346 / 3.305, 4 4.557 / 4.499, 8 6.668 /
//     6.570; V2-Lite batch 1 1.800 / 1.895, 2 2.151 / 2.140, 4 2.751 / 2.708, 8 4.081 / 3.956; V3 TP8
//     whole-expert rank 0 batch 1 5.629 / 5.649, 2 7.257 / 7.126, 4 9.186 / 8.941.
inline constexpr int64_t kMoeGemvTokenCodesMinTokens = 2;
inline bool moe_gemv_wants_token_codes(int64_t tokens, int64_t rows, bool fp8_weights, int64_t intermediate) {
  return fp8_weights && tokens >= kMoeGemvTokenCodesMinTokens &&
         use_moe_gemv_token_rows(tokens, rows, fp8_weights, intermediate);
}

// Whether gate_up stages all T token rows in each pass (else each pass's rows, indexed), where one
// pass holds them and no codes are copied (moe_experts_gemv.cu checks those).
inline bool moe_gemv_all_tokens(int64_t tokens, bool fp8_weights) {
  return tokens <= (fp8_weights ? kMoeGemvAllTokensMaxFp8 : kMoeGemvAllTokensMaxBf16);
}

// Whether gate_up is launched programmatically (early, its CTAs waiting on the SMs for the routing
// kernel before it). Its expert comes from the offsets that kernel writes, so it loads nothing
// before its wait, and an early launch only parks its CTAs on every SM while the router runs,
// where the shared experts' branch on the side stream (gate_up, SwiGLU, down) could run instead.
// e4m3 gate_up launches plainly up to 8 tokens; bf16, whose side branch streams twice the bytes
// against the routed experts, and e4m3 past 8 tokens keep the early launch (`tokens`: T, or for
// gathered rows their count, a bound on T). Timing only: the kernel is the same either way. V2-Lite
// decode step on one H200 (bench/NOTES-engine.md 2026-11-30 01:55; graph ms, two rounds, early /
// plain): e4m3 batch 1 1.984, 1.967 / 1.903, 1.906; 2 2.393, 2.376 / 2.333, 2.306; 8 4.390, 4.380
// / 4.240, 4.223; 16 5.363, 5.337 / 5.397, 5.392; bf16 batch 1 2.085, 2.077 / 2.061, 2.057 but 4
// 3.835, 3.827 / 3.924, 3.930 and 16 7.324, 7.344 / 7.471, 7.445.
inline constexpr int64_t kMoeGemvPlainGateUpMaxTokensFp8 = 8;
inline bool moe_gemv_gate_up_early_launch(bool fp8_weights, int64_t tokens) {
  return !fp8_weights || tokens > kMoeGemvPlainGateUpMaxTokensFp8;
}

// SMs the down launch leaves out of its grid (sized for SMs minus these) when the shared experts'
// kernels run beside it on the model's side stream (GridPlacement::kBeside): e4m3
// experts over at most kMoeGemvDownBesideMaxRows rows (one or two tokens of V2-Lite and V3). There
// the shared experts' branch ends after the routed down (trace, V2-Lite FP8 batch 1: its SwiGLU
// quantiser waits ~8 us for an SM, its down GEMV ends 3.5 us after the routed one), because two
// routed CTAs (128 registers x 256 threads) fill every SM's registers, and the combine waits for
// both. Past 16 rows (batches 3-4 run the graph of 4: 24 rows, 24 slots) leaving 4-16 SMs pushes
// the down grid past one wave (11 CTAs x 24 slots > 2 x (132 - 8)), so moe_gemv_ctas gives it runs
// of 8 tiles (16 CTAs a slot, ~1.5 waves): +4%; 12 left keeps one wave and gains 0.5%. Timing only:
// another grid, the same arithmetic (a tile's sum over the warps of its CTA, rounded the same way
// only for the same grid: the GPU tests compare like with like). Decode step, graph ms
// (decode_step_bench FP8, context 1024; one H200, 2026-12-02, bench/NOTES-engine.md; three rounds,
// none / 16 SMs left): V2-Lite batch 1 1.693, 1.681, 1.694 / 1.655, 1.646, 1.666; 2 2.069, 2.076,
// 2.090 / 2.026, 2.023, 2.042; V3 10 layers batch 1 2.504, 2.524, 2.510 / 2.476, 2.500, 2.480; a V3
// TP8 channel rank (10 layers) batch 1 0.790, 0.782, 0.785 / 0.768, 0.773, 0.783; V3 at two tokens
// and an expert-split rank within noise. 8 SMs left at every token count (an earlier call): V2-Lite
// batch 3 2.579, 2.564, 2.572 / 2.690, 2.657, 2.660 (the wave above), batch 4 +4%; BF16 batch 1 a
// tie.
inline constexpr int kMoeGemvDownSmsBesideShared = 16;
inline constexpr int64_t kMoeGemvDownBesideMaxRows = 16;
inline int moe_gemv_down_sms_left(GridPlacement placement, bool fp8_weights, int64_t rows) {
  return placement == GridPlacement::kBeside && fp8_weights && rows <= kMoeGemvDownBesideMaxRows ? kMoeGemvDownSmsBesideShared : 0;
}

// The GEMV's launch shape (the note in moe_experts_gemv.cuh). Two knobs:
//   ctas_per_sm: the grid is about ctas_per_sm x SMs CTAs, split evenly over the min(P, E) expert
//     slots; each CTA streams a run of ceil(tiles / CTAs a slot) consecutive 16-row tiles of its
//     expert. More CTAs: shorter runs (less time in a CTA's serial head: the wait, the slot
//     search, the activation staging, and in its tail: the reduction) but more of those heads in
//     all, and more CTAs on an SM share its registers and shared memory. Fewer: longer runs, a
//     longer stream per warp between two synchronisations, but a slot whose expert is empty (P
//     and E only bound the experts with rows) idles a larger share of the card.
//   depth: 128-byte pieces of its two weight rows each lane keeps in flight (the warp's ring:
//     64 bytes a lane each, 2 KB a warp). 2, 4 or 8 (compile-time: the ring lives in registers).
//     Deeper: more bytes in flight an SM (the HBM rate needs ~8.4 MB over the card, ~64 KB an SM)
//     but more registers a thread: depth 2 fits 3 CTAs of 8 warps an SM (<= 85 registers), 4 fits
//     2 (<= 128), 8 fits 1 (<= 255). A ctas_per_sm above what the registers allow makes a second
//     wave, not more CTAs at once.
//   tiles_per_cta: if > 0, overrides ctas_per_sm: runs of this many tiles (the last of a slot
//     shorter), whatever the grid that makes. For sweeps and for the tests, which need runs of
//     several tiles on small problems (the grid from ctas_per_sm gives those one tile a CTA).
// In flight an SM at one token: ctas_per_sm x 8 warps x depth x 2 KB (2, 4: 128 KB).
using MoeGemvConfig = GemvMmaConfig;  // gemv_mma_config.h

// What moe_experts_cuda / moe_experts_fp8_cuda run: within 2% of the best shape measured at one to
// four tokens in both types (the table above; {3, 2, 0} ties it, {1, 4, 8} is best at eight).
inline constexpr MoeGemvConfig kMoeGemvDefault{2, 4, 0};

// The configurations moe_fp8_bench times and the GPU tests check (every one is a valid launch).
inline constexpr MoeGemvConfig kMoeGemvConfigs[] = {{2, 2, 0}, {3, 2, 0}, {1, 4, 0}, {2, 4, 0},
                                                    {3, 4, 0}, {1, 8, 0}, {1, 4, 8}};

// Tiles a CTA streams at most (gemv_mma_config.h).
inline constexpr int kMoeGemvMaxTilesPerCta = kGemvMmaMaxTilesPerCta;

// CTAs a slot for `tiles` tiles an expert over `slots` slots: gemv_mma_ctas, except that a grid of
// more than one wave (more CTAs than config.ctas_per_sm x SMs; depth 4 holds 2 CTAs an SM) gets runs
// of at most kMoeGemvWaveRunTiles tiles. Why: the host cannot see which slots' experts have rows, so
// the default grid is sized for one wave of runs; once slots x CTAs pass it (V3 from two tokens,
// 16 slots x 17 CTAs = 272 on 264; V2-Lite from six), the CTAs past the wave start late and each
// streams a whole long run, and shorter runs spread that tail over the card. Measured on one H200
// (2026-11-29 19:50, bench/NOTES-engine.md; moe_fp8_bench --sections layers, e4m3 experts, us,
// default / runs of 8): V3 2 tokens 259.6 / 199.6, 4 tokens 401.1 / 353.3, 6 tokens 589.8 / 525.9;
// V2-Lite 6 tokens 89.3 / 85.5, 8 tokens 102.8 / 95.4; within one wave shorter runs lose (V2-Lite
// 4 tokens 59.8 / 66.4: 528 CTAs of which ~430 have rows, 1.6 waves, against one wave). An explicit
// tiles_per_cta is taken as it is.
inline constexpr int kMoeGemvWaveRunTiles = 8;

inline int64_t moe_gemv_ctas(int64_t tiles, int64_t slots, const MoeGemvConfig& config, int sms) {
  const int64_t ctas = gemv_mma_ctas(tiles, slots, config, sms);
  if (config.tiles_per_cta > 0 || ctas * slots <= int64_t{config.ctas_per_sm} * sms) return ctas;
  return std::min(tiles, std::max(ctas, (tiles + kMoeGemvWaveRunTiles - 1) / kMoeGemvWaveRunTiles));
}

// Whether the e4m3 down kernel deals whole tiles to its warps (moe_experts_gemv.cuh, kWholeTiles)
// for an input width K: where a weight row is 1, 2 or 4 pieces of 128 bytes (K = 128, 256 or 512: a
// tensor-parallel rank's channel share of V3's experts). Dealt round robin, such a run's tiles are
// each cut over 1-4 warps and every warp stores partial sums for every tile of the CTA's run (zeros
// for most), then the CTA syncs and sums them; a warp that takes whole tiles (tiles w, w + 8, ..,
// each one's pieces in order) writes its outputs itself. Not the round-robin CTA's bits: a warp
// promotes a tile's pieces into its sum in unit order by fused multiply-adds (one rounding each),
// where round robin rounds each piece's promoted product in its own warp and the CTA then adds them
// (the same unit order: a tile's first piece falls on a warp w with w + units <= 8); they differ by
// the fp32 sum's rounding. Each tile's order no longer depends on the launch shape, so every
// configuration gives the same bits.
inline constexpr bool moe_gemv_whole_tiles(int64_t k, bool fp8_weights) {
  return fp8_weights && (k == 128 || k == 256 || k == 512);
}

// Shared memory for the staged activation rows of a pass (bf16 rows or e4m3 codes, padded);
// rows a pass = min(8, P, what fits): V2-Lite's 8 bf16 rows of H take 33 KB, V3's 4 (57 KB).
inline constexpr int64_t kMoeGemvActSmemBudget = 64 * 1024;

}  // namespace mlaserve::ops::gpu
