// Device dispatch of embedding.h (see dispatch.h).
#include "ops/embedding.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void embedding(const Tensor& ids, const Tensor& table, Tensor& out, Stream stream) {
  if (!on_gpu(out)) return embedding_cpu(ids, table, out);
#ifdef MLASERVE_WITH_CUDA
  embedding_cuda(ids, table, out, cuda_stream(stream));
#else
  no_gpu_path("embedding");
#endif
}

void gather_fp8_rows(const Tensor& ids, const Tensor& x_q, const Tensor& x_scales, Tensor& out_q, Tensor& out_scales,
                     Stream stream) {
  if (!on_gpu(out_q)) return gather_fp8_rows_cpu(ids, x_q, x_scales, out_q, out_scales);
#ifdef MLASERVE_WITH_CUDA
  gather_fp8_rows_cuda(ids, x_q, x_scales, out_q, out_scales, cuda_stream(stream));
#else
  no_gpu_path("gather_fp8_rows");
#endif
}

}  // namespace mlaserve::ops
