// The rate behind the benchmarks' HBM floors: device-to-device copy bandwidth on the GPU, measured
// in the same run as the figures it divides. 1 GiB copied from one buffer to another, counted as
// bytes read + written (2 GiB per copy); the median of 20 copies timed with CUDA events on
// `stream`, after 3 untimed ones. Two ways to copy, and a program says which it reports:
//   memcpy_gbps       cudaMemcpyAsync (what every floor here uses);
//   copy_kernel_gbps  a grid-stride kernel moving 16-byte vectors, 1024 x 256 threads: what a
//                     plain streaming kernel reaches, next to the copy engine's path.
// And, for the floors of small memory-bound kernels, `stream_read`: one read of a buffer by every
// SM, timed as the caller times the kernel it stands beside (launch, ramp and drain included).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mlaserve::bench {

double memcpy_gbps(cudaStream_t stream);
double copy_kernel_gbps(cudaStream_t stream);

// Enqueues one streaming read of bytes at p, which no one uses: the fastest a kernel brings those
// bytes in from HBM. Two ways, since neither wins at every size: kLoads, 16-byte loads, four in flight
// a thread, 8 CTAs of 256 threads an SM; kBulk, bulk copies (cp.async.bulk) of 16 KB into a ring of
// six shared-memory slots, one thread of each of 2 CTAs an SM. bytes must be a multiple of 16 and
// p 16-byte aligned.
enum class ReadWay { kLoads, kBulk };
void stream_read(const void* p, int64_t bytes, ReadWay way, cudaStream_t stream);

}  // namespace mlaserve::bench
