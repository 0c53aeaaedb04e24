// Device dispatch of latent_rows.h (see dispatch.h).
#include "ops/latent_rows.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void latent_rows(const LatentRowInputs& in, LatentRowOutputs& out, Stream stream) {
  if (!on_gpu(out.latent)) return latent_rows_cpu(in, out);
#ifdef MLASERVE_WITH_CUDA
  latent_rows_cuda(in, out, cuda_stream(stream));
#else
  no_gpu_path("latent_rows");
#endif
}

}  // namespace mlaserve::ops
