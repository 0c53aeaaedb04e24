// Device dispatch of the op contracts. Every op header declares
//   op_cpu(...)                      the plain fp32 reference (host tensors, f32 activations)
//   op_cuda(..., cudaStream_t)       the GPU implementation (device tensors, bf16 activations
//                                    unless the header says otherwise), in CUDA builds only
//   op(..., Stream)                  the one dispatch point the model graph calls: by the
//                                    device of the op's output tensor
// The dispatch functions live in src/ops/<op>.cc. In a build without CUDA, or for an op whose
// GPU side is absent, a GPU tensor is an error that names the op: never a silent host fallback.
#pragma once

#include <string_view>

#include "core/error.h"
#include "core/stream.h"
#include "core/tensor.h"

#ifdef MLASERVE_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace mlaserve::ops {

inline bool on_gpu(const Tensor& t) { return t.device() == Device::kCUDA; }

[[noreturn]] inline void no_gpu_path(std::string_view op) {
#ifdef MLASERVE_WITH_CUDA
  MLA_FAIL("{}: called with GPU tensors, but this op has no CUDA implementation", op);
#else
  MLA_FAIL("{}: called with GPU tensors in a build without CUDA", op);
#endif
}

#ifdef MLASERVE_WITH_CUDA
inline cudaStream_t cuda_stream(Stream s) { return static_cast<cudaStream_t>(s.cuda); }
#endif

}  // namespace mlaserve::ops
