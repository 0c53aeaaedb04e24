// The kernels of dist/peer_all_reduce.h (that file describes the two protocols) and their view of
// the buffers.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#ifdef __CUDACC__
#define MLA_PEER_HD __host__ __device__
#else
#define MLA_PEER_HD
#endif

namespace mlaserve::dist {

constexpr int kPeerMaxRanks = 8;
constexpr int kPeerBlocks = 16;  // blocks of every call: block b's flags and epochs are its own
constexpr int64_t kPeerPacketBytes = 128 * 1024;  // the largest tensor the packet protocol sums

// A rank's buffer, where the other ranks write:
//   [2 slots][size][region_bytes] values (flag protocol);
//   [kPeerBlocks][kPeerMaxRanks] u32 flags (flag protocol);
//   [2 slots][size][2 · kPeerPacketBytes] packets (packet protocol): 16 bytes, two values each
//   beside the call's epoch.
struct PeerBuffers {
  char* base[kPeerMaxRanks];  // every rank's buffer as this process addresses it
  uint32_t* counters;         // [2][kPeerBlocks] this rank's epochs: flag protocol, packet protocol
  const int32_t* abort_flag;  // host memory mapped for the device: non-zero ends every wait
  int64_t region_bytes;       // max_bytes
  int rank, size;
};

MLA_PEER_HD inline int64_t peer_flags_offset(int size, int64_t region_bytes) { return 2 * size * region_bytes; }
MLA_PEER_HD inline int64_t peer_packets_offset(int size, int64_t region_bytes) {
  return peer_flags_offset(size, region_bytes) + kPeerBlocks * kPeerMaxRanks * int64_t{sizeof(uint32_t)};
}
inline int64_t peer_buffer_bytes(int size, int64_t region_bytes) {
  return peer_packets_offset(size, region_bytes) + 2 * size * 2 * kPeerPacketBytes;
}

// x [n] f32 (n a multiple of 4, 16-byte aligned, 4·n <= region_bytes) becomes the sum over ranks:
// by packets up to kPeerPacketBytes, by flags above.
void launch_peer_all_reduce(const PeerBuffers& b, float* x, int64_t n, cudaStream_t stream);

}  // namespace mlaserve::dist
