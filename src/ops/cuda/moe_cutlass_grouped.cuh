// The machinery the MoE experts' CUTLASS 4.2 grouped (ptr-array) GEMMs share, BF16
// (moe_grouped_gemm_cutlass.cuh) and block-FP8 (moe_grouped_gemm_fp8_cutlass.cuh): the per-group
// argument arrays in one workspace, the kernel that fills them on the device from the expert
// offsets, the persistent grid's size and the host launch. Included by the translation units of
// the instantiations and nothing else.
//
// One CUTLASS group per expert e, problem (M_e, N, K) with M_e = offsets[e + 1] - offsets[e]
// (clamped to [0, P]) read on the device: fill_group_arguments (one thread an expert) writes the
// problem shapes, the A/B/D pointers and strides (and what the kernel adds: FP8's scales) into a
// workspace from the stream-ordered caching allocator, and CUTLASS's kernel runs with device-only
// problem shapes. No host synchronisation: capturable in a CUDA graph after one eager call.
//
// A kernel type G (GroupedBf16Gemm, GroupedFp8Gemm) supplies:
//   Params                    the launch parameters of our kernels for the same GEMM
//                             (sm80::MoeGemmParams, sm89::MoeFp8GemmParams): a, b, out,
//                             expert_offsets, num_rows, num_experts, k, b_rows, n_out
//   kOp                       the name in error messages
//   Kernel, Gemm, ClusterShape, GroupShape, Element{A,B,D}, Stride{A,B,D}: CUTLASS's types
//   ExtraArrays               its own per-group arrays (NoExtraArrays: none), with visit()
//   fill_extra(p, extra, e, begin, m, n, k)   (device) fills them for expert e
//   set_extra_arguments(args, extra)          (host) points CUTLASS's arguments at them
// Layouts, as our tensors hold them (no copy, no transpose):
//   A = a[offsets[e]:]  [M_e, K] row-major (CUTLASS: RowMajor M x K)
//   B = b[e]            [N, K] row-major (CUTLASS: ColumnMajor K x N)
//   D = out[offsets[e]:] [M_e, N] row-major bf16, stored by TMA clipped at M_e: rows of other
//                       experts and rows outside [offsets[0], offsets[E]) untouched.
// Empty experts (M_e = 0) are groups of no tiles: the group scheduler's prefix sum over the
// groups' tile counts skips them; their pointers are never dereferenced.
#pragma once

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/device_kernel.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/group_array_problem_shape.hpp>
#include <cutlass/kernel_hardware_info.h>

#include <cstdint>
#include <type_traits>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/tensor.h"
#include "ops/cuda/device_props.h"
#include "ops/cuda/moe_cutlass_grouped.h"

namespace mlaserve::ops::sm90::cutlass_grouped {

// The arrays of a kernel without per-group arrays of its own.
struct NoExtraArrays {
  template <class F>
  void visit(F&&) {}
};

// The per-group argument arrays CUTLASS reads (device pointers, E entries each).
template <class G>
struct GroupArrays {
  typename G::GroupShape* problems;  // (M_e, N, K)
  const typename G::ElementA** a;    // a + offsets[e] · K
  const typename G::ElementB** b;    // b + e · N · K
  typename G::ElementD** d;          // out + offsets[e] · N
  typename G::StrideA* stride_a;     // (K, 1, 0)
  typename G::StrideB* stride_b;     // (K, 1, 0)
  typename G::StrideD* stride_d;     // (N, 1, 0)
  typename G::ExtraArrays extra;     // the kernel's own

  // f(pointer member) for every array, in workspace order (host only).
  template <class F>
  void visit(F&& f) {
    f(problems);
    f(a);
    f(b);
    f(d);
    f(stride_a);
    f(stride_b);
    f(stride_d);
    extra.visit(f);
  }
};

template <class T>
constexpr size_t array_bytes(int64_t count) {
  return (static_cast<size_t>(count) * sizeof(T) + 127) / 128 * 128;  // 128-byte aligned slices
}

// Points every array of w at consecutive slices of base (128-byte aligned; null: sizes only,
// every pointer null) and returns the bytes they take.
template <class G>
size_t carve_group_arrays(GroupArrays<G>& w, uint8_t* base, int64_t groups) {
  size_t used = 0;
  w.visit([&](auto*& ptr) {
    using T = std::remove_pointer_t<std::remove_reference_t<decltype(ptr)>>;
    ptr = base == nullptr ? nullptr : reinterpret_cast<T*>(base + used);
    used += array_bytes<T>(groups);
  });
  return used;
}

// One thread per expert: its row range from the offsets (clamped to [0, P], as our kernels do),
// then every array entry of its group. M_e = 0 gives a group of no tiles.
template <class G>
__global__ void fill_group_arguments(typename G::Params p, GroupArrays<G> w) {
  const int e = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (e >= p.num_experts) return;
  const int begin = min(max(p.expert_offsets[e], 0), p.num_rows);
  const int end = max(begin, min(max(p.expert_offsets[e + 1], 0), p.num_rows));
  const int m = end - begin, n = p.n_out, k = p.k;
  w.problems[e] = cute::make_shape(m, n, k);
  w.a[e] = reinterpret_cast<const typename G::ElementA*>(p.a + int64_t{begin} * k);
  w.b[e] = reinterpret_cast<const typename G::ElementB*>(p.b + int64_t{e} * n * k);
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
  G::fill_extra(p, w.extra, e, begin, m, n, k);
}

// Clusters of G's kernel that fit on the device at once (cudaOccupancyMaxActiveClusters with its
// real shared memory), queried once per device. The persistent grid is that many clusters: with
// device-only problem shapes CUTLASS would otherwise launch one CTA per SM, and clusters beyond
// what the GPCs hold together would start only when others finish, after their tiles were
// assigned (the walk is static), doubling the tail.
template <class G>
int max_active_clusters(int device) {
  static gpu::PerDeviceInts cache{};
  return gpu::cached_per_device(cache, device, G::kOp, [](int dev) {
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
    MLA_CHECK(clusters > 0, "{}: no cluster of the kernel fits on device {}", G::kOp, dev);
    return clusters;
  });
}

// Enqueues the grouped GEMM of p (plain product: p.n_out == p.b_rows) on stream: the argument
// kernel, then CUTLASS's. Host work: the TMA descriptors, the kernel's shared-memory attribute,
// one workspace from the caching allocator (CUTLASS's sm_count · 384 bytes of tensormaps, then
// the arrays). Throws when CUTLASS refuses the arguments or a launch fails. Nothing when P = 0.
// The shape constraints of the element types are the caller's to check.
template <class G>
void run(const typename G::Params& p, const Options& options, cudaStream_t stream) {
  using Gemm = typename G::Gemm;
  using CutlassRaster = cutlass::gemm::kernel::detail::RasterOrderOptions;
  MLA_CHECK(p.n_out == p.b_rows, "{}: the plain product only (n_out {} != weight rows {})", G::kOp, p.n_out,
            p.b_rows);
  MLA_CHECK(p.num_experts >= 1, "{}: needs at least one expert (got {})", G::kOp, p.num_experts);
  MLA_CHECK(options.max_swizzle == 1 || options.max_swizzle == 2 || options.max_swizzle == 4 ||
                options.max_swizzle == 8,
            "{}: max_swizzle must be 1, 2, 4 or 8; got {}", G::kOp, options.max_swizzle);
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
  GroupArrays<G> w{};
  const size_t cutlass_bytes = (Gemm::get_workspace_size(args) + 127) / 128 * 128;
  const size_t array_bytes_total = carve_group_arrays(w, nullptr, groups);
  Tensor workspace =
      Tensor::empty({static_cast<int64_t>(cutlass_bytes + array_bytes_total)}, DType::kU8, Device::kCUDA);
  auto* base = static_cast<uint8_t*>(workspace.raw());
  MLA_CHECK(reinterpret_cast<uintptr_t>(base) % 128 == 0, "{}: workspace not 128-byte aligned", G::kOp);
  carve_group_arrays(w, base + cutlass_bytes, groups);
  constexpr int kFillThreads = 128;
  fill_group_arguments<G><<<static_cast<unsigned>((groups + kFillThreads - 1) / kFillThreads), kFillThreads, 0,
                            stream>>>(p, w);
  MLA_CUDA_CHECK_LAUNCH();

  args.problem_shape = {static_cast<int>(groups), w.problems, /*host_problem_shapes=*/nullptr};
  args.mainloop.ptr_A = w.a;
  args.mainloop.dA = w.stride_a;
  args.mainloop.ptr_B = w.b;
  args.mainloop.dB = w.stride_b;
  G::set_extra_arguments(args, w.extra);
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 0.0f;
  args.epilogue.ptr_C = nullptr;
  args.epilogue.dC = nullptr;
  args.epilogue.ptr_D = w.d;
  args.epilogue.dD = w.stride_d;

  Gemm gemm;
  cutlass::Status status = Gemm::can_implement(args);
  MLA_CHECK(status == cutlass::Status::kSuccess, "{}: CUTLASS refuses E {} N {} K {}: {}", G::kOp, groups, p.n_out,
            p.k, cutlass::cutlassGetStatusString(status));
  status = gemm.initialize(args, base, stream);
  MLA_CHECK(status == cutlass::Status::kSuccess, "{}: initialize failed: {}", G::kOp,
            cutlass::cutlassGetStatusString(status));
  status = gemm.run(stream);
  MLA_CUDA_CHECK_LAUNCH();
  MLA_CHECK(status == cutlass::Status::kSuccess, "{}: launch failed: {}", G::kOp,
            cutlass::cutlassGetStatusString(status));
  // workspace goes back to the caching allocator here; reuse is stream-ordered (core/memory.h).
}

}  // namespace mlaserve::ops::sm90::cutlass_grouped
