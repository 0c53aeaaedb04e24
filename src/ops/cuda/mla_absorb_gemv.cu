// Launches of the MLA absorption GEMVs (mla_absorb_gemv.h); the design note and the kernels are
// in mla_absorb_gemv.cuh. The shapes are checked by the caller, mla_absorb_cuda.cc.
#include "ops/cuda/mla_absorb_gemv.cuh"

#include "core/error.h"

namespace mlaserve::ops::gpu {
namespace {

// kernel<kT> for kT = T rounded up to 1, 2, 4 or 8.
template <template <int> class Launch, typename Params>
void by_tokens(const Params& p, dim3 grid, int threads, cudaStream_t stream) {
  MLA_CHECK(p.t >= 1 && p.t <= kAbsorbGemvMaxTokens, "MLA absorption GEMV: {} tokens (1 to {})", p.t,
            kAbsorbGemvMaxTokens);
  if (p.t <= 1) return Launch<1>::run(p, grid, threads, stream);
  if (p.t <= 2) return Launch<2>::run(p, grid, threads, stream);
  if (p.t <= 4) return Launch<4>::run(p, grid, threads, stream);
  Launch<8>::run(p, grid, threads, stream);
}

template <int kT>
struct AbsorbLaunch {
  static void run(const MlaAbsorbGemvParams& p, dim3 grid, int threads, cudaStream_t stream) {
    launch_programmatic(mla_absorb_gemv_kernel<kT>, grid, threads, 0, stream, p);
  }
};

template <int kT>
struct UpLaunch {
  static void run(const MlaUpGemvParams& p, dim3 grid, int threads, cudaStream_t stream) {
    launch_programmatic(mla_up_gemv_kernel<kT>, grid, threads, 0, stream, p);
  }
};

}  // namespace

void launch_mla_absorb_gemv(const MlaAbsorbGemvParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.dc + kAbsorbCols - 1) / kAbsorbCols), static_cast<unsigned>(p.n));
  by_tokens<AbsorbLaunch>(p, grid, kAbsorbThreads, stream);
}

void launch_mla_up_gemv(const MlaUpGemvParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.dv + kUpRows - 1) / kUpRows), static_cast<unsigned>(p.n));
  by_tokens<UpLaunch>(p, grid, kUpThreads, stream);
}

}  // namespace mlaserve::ops::gpu
