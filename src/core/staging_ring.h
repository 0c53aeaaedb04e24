// StagingRing: the bookkeeping of a ring of host staging chunks for asynchronous uploads
// (core/upload.h). No CUDA here: what the ring needs from the device is a StagingBackend (pinned
// memory and one fence per chunk in upload.cc; a fake GPU in tests/core/staging_ring_test.cc).
//
// The rule. A queued copy reads its staging bytes when the GPU gets to it, not when it is
// queued, so bytes handed out once are never handed out again until that copy has run:
//   - reserve() hands out bytes from the current chunk, bumping an offset; within a round a
//     chunk's bytes are handed out once each.
//   - queued() says the copy reading the last reservation is queued: the backend re-marks the
//     chunk's fence behind it. All copies from one ring go to one stream, in order, so the
//     chunk's last mark covers every copy queued from it.
//   - When the current chunk has no room, the ring moves to the next chunk and waits (on the
//     host) for that chunk's fence before handing out its bytes again. The host blocks only when
//     it runs a whole ring of chunks ahead of the GPU's copies.
// A request larger than a chunk grows the chunk it lands in (after its fence, so no queued copy
// reads the memory that is freed).
#pragma once

#include <cstddef>
#include <vector>

namespace mlaserve {

class StagingBackend {
 public:
  virtual ~StagingBackend() = default;
  // Host memory the GPU's copy engine reads directly, aligned to StagingRing::kAlign (bytes is a
  // multiple of it).
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void mark(size_t chunk) = 0;       // a copy from `chunk` was just queued: the fence covers it
  virtual void wait(size_t chunk) = 0;       // the host waits until every copy marked on `chunk` has run
};

class StagingRing {
 public:
  static constexpr size_t kAlign = 64;  // every reservation starts on a 64-byte boundary

  // `backend` must outlive the ring; num_chunks >= 1, chunk_bytes >= kAlign.
  StagingRing(StagingBackend& backend, size_t num_chunks, size_t chunk_bytes);
  ~StagingRing();  // waits for every chunk, then releases them
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;

  // `bytes` of staging no queued copy still has to read; valid until the copy from it is queued.
  void* reserve(size_t bytes);
  // The copy that reads the last reservation is queued.
  void queued();

  size_t num_chunks() const { return chunks_.size(); }
  size_t current_chunk() const { return current_; }
  size_t chunk_capacity(size_t chunk) const { return chunks_.at(chunk).capacity; }

 private:
  struct Chunk {
    char* data = nullptr;
    size_t capacity = 0;
    size_t used = 0;  // bytes handed out this round
  };

  StagingBackend& backend_;
  size_t chunk_bytes_;
  std::vector<Chunk> chunks_;
  size_t current_ = 0;
};

}  // namespace mlaserve
