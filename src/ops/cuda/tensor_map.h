// TMA tensor maps (CUtensorMap) for the Hopper kernels. Every map here is tiled, reads with the
// 128-byte swizzle that the kernels' shared-memory tiles use, has element strides of 1 and reads
// zeros past the edges. cuTensorMapEncodeTiled is found in the driver through the runtime, so
// nothing links libcuda.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <string_view>

namespace mlaserve::ops::tma {

// A map of `rank` (1..5) dimensions: dims[rank] innermost first, in elements; strides[rank - 1]
// the bytes between consecutive indices of dims 1 .. rank-1; read in boxes of box[rank] elements.
// `op` names the caller in errors. (Pointers, not std::span: .cu files compile as C++17.)
CUtensorMap tiled_map(std::string_view op, CUtensorMapDataType dtype, const void* data, int rank,
                      const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box);

// A row-major [rows, cols] matrix of `elem_bytes`-byte elements (rows `cols · elem_bytes` apart),
// read in boxes of box_cols x box_rows.
CUtensorMap rows_map(std::string_view op, CUtensorMapDataType dtype, int elem_bytes, const void* data, int64_t rows,
                     int64_t cols, uint32_t box_cols, uint32_t box_rows);

// The block-FP8 GEMM operands: [rows, k] e4m3 read in boxes of 128 channels (one scale block, 128
// bytes) x box_rows.
inline CUtensorMap fp8_rows_map(std::string_view op, const void* data, int64_t rows, int64_t k, uint32_t box_rows) {
  return rows_map(op, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, data, rows, k, 128, box_rows);
}

}  // namespace mlaserve::ops::tma
