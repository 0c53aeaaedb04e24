// Host side of the tensor-core bf16 GEMV (linear_gemv.h): parameters, the launch shape
// (GemvMmaConfig, gemv_mma_config.h) and the launch. The design note and the kernel are in
// linear_gemv_mma.cuh.
#include "ops/cuda/linear_gemv_mma.cuh"

#include <algorithm>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/gemv_mma_config.h"
#include "ops/cuda/linear_gemv.h"

namespace mlaserve::ops {
namespace {

// Dynamic shared memory a CTA may use (sm_90's opt-in limit, 227 KB), and an SM's (228 KB, each
// CTA also taking 1 KB for the system); the staged rows of x may take up to kActLimit, the rest
// holds at least one tile's partial sums.
constexpr int64_t kSmemLimit = 227 * 1024;
constexpr int64_t kSmemPerSm = 228 * 1024;
constexpr int64_t kSmemPerCtaReserved = 1024;
constexpr int64_t kActLimit = kSmemLimit - gpu::kGemvMmaPartialBytes;

// The launch shape (not tuned for bf16 yet; decode_gemv_bench times only this one): the FP8 tensor-core
// GEMV's measured default (2 CTAs an SM, a ring of 4 pieces of 2 KB a warp: 128 KB in flight an
// SM) where two CTAs' shared memory fits an SM (T · 2K <= ~110 KB: K <= ~6.9k at 8 tokens); else
// one CTA an SM with a ring of 8 (the same bytes in flight).
constexpr gpu::GemvMmaConfig kTwoCtas{2, 4, 0};
constexpr gpu::GemvMmaConfig kOneCta{1, 8, 0};

struct Plan {
  gpu::GemvMmaConfig config;
  int64_t ctas, max_tiles_per_cta, smem;
};

Plan plan_for(int64_t t, int64_t n, int64_t k, const gpu::GemvMmaConfig& config) {
  // Runs of at most as many tiles as the shared memory left by the staged rows holds.
  const int64_t tiles = (n + gpu::kGemvMmaTileRows - 1) / gpu::kGemvMmaTileRows;
  const int64_t max_run =
      std::min<int64_t>(gpu::kGemvMmaMaxTilesPerCta,
                        (kSmemLimit - gpu::linear_gemv_mma_act_bytes(k, t)) / gpu::kGemvMmaPartialBytes);
  const int64_t ctas = gpu::gemv_mma_ctas(tiles, 1, config, gpu::device_sm_count(), max_run);
  const int64_t max_tiles = (tiles + ctas - 1) / ctas;
  return {config, ctas, max_tiles, gpu::linear_gemv_mma_smem_bytes(k, t, max_tiles)};
}

Plan choose_plan(int64_t t, int64_t n, int64_t k) {
  const Plan two = plan_for(t, n, k, kTwoCtas);
  if (kTwoCtas.ctas_per_sm * (two.smem + kSmemPerCtaReserved) <= kSmemPerSm) return two;
  return plan_for(t, n, k, kOneCta);
}

template <int kDepth, typename OutT>
void launch(const gpu::Bf16GemvMmaParams<OutT>& p, const Plan& plan, cudaStream_t stream) {
  const auto kernel = gpu::linear_gemv_mma_bf16_kernel<kDepth, OutT>;
  // The opt-in limit itself, not this launch's size: a smaller shape's launch then never lowers the
  // attribute below what a larger one (eager, or captured in a graph) was launched with.
  if (plan.smem > 48 * 1024) {
    MLA_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemLimit)));
  }
  gpu::launch_programmatic(kernel, dim3(static_cast<unsigned>(plan.ctas)), dim3(gpu::kGemvMmaThreads),
                           static_cast<size_t>(plan.smem), stream, p);
}

template <typename OutT>
void launch_out(const GemvMmaOperands& o, int64_t t, int64_t n, int64_t k, cudaStream_t stream) {
  gpu::Bf16GemvMmaParams<OutT> p{};
  p.op.x = static_cast<const __nv_bfloat16*>(o.x);
  p.op.w = static_cast<const __nv_bfloat16*>(o.w);
  p.op.out = static_cast<OutT*>(o.out);
  p.op.t = static_cast<int32_t>(t);
  p.op.n = static_cast<int32_t>(n);
  p.op.k = static_cast<int32_t>(k);
  const Plan plan = choose_plan(t, n, k);
  p.tiles = static_cast<int32_t>((n + gpu::kGemvMmaTileRows - 1) / gpu::kGemvMmaTileRows);
  p.max_tiles_per_cta = static_cast<int32_t>(plan.max_tiles_per_cta);
  MLA_CHECK(plan.smem <= kSmemLimit && plan.ctas <= (int64_t{1} << 31) - 1,
            "bf16 GEMV (mma): {} bytes of shared memory", plan.smem);
  switch (plan.config.depth) {
    case 4: return launch<4>(p, plan, stream);
    default: return launch<8>(p, plan, stream);
  }
}

}  // namespace

bool linear_gemv_mma_fits(int64_t t, int64_t k) {
  return t >= 1 && t <= gpu::kGemvMmaMaxTokens && k > 0 && k % 8 == 0 && k < (int64_t{1} << 29) &&
         gpu::linear_gemv_mma_act_bytes(k, t) <= kActLimit;
}

void run_linear_gemv_mma(const GemvMmaOperands& o, int64_t t, int64_t n, int64_t k, cudaStream_t stream) {
  MLA_CHECK(linear_gemv_mma_fits(t, k) && n < (int64_t{1} << 31) - 16,
            "bf16 GEMV (mma): needs 1 <= T = {} <= {} and K = {} a multiple of 8 whose T rows fit in shared memory",
            t, gpu::kGemvMmaMaxTokens, k);
  if (n == 0) return;
  if (o.out_f32) {
    launch_out<float>(o, t, n, k, stream);
  } else {
    launch_out<__nv_bfloat16>(o, t, n, k, stream);
  }
}

}  // namespace mlaserve::ops
