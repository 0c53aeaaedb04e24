// CUTLASS 4.2's grouped blockwise-scaled FP8 GEMM for the MoE experts (contract and layouts:
// moe_grouped_gemm_fp8_cutlass.h): the kernel type of an instantiation, with the scale arrays it
// adds to the per-group arguments, and the host launch. The per-group arrays, the kernel that fills
// them and the launch are shared with the BF16 grouped GEMM (moe_cutlass_grouped.cuh). Included by
// the translation unit of the instantiation (moe_grouped_gemm_fp8_cutlass_coop.cu) and nothing else.
//
// Design: everything that runs the GEMM is CUTLASS's; what is ours is the type choice, the
// argument kernel and the mapping of our tensors onto CUTLASS's arguments.
//   - Mainloop: CollectiveBuilder with KernelPtrArrayTmaWarpSpecializedCooperative
//     FP8BlockScaledAccum picks MainloopSm90ArrayTmaGmmaWarpSpecializedBlockwise
//     (sm90_mma_array_tma_gmma_ss_warpspecialized_fp8_blockwise_scaling.hpp): A and B by TMA
//     through per-CTA tensormaps that the producer warp rewrites (address, M_e, strides) whenever
//     its next tile belongs to another group; the scales by cp.async from a second producer warp;
//     per 128-wide K block the consumers issue the wgmma chain into a fresh fp32 fragment and add
//     fragment · sfa[row] · sfb into the running accumulator (the promotion).
//   - Stages: as many as fit beside the epilogue's shared memory (StageCountAutoCarveout).
//   - Epilogue: D = 1 · acc, no C operand, bf16 stored by TMA through per-CTA tensormaps rewritten
//     per group as well (clipped at M_e and N).
//   - Scheduler: the grouped persistent scheduler (PersistentTileSchedulerSm90Group): with the
//     problem shapes on the device only, one CTA per SM; a scheduler warp walks the groups' tile
//     counts (warp-wide prefix sums over 32 groups at a time) and hands tiles to the producer and
//     consumers through a shared-memory pipeline.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/detail/blockwise_scale_layout.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/dispatch_policy.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/numeric_types.h>

#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "ops/cuda/moe_cutlass_grouped.cuh"
#include "ops/cuda/moe_grouped_gemm_fp8_cutlass.h"

namespace mlaserve::ops::sm90::moe_fp8_cutlass {

// The kernel of one instantiation: tile (BM x 128 x 128), cluster, mainloop and epilogue schedules.
template <class TileShape_, class ClusterShape_, class MainloopSchedule, class EpilogueSchedule>
struct GroupedFp8Gemm {
  static constexpr std::string_view kOp = "moe_grouped_gemm_fp8_cuda (CUTLASS grouped)";
  using Params = sm89::MoeFp8GemmParams;
  using TileShape = TileShape_;
  using ClusterShape = ClusterShape_;
  using ProblemShape = cutlass::gemm::GroupProblemShape<cute::Shape<int, int, int>>;  // (M_e, N, K) a group
  using GroupShape = typename ProblemShape::UnderlyingProblemShape;

  using ElementA = cutlass::float_e4m3_t;        // a_q
  using LayoutA = cutlass::layout::RowMajor;     // [M_e, K]
  using ElementB = cutlass::float_e4m3_t;        // b_q[e]
  using LayoutB = cutlass::layout::ColumnMajor;  // K x N column-major = [N, K] row-major
  using ElementD = cutlass::bfloat16_t;          // out
  using LayoutD = cutlass::layout::RowMajor;     // [M_e, N]
  static constexpr int kAlignAB = 16;            // elements per 16-byte TMA access (e4m3)
  static constexpr int kAlignD = 8;              // bf16

  // Scale granularity 1 (rows) x 128 (weight rows) x 128 (K), both scale tensors K-major, as our
  // quantiser ([P, K/128]) and the checkpoint ([N/128, K/128] an expert) store them.
  using ScaleConfig =
      cutlass::detail::Sm90BlockwiseScaleConfig<1, 128, 128, cute::GMMA::Major::K, cute::GMMA::Major::K>;
  using LayoutSFA = decltype(ScaleConfig::deduce_layoutSFA());
  using LayoutSFB = decltype(ScaleConfig::deduce_layoutSFB());

  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float,
      void, LayoutD*, kAlignD,  // no C operand
      ElementD, LayoutD*, kAlignD, EpilogueSchedule>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, cute::tuple<LayoutA*, LayoutSFA*>, kAlignAB,
      ElementB, cute::tuple<LayoutB*, LayoutSFB*>, kAlignAB, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      MainloopSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

  using StrideA = typename Kernel::InternalStrideA;
  using StrideB = typename Kernel::InternalStrideB;
  using StrideD = typename Kernel::InternalStrideD;

  static_assert(CollectiveMainloop::ScaleNsPerTile == 1 &&
                    CollectiveMainloop::ScaleMsPerTile == cute::size<0>(TileShape{}),
                "one activation scale per row and one weight scale per 128-row weight tile");
  static_assert(!CollectiveMainloop::MMajorSFA && !CollectiveMainloop::NMajorSFB,
                "scales are read K-major, as a_scales [P, K/128] and b_scales [E, N/128, K/128] are stored");
  static_assert(cute::size<1>(TileShape{}) == 128 && cute::size<2>(TileShape{}) == 128,
                "N and K tiles of 128: one weight scale per tile and K block");
  // The rows of A, B and D are contiguous (unit stride along K, K, N): the leading dimension is
  // the only run-time stride.
  static_assert(cute::is_static_v<cute::tuple_element_t<1, StrideA>> &&
                    cute::tuple_element_t<1, StrideA>::value == 1 &&
                    cute::is_static_v<cute::tuple_element_t<1, StrideB>> &&
                    cute::tuple_element_t<1, StrideB>::value == 1 &&
                    cute::is_static_v<cute::tuple_element_t<1, StrideD>> &&
                    cute::tuple_element_t<1, StrideD>::value == 1,
                "packed rows along K (A, B) and N (D)");

  // The scale arrays beside the shared ones (moe_cutlass_grouped.cuh), E entries each.
  struct ExtraArrays {
    const float** sfa;       // a_scales + offsets[e] · K/128
    const float** sfb;       // b_scales + e · N/128 · K/128
    LayoutSFA* layout_sfa;   // ScaleConfig's layouts of (M_e, N, K): the mainloop rebuilds them
    LayoutSFB* layout_sfb;   // from the problem shape, filled for any CUTLASS that reads them

    template <class F>
    void visit(F&& f) {
      f(sfa);
      f(sfb);
      f(layout_sfa);
      f(layout_sfb);
    }
  };

  static __device__ void fill_extra(const Params& p, ExtraArrays& w, int e, int begin, int m, int n, int k) {
    const int64_t kb = k / 128;
    w.sfa[e] = p.a_scales + begin * kb;
    w.sfb[e] = p.b_scales + int64_t{e} * (n / 128) * kb;
    w.layout_sfa[e] = ScaleConfig::tile_atom_to_shape_SFA(cute::make_shape(m, n, k, 1));
    w.layout_sfb[e] = ScaleConfig::tile_atom_to_shape_SFB(cute::make_shape(m, n, k, 1));
  }

  static void set_extra_arguments(typename Gemm::Arguments& args, const ExtraArrays& w) {
    args.mainloop.ptr_SFA = w.sfa;
    args.mainloop.layout_SFA = w.layout_sfa;
    args.mainloop.ptr_SFB = w.sfb;
    args.mainloop.layout_SFB = w.layout_sfb;
  }
};

// The grouped GEMM of p through G (cutlass_grouped::run) after FP8's shape checks: K and N
// multiples of 128 (whole scale blocks).
template <class G>
void run_grouped_gemm(const sm89::MoeFp8GemmParams& p, const cutlass_grouped::Options& options, cudaStream_t stream) {
  MLA_CHECK(p.k % 128 == 0 && p.n_out % 128 == 0, "{}: needs K = {} and N = {} multiples of 128", G::kOp, p.k,
            p.n_out);
  cutlass_grouped::run<G>(p, options, stream);
}

}  // namespace mlaserve::ops::sm90::moe_fp8_cutlass
