// CUTLASS 4.2's grouped blockwise-scaled FP8 GEMM for the MoE experts (contract and layouts:
// moe_grouped_gemm_fp8_cutlass.h): the kernel types of one instantiation, the kernel that fills
// the per-group argument arrays on the device, and the host launch. Included by the translation
// unit of the instantiation (moe_grouped_gemm_fp8_cutlass_coop.cu) and nothing else.
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
#include <cutlass/device_kernel.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/dispatch_policy.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/kernel_hardware_info.h>
#include <cutlass/numeric_types.h>

#include <algorithm>
#include <atomic>
#include <string_view>
#include <type_traits>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/tensor.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/moe_grouped_gemm_fp8_cutlass.h"

namespace mlaserve::ops::sm90::moe_fp8_cutlass {

inline constexpr std::string_view kOp = "moe_grouped_gemm_fp8_cuda (CUTLASS grouped)";

// The kernel of one instantiation: tile (BM x 128 x 128), cluster, mainloop and epilogue schedules.
template <class TileShape_, class ClusterShape_, class MainloopSchedule, class EpilogueSchedule>
struct GroupedFp8Gemm {
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
};

// The per-group argument arrays CUTLASS reads, in one workspace (device pointers, E entries each).
template <class G>
struct GroupArrays {
  typename G::GroupShape* problems;             // (M_e, N, K)
  const typename G::ElementA** a;               // a_q + offsets[e] · K
  const typename G::ElementB** b;               // b_q + e · N · K
  const float** sfa;                            // a_scales + offsets[e] · K/128
  const float** sfb;                            // b_scales + e · N/128 · K/128
  typename G::ElementD** d;                     // out + offsets[e] · N
  typename G::StrideA* stride_a;                // (K, 1, 0)
  typename G::StrideB* stride_b;                // (K, 1, 0)
  typename G::StrideD* stride_d;                // (N, 1, 0)
  typename G::LayoutSFA* layout_sfa;            // ScaleConfig's layouts of (M_e, N, K): the
  typename G::LayoutSFB* layout_sfb;            // mainloop rebuilds them from the problem shape,
                                                // filled for any CUTLASS that reads them
};

template <class T>
constexpr size_t array_bytes(int64_t count) {
  return (static_cast<size_t>(count) * sizeof(T) + 127) / 128 * 128;  // 128-byte aligned slices
}

template <class G>
size_t group_arrays_bytes(int64_t groups) {
  return array_bytes<typename G::GroupShape>(groups) + 5 * array_bytes<void*>(groups) +
         array_bytes<typename G::StrideA>(groups) + array_bytes<typename G::StrideB>(groups) +
         array_bytes<typename G::StrideD>(groups) + array_bytes<typename G::LayoutSFA>(groups) +
         array_bytes<typename G::LayoutSFB>(groups);
}

// Carves the arrays out of base (128-byte aligned, group_arrays_bytes long).
template <class G>
GroupArrays<G> carve_group_arrays(uint8_t* base, int64_t groups) {
  GroupArrays<G> w{};
  auto take = [&](auto*& ptr) {
    using T = std::remove_pointer_t<std::remove_reference_t<decltype(ptr)>>;
    ptr = reinterpret_cast<T*>(base);
    base += array_bytes<T>(groups);
  };
  take(w.problems);
  take(w.a);
  take(w.b);
  take(w.sfa);
  take(w.sfb);
  take(w.d);
  take(w.stride_a);
  take(w.stride_b);
  take(w.stride_d);
  take(w.layout_sfa);
  take(w.layout_sfb);
  return w;
}

// One thread per expert: its row range from the offsets (clamped to [0, P], as our kernels do),
// then every array entry of its group. M_e = 0 gives a group of no tiles.
template <class G>
__global__ void fill_group_arguments(sm89::MoeFp8GemmParams p, GroupArrays<G> w) {
  const int e = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (e >= p.num_experts) return;
  const int begin = min(max(p.expert_offsets[e], 0), p.num_rows);
  const int end = max(begin, min(max(p.expert_offsets[e + 1], 0), p.num_rows));
  const int m = end - begin, n = p.n_out, k = p.k;
  const int64_t kb = k / 128;
  w.problems[e] = cute::make_shape(m, n, k);
  w.a[e] = reinterpret_cast<const typename G::ElementA*>(p.a + int64_t{begin} * k);
  w.b[e] = reinterpret_cast<const typename G::ElementB*>(p.b + int64_t{e} * n * k);
  w.sfa[e] = p.a_scales + begin * kb;
  w.sfb[e] = p.b_scales + int64_t{e} * (n / 128) * kb;
  w.d[e] = reinterpret_cast<typename G::ElementD*>(p.out + int64_t{begin} * n);
  typename G::StrideA sa{};
  cute::get<0>(sa) = k;
  w.stride_a[e] = sa;
  typename G::StrideB sb{};
  cute::get<0>(sb) = k;
  w.stride_b[e] = sb;
  typename G::StrideD sd{};
  cute::get<0>(sd) = n;
  w.stride_d[e] = sd;
  w.layout_sfa[e] = G::ScaleConfig::tile_atom_to_shape_SFA(cute::make_shape(m, n, k, 1));
  w.layout_sfb[e] = G::ScaleConfig::tile_atom_to_shape_SFB(cute::make_shape(m, n, k, 1));
}

inline const char* status_name(cutlass::Status s) { return cutlass::cutlassGetStatusString(s); }

// Clusters of G's kernel that fit on the device at once (cudaOccupancyMaxActiveClusters with its
// real shared memory), queried once per device. The persistent grid is that many clusters: with
// device-only problem shapes CUTLASS would otherwise launch one CTA per SM, and clusters beyond
// what the GPCs hold together would start only when others finish, after their tiles were
// assigned (the walk is static), doubling the tail.
template <class G>
int max_active_clusters(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices] = {};
  MLA_CHECK(device >= 0 && device < kMaxDevices, "{}: device {} out of range", kOp, device);
  if (const int cached = cache[device].load(std::memory_order_relaxed); cached > 0) return cached;
  using Kernel = typename G::Kernel;
  const auto kernel = cutlass::device_kernel<Kernel>;
  constexpr int kSmem = Kernel::SharedStorageSize;
  MLA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const unsigned cm = cute::size<0>(typename G::ClusterShape{}), cn = cute::size<1>(typename G::ClusterShape{});
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = cm;
  cluster.val.clusterDim.y = cn;
  cluster.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(cm, cn, 1);
  config.blockDim = dim3(Kernel::MaxThreadsPerBlock, 1, 1);
  config.dynamicSmemBytes = kSmem;
  config.attrs = &cluster;
  config.numAttrs = 1;
  int clusters = 0;
  MLA_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, kernel, &config));
  MLA_CHECK(clusters > 0, "{}: no cluster of the kernel fits on device {}", kOp, device);
  cache[device].store(clusters, std::memory_order_relaxed);
  return clusters;
}

template <class G>
void run_grouped_gemm(const sm89::MoeFp8GemmParams& p, const Options& options, cudaStream_t stream) {
  using Gemm = typename G::Gemm;
  using CutlassRaster = cutlass::gemm::kernel::detail::RasterOrderOptions;
  MLA_CHECK(p.n_out == p.b_rows, "{}: the plain epilogue only (SwiGLU runs on our kernels)", kOp);
  MLA_CHECK(p.k % 128 == 0 && p.n_out % 128 == 0 && p.num_experts >= 1,
            "{}: needs K = {} and N = {} multiples of 128 and at least one expert (got {})", kOp, p.k, p.n_out,
            p.num_experts);
  MLA_CHECK(options.max_swizzle == 1 || options.max_swizzle == 2 || options.max_swizzle == 4 ||
                options.max_swizzle == 8,
            "{}: max_swizzle must be 1, 2, 4 or 8; got {}", kOp, options.max_swizzle);
  if (p.num_rows == 0) return;
  const int64_t groups = p.num_experts;

  typename Gemm::Arguments args{};
  args.mode = cutlass::gemm::GemmUniversalMode::kGrouped;
  args.problem_shape.num_groups = static_cast<int>(groups);  // the arrays are set below
  MLA_CUDA_CHECK(cudaGetDevice(&args.hw_info.device_id));
  args.hw_info.sm_count = gpu::device_sm_count();
  args.hw_info.max_active_clusters = max_active_clusters<G>(args.hw_info.device_id);
  args.scheduler.max_swizzle_size = options.max_swizzle;
  args.scheduler.raster_order = options.raster == Raster::kAlongN ? CutlassRaster::AlongN : CutlassRaster::AlongM;

  // One workspace: CUTLASS's (tensormaps per SM; no problem-dependent part), then our arrays.
  const size_t cutlass_bytes = (Gemm::get_workspace_size(args) + 127) / 128 * 128;
  Tensor workspace = Tensor::empty({static_cast<int64_t>(cutlass_bytes + group_arrays_bytes<G>(groups))},
                                   DType::kU8, Device::kCUDA);
  auto* base = static_cast<uint8_t*>(workspace.raw());
  MLA_CHECK(reinterpret_cast<uintptr_t>(base) % 128 == 0, "{}: workspace not 128-byte aligned", kOp);
  const GroupArrays<G> w = carve_group_arrays<G>(base + cutlass_bytes, groups);
  constexpr int kFillThreads = 128;
  fill_group_arguments<G><<<static_cast<unsigned>((groups + kFillThreads - 1) / kFillThreads), kFillThreads, 0,
                            stream>>>(p, w);
  MLA_CUDA_CHECK_LAUNCH();

  args.problem_shape = {static_cast<int>(groups), w.problems, /*host_problem_shapes=*/nullptr};
  args.mainloop.ptr_A = w.a;
  args.mainloop.dA = w.stride_a;
  args.mainloop.ptr_B = w.b;
  args.mainloop.dB = w.stride_b;
  args.mainloop.ptr_SFA = w.sfa;
  args.mainloop.layout_SFA = w.layout_sfa;
  args.mainloop.ptr_SFB = w.sfb;
  args.mainloop.layout_SFB = w.layout_sfb;
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 0.0f;
  args.epilogue.ptr_C = nullptr;
  args.epilogue.dC = nullptr;
  args.epilogue.ptr_D = w.d;
  args.epilogue.dD = w.stride_d;

  Gemm gemm;
  cutlass::Status status = Gemm::can_implement(args);
  MLA_CHECK(status == cutlass::Status::kSuccess, "{}: CUTLASS refuses E {} N {} K {}: {}", kOp, groups, p.n_out, p.k,
            status_name(status));
  status = gemm.initialize(args, base, stream);
  MLA_CHECK(status == cutlass::Status::kSuccess, "{}: initialize failed: {}", kOp, status_name(status));
  status = gemm.run(stream);
  MLA_CUDA_CHECK_LAUNCH();
  MLA_CHECK(status == cutlass::Status::kSuccess, "{}: launch failed: {}", kOp, status_name(status));
  // workspace goes back to the caching allocator here; reuse is stream-ordered (core/memory.h).
}

}  // namespace mlaserve::ops::sm90::moe_fp8_cutlass
