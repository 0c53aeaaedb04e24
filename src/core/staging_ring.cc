#include "core/staging_ring.h"

#include "core/error.h"

namespace mlaserve {
namespace {

size_t round_up(size_t bytes, size_t unit) { return (bytes + unit - 1) / unit * unit; }

}  // namespace

StagingRing::StagingRing(StagingBackend& backend, size_t num_chunks, size_t chunk_bytes)
    : backend_(backend), chunk_bytes_(round_up(chunk_bytes, kAlign)), chunks_(num_chunks) {
  MLA_CHECK(num_chunks >= 1 && chunk_bytes >= kAlign, "StagingRing: {} chunks of {} bytes (need >= 1 of >= {})",
            num_chunks, chunk_bytes, kAlign);
  for (Chunk& c : chunks_) {
    c.data = static_cast<char*>(backend_.allocate(chunk_bytes_));
    c.capacity = chunk_bytes_;
  }
}

StagingRing::~StagingRing() {
  for (size_t i = 0; i < chunks_.size(); ++i) {
    try {
      backend_.wait(i);
      backend_.release(chunks_[i].data);
    } catch (...) {  // a failed device: keep the memory rather than free what a copy may read
    }
  }
}

void* StagingRing::reserve(size_t bytes) {
  const size_t size = round_up(bytes == 0 ? 1 : bytes, kAlign);
  Chunk* c = &chunks_[current_];
  if (c->used + size > c->capacity) {  // the next chunk, once the GPU has read what it holds
    current_ = (current_ + 1) % chunks_.size();
    c = &chunks_[current_];
    backend_.wait(current_);
    c->used = 0;
    if (c->capacity < size) {
      backend_.release(c->data);
      c->data = nullptr;
      c->capacity = 0;
      const size_t grown = round_up(size, chunk_bytes_);
      c->data = static_cast<char*>(backend_.allocate(grown));
      c->capacity = grown;
    }
  }
  void* p = c->data + c->used;
  c->used += size;
  return p;
}

void StagingRing::queued() { backend_.mark(current_); }

}  // namespace mlaserve
