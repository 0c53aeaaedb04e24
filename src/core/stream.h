// Stream: where an op runs. A default Stream is the host; one holding a CUDA stream (as an
// opaque handle, so that CPU-only code needs no CUDA headers) runs GPU ops asynchronously on it.
// Ops dispatch on their tensors' device; the stream only says where GPU work is queued.
#pragma once

namespace mlaserve {

struct Stream {
  void* cuda = nullptr;  // cudaStream_t; nullptr is the legacy default stream
};

}  // namespace mlaserve
