// Weights that kernels later in a step read, for a GPU kernel's CTAs to pull into L2 while they
// wait for the kernel before them (programmatic launch, src/ops/cuda/pdl.cuh): a hint that changes
// no result, only where the bytes come from when the later kernel reads them.
//
// Why: at batch 1 the step is a chain of kernels that each wait for the one before, and HBM idles
// through the short ones (the fused MLA attention leaves it ~70% idle for ~15 us a layer). The
// CTAs of o_proj's GEMV are launched early in that attention and sit on the SMs it leaves; reading
// the shared experts' down projection and the next layer's query projection into L2 from there
// moves two of the step's critical-path weight passes off HBM (bench/NOTES-engine.md, the
// seventy-second session: V2-Lite BF16 batch 1 -1.8% on an H100).
//
// Only the bf16 GEMV on the CUDA cores (1-3 tokens, src/ops/cuda/linear_gemv.cuh) issues it; the
// CPU and every other path ignore it.
#pragma once

#include <array>
#include <cstddef>

namespace mlaserve::ops {

struct L2Prefetch {
  const void* data = nullptr;  // device memory that no kernel of the step writes (weights)
  size_t bytes = 0;
};

inline constexpr size_t kMaxL2Prefetches = 2;
using L2Prefetches = std::array<L2Prefetch, kMaxL2Prefetches>;

// Whether any region has bytes: most calls carry none, and then launch code asks nothing further.
inline bool any_l2_prefetch(const L2Prefetches& regions) {
  for (const L2Prefetch& r : regions) {
    if (r.bytes != 0) return true;
  }
  return false;
}

// The regions of `wanted` worth issuing on a GPU whose L2 holds l2_bytes: in order, each kept
// while the kept ones sum to at most half of it (the other half for what the kernels between
// read: a region pulled in and pushed out before its reader comes costs a second HBM pass);
// empty ones dropped. V2-Lite's shared down and q_proj (11.5 + 12.6 MB) fit an H100's 50 MB; V3's
// (29 + 22 MB as bf16) do not.
inline L2Prefetches l2_prefetches_within(const L2Prefetches& wanted, size_t l2_bytes) {
  L2Prefetches kept{};
  size_t n = 0, left = l2_bytes / 2;
  for (const L2Prefetch& r : wanted) {
    if (r.data == nullptr || r.bytes == 0 || r.bytes > left) continue;
    kept[n++] = r;
    left -= r.bytes;
  }
  return kept;
}

}  // namespace mlaserve::ops
