// write_latent_cache_cuda and gather_latent_cache_cuda (through the dispatch) against the CPU
// references on a bf16 cache [num_blocks, 64, 576] (DeepSeek's dc = 512, dr = 64): scattered
// slots with padding (-1), i32 and i64 slot mappings, shuffled block tables, T and S up to 4096.
// Both ops are copies, so the whole cache (untouched rows included: they start random) and the
// gathered rows must equal the CPU's bit for bit. Gather outputs are poisoned (NaN) first.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/latent_cache.h"

namespace mlaserve::ops {
namespace {

using testing::bf16_bits;
using testing::count_nan;
using testing::mismatches;
using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;

class LatentCacheCuda : public CudaOpTest {
 protected:
  // t new tokens into a cache of num_blocks blocks; every 5th token is padding (slot -1).
  void check_write(int64_t t, int64_t num_blocks, int64_t block_size, int64_t dc, int64_t dr, DType slot_dtype,
                   uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor cache = random_tensor({num_blocks, block_size, dc + dr}, DType::kBF16, rng);
    const Tensor latent = random_tensor({t, dc}, DType::kBF16, rng);
    const Tensor k_pe = random_tensor({t, dr}, DType::kBF16, rng);
    const Tensor slots = testing::random_slot_mapping(t, num_blocks * block_size, slot_dtype, rng);
    Tensor want = cache.clone();
    write_latent_cache_cpu(latent.to_f32(), k_pe.to_f32(), slots, want);

    Tensor got = cache.to(Device::kCUDA);
    write_latent_cache(latent.to(Device::kCUDA), k_pe.to(Device::kCUDA), slots.to(Device::kCUDA), got, stream());
    EXPECT_EQ(mismatches(bf16_bits(to_host(got)), bf16_bits(want)), 0) << "cache elements differ from the CPU's";
  }

  // The first s positions of a sequence whose blocks are a shuffled subset of the cache.
  void check_gather(int64_t s, int64_t num_blocks, int64_t block_size, int64_t dc, int64_t dr, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor cache = random_tensor({num_blocks, block_size, dc + dr}, DType::kBF16, rng);
    std::vector<int32_t> blocks(static_cast<size_t>(num_blocks));
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), rng);
    const auto max_blocks = static_cast<int64_t>((s + block_size - 1) / block_size + 2);  // spare entries
    blocks.resize(static_cast<size_t>(max_blocks));
    const Tensor table = testing::i32_tensor(blocks, {max_blocks});
    Tensor want_latent = Tensor::empty({s, dc}, DType::kF32), want_pe = Tensor::empty({s, dr}, DType::kF32);
    gather_latent_cache_cpu(cache, table, want_latent, want_pe);

    Tensor latent = poisoned_gpu({s, dc}, DType::kBF16), k_pe = poisoned_gpu({s, dr}, DType::kBF16);
    gather_latent_cache(cache.to(Device::kCUDA), table.to(Device::kCUDA), latent, k_pe, stream());
    const std::vector<float> got_latent = to_host(latent).to_vector(), got_pe = to_host(k_pe).to_vector();
    ASSERT_EQ(count_nan(got_latent) + count_nan(got_pe), 0) << "rows left unwritten";
    EXPECT_EQ(mismatches(got_latent, want_latent.to_vector()), 0);
    EXPECT_EQ(mismatches(got_pe, want_pe.to_vector()), 0);
  }
};

TEST_F(LatentCacheCuda, SmallWrite) {
  check_write(9, 3, 64, 512, 64, DType::kI64, 1);
  check_write(9, 3, 64, 512, 64, DType::kI32, 2);
}

TEST_F(LatentCacheCuda, SmallGather) { check_gather(70, 4, 64, 512, 64, 3); }

TEST_F(LatentCacheCuda, SmallTinyModelWidths) {  // 2-byte units: dc 12, dr 6, blocks of 4
  check_write(11, 5, 4, 12, 6, DType::kI64, 4);
  check_gather(13, 6, 4, 12, 6, 5);
}

TEST_F(LatentCacheCuda, SmallIndicesOutsideTheCacheAreNotFollowed) {
  std::mt19937_64 rng(6);
  const Tensor cache = random_tensor({2, 4, 16}, DType::kBF16, rng);
  const Tensor latent = random_tensor({3, 8}, DType::kBF16, rng), k_pe = random_tensor({3, 8}, DType::kBF16, rng);
  Tensor got = cache.to(Device::kCUDA);
  write_latent_cache(latent.to(Device::kCUDA), k_pe.to(Device::kCUDA),
                     testing::i32_tensor({8, -7, 1 << 30}, {3}).to(Device::kCUDA), got, stream());
  EXPECT_EQ(mismatches(bf16_bits(to_host(got)), bf16_bits(cache)), 0) << "a write outside the cache landed";

  Tensor out_latent = poisoned_gpu({8, 8}, DType::kBF16), out_pe = poisoned_gpu({8, 8}, DType::kBF16);
  gather_latent_cache(cache.to(Device::kCUDA), testing::i32_tensor({1, 2}, {2}).to(Device::kCUDA), out_latent, out_pe,
                      stream());
  const std::vector<float> lat = to_host(out_latent).to_vector(), rows = cache.to_vector();
  for (int64_t p = 0; p < 8; ++p) {
    for (int64_t c = 0; c < 8; ++c) {
      const float want = p < 4 ? rows[(4 + p) * 16 + c] : 0.0f;  // block 1, then block id 2 (outside): zeros
      EXPECT_EQ(lat[p * 8 + c], want) << "position " << p << " channel " << c;
    }
  }
}

TEST_F(LatentCacheCuda, WritePrefillChunk) { check_write(4096, 80, 64, 512, 64, DType::kI64, 11); }

TEST_F(LatentCacheCuda, WriteDecodeBatch) { check_write(128, 300, 64, 512, 64, DType::kI32, 12); }

TEST_F(LatentCacheCuda, GatherLongContext) { check_gather(4000, 100, 64, 512, 64, 13); }

}  // namespace
}  // namespace mlaserve::ops
