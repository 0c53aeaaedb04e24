// latent_rows_cuda (through the dispatch) against latent_rows_cpu (rms_norm_cpu, then
// apply_rope_interleaved_cpu, then write_latent_cache_cpu) at DeepSeek's dc = 512, dr = 64 with
// V3's YaRN table (163,840 positions, the last one used), T = 1 .. 4096, i32 and i64 positions and
// slots, every fifth token padding (slot -1), bf16 and f32 norm weights; and without a cache
// write (the MHA cache layout). latent and k_pe are poisoned (NaN) first.
//
// Tolerances, from the precision. Both sides see the same bf16 ckv. latent: the GPU's fp32 sum of
// squares differs from the CPU's only in order (~1e-7 relative) and its output is rounded once
// to bf16, so each row's relative L2 error is below 2^-8 = 3.9e-3 (rms_norm_cuda_test's 4e-3).
// k_pe: one rotation in fp32 from the same table values, rounded once: |got - want| <=
// 2^-8 |want| + 1e-6 (|x0| + |x1|) per element (rope_cuda_test's bound). The cache: rows
// without a slot must keep their (random) contents bit for bit, and each written row must equal
// the GPU's own latent and k_pe outputs bit for bit (one value, stored twice).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/latent_cache.h"
#include "ops/latent_rows.h"
#include "ops/rope.h"

namespace mlaserve::ops {
namespace {

using testing::bf16_bits;
using testing::count_nan;
using testing::CudaOpTest;
using testing::mismatches;
using testing::poisoned_gpu;
using testing::random_tensor;

struct Case {
  int64_t t = 1, dc = 512, dr = 64, positions = 163840, blocks = 8;
  DType index_dtype = DType::kI32, weight_dtype = DType::kBF16;
  bool write = true;
  bool out_of_range_position = false;  // token 1 at position P: zeros in k_pe
};

class LatentRowsCuda : public CudaOpTest {
 protected:
  void check(const Case& c, uint64_t seed) {
    std::mt19937_64 rng(seed);
    SCOPED_TRACE("T " + std::to_string(c.t) + " seed " + std::to_string(seed));
    Tensor table = Tensor::empty({c.positions, c.dr}, DType::kF32);
    build_rope_cos_sin_cpu(testing::deepseek_yarn(c.dr), table);
    const Tensor ckv = random_tensor({c.t, c.dc + c.dr}, DType::kBF16, rng, 2.0f);
    const Tensor weight = random_tensor({c.dc}, c.weight_dtype, rng, 0.5f);
    std::uniform_int_distribution<int64_t> pick(0, c.positions - 1);
    Tensor pos = Tensor::empty({c.t}, c.index_dtype);
    for (int64_t i = 0; i < c.t; ++i) {
      int64_t p = i == 0 ? c.positions - 1 : pick(rng);
      if (c.out_of_range_position && i == 1) p = c.positions;
      if (c.index_dtype == DType::kI32) {
        pos.data<int32_t>()[i] = static_cast<int32_t>(p);
      } else {
        pos.data<int64_t>()[i] = p;
      }
    }
    const Tensor cache = random_tensor({c.blocks, 64, c.dc + c.dr}, DType::kBF16, rng);
    const Tensor slots = testing::random_slot_mapping(c.t, c.blocks * 64, c.index_dtype, rng);
    constexpr float kEps = 1e-6f;

    LatentRowOutputs want{Tensor::empty({c.t, c.dc}, DType::kF32), Tensor::empty({c.t, c.dr}, DType::kF32), Tensor(),
                          Tensor()};
    Tensor cpu_pos = pos.clone();  // the CPU reference refuses a position outside the table: token 1 at 0 there
    if (c.out_of_range_position && c.index_dtype == DType::kI32) cpu_pos.data<int32_t>()[1] = 0;
    if (c.out_of_range_position && c.index_dtype == DType::kI64) cpu_pos.data<int64_t>()[1] = 0;
    latent_rows_cpu({ckv.to_f32(), weight, kEps, cpu_pos, table}, want);
    if (c.out_of_range_position) {  // the GPU writes zeros into k_pe there (rope.h)
      for (int64_t i = 0; i < c.dr; ++i) want.k_pe.data<float>()[c.dr + i] = 0.0f;
    }

    LatentRowOutputs got{poisoned_gpu({c.t, c.dc}, DType::kBF16), poisoned_gpu({c.t, c.dr}, DType::kBF16),
                         c.write ? slots.to(Device::kCUDA) : Tensor(), cache.to(Device::kCUDA)};
    latent_rows({ckv.to(Device::kCUDA), weight.to(Device::kCUDA), kEps, pos.to(Device::kCUDA), table.to(Device::kCUDA)},
                got, stream());
    const Tensor latent = to_host(got.latent), k_pe = to_host(got.k_pe), cache_after = to_host(got.cache);

    const std::vector<float> got_latent = latent.to_vector(), got_pe = k_pe.to_vector();
    ASSERT_EQ(count_nan(got_latent) + count_nan(got_pe), 0) << "outputs left unwritten (poison)";
    const double latent_err = testing::worst_row_rel_l2(got_latent, want.latent.to_vector(), c.dc);
    testing::record_error("latent_worst_row_rel_l2", latent_err);
    EXPECT_LE(latent_err, 4e-3) << "latent off by more than bf16 rounding";

    const std::vector<float> in = ckv.to_vector(), expect = want.k_pe.to_vector();
    int64_t bad = 0;
    for (int64_t i = 0; i < c.t * c.dr; ++i) {
      const int64_t tok = i / c.dr, ch = i % c.dr, pair = tok * (c.dc + c.dr) + c.dc + ch - ch % 2;
      const double bound = std::ldexp(std::abs(expect[i]), -8) + 1e-6 * (std::abs(in[pair]) + std::abs(in[pair + 1]));
      bad += !(std::abs(static_cast<double>(got_pe[i]) - expect[i]) <= bound) ? 1 : 0;
    }
    EXPECT_EQ(bad, 0) << "k_pe elements off by more than bf16 rounding";

    Tensor expect_cache = cache.clone();  // untouched rows as they were, written ones = the GPU's outputs
    if (c.write) write_latent_cache_cpu(latent.to_f32(), k_pe.to_f32(), slots, expect_cache);
    EXPECT_EQ(mismatches(bf16_bits(cache_after), bf16_bits(expect_cache)), 0)
        << "cache rows differ from [latent | k_pe] at the slots, or rows without a slot changed";
  }
};

TEST_F(LatentRowsCuda, SmallShapes) {
  check({.t = 5, .dc = 32, .dr = 16, .positions = 64, .blocks = 1}, 1);
  check({.t = 5, .dc = 32, .dr = 16, .positions = 64, .blocks = 1, .index_dtype = DType::kI64,
         .weight_dtype = DType::kF32}, 2);
}

TEST_F(LatentRowsCuda, SmallOutOfRangePositionAndNoCacheWrite) {
  check({.t = 3, .dc = 32, .dr = 16, .positions = 64, .blocks = 1, .out_of_range_position = true}, 3);
  check({.t = 6, .dc = 32, .dr = 16, .positions = 64, .blocks = 1, .write = false}, 4);
}

TEST_F(LatentRowsCuda, DeepSeekShapes) {
  for (int64_t t : {1, 7, 64, 300}) check({.t = t}, 10 + t);
  check({.t = 4096, .blocks = 80, .index_dtype = DType::kI64}, 20);
  check({.t = 256, .weight_dtype = DType::kF32}, 21);
  check({.t = 1000, .blocks = 16, .write = false}, 22);
}

// A CTA holds a token's latent as 8 values a thread and one rope pair a thread: wider rows are refused.
TEST_F(LatentRowsCuda, RejectsRowsWiderThanTheKernel) {
  const int64_t dc = 1032, dr = 64;
  Tensor ckv = Tensor::empty({1, dc + dr}, DType::kBF16, Device::kCUDA);
  Tensor weight = Tensor::empty({dc}, DType::kF32, Device::kCUDA);
  Tensor positions = Tensor::zeros({1}, DType::kI32, Device::kCUDA);
  Tensor cos_sin = Tensor::empty({4, dr}, DType::kF32, Device::kCUDA);
  LatentRowOutputs out{Tensor::empty({1, dc}, DType::kBF16, Device::kCUDA),
                       Tensor::empty({1, dr}, DType::kBF16, Device::kCUDA), Tensor(), Tensor()};
  EXPECT_THROW(latent_rows_cuda({ckv, weight, 1e-6f, positions, cos_sin}, out, cuda_stream()), Error);
}

}  // namespace
}  // namespace mlaserve::ops
