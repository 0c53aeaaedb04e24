// CUTLASS 4.2's grouped BF16 GEMM for the MoE experts (contract and layouts:
// moe_grouped_gemm_cutlass.h): the kernel type of an instantiation. The per-group arrays, the
// kernel that fills them and the launch are shared with the FP8 grouped GEMM
// (moe_cutlass_grouped.cuh). Included by the translation unit of the instantiation
// (moe_grouped_gemm_cutlass_coop.cu) and nothing else.
//
// Design: everything that runs the GEMM is CUTLASS's; ours is the type choice and the mapping of
// our tensors onto its arguments.
//   - Mainloop: CollectiveBuilder with KernelPtrArrayTmaWarpSpecializedCooperative picks
//     MainloopSm90ArrayTmaGmmaWarpSpecialized (sm90_mma_array_tma_gmma_ss_warpspecialized.hpp):
//     A and B by TMA through per-CTA tensormaps that the producer warp rewrites (address, M_e,
//     strides) whenever its next tile belongs to another group; the two consumer warpgroups
//     issue wgmma (bf16 in, fp32 accumulate) on 64 rows of the tile each, one k-tile in flight.
//   - Stages: as many as fit beside the epilogue's shared memory (StageCountAutoCarveout).
//   - Epilogue: D = 1 · acc rounded to bf16, no C operand, stored by TMA through per-CTA
//     tensormaps rewritten per group as well (clipped at M_e and N).
//   - Scheduler: the grouped persistent scheduler (PersistentTileSchedulerSm90Group), the shapes
//     on the device only: see moe_grouped_gemm_fp8_cutlass.cuh.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/dispatch_policy.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/numeric_types.h>

#include <string_view>

#include "core/error.h"
#include "ops/cuda/moe_cutlass_grouped.cuh"
#include "ops/cuda/moe_grouped_gemm_cutlass.h"

namespace mlaserve::ops::sm90::moe_cutlass {

// The kernel of one instantiation: tile (BM x BN x BK), cluster, mainloop and epilogue schedules.
template <class TileShape_, class ClusterShape_, class MainloopSchedule, class EpilogueSchedule>
struct GroupedBf16Gemm {
  static constexpr std::string_view kOp = "moe_grouped_gemm_cuda (CUTLASS grouped)";
  using Params = sm80::MoeGemmParams;
  using TileShape = TileShape_;
  using ClusterShape = ClusterShape_;
  using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // (M_e, N, K) a group
  using GroupShape = typename ProblemShape::UnderlyingProblemShape;

  using ElementA = cutlass::bfloat16_t;          // a
  using LayoutA = cutlass::layout::RowMajor;     // [M_e, K]
  using ElementB = cutlass::bfloat16_t;          // b[e]
  using LayoutB = cutlass::layout::ColumnMajor;  // K x N column-major = [N, K] row-major
  using ElementD = cutlass::bfloat16_t;          // out
  using LayoutD = cutlass::layout::RowMajor;     // [M_e, N]
  static constexpr int kAlign = 8;               // bf16 elements per 16-byte TMA access

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutD*, kAlign,  // no C operand
      ElementD, LayoutD*, kAlign, EpilogueSchedule>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, LayoutA*, kAlign, ElementB, LayoutB*, kAlign,
      float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  using StrideA = typename Kernel::InternalStrideA;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;

  // The rows of A, B and D are contiguous (unit stride along K, K, N): the leading dimension is
  // the only run-time stride.
  static_assert(cute::is_static_v<cute::tuple_element_t<1, StrideA>> &&
                    cute::tuple_element_t<1, StrideA>::value == 1 &&
                    cute::is_static_v<cute::tuple_element_t<1, StrideB>> &&
                    cute::tuple_element_t<1, StrideB>::value == 1 &&
                    cute::is_static_v<cute::tuple_element_t<1, StrideD>> &&
                    cute::tuple_element_t<1, StrideD>::value == 1,
                "packed rows along K (A, B) and N (D)");

  // No per-group arrays beyond the shared ones.
  using ExtraArrays = cutlass_grouped::NoExtraArrays;
  static __device__ void fill_extra(const Params&, ExtraArrays&, int, int, int, int, int) {}
  static void set_extra_arguments(typename Gemm::Arguments&, const ExtraArrays&) {}
};

// The grouped GEMM of p through G (cutlass_grouped::run) after the BF16 shape checks: K and N
// multiples of 8 (rows of 16 bytes, TMA's alignment).
template <class G>
void run_grouped_gemm(const sm80::MoeGemmParams& p, const cutlass_grouped::Options& options, cudaStream_t stream) {
  MLA_CHECK(p.k % G::kAlign == 0 && p.n_out % G::kAlign == 0, "{}: needs K = {} and N = {} multiples of {}", G::kOp,
            p.k, p.n_out, G::kAlign);
  cutlass_grouped::run<G>(p, options, stream);
}

}  // namespace mlaserve::ops::sm90::moe_cutlass
