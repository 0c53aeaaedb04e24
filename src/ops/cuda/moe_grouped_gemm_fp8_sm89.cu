// moe_grouped_gemm_fp8_cuda and moe_experts_fp8_cuda (ops/moe_experts.h): argument checks, the
// activation quantisation and the grouped GEMM launches (or, for a few rows, the grouped GEMV of
// moe_experts_gemv.h, which quantises inside). Two kernels: the mma.sync one (design
// note and kernel in moe_grouped_gemm_fp8_sm89.cuh, tile choice in
// moe_grouped_gemm_fp8_sm89_heuristics.h) and the Hopper wgmma one for prefill-sized groups
// (moe_grouped_gemm_fp8_sm90.cuh); use_wgmma (moe_grouped_gemm_fp8_sm90.h) picks between them.
#include "ops/cuda/moe_grouped_gemm_fp8_sm89.cuh"

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/gpu_checks.h"
#include "ops/cuda/moe_experts_gemv.h"
#include "ops/cuda/moe_grouped_gemm_fp8_cutlass.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm89_heuristics.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm90.h"
#include "ops/fp8_block.h"
#include "ops/moe_experts.h"

namespace mlaserve::ops {
namespace {

constexpr std::string_view kGemm = "moe_grouped_gemm_fp8_cuda";
constexpr std::string_view kOp = "moe_experts_fp8_cuda";

// Operands are read with 16-byte copies; the expert offsets one i32 at a time (a rank's slice of
// them starts anywhere, ffn_block.cc), so they need only 4 bytes.
void check_tensor(std::string_view op, const Tensor& t, std::string_view name, DType dtype, const Shape& shape,
                  size_t align = 16) {
  gpu::check_operand(op, name, t, dtype, shape, align);
}

// An expert's column tiles (SwiGLU: BN / 2 channels of gate and up rows a tile) and the runs a CTA
// takes them in (column_run).
template <class Tile, bool kSwiGlu>
int column_tiles(const sm89::MoeFp8GemmParams& p) {
  return kSwiGlu ? p.n_out / (Tile::kBN / 2) : p.n_out / Tile::kBN;
}
template <class Tile, bool kSwiGlu>
int column_run(const sm89::MoeFp8GemmParams& p) {
  return sm89::column_run(p.k / Tile::kBK, column_tiles<Tile, kSwiGlu>(p));
}

// One grouped GEMM: grid = (upper bound of the M tiles) x (runs of N tiles), as the BF16 kernel's
// with runs of one tile.
template <class Tile, bool kSwiGlu>
void launch(sm89::MoeFp8GemmParams p, cudaStream_t stream) {
  p.n_run = column_run<Tile, kSwiGlu>(p);
  p.n_tiles = column_tiles<Tile, kSwiGlu>(p) / p.n_run;
  const int smem = Tile::kPipelineBytes + (p.num_experts + 1) * static_cast<int>(sizeof(int32_t));
  const auto kernel = sm89::moe_grouped_gemm_fp8_sm89_kernel<Tile, kSwiGlu>;
  MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int64_t max_m_tiles = p.num_rows / Tile::kBM + std::min(p.num_experts, p.num_rows);
  const int64_t grid = max_m_tiles * p.n_tiles;
  MLA_CHECK(grid < (int64_t{1} << 31), "{}: {} CTAs exceed the grid", kGemm, grid);
  kernel<<<static_cast<unsigned>(grid), Tile::kThreads, smem, stream>>>(p);
  MLA_CUDA_CHECK_LAUNCH();
}

// The grid's bound for the experts that can have rows at one M tile each (use_four_ctas_decode_tile).
template <class Tile, bool kSwiGlu>
int64_t decode_ctas(const sm89::MoeFp8GemmParams& p) {
  const int64_t runs = column_tiles<Tile, kSwiGlu>(p) / column_run<Tile, kSwiGlu>(p);
  return std::min(p.num_rows, p.num_experts) * runs;
}

template <bool kSwiGlu>
void run(const sm89::MoeFp8GemmParams& p, cudaStream_t stream) {
  switch (sm89::choose_moe_fp8_tiles(p.num_rows, p.num_experts)) {
    case sm89::MoeFp8TileConfig::kDecode:
      if (sm89::use_wide_decode_tile(p.b_rows, p.k)) return launch<sm89::MoeFp8TileDecodeWide, kSwiGlu>(p, stream);
      if (sm89::use_four_ctas_decode_tile(decode_ctas<sm89::MoeFp8TileDecode, kSwiGlu>(p), gpu::device_sm_count())) {
        return launch<sm89::MoeFp8TileDecodeFour, kSwiGlu>(p, stream);
      }
      return launch<sm89::MoeFp8TileDecode, kSwiGlu>(p, stream);
    case sm89::MoeFp8TileConfig::kMid: return launch<sm89::MoeFp8TileMid, kSwiGlu>(p, stream);
    case sm89::MoeFp8TileConfig::kPrefill: return launch<sm89::MoeFp8TilePrefill, kSwiGlu>(p, stream);
  }
}

// The operands both entries of moe_experts_fp8_cuda share: FP8 stacked weights that match the
// rows' width H, `hidden` [P, Im] bf16. `rows` is x or x_q ([P, H]) of dtype `dtype`.
void check_experts(const Tensor& rows, std::string_view name, DType dtype, const ExpertWeights& w,
                   const Tensor& hidden) {
  MLA_CHECK(w.is_fp8() && w.gate_up.ndim() == 3 && w.down.ndim() == 3 && rows.ndim() == 2,
            "{}: gate_up {} and down {} must be stacked F8_E4M3 [E, rows, cols], {} {} [P, H]", kOp,
            shape_str(w.gate_up.shape()), shape_str(w.down.shape()), name, shape_str(rows.shape()));
  const int64_t p = rows.dim(0), h = rows.dim(1), im = w.intermediate();
  check_tensor(kOp, rows, name, dtype, {p, h});
  check_tensor(kOp, hidden, "hidden", DType::kBF16, {p, im});
  MLA_CHECK(w.down.dim(1) == h && w.gate_up.dim(1) == 2 * im && w.gate_up.dim(2) == h,
            "{}: gate_up {} and down {} do not match {} {}", kOp, shape_str(w.gate_up.shape()),
            shape_str(w.down.shape()), name, shape_str(rows.shape()));
}

}  // namespace

void moe_grouped_gemm_fp8_cuda(const Tensor& a_q, const Tensor& a_scales, const Tensor& expert_offsets,
                               const Tensor& b_q, const Tensor& b_scales, bool swiglu, Tensor& out,
                               cudaStream_t stream, MoeFp8Kernel kernel) {
  MLA_CHECK(a_q.ndim() == 2 && b_q.ndim() == 3, "{}: a_q {} must be [P, K], b_q {} [E, rows, K]", kGemm,
            shape_str(a_q.shape()), shape_str(b_q.shape()));
  const int64_t rows = a_q.dim(0), k = a_q.dim(1), e_count = b_q.dim(0), b_rows = b_q.dim(1);
  const int64_t n_out = swiglu ? b_rows / 2 : b_rows;
  MLA_CHECK(k % 128 == 0 && b_rows % 128 == 0 && n_out % 128 == 0,
            "{}: K = {} and the weight rows {} (and Im with SwiGLU) must be multiples of 128", kGemm, k, b_rows);
  check_tensor(kGemm, a_q, "a_q", DType::kF8E4M3, {rows, k});
  check_tensor(kGemm, b_q, "b_q", DType::kF8E4M3, {e_count, b_rows, k});
  check_tensor(kGemm, a_scales, "a_scales", DType::kF32, {rows, k / 128});
  check_tensor(kGemm, b_scales, "b_scales", DType::kF32, {e_count, b_rows / 128, k / 128});
  check_tensor(kGemm, out, "out", DType::kBF16, {rows, n_out});
  check_tensor(kGemm, expert_offsets, "expert_offsets", DType::kI32, {e_count + 1}, 4);
  const int64_t smem_experts = (227 * 1024 - sm89::MoeFp8TilePrefill::kPipelineBytes) / 4 - 1;
  MLA_CHECK(e_count >= 1 && e_count <= smem_experts, "{}: {} experts (the kernel holds 1 .. {})", kGemm, e_count,
            smem_experts);
  MLA_CHECK(rows * std::max(k, n_out) < (int64_t{1} << 31) && b_rows * k < (int64_t{1} << 31),
            "{}: P = {} rows, K = {}, {} weight rows exceed the kernel's 32-bit offsets", kGemm, rows, k, b_rows);
  if (rows == 0) return;
  sm89::MoeFp8GemmParams p{};
  p.a = static_cast<const uint8_t*>(a_q.raw());
  p.a_scales = a_scales.data<float>();
  p.b = static_cast<const uint8_t*>(b_q.raw());
  p.b_scales = b_scales.data<float>();
  p.out = static_cast<__nv_bfloat16*>(out.raw());
  p.expert_offsets = expert_offsets.data<int32_t>();
  p.num_rows = static_cast<int32_t>(rows);
  p.num_experts = static_cast<int32_t>(e_count);
  p.k = static_cast<int32_t>(k);
  p.b_rows = static_cast<int32_t>(b_rows);
  p.n_out = static_cast<int32_t>(n_out);
  if (kernel == MoeFp8Kernel::kAuto) {
    kernel = sm90::moe_fp8::use_cutlass_grouped(swiglu, rows, e_count) ? MoeFp8Kernel::kCutlassGrouped
             : !sm90::moe_fp8::use_wgmma(rows, e_count)        ? MoeFp8Kernel::kMmaSync
             : sm90::moe_fp8::choose_bn(n_out, swiglu, rows, e_count) == 256 ? MoeFp8Kernel::kWgmmaN256
                                                              : MoeFp8Kernel::kWgmmaN128;
  }
  if (kernel == MoeFp8Kernel::kCutlassGrouped) {
    MLA_CHECK(!swiglu, "{}: the CUTLASS grouped kernel has the plain epilogue only", kGemm);
    return sm90::moe_fp8_cutlass::moe_grouped_gemm_fp8_cutlass(p, {}, stream);
  }
  if (kernel != MoeFp8Kernel::kMmaSync) {
    return sm90::moe_fp8::moe_grouped_gemm_fp8_sm90(p, swiglu, kernel == MoeFp8Kernel::kWgmmaN256 ? 256 : 128,
                                                    stream);
  }
  if (swiglu) {
    run<true>(p, stream);
  } else {
    run<false>(p, stream);
  }
}

void moe_experts_fp8_cuda(const Tensor& x, const Tensor& expert_offsets, const ExpertWeights& w,
                          const ActQuantParams& act, Tensor& hidden, Tensor& out, cudaStream_t stream,
                          MoeExpertsPath path) {
  check_experts(x, "x", DType::kBF16, w, hidden);
  const int64_t rows = x.dim(0), h = x.dim(1);
  if (runs_moe_gemv(path, rows, w)) {
    return moe_experts_gemv_cuda(x, expert_offsets, w, act, hidden, out, stream);
  }
  if (rows == 0) return;
  // The quantised copy of the gate_up GEMM's input, from the stream-ordered caching allocator.
  Tensor x_q = Tensor::empty({rows, h}, DType::kF8E4M3, Device::kCUDA);              // [P, H]
  Tensor x_s = Tensor::empty({rows, fp8_num_blocks(h)}, DType::kF32, Device::kCUDA);  // [P, H/128]
  quantize_activations_fp8_cuda(x, act, x_q, x_s, stream);
  moe_experts_fp8_cuda(x_q, x_s, expert_offsets, w, act, hidden, out, stream);
}

void moe_experts_fp8_cuda(const Tensor& x_q, const Tensor& x_scales, const Tensor& expert_offsets,
                          const ExpertWeights& w, const ActQuantParams& act, Tensor& hidden, Tensor& out,
                          cudaStream_t stream) {
  check_experts(x_q, "x_q", DType::kF8E4M3, w, hidden);
  const int64_t rows = x_q.dim(0), h = x_q.dim(1), im = w.intermediate();
  check_tensor(kOp, x_scales, "x_scales", DType::kF32, {rows, fp8_num_blocks(h)});
  if (rows == 0) return;
  // The quantised copy of the down GEMM's input, from the stream-ordered caching allocator.
  Tensor h_q = Tensor::empty({rows, im}, DType::kF8E4M3, Device::kCUDA);              // [P, Im]
  Tensor h_s = Tensor::empty({rows, fp8_num_blocks(im)}, DType::kF32, Device::kCUDA);  // [P, Im/128]
  moe_grouped_gemm_fp8_cuda(x_q, x_scales, expert_offsets, w.gate_up, w.gate_up_scale, /*swiglu=*/true, hidden,
                            stream);
  quantize_activations_fp8_cuda(hidden, act, h_q, h_s, stream);
  moe_grouped_gemm_fp8_cuda(h_q, h_s, expert_offsets, w.down, w.down_scale, /*swiglu=*/false, out, stream);
}

}  // namespace mlaserve::ops
