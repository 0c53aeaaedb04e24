// StagingRing's reuse rule against a fake GPU: copies queued from the staging run only when the
// fake GPU gets to them (in order, as on one stream), so a ring that hands out bytes again before
// their copy has run makes some destination differ from its source.
#include "core/staging_ring.h"

#include <gtest/gtest.h>

#include "core/error.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

namespace mlaserve {
namespace {

// A stream of queued copies from staging memory into host vectors, run on demand.
class FakeGpu final : public StagingBackend {
 public:
  explicit FakeGpu(size_t num_chunks, bool honour_waits = true) : fences_(num_chunks, 0), honour_(honour_waits) {}

  void* allocate(size_t bytes) override {
    blocks_.emplace_back(static_cast<char*>(std::aligned_alloc(StagingRing::kAlign, bytes)), &std::free);
    ++allocations;
    return blocks_.back().get();
  }
  void release(void* p) override {
    if (p != nullptr) ++releases;
  }
  void mark(size_t chunk) override { fences_.at(chunk) = queue_.size(); }
  void wait(size_t chunk) override {
    ++waits;
    if (honour_) run_until(fences_.at(chunk));
  }

  void enqueue(const void* src, size_t bytes, std::vector<uint8_t>* dst) { queue_.push_back({src, bytes, dst}); }
  void run_until(size_t n) {  // the first n copies ever queued have run
    for (; done_ < n && done_ < queue_.size(); ++done_) {
      const Copy& c = queue_[done_];
      c.dst->resize(c.bytes);
      std::memcpy(c.dst->data(), c.src, c.bytes);
    }
  }
  void run_more(size_t n) { run_until(done_ + n); }
  void run_all() { run_until(queue_.size()); }
  size_t pending() const { return queue_.size() - done_; }

  int allocations = 0, releases = 0, waits = 0;

 private:
  struct Copy {
    const void* src;
    size_t bytes;
    std::vector<uint8_t>* dst;
  };
  std::vector<std::unique_ptr<char, decltype(&std::free)>> blocks_;  // freed with the fake (a released block may be read by a late copy)
  std::vector<Copy> queue_;
  std::vector<size_t> fences_;  // per chunk: copies queued when it was last marked
  size_t done_ = 0;
  bool honour_;
};

struct Upload {
  std::vector<uint8_t> source, device;
};

// Uploads `count` random arrays of 1 .. max_bytes bytes back to back; the fake GPU runs a random
// share of the queued copies now and then (a GPU behind the host by a varying amount). Returns
// how many uploads reached their destination with other bytes than their source.
int upload_and_count_mismatches(StagingRing& ring, FakeGpu& gpu, int count, size_t max_bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> size(1, max_bytes);
  std::vector<std::unique_ptr<Upload>> uploads;
  for (int i = 0; i < count; ++i) {
    auto u = std::make_unique<Upload>();
    u->source.resize(size(rng));
    for (uint8_t& b : u->source) b = static_cast<uint8_t>(rng());
    void* staged = ring.reserve(u->source.size());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(staged) % StagingRing::kAlign, 0u);
    std::memcpy(staged, u->source.data(), u->source.size());
    gpu.enqueue(staged, u->source.size(), &u->device);
    ring.queued();
    if (rng() % 8 == 0) gpu.run_more(gpu.pending() / 2);
    uploads.push_back(std::move(u));
  }
  gpu.run_all();
  int mismatches = 0;
  for (const auto& u : uploads) mismatches += u->device != u->source;
  return mismatches;
}

TEST(StagingRing, EveryCopyReadsItsOwnBytes) {
  for (size_t chunks : {1, 2, 4}) {
    FakeGpu gpu(chunks);
    StagingRing ring(gpu, chunks, 4096);
    EXPECT_EQ(upload_and_count_mismatches(ring, gpu, 2000, 1500, 7 + static_cast<uint32_t>(chunks)), 0)
        << chunks << " chunks";
    EXPECT_GT(gpu.waits, 0);  // the ring wrapped around
  }
}

// The check above can fail: the same ring over a GPU that ignores waits overwrites queued bytes.
TEST(StagingRing, ACheckThatCatchesReuseBeforeTheCopy) {
  FakeGpu gpu(2, /*honour_waits=*/false);
  StagingRing ring(gpu, 2, 4096);
  EXPECT_GT(upload_and_count_mismatches(ring, gpu, 500, 1500, 3), 0);
}

TEST(StagingRing, WaitsOnlyWhenMovingToAChunk) {
  FakeGpu gpu(3);
  StagingRing ring(gpu, 3, 1024);
  for (int i = 0; i < 16; ++i) ring.reserve(64);  // exactly one chunk
  EXPECT_EQ(gpu.waits, 0);
  EXPECT_EQ(ring.current_chunk(), 0u);
  ring.reserve(1);  // 64 bytes in chunk 1 (every reservation is rounded up to 64)
  EXPECT_EQ(gpu.waits, 1);
  EXPECT_EQ(ring.current_chunk(), 1u);
  ring.reserve(1000);  // does not fit after those 64: chunk 2
  ring.reserve(1000);  // back to chunk 0
  EXPECT_EQ(ring.current_chunk(), 0u);
  EXPECT_EQ(gpu.waits, 3);
}

TEST(StagingRing, GrowsAChunkForALargeRequestAfterItsCopiesRan) {
  FakeGpu gpu(2);
  StagingRing ring(gpu, 2, 1024);
  std::vector<uint8_t> small(100, 1), large(5000, 2), small_out, large_out;
  void* s = ring.reserve(small.size());
  std::memcpy(s, small.data(), small.size());
  gpu.enqueue(s, small.size(), &small_out);
  ring.queued();
  void* l = ring.reserve(large.size());  // chunk 1, grown to 5 KiB
  std::memcpy(l, large.data(), large.size());
  gpu.enqueue(l, large.size(), &large_out);
  ring.queued();
  EXPECT_EQ(ring.current_chunk(), 1u);
  EXPECT_EQ(ring.chunk_capacity(1), 5120u);
  EXPECT_EQ(ring.chunk_capacity(0), 1024u);
  EXPECT_EQ(gpu.releases, 1);
  gpu.run_all();
  EXPECT_EQ(small_out, small);
  EXPECT_EQ(large_out, large);
}

TEST(StagingRing, RejectsAnEmptyRing) {
  FakeGpu gpu(1);
  EXPECT_THROW((StagingRing{gpu, 0, 1024}), Error);
  EXPECT_THROW((StagingRing{gpu, 1, 8}), Error);
}

}  // namespace
}  // namespace mlaserve
