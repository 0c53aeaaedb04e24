// Device dispatch of paged_mha_decode.h (see dispatch.h).
#include "ops/paged_mha_decode.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void paged_mha_decode(const PagedMhaDecodeArgs& args, AttentionState& out, Stream stream) {
  if (!on_gpu(out.out)) return paged_mha_decode_cpu(args, out);
#ifdef MLASERVE_WITH_CUDA
  paged_mha_decode_cuda(args, out, cuda_stream(stream));
#else
  no_gpu_path("paged_mha_decode");
#endif
}

}  // namespace mlaserve::ops
