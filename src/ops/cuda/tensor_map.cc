#include "ops/cuda/tensor_map.h"

#include <cuda_runtime_api.h>
#include <cudaTypedefs.h>

#include <string>

#include "core/cuda_check.h"
#include "core/error.h"

namespace mlaserve::ops::tma {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    MLA_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found));
    MLA_CHECK(found == cudaDriverEntryPointSuccess && fn != nullptr, "the CUDA driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encode;
}

std::string list(const cuuint64_t* v, int n) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

CUtensorMap tiled_map(std::string_view op, CUtensorMapDataType dtype, const void* data, int rank,
                      const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box) {
  MLA_CHECK(rank >= 1 && rank <= 5, "{}: a tensor map of rank {}", op, rank);
  const cuuint32_t element_strides[5] = {1, 1, 1, 1, 1};
  CUtensorMap map{};
  const CUresult r = encoder()(&map, dtype, static_cast<cuuint32_t>(rank), const_cast<void*>(data), dims, strides,
                               box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                               CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                               CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  MLA_CHECK(r == CUDA_SUCCESS, "{}: cuTensorMapEncodeTiled failed ({}) for dims {} (innermost first), strides {} bytes",
            op, static_cast<int>(r), list(dims, rank), list(strides, rank - 1));
  return map;
}

CUtensorMap rows_map(std::string_view op, CUtensorMapDataType dtype, int elem_bytes, const void* data, int64_t rows,
                     int64_t cols, uint32_t box_cols, uint32_t box_rows) {
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols * elem_bytes)};
  const cuuint32_t box[2] = {box_cols, box_rows};
  return tiled_map(op, dtype, data, 2, dims, strides, box);
}

}  // namespace mlaserve::ops::tma
