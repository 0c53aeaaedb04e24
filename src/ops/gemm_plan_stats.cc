// Device dispatch of gemm_plan_stats.h.
#include "ops/gemm_plan_stats.h"

#ifdef MLASERVE_WITH_CUDA
#include "ops/cuda/cublaslt_gemm.h"
#endif

namespace mlaserve::ops {

GemmPlanStats gemm_plan_stats() {
#ifdef MLASERVE_WITH_CUDA
  return cuda::lt_plan_stats();
#else
  return {};
#endif
}

}  // namespace mlaserve::ops
