// Host side of the Hopper grouped block-FP8 MoE GEMM (moe_grouped_gemm_fp8_sm90.h): checks,
// tensor maps and the launch by tile width (the kernels are instantiated in
// moe_grouped_gemm_fp8_sm90_n{128,256}.cu).
#include <cudaTypedefs.h>

#include <algorithm>
#include <string_view>

#include "core/cuda_check.h"
#include "core/error.h"
#include "ops/cuda/moe_grouped_gemm_fp8_sm90.cuh"

namespace mlaserve::ops::sm90::moe_fp8 {
namespace {

constexpr std::string_view kOp = "moe_grouped_gemm_fp8_cuda";

// cuTensorMapEncodeTiled, found in the driver through the runtime (nothing links libcuda).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    MLA_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found));
    MLA_CHECK(found == cudaDriverEntryPointSuccess && fn != nullptr, "{}: the driver has no cuTensorMapEncodeTiled",
              kOp);
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encode;
}

// A row-major [rows, k] e4m3 matrix read in boxes of 128 channels (128 bytes) x box_rows with the
// 128-byte swizzle; rows past the end read as zeros.
CUtensorMap fp8_rows_map(const void* data, int64_t rows, int64_t k, int box_rows) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(k)};
  const cuuint32_t box[2] = {128, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<void*>(data), dims,
                                          strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  MLA_CHECK(r == CUDA_SUCCESS, "{}: cuTensorMapEncodeTiled failed ({}) for [{}, {}] e4m3", kOp, static_cast<int>(r),
            rows, k);
  return map;
}

int sm_count() {
  int device = 0, count = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  MLA_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

}  // namespace

void moe_grouped_gemm_fp8_sm90(sm89::MoeFp8GemmParams g, bool swiglu, int bn, cudaStream_t stream) {
  const int n_step = swiglu ? bn / 2 : bn;  // output columns per tile
  MLA_CHECK((bn == 128 || bn == 256) && g.k % 128 == 0 && g.b_rows % 128 == 0 && g.n_out % n_step == 0,
            "{}: the sm90 kernel with {}-row weight tiles needs K = {} and the weight rows {} multiples of 128, "
            "n_out {} of {}",
            kOp, bn, g.k, g.b_rows, g.n_out, n_step);
  MLA_CHECK(g.num_experts >= 1 && g.num_experts <= max_experts(), "{}: {} experts (the sm90 kernel holds 1 .. {})",
            kOp, g.num_experts, max_experts());
  MLA_CHECK((int64_t{g.num_rows} / kBM + g.num_experts) * (g.n_out / n_step) < (int64_t{1} << 31),
            "{}: P = {} rows give more tiles than the kernel counts", kOp, g.num_rows);
  if (g.num_rows == 0) return;
  g.n_tiles = g.n_out / n_step;
  Params p{};
  const int a_box_rows = std::min(g.num_rows, kBM);
  p.a_map = fp8_rows_map(g.a, g.num_rows, g.k, a_box_rows);
  p.b_map = fp8_rows_map(g.b, static_cast<int64_t>(g.num_experts) * g.b_rows, g.k, 64);
  p.stage_bytes = static_cast<uint32_t>(128 * (a_box_rows + bn));
  p.g = g;
  if (bn == 128) {
    launch<128>(p, swiglu, sm_count(), stream);
  } else {
    launch<256>(p, swiglu, sm_count(), stream);
  }
}

}  // namespace mlaserve::ops::sm90::moe_fp8
