// Host side of the sm90 FP8 GEMM (linear_fp8_sm90.h): tensor maps, the plan, the launch by token
// tile width; and the scale transpose that cuBLASLt's layout needs.
#include <algorithm>
#include <array>
#include <mutex>
#include <string_view>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/linear_fp8_heuristics.h"
#include "ops/cuda/linear_fp8_sm90.h"
#include "ops/cuda/tensor_map.h"

namespace mlaserve::ops::sm90_fp8 {
namespace {

constexpr std::string_view kOp = "linear_fp8_w8a8_cuda";

__global__ void transpose_f32_kernel(const float* __restrict__ in, float* __restrict__ out, int64_t rows,
                                     int64_t cols) {
  __shared__ float tile[32][33];
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * 32, r0 = static_cast<int64_t>(blockIdx.y) * 32;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = r0 + i, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[i][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t c = c0 + i, r = r0 + threadIdx.x;
    if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][i];
  }
}

// The kernel instantiation that runs a plan, as a type: fn(SwapAbKernel<BN, WGS, kThree>{}).
template <int BN, int WGS, bool kThree>
struct SwapAbKernel {
  static constexpr int kBn = BN, kWgs = WGS;
  static constexpr bool kThreePerSm = kThree;
};

template <class Fn>
decltype(auto) with_swap_ab_kernel(const SwapAbPlan& plan, Fn&& fn) {
  const bool two = plan.wgs == 2;
  switch (plan.bn) {
    case 16: return two ? fn(SwapAbKernel<16, 2, false>{}) : fn(SwapAbKernel<16, 1, false>{});
    case 64:
      if (plan.three_per_sm) return fn(SwapAbKernel<64, 1, true>{});
      return two ? fn(SwapAbKernel<64, 2, false>{}) : fn(SwapAbKernel<64, 1, false>{});
    case 128: return two ? fn(SwapAbKernel<128, 2, false>{}) : fn(SwapAbKernel<128, 1, false>{});
    default: MLA_FAIL("{}: no swap-AB kernel for a token tile of {}", kOp, plan.bn);
  }
}

}  // namespace

void run_swap_ab(const Fp8GemmPointers& ptrs, int64_t t, int64_t n, int64_t k, const SwapAbPlan& plan,
                 cudaStream_t stream) {
  const int64_t tiles = swap_ab_tiles(plan);
  MLA_CHECK(plan.n_tiles * kWgRows * plan.wgs >= n && plan.t_tiles == (t + plan.bn - 1) / plan.bn &&
                (plan.splits == 1 ? plan.ctas <= tiles : plan.ctas == tiles) && plan.splits <= kMaxSplits &&
                (!plan.three_per_sm || (plan.bn == 64 && plan.wgs == 1 && plan.splits == 1)),
            "{}: a swap-AB plan (bn {}, wgs {}, {} x {} tiles, {} splits, {} CTAs, three an SM: {}) that does not "
            "cover [{}, {}] or has no kernel",
            kOp, plan.bn, plan.wgs, plan.n_tiles, plan.t_tiles, plan.splits, plan.ctas, plan.three_per_sm, t, n);
  SwapAbParams p{};
  const int w_box_rows = static_cast<int>(std::min<int64_t>(kWgRows * plan.wgs, n));
  const int x_box_rows = static_cast<int>(std::min<int64_t>(plan.bn, t));
  p.w_map = tma::fp8_rows_map(kOp, ptrs.w_q, n, k, w_box_rows);
  p.x_map = tma::fp8_rows_map(kOp, ptrs.x_q, t, k, x_box_rows);
  p.x_scales = ptrs.x_scales;
  p.w_scales = ptrs.w_scales;
  p.out = ptrs.out;
  p.out_f32 = ptrs.out_f32;
  p.t = static_cast<int32_t>(t);
  p.n = static_cast<int32_t>(n);
  p.g = static_cast<int32_t>((k + kGroup - 1) / kGroup);
  p.t_tiles = plan.t_tiles;
  p.tiles = static_cast<int32_t>(tiles);
  p.stage_bytes = static_cast<uint32_t>(kGroup * (w_box_rows + x_box_rows));
  // A partial last token tile of several copies its rows below T alone (SwapAbParams::x_tail_map).
  const int64_t tail_rows = t - static_cast<int64_t>(plan.t_tiles - 1) * plan.bn;
  if (plan.t_tiles > 1 && tail_rows < plan.bn) {
    p.x_tail_map = tma::fp8_rows_map(kOp, ptrs.x_q, t, k, static_cast<uint32_t>(tail_rows));
    p.tail_stage_bytes = static_cast<uint32_t>(kGroup * (w_box_rows + tail_rows));
  }
  with_swap_ab_kernel(plan, [&](auto kernel) {
    using K = decltype(kernel);
    launch_swap_ab<K::kBn, K::kWgs, K::kThreePerSm>(p, plan, stream);
  });
}

int swap_ab_max_active_clusters(const SwapAbPlan& plan) {
  return with_swap_ab_kernel(plan, [&](auto kernel) {
    using K = decltype(kernel);
    return swap_ab_max_active_clusters<K::kBn, K::kWgs, K::kThreePerSm>(plan.splits);
  });
}

const SwapAbGpu& swap_ab_gpu(bool beside) {
  static std::array<std::once_flag, gpu::kMaxDevices> once;
  static std::array<std::array<SwapAbGpu, 2>, gpu::kMaxDevices> gpus;  // [device][alone, beside]
  const int device = gpu::current_device();
  MLA_CHECK(device >= 0 && device < gpu::kMaxDevices, "{}: device {} past {}", kOp, device, gpu::kMaxDevices);
  const auto d = static_cast<size_t>(device);
  std::call_once(once[d], [&] {
    SwapAbGpu& g = gpus[d][0];
    g.sms = gpu::device_sm_count();
    g.hbm_gbps = gpu::device_hbm_gbps();
    for (int bn : {16, 64, 128}) {
      for (int wgs : {1, 2}) {
        for (int splits = 1; splits <= kMaxSplits; ++splits) {
          SwapAbPlan plan;
          plan.bn = bn;
          plan.wgs = wgs;
          plan.splits = splits;
          g.set_held(bn, wgs, splits, swap_ab_max_active_clusters(plan));
        }
      }
    }
    gpus[d][1] = g.share(kBesideHeldPercent);
  });
  return gpus[d][beside ? 1 : 0];
}

void transpose_f32(const float* in, float* out, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const dim3 grid(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>((rows + 31) / 32));
  transpose_f32_kernel<<<grid, dim3(32, 8), 0, stream>>>(in, out, rows, cols);
  MLA_CUDA_CHECK_LAUNCH();
}

}  // namespace mlaserve::ops::sm90_fp8
