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

}  // namespace mlaserve::ops
