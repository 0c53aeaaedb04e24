// copy_rows_async: a pitched copy between GPU buffers, by a kernel on a stream.
//
// Why not cudaMemcpy2DAsync: between device buffers with narrow rows it held the calling thread
// while the GPU was far behind. The W_UK absorption's q_pe copy ([T·n rows of 128 bytes]) took
// ~200 us of host time per layer on PP2's stage 0 with steps in flight, and that stage's GPU
// idled behind the host (H200s, 2026-11-28, bench/NOTES-dist.md). A kernel launch is queued like
// any other, whatever the queue's depth.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace mlaserve::ops::gpu {

// Copies `rows` rows of `width` bytes on the GPU: row i from src + i·src_pitch to
// dst + i·dst_pitch (the rows must not overlap). Each thread moves the widest unit (16, 8, 4, 2
// or 1 bytes) that divides the width, both pitches and both addresses.
void copy_rows_async(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width, size_t rows,
                     cudaStream_t stream);

}  // namespace mlaserve::ops::gpu
