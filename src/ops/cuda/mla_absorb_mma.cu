// Launch of the MLA absorption's tensor-core GEMM (mla_absorb_mma.h); the design note and the
// kernel are in mla_absorb_mma.cuh. The shapes are checked by the caller, mla_absorb_cuda.cc.
#include "ops/cuda/mla_absorb_mma.cuh"

#include "ops/cuda/mla_absorb_mma.h"

#include "core/error.h"
#include "ops/cuda/gpu_checks.h"

namespace mlaserve::ops::gpu {

bool mla_absorb_mma_applies(const MlaAbsorbGemvParams& p) {
  return p.t >= 1 && p.t <= kAbsorbMmaMaxTokens && p.n >= 1 && p.dn > 0 && p.dn % 16 == 0 && p.dr > 0 &&
         p.dr % 8 == 0 && p.dc > 0 && p.dc % kAbsorbMmaCols == 0 && p.rph > p.dn && aligned16(p.q) &&
         aligned16(p.w) && aligned16(p.q_abs);
}

void launch_mla_absorb_mma(const MlaAbsorbGemvParams& p, cudaStream_t stream) {
  MLA_CHECK(mla_absorb_mma_applies(p),
            "MLA absorption MMA: unsupported problem (T {}, n {}, dn {}, dr {}, dc {}, rph {}; needs 1 <= T <= {}, "
            "dn % 16 == 0, dr % 8 == 0, dc % {} == 0, 16-byte aligned q, w_kv_b, q_abs)",
            p.t, p.n, p.dn, p.dr, p.dc, p.rph, kAbsorbMmaMaxTokens, kAbsorbMmaCols);
  const dim3 grid(static_cast<unsigned>(p.dc / kAbsorbMmaCols),
                  static_cast<unsigned>((p.t + kAbsorbMmaRows - 1) / kAbsorbMmaRows), static_cast<unsigned>(p.n));
  launch_programmatic(mla_absorb_mma_kernel, grid, kAbsorbMmaThreads, 0, stream, p);
}

}  // namespace mlaserve::ops::gpu
