// Host side of the tensor-core block-FP8 GEMV (linear_fp8_gemv.h): parameters, the grid
// (GemvMmaConfig, gemv_mma_config.h) and the launch. The design note and the kernel are in
// linear_fp8_gemv_mma.cuh.
#include "ops/cuda/linear_fp8_gemv_mma.cuh"

#include <algorithm>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/linear_fp8_gemv.h"
#include "ops/fp8_block.h"

namespace mlaserve::ops::sm90_fp8 {
namespace {

// Dynamic shared memory a CTA may use (sm_90's opt-in limit, 227 KB); the staged activation rows
// may take up to kActLimit of it, the rest holds at least one tile's partial sums.
constexpr int64_t kSmemLimit = 227 * 1024;
constexpr int64_t kActLimit = kSmemLimit - gpu::kGemvMmaPartialBytes;

template <int kDepth, Fp8GemvInput kInput, typename OutT>
void launch(const gpu::Fp8GemvMmaParams<OutT>& p, int64_t ctas, int64_t smem, cudaStream_t stream) {
  const auto kernel = gpu::linear_fp8_gemv_mma_kernel<kDepth, kInput, OutT>;
  if (smem > 48 * 1024) {
    MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  gpu::launch_programmatic(kernel, dim3(static_cast<unsigned>(ctas)), dim3(gpu::kGemvMmaThreads),
                           static_cast<size_t>(smem), stream, p);
}

template <Fp8GemvInput kInput, typename OutT>
void launch_depth(const gpu::Fp8GemvMmaParams<OutT>& p, int64_t ctas, int64_t smem, int depth, cudaStream_t stream) {
  switch (depth) {
    case 2: return launch<2, kInput>(p, ctas, smem, stream);
    case 4: return launch<4, kInput>(p, ctas, smem, stream);
    default: return launch<8, kInput>(p, ctas, smem, stream);
  }
}

template <typename OutT>
void launch_out(const Fp8GemvOperands& o, int64_t t, int64_t n, int64_t k, Fp8GemvInput input,
                const ActQuantParams& act, const gpu::GemvMmaConfig& config, cudaStream_t stream) {
  gpu::Fp8GemvMmaParams<OutT> p{};
  if (input != Fp8GemvInput::kCodes) {
    p.op.x = static_cast<const __nv_bfloat16*>(o.x);
  } else {
    p.op.x_q = static_cast<const uint8_t*>(o.x);
    p.op.x_scales = o.x_scales;
  }
  p.op.w = static_cast<const uint8_t*>(o.w_q);
  p.op.w_scales = o.w_scales;
  p.op.out = static_cast<OutT*>(o.out);
  p.op.t = static_cast<int32_t>(t);
  p.op.n = static_cast<int32_t>(n);
  p.op.k = static_cast<int32_t>(k);
  p.op.groups = static_cast<int32_t>(fp8_num_blocks(k));
  p.op.amax_floor = act.amax_floor;
  p.op.ue8m0 = act.scale_format == Fp8ScaleFormat::kUE8M0;

  // Runs of at most as many tiles as the shared memory left by the activation rows holds.
  const int64_t tiles = (n + gpu::kFp8GemvMmaTileRows - 1) / gpu::kFp8GemvMmaTileRows;
  const bool swiglu = input == Fp8GemvInput::kSwiGlu;
  const int64_t act_bytes = gpu::fp8_gemv_mma_staged_bytes(k, t, swiglu);
  const int64_t max_run = std::min<int64_t>(gpu::kGemvMmaMaxTilesPerCta,
                                            (kSmemLimit - act_bytes) / gpu::kGemvMmaPartialBytes);
  const int64_t ctas = gpu::gemv_mma_ctas(tiles, 1, config, gpu::device_sm_count(), max_run);
  p.tiles = static_cast<int32_t>(tiles);
  p.max_tiles_per_cta = static_cast<int32_t>((tiles + ctas - 1) / ctas);
  const int64_t smem = gpu::fp8_gemv_mma_smem_bytes(k, t, p.max_tiles_per_cta, swiglu);
  MLA_CHECK(smem <= kSmemLimit && ctas <= (int64_t{1} << 31) - 1, "fp8 GEMV (mma): {} bytes of shared memory", smem);
  switch (input) {
    case Fp8GemvInput::kCodes: return launch_depth<Fp8GemvInput::kCodes>(p, ctas, smem, config.depth, stream);
    case Fp8GemvInput::kBf16: return launch_depth<Fp8GemvInput::kBf16>(p, ctas, smem, config.depth, stream);
    case Fp8GemvInput::kSwiGlu: return launch_depth<Fp8GemvInput::kSwiGlu>(p, ctas, smem, config.depth, stream);
  }
}

}  // namespace

bool fp8_gemv_mma_fits(int64_t t, int64_t k, Fp8GemvInput input) {
  return t >= 1 && t <= gpu::kFp8GemvMmaMaxTokens && k > 0 && k % 16 == 0 && k < (int64_t{1} << 30) &&
         gpu::fp8_gemv_mma_staged_bytes(k, t, input == Fp8GemvInput::kSwiGlu) <= kActLimit;
}

void run_fp8_gemv_mma(const Fp8GemvOperands& o, int64_t t, int64_t n, int64_t k, Fp8GemvInput input,
                      const ActQuantParams& act, cudaStream_t stream, const gpu::GemvMmaConfig& config) {
  MLA_CHECK(fp8_gemv_mma_fits(t, k, input) && n < (int64_t{1} << 31) - 16,
            "fp8 GEMV (mma): needs 1 <= T = {} <= {} and K = {} a multiple of 16 whose T rows fit in shared memory",
            t, gpu::kFp8GemvMmaMaxTokens, k);
  MLA_CHECK(gpu::gemv_mma_config_ok(config), "fp8 GEMV (mma): config ctas_per_sm {} (>= 1), depth {} (2, 4 or 8), "
            "tiles_per_cta {} (0 .. {})", config.ctas_per_sm, config.depth, config.tiles_per_cta,
            gpu::kGemvMmaMaxTilesPerCta);
  MLA_CHECK(input == Fp8GemvInput::kCodes || act.amax_floor > 0.0f, "fp8 GEMV (mma): amax_floor must be positive, got {}",
            act.amax_floor);
  if (n == 0) return;
  if (o.out_f32) {
    launch_out<float>(o, t, n, k, input, act, config, stream);
  } else {
    launch_out<__nv_bfloat16>(o, t, n, k, input, act, config, stream);
  }
}

}  // namespace mlaserve::ops::sm90_fp8
