// The rate behind the benchmarks' HBM floors: device-to-device copy bandwidth on the GPU, measured
// in the same run as the figures it divides. 1 GiB copied from one buffer to another, counted as
// bytes read + written (2 GiB per copy); the median of 20 copies timed with CUDA events on
// `stream`, after 3 untimed ones. Two ways to copy, and a program says which it reports:
//   memcpy_gbps       cudaMemcpyAsync (what every floor here uses);
//   copy_kernel_gbps  a grid-stride kernel moving 16-byte vectors, 1024 x 256 threads: what a
//                     plain streaming kernel reaches, next to the copy engine's path.
#pragma once

#include <cuda_runtime_api.h>

namespace mlaserve::bench {

double memcpy_gbps(cudaStream_t stream);
double copy_kernel_gbps(cudaStream_t stream);

}  // namespace mlaserve::bench
