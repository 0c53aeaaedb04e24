// moe_experts_cuda (ops/moe_experts.h), moe_grouped_gemm_cuda (the same, one grouped GEMM with
// the kernel forced) and moe_experts_sm80_decode (moe_grouped_gemm_sm80.h): argument checks and
// the grouped GEMM launches (or, for a few rows, the grouped GEMV of moe_experts_gemv.h). The
// design note and the kernel are in moe_grouped_gemm_sm80.cuh, the tile choice in
// moe_grouped_gemm_sm80_heuristics.h; the Hopper kernel is moe_grouped_gemm_sm90.cuh, CUTLASS's
// grouped GEMM moe_grouped_gemm_cutlass.h.
#include "ops/cuda/moe_grouped_gemm_sm80.h"

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/cuda/moe_grouped_gemm_cutlass.h"
#include "ops/cuda/moe_grouped_gemm_sm80.cuh"
#include "ops/cuda/moe_grouped_gemm_sm80_heuristics.h"
#include "ops/cuda/moe_grouped_gemm_sm90.h"
#include "ops/moe_experts.h"
#include "ops/silu_mul.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "moe_experts_cuda";
constexpr std::string_view kGemm = "moe_grouped_gemm_cuda";

// Operands are read with 16-byte copies; the expert offsets one i32 at a time (a rank's slice of
// them starts anywhere, ffn_block.cc), so they need only 4 bytes.
void check_tensor(std::string_view op, const Tensor& t, std::string_view name, DType dtype, const Shape& shape,
                  size_t align = 16) {
  gpu::check_operand(op, name, t, dtype, shape, align);
}

// The experts the kernels hold (the M-tile prefix in shared memory beside the largest pipeline)
// and their 32-bit offsets: P rows of width max(K, N), weights of b_rows x K an expert.
void check_sizes(std::string_view op, int64_t experts, int64_t rows, int64_t k, int64_t n_out, int64_t b_rows) {
  static_assert(sm80::MoeTileDecode2PerSm::kPipelineBytes <= sm90::moe::max_smem_bytes(0), "sm90's is the largest");
  const int64_t smem_experts = (227 * 1024 - sm90::moe::max_smem_bytes(0)) / 4;  // the largest pipeline
  MLA_CHECK(experts >= 1 && experts <= smem_experts, "{}: {} experts (the kernel holds 1 .. {})", op, experts,
            smem_experts);
  MLA_CHECK(rows * std::max(k, n_out) < (int64_t{1} << 31) && b_rows * k < (int64_t{1} << 31),
            "{}: P = {} rows, K = {}, N = {}, {} weight rows exceed the kernel's 32-bit offsets", op, rows, k, n_out,
            b_rows);
}

// CTAs of one grouped GEMM: (upper bound of the M tiles) x (N tiles), see the .cuh note.
template <class Tile>
int64_t grid_ctas(const sm80::MoeGemmParams& p) {
  const int64_t max_m_tiles = p.num_rows / Tile::kBM + std::min(p.num_experts, p.num_rows);
  return max_m_tiles * p.n_tiles;
}

template <class Tile, bool kSwiGlu>
void launch(const sm80::MoeGemmParams& p, cudaStream_t stream) {
  const int smem = Tile::kPipelineBytes + (p.num_experts + 1) * static_cast<int>(sizeof(int32_t));
  const auto kernel = sm80::moe_grouped_gemm_sm80_kernel<Tile, kSwiGlu>;
  MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int64_t grid = grid_ctas<Tile>(p);
  MLA_CHECK(grid < (int64_t{1} << 31), "{}: {} CTAs exceed the grid", kOp, grid);
  gpu::launch_programmatic(kernel, dim3(static_cast<unsigned>(grid)), dim3(Tile::kThreads), static_cast<size_t>(smem),
                           stream, p);
}

// One GEMM through Tile (n_tiles is the tile's).
template <class Tile>
void run_tile(sm80::MoeGemmParams p, bool swiglu, cudaStream_t stream) {
  if (swiglu) {
    p.n_tiles = p.n_out / (Tile::kBN / 2);
    launch<Tile, true>(p, stream);
  } else {
    p.n_tiles = p.n_out / Tile::kBN;
    launch<Tile, false>(p, stream);
  }
}

// One GEMM through the decode tiles with a concrete ring (every ring's tile is 16 x 64).
template <bool kSwiGlu>
void launch_decode(const sm80::MoeGemmParams& p, sm80::MoeDecodeRing ring, cudaStream_t stream) {
  using sm80::MoeDecodeRing;
  switch (ring) {
    case MoeDecodeRing::k2PerSm: return launch<sm80::MoeTileDecode2PerSm, kSwiGlu>(p, stream);
    case MoeDecodeRing::k3PerSm: return launch<sm80::MoeTileDecode3PerSm, kSwiGlu>(p, stream);
    case MoeDecodeRing::k4PerSm: return launch<sm80::MoeTileDecode4PerSm, kSwiGlu>(p, stream);
    case MoeDecodeRing::k5PerSm: return launch<sm80::MoeTileDecode5PerSm, kSwiGlu>(p, stream);
    case MoeDecodeRing::k7PerSm: return launch<sm80::MoeTileDecode7PerSm, kSwiGlu>(p, stream);
    case MoeDecodeRing::kStream: return launch<sm80::MoeTileDecode, kSwiGlu>(p, stream);
    case MoeDecodeRing::kAuto: break;
  }
  MLA_CHECK(false, "{}: no decode ring {}", kOp, static_cast<int>(ring));
}

// One GEMM through the decode tiles; kAuto picks the ring from the GEMM's own grid.
void run_decode(sm80::MoeGemmParams p, bool swiglu, sm80::MoeDecodeRing ring, cudaStream_t stream) {
  using Tile = sm80::MoeTileDecode;
  p.n_tiles = swiglu ? p.n_out / (Tile::kBN / 2) : p.n_out / Tile::kBN;
  if (ring == sm80::MoeDecodeRing::kAuto) ring = sm80::choose_decode_ring(grid_ctas<Tile>(p), gpu::device_sm_count());
  if (swiglu) {
    launch_decode<true>(p, ring, stream);
  } else {
    launch_decode<false>(p, ring, stream);
  }
}

// One GEMM through our kernels with the tiles `config`.
void run_config(const sm80::MoeGemmParams& p, bool swiglu, sm80::MoeTileConfig config, cudaStream_t stream) {
  switch (config) {
    case sm80::MoeTileConfig::kDecode: return run_decode(p, swiglu, sm80::MoeDecodeRing::kAuto, stream);
    case sm80::MoeTileConfig::kMid: return run_tile<sm80::MoeTileMid>(p, swiglu, stream);
    case sm80::MoeTileConfig::kPrefillWgmma:
      return sm90::moe::moe_grouped_gemm_sm90(p, swiglu, sm90::moe::Bf16Tile::k128x256, stream);
  }
}

// One GEMM through CUTLASS's grouped kernel (moe_grouped_gemm_cutlass.h), which has the plain
// product only. SwiGLU: that product [P, 2·Im] into a workspace from the stream-ordered caching
// allocator (gate columns, then up: the weight's row order, which silu_mul's fused layout reads),
// then silu_mul over the experts' rows [offsets[0], offsets[E]) into out.
void run_cutlass(const sm80::MoeGemmParams& p, bool swiglu, const Tensor& expert_offsets, Tensor& out,
                 cudaStream_t stream) {
  if (!swiglu) return sm90::moe_cutlass::moe_grouped_gemm_cutlass(p, {}, stream);
  Tensor gate_up = Tensor::empty({p.num_rows, p.b_rows}, DType::kBF16, Device::kCUDA);  // [P, 2·Im]
  sm80::MoeGemmParams plain = p;
  plain.out = static_cast<__nv_bfloat16*>(gate_up.raw());
  plain.n_out = p.b_rows;
  sm90::moe_cutlass::moe_grouped_gemm_cutlass(plain, {}, stream);
  silu_mul_rows_cuda(gate_up, expert_offsets, out, stream);
}

// kAuto's kernel for one GEMM whose tiles are `config` (choose_moe_tiles): at prefill sizes
// CUTLASS's for a large plain product (use_cutlass_grouped_bf16) and the 192 x 128 tile for
// SwiGLU at 129 .. 192 rows an expert (use_wgmma_m192), else our kernel with those tiles.
void run_auto(const sm80::MoeGemmParams& p, bool swiglu, sm80::MoeTileConfig config, const Tensor& expert_offsets,
              Tensor& out, cudaStream_t stream) {
  if (config == sm80::MoeTileConfig::kPrefillWgmma) {
    if (sm80::use_cutlass_grouped_bf16(swiglu, p.num_rows, p.num_experts, p.n_out)) {
      return run_cutlass(p, swiglu, expert_offsets, out, stream);
    }
    if (sm80::use_wgmma_m192(swiglu, p.num_rows, p.num_experts)) {
      return sm90::moe::moe_grouped_gemm_sm90(p, swiglu, sm90::moe::Bf16Tile::k192x128, stream);
    }
  }
  run_config(p, swiglu, config, stream);
}

// The argument checks and both GEMMs' parameters (n_tiles is the tile's).
struct GemmPair {
  sm80::MoeGemmParams gate_up, down;
};

GemmPair make_gemms(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& w, Tensor& hidden,
                    Tensor& out) {
  MLA_CHECK(w.gate_up.ndim() == 3 && w.down.ndim() == 3 && x.ndim() == 2,
            "{}: gate_up {} and down {} must be stacked [E, rows, cols], x {} [P, H]", kOp,
            shape_str(w.gate_up.shape()), shape_str(w.down.shape()), shape_str(x.shape()));
  const int64_t e_count = w.num_experts(), im = w.intermediate(), h = w.down.dim(1), rows = x.dim(0);
  check_tensor(kOp, w.gate_up, "gate_up", DType::kBF16, {e_count, 2 * im, h});
  check_tensor(kOp, w.down, "down", DType::kBF16, {e_count, h, im});
  check_tensor(kOp, x, "x", DType::kBF16, {rows, h});
  check_tensor(kOp, out, "out", DType::kBF16, {rows, h});
  check_tensor(kOp, hidden, "hidden", DType::kBF16, {rows, im});
  check_tensor(kOp, expert_offsets, "expert_offsets", DType::kI32, {e_count + 1}, 4);
  MLA_CHECK(h % 128 == 0 && im % 128 == 0, "{}: H = {} and Im = {} must be multiples of 128", kOp, h, im);
  check_sizes(kOp, e_count, rows, h, im, 2 * im);

  sm80::MoeGemmParams gate_up{};
  gate_up.a = static_cast<const __nv_bfloat16*>(x.raw());
  gate_up.b = static_cast<const __nv_bfloat16*>(w.gate_up.raw());
  gate_up.out = static_cast<__nv_bfloat16*>(hidden.raw());
  gate_up.expert_offsets = expert_offsets.data<int32_t>();
  gate_up.num_rows = static_cast<int32_t>(rows);
  gate_up.num_experts = static_cast<int32_t>(e_count);
  gate_up.k = static_cast<int32_t>(h);
  gate_up.b_rows = static_cast<int32_t>(2 * im);
  gate_up.n_out = static_cast<int32_t>(im);

  sm80::MoeGemmParams down = gate_up;
  down.a = static_cast<const __nv_bfloat16*>(hidden.raw());
  down.b = static_cast<const __nv_bfloat16*>(w.down.raw());
  down.out = static_cast<__nv_bfloat16*>(out.raw());
  down.k = static_cast<int32_t>(im);
  down.b_rows = static_cast<int32_t>(h);
  down.n_out = static_cast<int32_t>(h);

  return {gate_up, down};
}

}  // namespace

void moe_experts_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& w, Tensor& hidden,
                      Tensor& out, cudaStream_t stream, MoeExpertsPath path) {
  if (runs_moe_gemv(path, x.ndim() == 2 ? x.dim(0) : 0, w)) {
    MLA_CHECK(!w.is_fp8(), "{}: e4m3 weights go through moe_experts_fp8_cuda", kOp);
    return moe_experts_gemv_cuda(x, expert_offsets, w, ActQuantParams{}, hidden, out, stream);
  }
  const int64_t rows = x.dim(0), e_count = w.num_experts(), h = w.down.dim(1);
  const GemmPair g = make_gemms(x, expert_offsets, w, hidden, out);
  if (rows == 0) return;
  const sm80::MoeTileConfig config = sm80::choose_moe_tiles(rows, e_count, h);
  run_auto(g.gate_up, /*swiglu=*/true, config, expert_offsets, hidden, stream);
  run_auto(g.down, /*swiglu=*/false, config, expert_offsets, out, stream);
}

void moe_experts_sm80_decode(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& w, Tensor& hidden,
                             Tensor& out, sm80::MoeDecodeRing ring, cudaStream_t stream) {
  const GemmPair g = make_gemms(x, expert_offsets, w, hidden, out);
  if (x.dim(0) == 0) return;
  run_decode(g.gate_up, /*swiglu=*/true, ring, stream);
  run_decode(g.down, /*swiglu=*/false, ring, stream);
}

void moe_grouped_gemm_cuda(const Tensor& a, const Tensor& expert_offsets, const Tensor& b, bool swiglu, Tensor& out,
                           cudaStream_t stream, MoeBf16Kernel kernel) {
  MLA_CHECK(a.ndim() == 2 && b.ndim() == 3, "{}: a {} must be [P, K], b {} [E, rows, K]", kGemm, shape_str(a.shape()),
            shape_str(b.shape()));
  const int64_t rows = a.dim(0), k = a.dim(1), e_count = b.dim(0), b_rows = b.dim(1);
  const int64_t n_out = swiglu ? b_rows / 2 : b_rows;
  MLA_CHECK(k % 128 == 0 && b_rows % 128 == 0 && n_out % 128 == 0,
            "{}: K = {} and the weight rows {} (and Im with SwiGLU) must be multiples of 128", kGemm, k, b_rows);
  check_tensor(kGemm, a, "a", DType::kBF16, {rows, k});
  check_tensor(kGemm, b, "b", DType::kBF16, {e_count, b_rows, k});
  check_tensor(kGemm, out, "out", DType::kBF16, {rows, n_out});
  check_tensor(kGemm, expert_offsets, "expert_offsets", DType::kI32, {e_count + 1}, 4);
  check_sizes(kGemm, e_count, rows, k, b_rows, b_rows);
  if (rows == 0) return;
  sm80::MoeGemmParams p{};
  p.a = static_cast<const __nv_bfloat16*>(a.raw());
  p.b = static_cast<const __nv_bfloat16*>(b.raw());
  p.out = static_cast<__nv_bfloat16*>(out.raw());
  p.expert_offsets = expert_offsets.data<int32_t>();
  p.num_rows = static_cast<int32_t>(rows);
  p.num_experts = static_cast<int32_t>(e_count);
  p.k = static_cast<int32_t>(k);
  p.b_rows = static_cast<int32_t>(b_rows);
  p.n_out = static_cast<int32_t>(n_out);
  // moe_experts_cuda's choice with the weight rows in place of H (the wgmma tile's constraint on
  // this GEMM; the same at every DeepSeek shape).
  const sm80::MoeTileConfig chosen = sm80::choose_moe_tiles(rows, e_count, b_rows);
  const sm80::MoeTileConfig mma_sync =
      chosen == sm80::MoeTileConfig::kDecode ? sm80::MoeTileConfig::kDecode : sm80::MoeTileConfig::kMid;
  switch (kernel) {
    case MoeBf16Kernel::kAuto: return run_auto(p, swiglu, chosen, expert_offsets, out, stream);
    case MoeBf16Kernel::kMmaSync: return run_config(p, swiglu, mma_sync, stream);
    case MoeBf16Kernel::kWgmma: return run_config(p, swiglu, sm80::MoeTileConfig::kPrefillWgmma, stream);
    case MoeBf16Kernel::kWgmmaM192:
      return sm90::moe::moe_grouped_gemm_sm90(p, swiglu, sm90::moe::Bf16Tile::k192x128, stream);
    case MoeBf16Kernel::kCutlassGrouped: return run_cutlass(p, swiglu, expert_offsets, out, stream);
  }
  MLA_CHECK(false, "{}: no kernel {}", kGemm, static_cast<int>(kernel));
}

void moe_experts_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& weights, Tensor& out,
                      cudaStream_t stream) {
  MLA_CHECK(x.ndim() == 2 && weights.down.ndim() == 3, "{}: x {} must be [P, H], down {} [E, H, Im]", kOp,
            shape_str(x.shape()), shape_str(weights.down.shape()));
  Tensor hidden = Tensor::empty({x.dim(0), weights.intermediate()}, DType::kBF16, Device::kCUDA);  // [P, Im]
  moe_experts_cuda(x, expert_offsets, weights, hidden, out, stream);
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));  // before hidden is freed
}

}  // namespace mlaserve::ops
