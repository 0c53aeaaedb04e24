// The routed experts of a MoE layer as one grouped op (MODEL_SPEC §5.3): every expert's SwiGLU
// MLP over the rows routed to it, with the experts' weights stacked so that a GPU can run all of
// them in one grouped GEMM per projection, reading the per-expert row ranges from device memory
// (no host synchronisation).
//
//   x               [P, H] activations in expert order (moe_dispatch.h: P = T·k gathered rows)
//   expert_offsets  [E + 1] i32: expert e owns rows [offsets[e], offsets[e + 1]); the rows
//                   outside [offsets[0], offsets[E]) belong to no expert here and are not written
//                   (a rank holding a share of the experts passes a view of the full offsets)
//   weights         ExpertWeights, stacked:
//     gate_up       [E, 2·Im, H]  rows [0, Im) = gate_proj, [Im, 2·Im) = up_proj of each expert
//     down          [E, H, Im]
//     *_scale       FP8 only: [E, ceil(rows/128), ceil(cols/128)] f32 block multipliers
//   out             [P, H]:  out[r] = down_e( silu(gate_e(x[r])) ⊙ up_e(x[r]) ), e = expert of row r
//
// Weights are f32/bf16, or e4m3 with scales (then every GEMM input is quantised per token and
// 128 channels, linear_fp8.h). The CPU reference loops over experts with linear/silu_mul.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"
#include "ops/fp8_quant.h"
#include "ops/grid_placement.h"

namespace mlaserve::ops {

struct ExpertWeights {
  Tensor gate_up;        // [E, 2·Im, H]
  Tensor down;           // [E, H, Im]
  Tensor gate_up_scale;  // [E, ceil(2·Im/128), ceil(H/128)] f32, FP8 only
  Tensor down_scale;     // [E, ceil(H/128), ceil(Im/128)] f32, FP8 only

  bool is_fp8() const { return gate_up.dtype() == DType::kF8E4M3; }
  int64_t num_experts() const { return gate_up.dim(0); }
  int64_t intermediate() const { return down.dim(2); }
};

void moe_experts_cpu(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights,
                     const ActQuantParams& act, Tensor& out);

// Dispatch by device (ops/dispatch.h). `hidden` is a [P, Im] workspace in x's dtype (the
// SwiGLU state of every row); with it the GPU path allocates and synchronises nothing.
void moe_experts(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights, const ActQuantParams& act,
                 Tensor& hidden, Tensor& out, Stream stream = {});

// The routed experts on rows already quantised, for a caller that can quantise fewer rows than it
// gathers: the GPU's grouped FP8 path quantises the gathered rows per row and 128 channels, its
// first step, so quantising the T token rows (quantize_activations_fp8 with the same `act`) and
// gathering the e4m3 rows and their scales (gather_fp8_rows, embedding.h) gives the same bits over
// k times fewer rows (the model's MoE, ffn_block.cc).
//   moe_experts_takes_quantized_rows: whether moe_experts over `rows` gathered rows on `device`
//     with these weights starts by quantising them: GPU, e4m3 weights and the grouped GEMMs (not
//     the GEMV of a few rows, which quantises inside its kernel; use_moe_gemv,
//     src/ops/cuda/moe_experts_gemv_heuristics.h). False on the CPU and in a build without CUDA.
//   moe_experts_quantized: x_q [P, H] e4m3 and x_scales [P, H/128] f32 in expert order, the rest
//     as moe_experts; out equals moe_experts' on the bf16 rows that quantise to x_q, x_scales, bit
//     for bit. GPU only, where moe_experts_takes_quantized_rows (moe_experts_fp8_cuda's quantised
//     overload below).
bool moe_experts_takes_quantized_rows(Device device, int64_t rows, const ExpertWeights& weights);
void moe_experts_quantized(const Tensor& x_q, const Tensor& x_scales, const Tensor& expert_offsets,
                           const ExpertWeights& weights, const ActQuantParams& act, Tensor& hidden, Tensor& out,
                           Stream stream = {});


// The routed experts on the T token rows and their order instead of rows gathered in expert order,
// for a caller that can then skip the gather (the routing kernel's copy of T·k rows, ffn_block.cc):
// at decode sizes the GPU's GEMV reads each token row where it would read its gathered copy.
//   moe_experts_reads_token_rows: whether moe_experts_token_rows runs that way for T tokens, P =
//     T·k rows and these weights on `device` (GPU, the GEMV, T small enough:
//     use_moe_gemv_token_rows in src/ops/cuda/moe_experts_gemv_heuristics.h). False on the CPU and
//     in a build without CUDA, where the gather costs no kernel boundary.
//   moe_experts_token_rows: x [T, H], sorted_tokens [P] i32 (the token of each row in expert order:
//     MoeGrouping::sorted_tokens), the rest as moe_experts; out equals moe_experts' on the rows
//     x[sorted_tokens[r]], bit for bit. x_q: with e4m3 weights, x's codes and scales as
//     quantize_activations_fp8 with `act` writes them (the norm's, from two tokens a step), which the
//     GPU then copies instead of quantising (the same bits); or undefined. `placement`
//     (ops/grid_placement.h): kBeside where the shared experts' kernels run beside it on the
//     model's side stream (ffn_block.cc), which the combine after both waits for; the GPU's down
//     GEMV then leaves them SMs where they are the longer branch (moe_gemv_down_sms_left in
//     src/ops/cuda/moe_experts_gemv_heuristics.h). The CPU gathers x's rows and runs moe_experts_cpu.
bool moe_experts_reads_token_rows(Device device, int64_t tokens, int64_t rows, const ExpertWeights& weights);
// Whether moe_experts_token_rows over T tokens would rather be given x_q than quantise x itself,
// where no norm would otherwise write x_q at T tokens (fp8_norm_quantization_pays, rms_norm_fp8.h):
// e4m3 experts on the GPU's GEMV from two tokens, whose CTAs each quantise the same rows
// (moe_gemv_wants_token_codes in src/ops/cuda/moe_experts_gemv_heuristics.h). False on the CPU
// and in a build without CUDA.
bool moe_experts_wants_token_codes(Device device, int64_t tokens, int64_t rows, const ExpertWeights& weights);
void moe_experts_token_rows(const Tensor& x, const Fp8Activations& x_q, const Tensor& sorted_tokens,
                            const Tensor& expert_offsets, const ExpertWeights& weights, const ActQuantParams& act,
                            Tensor& hidden, Tensor& out, Stream stream = {},
                            GridPlacement placement = GridPlacement::kAlone);

}  // namespace mlaserve::ops

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>

#include <cstdint>

namespace mlaserve::ops {

// Which implementation runs the experts on the GPU (moe_experts_cuda, moe_experts_fp8_cuda).
//   kAuto: the grouped GEMV for a few gathered rows (use_moe_gemv in
//          src/ops/cuda/moe_experts_gemv_heuristics.h), the grouped GEMMs otherwise; what the model
//          runs.
//   kGemv: src/ops/cuda/moe_experts_gemv.cuh, two launches that stream each active expert's
//          weights once per 8 of its rows (tensor-core GEMV; FP8 quantises its activations inside).
//   kGroupedGemm: the grouped GEMMs below, whatever P.
// The two forced values are for tests and benchmarks.
enum class MoeExpertsPath : uint8_t { kAuto, kGemv, kGroupedGemm };

// ---- CUDA: src/ops/cuda/moe_grouped_gemm_sm{80,90}.{cuh,cu}, moe_experts_gemv.{cuh,cu} ---------
//
// BF16 experts on the GPU: x, out, gate_up and down bf16, expert_offsets i32, all on the GPU.
// Two launches (gate_up with silu_mul fused into its epilogue, then down), each covering every
// expert: grouped GEMMs, or for a few rows the grouped GEMV (`path`, MoeExpertsPath above). The
// row ranges are read from expert_offsets on the device, never on the host, so the layer can be
// captured in a CUDA graph. fp32 accumulation; the SwiGLU hidden state is rounded to bf16 between
// the two launches. Needs H and Im multiples of 128 (every DeepSeek config). The contents of
// expert_offsets are trusted (the CPU reference checks them); the kernels clamp them to [0, P] so
// that bad offsets cannot reach outside the tensors.
//
//   hidden  [P, Im] bf16 workspace (silu(gate) ⊙ up of every row), caller-allocated: with it the
//           call allocates nothing
void moe_experts_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights, Tensor& hidden,
                      Tensor& out, cudaStream_t stream, MoeExpertsPath path = MoeExpertsPath::kAuto);

// Allocates hidden for the call and waits for the stream before freeing it: for tests and
// one-off calls, never inside a graph capture.
void moe_experts_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights, Tensor& out,
                      cudaStream_t stream);

// Which kernel runs a grouped BF16 GEMM (moe_grouped_gemm_cuda below).
//   kAuto: what moe_experts_cuda's grouped GEMMs run (choose_moe_tiles in
//          src/ops/cuda/moe_grouped_gemm_sm80_heuristics.h, with this GEMM's weight rows in place
//          of H: the same at every DeepSeek shape): the mma.sync decode tiles up to 16 rows per
//          active expert, the Hopper wgmma kernel above, CUTLASS's for a large plain product
//          (below).
//   kMmaSync: the mma.sync kernel (moe_grouped_gemm_sm80.cuh): decode tiles up to 16 rows per
//          active expert, 64 x 128 tiles above.
//   kWgmma: the Hopper wgmma kernel (moe_grouped_gemm_sm90.cuh), 128 x 256 tiles, whatever P.
//   kWgmmaM192: the same kernel with 192 x 128 tiles (three m64 warpgroups, 64 output channels a
//          tile with SwiGLU), whatever P: one M tile for experts of 129 .. 192 rows, where the
//          128-row tile loads each weight tile twice (src/ops/cuda/moe_grouped_gemm_sm90.h); kAuto
//          runs it for gate_up there.
//   kCutlassGrouped: CUTLASS 4.2's grouped (ptr-array) GEMM, cooperative 128 x 256 x 64 tiles,
//          persistent (src/ops/cuda/moe_grouped_gemm_cutlass.h). It has the plain product only:
//          SwiGLU runs it into a [P, 2·Im] bf16 workspace (stream-ordered caching allocator) and
//          then silu_mul_rows_cuda (ops/silu_mul.h) over the experts' rows. That rounds gate and
//          up to bf16 before silu(g)·u, where the fused epilogue of the other kernels computes
//          silu(g)·u from the fp32 sums and rounds once: two more independent bf16 roundings
//          (~1.7e-3 RMS relative each; g's passes through silu with a gain of about 1 where
//          silu(g) is not small), so the hidden state is ~2.9e-3 RMS relative off the fp32
//          SwiGLU instead of ~1.7e-3, and the layer's output ~3.3e-3 instead of ~2.3e-3 (host
//          emulation with the tests' uniform inputs at V2-Lite and V3 shapes; the bounds:
//          tests/ops/cuda/moe_experts_cuda_test.cc).
// All but kAuto are for tests and benchmarks; kAuto takes CUTLASS's kernel for the plain product
// when the mean expert's output is large (use_cutlass_grouped_bf16 in
// src/ops/cuda/moe_grouped_gemm_sm80_heuristics.h), never for SwiGLU, and kWgmmaM192 for SwiGLU
// when the mean expert has 129 .. 192 rows (use_wgmma_m192, same file).
enum class MoeBf16Kernel : uint8_t { kAuto, kMmaSync, kWgmma, kCutlassGrouped, kWgmmaM192 };

// One grouped BF16 GEMM (either launch of moe_experts_cuda's grouped path; what the benchmark
// times): a [P, K] bf16 in expert order, expert_offsets [E + 1] i32 (device), b [E, R, K] bf16, K
// and R multiples of 128, all on the GPU. Plain: out [P, R] bf16, out[r, j] = Σ_κ a[r, κ] ·
// b[e, j, κ] (fp32 accumulation, rounded once) for the rows r of expert e. swiglu: R = 2·Im (gate
// rows, then up rows), out [P, Im] = silu(first half) ⊙ second half, Im a multiple of 128. Rows
// outside [offsets[0], offsets[E]) are not written; the offsets are read on the device only.
void moe_grouped_gemm_cuda(const Tensor& a, const Tensor& expert_offsets, const Tensor& b, bool swiglu, Tensor& out,
                           cudaStream_t stream, MoeBf16Kernel kernel = MoeBf16Kernel::kAuto);

// ---- CUDA, FP8: src/ops/cuda/moe_grouped_gemm_fp8_sm{89,90}.{cuh,cu}, moe_experts_gemv.{cuh,cu} -
//
// FP8 experts on the GPU (W8A8, DeepSeek's block scales): x, hidden and out bf16 as above,
// gate_up/down e4m3 with their [E, rows/128, cols/128] f32 scales. x is quantised per token and
// 128 channels (with `act`), the gate_up launch writes the SwiGLU state to `hidden` in bf16, that
// is quantised the same way, and the down launch writes out; no host synchronisation. Grouped
// GEMM path: two quantisation passes (quantize_activations_fp8_cuda) and two grouped GEMM
// launches, the quantised copies ([P, H] and [P, Im] e4m3 plus scales) from the stream-ordered
// caching allocator. GEMV path (`path`, MoeExpertsPath above): two launches that quantise their
// rows themselves, bit-identically, and allocate nothing. Versus moe_experts_cpu (fp32 SwiGLU
// state) the GPU rounds the state to bf16 before quantising it and the output to bf16. Needs H and
// Im multiples of 128.
void moe_experts_fp8_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights,
                          const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                          MoeExpertsPath path = MoeExpertsPath::kAuto);

// The grouped GEMM path of moe_experts_fp8_cuda from rows already quantised: x_q [P, H] e4m3 and
// x_scales [P, H/128] f32 in expert order (what that path's first quantisation pass writes: the
// same bits as quantize_activations_fp8_cuda over the bf16 rows with `act`, whether run on the P
// rows or on the T token rows then gathered), the rest as above. Whatever P: no GEMV (it takes
// bf16 rows). One quantisation pass (the SwiGLU state) and the two grouped GEMMs.
void moe_experts_fp8_cuda(const Tensor& x_q, const Tensor& x_scales, const Tensor& expert_offsets,
                          const ExpertWeights& weights, const ActQuantParams& act, Tensor& hidden, Tensor& out,
                          cudaStream_t stream);

// Which kernel runs the grouped block-FP8 GEMM. kAuto: for the plain product from 128 rows per
// active expert CUTLASS's cooperative grouped kernel, else the Hopper wgmma kernel
// (moe_grouped_gemm_fp8_sm90.cuh) from 12 rows per active expert, with 128- or 256-row weight
// tiles, else the mma.sync kernel (moe_grouped_gemm_fp8_sm89.cuh); the rules are
// use_cutlass_grouped, use_wgmma and choose_bn in moe_grouped_gemm_fp8_sm90.h. The others force
// one kernel and tile (tests and benchmarks). kCutlassGrouped: CUTLASS 4.2's grouped (ptr-array)
// blockwise-scaled FP8 GEMM, cooperative 128x128 tiles (src/ops/cuda/moe_grouped_gemm_fp8_cutlass.h),
// the plain epilogue only (SwiGLU throws).
enum class MoeFp8Kernel : uint8_t { kAuto, kMmaSync, kWgmmaN128, kWgmmaN256, kCutlassGrouped };

// The grouped block-FP8 GEMM itself (both launches of moe_experts_fp8_cuda; also what the
// benchmark times). a_q [P, K] e4m3 in expert order, a_scales [P, K/128] f32, expert_offsets
// [E + 1] i32 (device), b_q [E, R, K] e4m3, b_scales [E, R/128, K/128] f32, K and R multiples of
// 128. Plain: out [P, R] bf16, out[r, j] = Σ_g (a_q·b_q over group g) · a_scale · b_scale (the
// order of linear_fp8_w8a8_cpu, fp32 accumulation promoted per 128-wide K group). swiglu: R = 2·Im,
// out [P, Im] = silu(first half) ⊙ second half, Im a multiple of 128.
void moe_grouped_gemm_fp8_cuda(const Tensor& a_q, const Tensor& a_scales, const Tensor& expert_offsets,
                               const Tensor& b_q, const Tensor& b_scales, bool swiglu, Tensor& out,
                               cudaStream_t stream, MoeFp8Kernel kernel = MoeFp8Kernel::kAuto);

}  // namespace mlaserve::ops
#endif  // MLASERVE_WITH_CUDA
