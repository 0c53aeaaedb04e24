// moe_experts_gemv_cuda (moe_experts_gemv.h): argument checks and the two launches. The design
// note and the kernel are in moe_experts_gemv.cuh.
#include "ops/cuda/moe_experts_gemv.cuh"

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "moe_experts_gemv_cuda";

// Operands read as 16-byte vectors (x, the weights, hidden) need that alignment; out is written
// one bf16 at a time and the offsets read one i32 at a time (a rank's slice starts anywhere).
void check_tensor(const Tensor& t, std::string_view name, DType dtype, const Shape& shape, size_t align) {
  gpu::check_operand(kOp, name, t, dtype, shape, align);
}

// Activation rows a pass stages: min(8, P), fewer where their shared memory would pass
// kMoeGemvActSmemBudget (never fewer than one).
int64_t rows_per_pass(int64_t k, int64_t rows, bool fp8) {
  int64_t r = std::min<int64_t>(rows, gpu::kMoeGemvRowsPerPass);
  while (r > 1 && gpu::moe_gemv_act_bytes(k, r, fp8) > gpu::kMoeGemvActSmemBudget) --r;
  return r;
}

// The launch shape of one kernel over `tiles` tiles an expert and `slots` slots (the note in
// moe_experts_gemv.cuh): about ctas_per_sm x SMs CTAs (or runs of tiles_per_cta tiles), runs of
// at most kMoeGemvMaxTilesPerCta tiles (kMoeGemvWaveRunTiles past one wave: moe_gemv_ctas), at
// least one tile a CTA. Sets p's tiles, max_tiles_per_cta and rows_per_pass; returns the CTAs a
// slot.
int64_t plan(gpu::MoeGemvParams& p, int64_t tiles, int64_t slots, bool fp8, const gpu::MoeGemvConfig& config,
             int sms) {
  const int64_t ctas = gpu::moe_gemv_ctas(tiles, slots, config, sms);
  p.tiles = static_cast<int32_t>(tiles);
  p.max_tiles_per_cta = static_cast<int32_t>((tiles + ctas - 1) / ctas);
  p.rows_per_pass = static_cast<int32_t>(rows_per_pass(p.k, p.num_rows, fp8));
  return ctas;
}

// whole_tiles: the down kernel dealing whole tiles (moe_gemv_whole_tiles), which keeps no partial sums.
int64_t smem_bytes(const gpu::MoeGemvParams& p, bool fp8, bool whole_tiles) {
  return gpu::moe_gemv_smem_bytes(p.k, p.rows_per_pass, whole_tiles ? 0 : p.max_tiles_per_cta, fp8);
}

// early: programmatic launch (pdl.cuh), else a plain one (moe_gemv_gate_up_early_launch says when).
template <bool kFp8, bool kSwiGlu, int kDepth, bool kCodes = false, bool kWholeTiles = false>
void launch(const gpu::MoeGemvParams& p, int64_t ctas, int64_t slots, bool early, cudaStream_t stream) {
  const auto kernel = gpu::moe_experts_gemv_kernel<kFp8, kSwiGlu, kDepth, kCodes, kWholeTiles>;
  const int64_t smem = smem_bytes(p, kFp8, kWholeTiles);
  if (smem > 48 * 1024) {
    MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  const dim3 grid(static_cast<unsigned>(ctas), static_cast<unsigned>(slots));
  gpu::launch_with_shape(kernel, {grid, dim3(gpu::kMoeGemvThreads), static_cast<size_t>(smem), 0, early}, stream, p);
}

template <bool kFp8, int kDepth>
void launch_both(const gpu::MoeGemvParams& gate_up, int64_t gate_up_ctas, bool gate_up_early,
                 const gpu::MoeGemvParams& down, int64_t down_ctas, int64_t slots, cudaStream_t stream) {
  if constexpr (kFp8) {
    if (gate_up.a_codes != nullptr) {
      launch<true, true, kDepth, true>(gate_up, gate_up_ctas, slots, gate_up_early, stream);
    } else {
      launch<true, true, kDepth>(gate_up, gate_up_ctas, slots, gate_up_early, stream);
    }
  } else {
    launch<false, true, kDepth>(gate_up, gate_up_ctas, slots, gate_up_early, stream);
  }
  if constexpr (kFp8) {
    if (gpu::moe_gemv_whole_tiles(down.k, kFp8)) {
      return launch<true, false, kDepth, false, true>(down, down_ctas, slots, /*early=*/true, stream);
    }
  }
  launch<kFp8, false, kDepth>(down, down_ctas, slots, /*early=*/true, stream);
}

// Both entry points: x [P, H] gathered rows (sorted_tokens null) or [T, H] token rows with
// sorted_tokens [P] (the token of each row in expert order) and, for e4m3 weights, maybe their
// codes and scales (x_q defined); P from hidden.
void run_gemv(const Tensor& x, const Tensor* sorted_tokens, const Fp8Activations& x_q, const Tensor& expert_offsets,
              const ExpertWeights& w, const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
              const gpu::MoeGemvConfig& config, GridPlacement placement) {
  MLA_CHECK(w.gate_up.ndim() == 3 && w.down.ndim() == 3 && x.ndim() == 2 && hidden.ndim() == 2,
            "{}: gate_up {} and down {} must be stacked [E, rows, cols], x {} [P or T, H], hidden {} [P, Im]", kOp,
            shape_str(w.gate_up.shape()), shape_str(w.down.shape()), shape_str(x.shape()), shape_str(hidden.shape()));
  const bool fp8 = w.is_fp8();
  const DType wt = fp8 ? DType::kF8E4M3 : DType::kBF16;
  const int64_t e_count = w.num_experts(), im = w.intermediate(), h = w.down.dim(1), rows = hidden.dim(0);
  const int64_t x_rows = sorted_tokens ? x.dim(0) : rows;
  check_tensor(w.gate_up, "gate_up", wt, {e_count, 2 * im, h}, 16);
  check_tensor(w.down, "down", wt, {e_count, h, im}, 16);
  check_tensor(x, "x", DType::kBF16, {x_rows, h}, 16);
  if (sorted_tokens) {
    check_tensor(*sorted_tokens, "sorted_tokens", DType::kI32, {rows}, 4);
    MLA_CHECK(x_rows >= 1 && x_rows < (int64_t{1} << 31), "{}: {} token rows", kOp, x_rows);
  }
  if (x_q.defined()) {
    MLA_CHECK(sorted_tokens && fp8, "{}: quantised token rows need sorted_tokens and e4m3 weights", kOp);
    check_tensor(x_q.x_q, "x_q", DType::kF8E4M3, {x_rows, h}, 16);
    check_tensor(x_q.scales, "x_q scales", DType::kF32, {x_rows, h / 128}, 4);
    MLA_CHECK(h / 128 <= gpu::kMoeGemvThreads, "{}: H = {} has more scale groups than a CTA has threads", kOp, h);
  }
  check_tensor(hidden, "hidden", DType::kBF16, {rows, im}, 16);
  check_tensor(out, "out", DType::kBF16, {rows, h}, 2);
  check_tensor(expert_offsets, "expert_offsets", DType::kI32, {e_count + 1}, 4);
  MLA_CHECK(h % 128 == 0 && im % 128 == 0, "{}: H = {} and Im = {} must be multiples of 128", kOp, h, im);
  MLA_CHECK(gpu::gemv_mma_config_ok(config),
            "{}: config ctas_per_sm {} (>= 1), depth {} (2, 4 or 8), tiles_per_cta {} (0 .. {})", kOp,
            config.ctas_per_sm, config.depth, config.tiles_per_cta, gpu::kMoeGemvMaxTilesPerCta);
  if (fp8) {
    check_tensor(w.gate_up_scale, "gate_up_scale", DType::kF32, {e_count, 2 * im / 128, h / 128}, 4);
    check_tensor(w.down_scale, "down_scale", DType::kF32, {e_count, h / 128, im / 128}, 4);
    MLA_CHECK(act.amax_floor > 0.0f, "{}: amax_floor must be positive, got {}", kOp, act.amax_floor);
  }
  const int64_t slots = std::min(rows, e_count);
  MLA_CHECK(e_count >= 1 && slots <= 65535, "{}: {} experts and {} rows: min(P, E) must be 1 .. 65535", kOp, e_count,
            rows);
  MLA_CHECK(rows * std::max(h, im) < (int64_t{1} << 31) && 2 * im * h < (int64_t{1} << 31),
            "{}: P = {} rows of H = {}, Im = {} exceed the kernel's 32-bit offsets", kOp, rows, h, im);
  if (rows == 0) return;

  gpu::MoeGemvParams gate_up{};
  gate_up.a = static_cast<const __nv_bfloat16*>(x.raw());
  gate_up.w = w.gate_up.raw();
  gate_up.w_scales = fp8 ? w.gate_up_scale.data<float>() : nullptr;
  gate_up.out = static_cast<__nv_bfloat16*>(hidden.raw());
  gate_up.expert_offsets = expert_offsets.data<int32_t>();
  gate_up.num_rows = static_cast<int32_t>(rows);
  gate_up.num_experts = static_cast<int32_t>(e_count);
  gate_up.k = static_cast<int32_t>(h);
  gate_up.w_rows = static_cast<int32_t>(2 * im);
  gate_up.n_out = static_cast<int32_t>(im);
  gate_up.amax_floor = act.amax_floor;
  gate_up.ue8m0 = act.scale_format == Fp8ScaleFormat::kUE8M0;

  if (sorted_tokens) {
    gate_up.row_tokens = sorted_tokens->data<int32_t>();
    gate_up.num_tokens = static_cast<int32_t>(x_rows);
    gate_up.all_tokens =
        !x_q.defined() && gpu::moe_gemv_all_tokens(x_rows, fp8) && rows_per_pass(h, x_rows, fp8) == x_rows;
  }
  if (x_q.defined()) {  // copied, not quantised (indexed)
    gate_up.a_codes = static_cast<const uint8_t*>(x_q.x_q.raw());
    gate_up.a_scales = x_q.scales.data<float>();
  }

  gpu::MoeGemvParams down = gate_up;
  down.row_tokens = nullptr;
  down.num_tokens = 0;
  down.all_tokens = false;
  down.a_codes = nullptr;
  down.a_scales = nullptr;
  down.a = static_cast<const __nv_bfloat16*>(hidden.raw());
  down.w = w.down.raw();
  down.w_scales = fp8 ? w.down_scale.data<float>() : nullptr;
  down.out = static_cast<__nv_bfloat16*>(out.raw());
  down.k = static_cast<int32_t>(im);
  down.w_rows = static_cast<int32_t>(h);
  down.n_out = static_cast<int32_t>(h);

  const int sms = gpu::device_sm_count();
  const int64_t gate_up_ctas = plan(gate_up, im / gpu::kMoeGemvGateUpChannels, slots, fp8, config, sms);
  if (gate_up.all_tokens) gate_up.rows_per_pass = static_cast<int32_t>(x_rows);  // a pass stages every token row
  const int64_t down_ctas = plan(down, h / gpu::kMoeGemvDownChannels, slots, fp8, config,
                                 sms - gpu::moe_gemv_down_sms_left(placement, fp8, rows));
  for (const gpu::MoeGemvParams* p : {&gate_up, &down}) {
    const int64_t smem = smem_bytes(*p, fp8, p == &down && gpu::moe_gemv_whole_tiles(down.k, fp8));
    MLA_CHECK(smem <= 200 * 1024, "{}: H = {}, Im = {} need {} bytes of shared memory (at most 200 KB)", kOp, h, im,
              smem);
  }
  const bool gate_up_early = gpu::moe_gemv_gate_up_early_launch(fp8, x_rows);  // x's rows: T, or P gathered
  const auto run = [&](auto launch_fn) {
    launch_fn(gate_up, gate_up_ctas, gate_up_early, down, down_ctas, slots, stream);
  };
  switch (config.depth) {
    case 2:
      return fp8 ? run(launch_both<true, 2>) : run(launch_both<false, 2>);
    case 4:
      return fp8 ? run(launch_both<true, 4>) : run(launch_both<false, 4>);
    default:
      return fp8 ? run(launch_both<true, 8>) : run(launch_both<false, 8>);
  }
}

}  // namespace

void moe_experts_gemv_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights,
                           const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                           const gpu::MoeGemvConfig& config, GridPlacement placement) {
  run_gemv(x, nullptr, Fp8Activations{}, expert_offsets, weights, act, hidden, out, stream, config, placement);
}

void moe_experts_gemv_token_rows_cuda(const Tensor& x_tokens, const Fp8Activations& x_q, const Tensor& sorted_tokens,
                                      const Tensor& expert_offsets, const ExpertWeights& weights,
                                      const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                                      const gpu::MoeGemvConfig& config, GridPlacement placement) {
  run_gemv(x_tokens, &sorted_tokens, x_q, expert_offsets, weights, act, hidden, out, stream, config, placement);
}

}  // namespace mlaserve::ops
