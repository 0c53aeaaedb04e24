// The peer all-reduce kernels (dist/peer_all_reduce.h describes the two protocols).
#include "dist/peer_all_reduce_kernel.h"

#include "core/cuda_check.h"
#include "ops/cuda/pdl.cuh"

namespace mlaserve::dist {
namespace {

constexpr int kThreads = 512;

__device__ bool aborted(const PeerBuffers& b) { return *reinterpret_cast<const volatile int32_t*>(b.abort_flag) != 0; }

// This block's share [lo, hi) of a call's n items.
struct Share {
  int64_t lo, hi;
};

// The start of a call in every block: it waits for the kernel before it (x, and the counters the
// last call wrote), lets the next one launch (the norm after the sum launches while this one
// waits for its peers), and takes its share of the n items.
__device__ Share begin_call(int64_t n) {
  ops::gpu::grid_dependency_wait();
  ops::gpu::launch_dependents();
  const int64_t per = (n + kPeerBlocks - 1) / kPeerBlocks;
  const int64_t lo = min(n, static_cast<int>(blockIdx.x) * per);
  return {lo, min(n, lo + per)};
}

// ---- Flag protocol ---------------------------------------------------------------------------

__device__ float4* region(const PeerBuffers& b, int owner, int slot, int source) {
  return reinterpret_cast<float4*>(b.base[owner] + (int64_t{slot} * b.size + source) * b.region_bytes);
}

__device__ uint32_t* flag(const PeerBuffers& b, int owner, int block, int source) {
  return reinterpret_cast<uint32_t*>(b.base[owner] + peer_flags_offset(b.size, b.region_bytes)) +
         block * kPeerMaxRanks + source;
}

__device__ void store_release_sys(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ uint32_t load_acquire_sys(const uint32_t* p) {
  uint32_t v = 0;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// x: [n4] float4, in place.
__global__ void __launch_bounds__(kThreads) all_reduce_by_flags(PeerBuffers b, float4* x, int64_t n4) {
  const auto [lo, hi] = begin_call(n4);
  const int blk = static_cast<int>(blockIdx.x);
  const uint32_t epoch = b.counters[blk] + 1;  // the last call's kernel wrote it
  const int slot = static_cast<int>(epoch & 1);

  // This share of the input into region [slot][rank] of every rank, then the flags.
  for (int p = 0; p < b.size; ++p) {
    float4* dst = region(b, p, slot, b.rank);
    for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) dst[i] = x[i];
  }
  __syncthreads();  // every thread's stores, then the release (cumulative) by one thread per rank
  if (static_cast<int>(threadIdx.x) < b.size) {
    const int p = static_cast<int>(threadIdx.x);
    store_release_sys(flag(b, p, blk, b.rank), epoch);
    const uint32_t* arrived = flag(b, b.rank, blk, p);  // rank p's share of this call is here
    for (uint32_t spins = 1; static_cast<int32_t>(load_acquire_sys(arrived) - epoch) < 0; ++spins) {
      if (spins % 1024 == 0 && aborted(b)) break;
    }
  }
  __syncthreads();

  // The sum in rank order, read from L2 (the peers wrote these lines over NVLink).
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
    float4 acc = __ldcg(region(b, b.rank, slot, 0) + i);
    for (int p = 1; p < b.size; ++p) {
      const float4 v = __ldcg(region(b, b.rank, slot, p) + i);
      acc.x += v.x;
      acc.y += v.y;
      acc.z += v.z;
      acc.w += v.w;
    }
    x[i] = acc;
  }
  if (threadIdx.x == 0) b.counters[blk] = epoch;
}

// ---- Packet protocol -------------------------------------------------------------------------

__device__ uint4* packets(const PeerBuffers& b, int owner, int slot, int source) {
  return reinterpret_cast<uint4*>(b.base[owner] + peer_packets_offset(b.size, b.region_bytes) +
                                  (int64_t{slot} * b.size + source) * 2 * kPeerPacketBytes);
}

// One 16-byte store: 8-byte halves are each written whole, so a reader that sees a half's epoch
// sees its value.
__device__ void store_packet(uint4* p, uint4 v) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
               : "memory");
}

__device__ uint4 load_packet(const uint4* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p)
               : "memory");
  return v;
}

// x: [n2] float2, in place; packet i carries x[i] as {x.x, epoch, x.y, epoch}.
__global__ void __launch_bounds__(kThreads) all_reduce_by_packets(PeerBuffers b, float2* x, int64_t n2) {
  const auto [lo, hi] = begin_call(n2);
  uint32_t* counter = b.counters + kPeerBlocks + static_cast<int>(blockIdx.x);
  const uint32_t epoch = *counter + 1;  // the last call's kernel wrote it
  const int slot = static_cast<int>(epoch & 1);

  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
    const float2 v = x[i];
    const uint4 packet{__float_as_uint(v.x), epoch, __float_as_uint(v.y), epoch};
    for (int p = 0; p < b.size; ++p) store_packet(packets(b, p, slot, b.rank) + i, packet);
  }
  // The sum in rank order, each packet waited for where it lands.
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
    float2 acc{0.0f, 0.0f};
    for (int p = 0; p < b.size; ++p) {
      const uint4* src = packets(b, b.rank, slot, p) + i;
      uint4 q = load_packet(src);
      for (uint32_t spins = 1; q.y != epoch || q.w != epoch; ++spins) {
        if (spins % 1024 == 0 && aborted(b)) break;
        q = load_packet(src);
      }
      const float2 v{__uint_as_float(q.x), __uint_as_float(q.z)};
      acc = p == 0 ? v : float2{acc.x + v.x, acc.y + v.y};
    }
    x[i] = acc;
  }
  __syncthreads();  // every thread has read the epoch before it moves on
  if (threadIdx.x == 0) *counter = epoch;
}

}  // namespace

void launch_peer_all_reduce(const PeerBuffers& b, float* x, int64_t n, cudaStream_t stream) {
  if (n * int64_t{sizeof(float)} <= kPeerPacketBytes) {
    ops::gpu::launch_programmatic(all_reduce_by_packets, kPeerBlocks, kThreads, 0, stream, b,
                                  reinterpret_cast<float2*>(x), n / 2);
  } else {
    ops::gpu::launch_programmatic(all_reduce_by_flags, kPeerBlocks, kThreads, 0, stream, b,
                                  reinterpret_cast<float4*>(x), n / 4);
  }
}

}  // namespace mlaserve::dist
