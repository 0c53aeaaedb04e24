// The CUDA tests' emulation of the decode GEMVs' summation order (cuda/gemv_kernel_order.h)
// against the CPU references: it must compute the same products, to fp32 summation noise (and
// the bf16 rounding of the absorption outputs), at shapes that exercise its partial chunks,
// several steps, row groups and lanes. It runs on the CPU so that an indexing slip in the
// emulation shows without a GPU; on the GPU, gemm_cuda_test.cc then asks the kernels for its
// bits exactly.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/gemv_kernel_order.h"
#include "op_test_util.h"
#include "ops/linear.h"
#include "ops/mla_absorb.h"

namespace mlaserve::ops {
namespace {

using testing::random_tensor;
using testing::rel_l2_error;
using testing::to_doubles;

std::vector<double> bf16_bits_to_doubles(const std::vector<uint16_t>& bits) {
  std::vector<double> v;
  for (uint16_t b : bits) v.push_back(bf16_to_float(bfloat16{b}));
  return v;
}

// K of a partial chunk (40), two steps at one token (8200 = 32 chunks + 8 values), a partial
// chunk at 2816, 8 tokens.
TEST(GemvKernelOrder, LinearMatchesLinearCpu) {
  std::mt19937_64 rng(11);
  for (const auto& [t, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 37, 40}, {3, 13, 8200}, {2, 5, 2816}, {8, 4, 2048}}) {
    const Tensor x = random_tensor({t, k}, DType::kBF16, rng), w = random_tensor({n, k}, DType::kBF16, rng);
    const std::vector<float> got = testing::linear_gemv_kernel_order(x.data<bfloat16>(), w.data<bfloat16>(), t, n, k);
    Tensor ref = Tensor::empty({t, n}, DType::kF32);
    linear_cpu(x.to_f32(), w, ref);
    EXPECT_LT(rel_l2_error(std::vector<double>(got.begin(), got.end()), to_doubles(ref)), 1e-5)
        << "T " << t << " N " << n << " K " << k;
  }
}

// 2 and 3 heads; a latent width with a partial 128-column block and 256-column chunk (136) and
// a value width of a partial 16-row block (120), then DeepSeek's 512 / 128.
TEST(GemvKernelOrder, AbsorbAndUpMatchTheCpuReferences) {
  constexpr int64_t kDn = 128, kDr = 64;
  std::mt19937_64 rng(12);
  for (const auto& [t, n, dc, dv] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{{2, 3, 136, 120}, {1, 2, 512, 128}}) {
    const std::string where = "T " + std::to_string(t) + " heads " + std::to_string(n) + " dc " + std::to_string(dc);
    const int64_t rph = kDn + dv;
    const Tensor q = random_tensor({t, n, kDn + kDr}, DType::kBF16, rng);  // [T, n, 192]
    const Tensor w = random_tensor({n * rph, dc}, DType::kBF16, rng);      // kv_b_proj
    const Tensor lat = random_tensor({t, n, dc}, DType::kBF16, rng);       // [T, n, dc]

    Tensor q_ref = Tensor::empty({t, n, dc + kDr}, DType::kF32);
    mla_absorb_query_cpu(q.to_f32(), w, q_ref);
    std::vector<double> want;  // the latent channels of q_ref
    const std::vector<double> all = to_doubles(q_ref);
    for (int64_t r = 0; r < t * n; ++r) want.insert(want.end(), all.begin() + r * (dc + kDr), all.begin() + r * (dc + kDr) + dc);
    const std::vector<uint16_t> q_abs =
        testing::mla_absorb_kernel_order(q.data<bfloat16>(), w.data<bfloat16>(), t, n, kDn, kDr, dc, rph);
    EXPECT_LT(rel_l2_error(bf16_bits_to_doubles(q_abs), want), 4e-3) << where << ", absorb";

    Tensor o_ref = Tensor::empty({t, n, dv}, DType::kF32);
    mla_up_project_output_cpu(lat.to_f32(), w, o_ref);
    const std::vector<uint16_t> o = testing::mla_up_kernel_order(lat.data<bfloat16>(), w.data<bfloat16>(), t, n, kDn, dv, dc, rph);
    EXPECT_LT(rel_l2_error(bf16_bits_to_doubles(o), to_doubles(o_ref)), 4e-3) << where << ", up-projection";
  }
}

}  // namespace
}  // namespace mlaserve::ops
