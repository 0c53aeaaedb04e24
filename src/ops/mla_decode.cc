// Device dispatch of mla_decode.h (see dispatch.h).
#include "ops/mla_decode.h"

#include "ops/dispatch.h"

namespace mlaserve::ops {

void mla_decode(const MlaDecodeArgs& args, MlaDecodeOutputs& outputs, const MlaDecodeSchedule* schedule, Stream stream) {
  if (!on_gpu(outputs.out)) return mla_decode_cpu(args, outputs);
#ifdef MLASERVE_WITH_CUDA
  if (schedule != nullptr) return mla_decode_cuda(args, outputs, *schedule, cuda_stream(stream));
  return mla_decode_cuda(args, outputs, cuda_stream(stream));
#else
  no_gpu_path("mla_decode");
#endif
}

}  // namespace mlaserve::ops
