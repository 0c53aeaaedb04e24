// Device dispatch of linear_fp8.h (see dispatch.h).
#include "ops/linear_fp8.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void linear_fp8(const Tensor& x, const Tensor& w_q, const Tensor& w_scale_inv, const ActQuantParams& act, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return linear_fp8_cpu(x, w_q, w_scale_inv, act, out);
  no_gpu_path("linear_fp8");
}

}  // namespace mlaserve::ops
