// Asynchronous host-to-GPU uploads of small per-step data (token ids, positions, cache slots,
// block tables, sampling options).
//
// Why not Tensor::to: cudaMemcpy from pageable memory first waits for all work queued before it
// (on the legacy stream: on every blocking stream), so a step's metadata copy would hold the host
// until the previous step has finished on the GPU, and the host could not queue step n + 1 while
// the GPU runs step n.
//
// upload_async copies the bytes into pinned staging memory owned by (device, stream) (a
// StagingRing of pinned chunks, core/staging_ring.h, whose bytes are reused only after an event
// says the copy that read them has run), queues cudaMemcpyAsync on the stream and returns at
// once. The device tensor comes from the caching allocator (core/memory.h), whose reuse is
// stream-ordered: use the tensor on `stream` only (or order other streams behind it), as every
// temporary of a step. The source may be changed or freed as soon as the call returns.
//
// Not under CUDA-graph capture (it fails with a clear error): a captured copy would re-read the
// staging address at every replay, after the ring has handed it out again. Graphs feed their
// static input tensors outside the capture (engine/decode_graphs.h).
//
// A stream that receives uploads must not be destroyed while the process still uploads on
// another stream created later with the same handle (the model's streams live as long as the
// process). Builds without CUDA have no GPU: upload_async fails there.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace mlaserve {

// A new GPU tensor of `shape` and `dtype` holding the bytes at `data` (numel · dtype size bytes),
// copied asynchronously on `stream`.
Tensor upload_async(const void* data, Shape shape, DType dtype, Stream stream);

template <typename T>
Tensor upload_async(const std::vector<T>& values, Stream stream) {
  return upload_async(values.data(), {static_cast<int64_t>(values.size())}, dtype_of<T>(), stream);
}

}  // namespace mlaserve
