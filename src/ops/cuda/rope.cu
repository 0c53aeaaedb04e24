// apply_rope_interleaved on the GPU (contract: ops/rope.h), in place on bf16 activations.
//
// Design: one thread per rotated pair (2i, 2i+1) of one (token, head) row: it reads the two bf16
// channels and cos θ_i, sin θ_i from the fp32 table row of the token's position, rotates in
// fp32 and writes both channels back rounded once to bf16. Consecutive threads take consecutive
// pairs of the same row, then the next head, then the next token, so a warp reads 128
// contiguous bytes of x and 2 x 128 of the table. Channels outside [channel_offset,
// channel_offset + dr) are never touched. DeepSeek's q rope (T x 128 heads x 32 pairs) is one
// launch with no per-row setup; it is tiny next to the GEMMs around it.
//
// Positions are not validated on the device (the model builds the table to cover its largest
// position on the host); a position outside [0, P) reads no table row and writes zeros into
// the rotated channels.
//
// Launched with programmatic dependent launch (pdl.cuh). Before its wait a thread reads its first
// pair's position and cos/sin (the step's metadata, copied to the device before its first kernel,
// and the table: no kernel of the step writes them); after it, x (the query projection's output)
// is its one trip to memory before the rotation, where the position and then its table row were
// two dependent trips more on the decode step's query chain. Then it lets the next kernel launch.
#include <cuda_bf16.h>

#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/rope_pair.cuh"
#include "ops/cuda/vec.cuh"
#include "ops/rope.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "apply_rope_interleaved_cuda";
constexpr int kThreads = 256;

struct RopeLaunchParams {
  __nv_bfloat16* x;        // [T, heads, row] rotated in place
  const void* positions;   // [T] i32 or i64
  const float* cos_sin;    // [P, dr]: cos of the dr/2 angles, then their sin
  int64_t tokens;          // T
  int64_t heads;           // 1 for [T, row]
  int64_t row;             // channels per (token, head)
  int64_t channel_offset;  // first rotated channel
  int64_t pairs;           // dr / 2
  int64_t num_positions;   // P
  bool positions_i64;      // positions are i64 (else i32)
};

// Pair `pair` of token `token`'s angle (rope_pair.cuh).
__device__ __forceinline__ gpu::RopeAngle load_pair_angle(const RopeLaunchParams& p, uint32_t token, uint32_t pair) {
  const int64_t pos = gpu::load_index(p.positions, p.positions_i64, token);
  return gpu::rope_angle(p.cos_sin, p.num_positions, p.pairs, pos, pair);
}

// grid-stride over T * heads * pairs (< 2^31: 32-bit index arithmetic); launched with
// launch_programmatic.
__global__ void __launch_bounds__(kThreads) rope_interleaved_kernel(RopeLaunchParams p) {
  const auto total = static_cast<uint32_t>(p.tokens * p.heads * p.pairs);
  const auto pairs = static_cast<uint32_t>(p.pairs), heads = static_cast<uint32_t>(p.heads);
  const uint32_t first = blockIdx.x * blockDim.x + threadIdx.x;
  gpu::RopeAngle angle;  // of the thread's first pair, read before the wait
  if (first < total) angle = load_pair_angle(p, first / pairs / heads, first % pairs);
  gpu::grid_dependency_wait();
  gpu::launch_dependents();
  for (uint32_t i = first; i < total; i += gridDim.x * blockDim.x) {
    const uint32_t pair = i % pairs, head_row = i / pairs, token = head_row / heads;
    if (i != first) angle = load_pair_angle(p, token, pair);
    __nv_bfloat16* v = p.x + int64_t{head_row} * p.row + p.channel_offset + 2 * pair;
    float x0 = 0.0f, x1 = 0.0f;
    if (angle.in_table) {  // outside the table x is not read
      x0 = __bfloat162float(v[0]);
      x1 = __bfloat162float(v[1]);
    }
    const __nv_bfloat162 r = gpu::rope_rotate(x0, x1, angle);
    v[0] = r.x;
    v[1] = r.y;
  }
}

}  // namespace

void apply_rope_interleaved_cuda(Tensor& x, const Tensor& positions, const Tensor& cos_sin, int64_t channel_offset,
                                 cudaStream_t stream) {
  gpu::check_dtype(kOp, "x", x, DType::kBF16);
  gpu::check_index(kOp, "positions", positions);
  gpu::check_dtype(kOp, "cos_sin", cos_sin, DType::kF32);
  MLA_CHECK(x.ndim() == 2 || x.ndim() == 3, "{}: x {} must be [T, heads, row] or [T, row]", kOp, shape_str(x.shape()));
  MLA_CHECK(cos_sin.ndim() == 2 && cos_sin.dim(1) % 2 == 0, "{}: cos_sin {} must be [P, dr], dr even", kOp,
            shape_str(cos_sin.shape()));
  const int64_t t = x.dim(0), heads = x.ndim() == 3 ? x.dim(1) : 1, row = x.dim(-1), dr = cos_sin.dim(1);
  MLA_CHECK(channel_offset >= 0 && channel_offset + dr <= row, "{}: channels [{}, {}) do not fit rows of {} in x {}",
            kOp, channel_offset, channel_offset + dr, row, shape_str(x.shape()));
  gpu::check_shape(kOp, "positions", positions, {t});
  const RopeLaunchParams p{gpu::ptr<__nv_bfloat16>(x), positions.raw(), gpu::ptr<const float>(cos_sin), t, heads, row,
                     channel_offset, dr / 2, cos_sin.dim(0), positions.dtype() == DType::kI64};
  const int64_t total = t * heads * p.pairs;
  if (total == 0) return;
  MLA_CHECK(total < (int64_t{1} << 31), "{}: {} pairs to rotate; the kernel indexes them with 32 bits", kOp, total);
  gpu::launch_programmatic(rope_interleaved_kernel, gpu::grid_blocks(total, kThreads), kThreads, 0, stream, p);
}

}  // namespace mlaserve::ops
