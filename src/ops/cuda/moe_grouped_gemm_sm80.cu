// moe_experts_cuda (ops/moe_experts.h) and moe_experts_sm80_decode (moe_grouped_gemm_sm80.h):
// argument checks and the two grouped GEMM launches (or, for a few rows, the grouped GEMV of
// moe_experts_gemv.h). The
// design note and the kernel are in moe_grouped_gemm_sm80.cuh, the tile choice in
// moe_grouped_gemm_sm80_heuristics.h.
#include "ops/cuda/moe_grouped_gemm_sm80.h"

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/cuda/moe_grouped_gemm_sm80.cuh"
#include "ops/cuda/moe_grouped_gemm_sm80_heuristics.h"
#include "ops/cuda/moe_grouped_gemm_sm90.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kOp = "moe_experts_cuda";

// Operands are read with 16-byte copies; the expert offsets one i32 at a time (a rank's slice of
// them starts anywhere, ffn_block.cc), so they need only 4 bytes.
void check_tensor(const Tensor& t, std::string_view name, DType dtype, const Shape& shape, size_t align = 16) {
  MLA_CHECK(t.device() == Device::kCUDA, "{}: {} must be on the GPU", kOp, name);
  MLA_CHECK(t.dtype() == dtype, "{}: {} must be {}, got {}", kOp, name, dtype_name(dtype), dtype_name(t.dtype()));
  MLA_CHECK(t.shape() == shape, "{}: {} must be {}, got {}", kOp, name, shape_str(shape), shape_str(t.shape()));
  MLA_CHECK(reinterpret_cast<uintptr_t>(t.raw()) % align == 0, "{}: {} must be {}-byte aligned", kOp, name, align);
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

template <class Tile>
void run_tiles(sm80::MoeGemmParams gate_up, sm80::MoeGemmParams down, cudaStream_t stream) {
  gate_up.n_tiles = gate_up.n_out / (Tile::kBN / 2);
  down.n_tiles = down.n_out / Tile::kBN;
  launch<Tile, true>(gate_up, stream);
  launch<Tile, false>(down, stream);
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

// Both GEMMs through the decode tiles; kAuto picks each GEMM's ring from its own grid.
void run_decode(sm80::MoeGemmParams gate_up, sm80::MoeGemmParams down, sm80::MoeDecodeRing ring,
                cudaStream_t stream) {
  using Tile = sm80::MoeTileDecode;
  gate_up.n_tiles = gate_up.n_out / (Tile::kBN / 2);
  down.n_tiles = down.n_out / Tile::kBN;
  const int sms = ring == sm80::MoeDecodeRing::kAuto ? gpu::device_sm_count() : 0;
  const auto pick = [&](const sm80::MoeGemmParams& p) {
    return ring == sm80::MoeDecodeRing::kAuto ? sm80::choose_decode_ring(grid_ctas<Tile>(p), sms) : ring;
  };
  launch_decode<true>(gate_up, pick(gate_up), stream);
  launch_decode<false>(down, pick(down), stream);
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
  check_tensor(w.gate_up, "gate_up", DType::kBF16, {e_count, 2 * im, h});
  check_tensor(w.down, "down", DType::kBF16, {e_count, h, im});
  check_tensor(x, "x", DType::kBF16, {rows, h});
  check_tensor(out, "out", DType::kBF16, {rows, h});
  check_tensor(hidden, "hidden", DType::kBF16, {rows, im});
  check_tensor(expert_offsets, "expert_offsets", DType::kI32, {e_count + 1}, 4);
  MLA_CHECK(h % 128 == 0 && im % 128 == 0, "{}: H = {} and Im = {} must be multiples of 128", kOp, h, im);
  static_assert(sm80::MoeTileDecode2PerSm::kPipelineBytes <= sm90::moe::smem_bytes(0), "sm90's is the largest");
  const int64_t smem_experts = (227 * 1024 - sm90::moe::smem_bytes(0)) / 4;  // the largest pipeline
  MLA_CHECK(e_count >= 1 && e_count <= smem_experts, "{}: {} experts (the kernel holds 1 .. {})", kOp, e_count,
            smem_experts);
  MLA_CHECK(rows * std::max(h, im) < (int64_t{1} << 31) && 2 * im * h < (int64_t{1} << 31),
            "{}: P = {} rows of H = {}, Im = {} exceed the kernel's 32-bit row offsets", kOp, rows, h, im);

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
  const sm80::MoeGemmParams &gate_up = g.gate_up, &down = g.down;
  switch (sm80::choose_moe_tiles(rows, e_count, h)) {
    case sm80::MoeTileConfig::kDecode: return run_decode(gate_up, down, sm80::MoeDecodeRing::kAuto, stream);
    case sm80::MoeTileConfig::kMid: return run_tiles<sm80::MoeTileMid>(gate_up, down, stream);
    case sm80::MoeTileConfig::kPrefillWgmma: return sm90::moe::moe_gemms_sm90(gate_up, down, stream);
  }
}

void moe_experts_sm80_decode(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& w, Tensor& hidden,
                             Tensor& out, sm80::MoeDecodeRing ring, cudaStream_t stream) {
  const GemmPair g = make_gemms(x, expert_offsets, w, hidden, out);
  if (x.dim(0) == 0) return;
  run_decode(g.gate_up, g.down, ring, stream);
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
