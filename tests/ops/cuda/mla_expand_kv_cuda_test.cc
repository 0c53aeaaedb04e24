// mla_expand_kv_cuda (through the dispatch) against mla_expand_kv_cpu: DeepSeek's dn = dv = 128,
// dr = 64 with 16 heads (V2-Lite, V3 under TP8) and 128 heads (V3 on one GPU), S up to 4096, and
// odd tiny widths (2-byte copies). A copy: k and v must equal the CPU's bit for bit, every
// element written (outputs poisoned with NaN first).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/mla_expand_kv.h"

namespace mlaserve::ops {
namespace {

using testing::count_nan;
using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;

class MlaExpandKvCuda : public CudaOpTest {
 protected:
  void check(int64_t s, int64_t n, int64_t dn, int64_t dv, int64_t dr, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const Tensor kv = random_tensor({s, n, dn + dv}, DType::kBF16, rng);
    const Tensor k_pe = random_tensor({s, dr}, DType::kBF16, rng);
    Tensor want_k = Tensor::empty({s, n, dn + dr}, DType::kF32), want_v = Tensor::empty({s, n, dv}, DType::kF32);
    mla_expand_kv_cpu(kv.to_f32(), k_pe.to_f32(), want_k, want_v);

    Tensor k = poisoned_gpu({s, n, dn + dr}, DType::kBF16), v = poisoned_gpu({s, n, dv}, DType::kBF16);
    mla_expand_kv(kv.to(Device::kCUDA), k_pe.to(Device::kCUDA), k, v, stream());
    const std::vector<float> got_k = to_host(k).to_vector(), got_v = to_host(v).to_vector();
    ASSERT_EQ(count_nan(got_k) + count_nan(got_v), 0) << "elements left unwritten";
    EXPECT_EQ(testing::mismatches(got_k, want_k.to_vector()), 0);
    EXPECT_EQ(testing::mismatches(got_v, want_v.to_vector()), 0);
  }
};

TEST_F(MlaExpandKvCuda, SmallDeepSeekWidths) { check(5, 2, 128, 128, 64, 1); }

TEST_F(MlaExpandKvCuda, SmallTinyModelWidths) { check(7, 3, 12, 10, 6, 2); }

TEST_F(MlaExpandKvCuda, Prefill16Heads) { check(4096, 16, 128, 128, 64, 11); }

TEST_F(MlaExpandKvCuda, Chunk128Heads) { check(700, 128, 128, 128, 64, 12); }

}  // namespace
}  // namespace mlaserve::ops
