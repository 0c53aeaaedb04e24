// The row norms' wide shape (rms_norm_heuristics.h: a decode step's few rows of more than 256
// 16-byte vectors, V3's 7168 and V2's 5120, run one thread a vector) must give the narrow shape's
// bits: it keeps the narrow shape's order of the sum of squares. Each form runs on 65 rows (past
// kRmsNormWideMaxRows: the narrow shape) and on the first 1, 8 and 64 of the same rows (the wide
// shape); the normed rows, the updated residual rows and, for the FP8 forms, the codes and scales
// must be the same bits. Outputs poisoned first. (That each shape is right is rms_norm_cuda_test's
// and rms_norm_fp8_cuda_test's part; moe_combine_norm_cuda_test holds the fused MoE combine's wide
// scan kernel to its narrow rows kernel the same way.)
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_op_test_util.h"
#include "ops/cuda/rms_norm_heuristics.h"
#include "ops/fp8_block.h"
#include "ops/fp8_quant.h"
#include "ops/rms_norm.h"
#include "ops/rms_norm_fp8.h"

namespace mlaserve::ops {
namespace {

using testing::CudaOpTest;
using testing::poisoned_gpu;
using testing::random_tensor;

constexpr float kEps = 1e-6f;
constexpr int64_t kNarrowRows = gpu::kRmsNormWideMaxRows + 1;

enum class Form { kNorm, kAddNorm, kAddNormF32Addend, kAddSumNorm };

const char* form_name(Form f) {
  switch (f) {
    case Form::kNorm: return "rms_norm";
    case Form::kAddNorm: return "add_rms_norm";
    case Form::kAddNormF32Addend: return "add_rms_norm (f32 addend)";
    case Form::kAddSumNorm: return "add_sum_rms_norm";
  }
  return "?";
}

// One form's inputs for `rows` rows of width d: x (the norm's input, add_rms_norm's addend or
// add_sum_rms_norm's base), rest (add_sum_rms_norm's second part), residual, weight; host tensors.
struct Inputs {
  Tensor x, rest, residual, weight;
};

Inputs make_inputs(Form form, int64_t rows, int64_t d, std::mt19937_64& rng) {
  const bool f32_x = form == Form::kAddNormF32Addend || form == Form::kAddSumNorm;
  Inputs in;
  in.x = random_tensor({rows, d}, f32_x ? DType::kF32 : DType::kBF16, rng, 2.0f);
  if (form == Form::kAddSumNorm) in.rest = random_tensor({rows, d}, DType::kF32, rng, 1.0f);
  in.residual = random_tensor({rows, d}, DType::kBF16, rng, 8.0f);
  in.weight = random_tensor({d}, DType::kBF16, rng, 0.5f);
  return in;
}

// The bytes of a host tensor (the e4m3 codes).
std::vector<uint8_t> bytes(const Tensor& host) {
  std::vector<uint8_t> b(static_cast<size_t>(host.nbytes()));
  std::memcpy(b.data(), host.raw(), b.size());
  return b;
}

// The outputs of one run, on the host.
struct Outputs {
  Tensor out, residual, x_q, scales;
};

class RmsNormWideCuda : public CudaOpTest {
 protected:
  // The first `rows` rows of `in` through `form` (quantised too when fp8), on the GPU.
  Outputs run(Form form, bool fp8, const Inputs& in, int64_t rows) {
    const int64_t d = in.weight.dim(0);
    const Tensor x = in.x.slice(0, rows).clone().to(Device::kCUDA);
    const Tensor w = in.weight.to(Device::kCUDA);
    Tensor residual = in.residual.slice(0, rows).clone().to(Device::kCUDA);
    Tensor out = poisoned_gpu({rows, d}, DType::kBF16);
    const ActQuantParams act;
    Fp8Activations q;
    if (fp8) q = {poisoned_gpu({rows, d}, DType::kF8E4M3), poisoned_gpu({rows, fp8_num_blocks(d)}, DType::kF32), {}};
    switch (form) {
      case Form::kNorm:
        if (fp8) {
          rms_norm_fp8(x, w, kEps, out, act, q, stream());
        } else {
          rms_norm(x, w, kEps, out, stream());
        }
        break;
      case Form::kAddNorm:
      case Form::kAddNormF32Addend:
        if (fp8) {
          add_rms_norm_fp8(x, residual, w, kEps, out, act, q, stream());
        } else {
          add_rms_norm(x, residual, w, kEps, out, stream());
        }
        break;
      case Form::kAddSumNorm: {
        const Tensor rest = in.rest.slice(0, rows).clone().to(Device::kCUDA);
        if (fp8) {
          add_sum_rms_norm_fp8(x, rest, residual, w, kEps, out, act, q, stream());
        } else {
          add_sum_rms_norm(x, rest, residual, w, kEps, out, stream());
        }
        break;
      }
    }
    return {to_host(out), to_host(residual), fp8 ? to_host(q.x_q) : Tensor(), fp8 ? to_host(q.scales) : Tensor()};
  }

  void check(Form form, bool fp8, int64_t d, uint64_t seed) {
    ASSERT_TRUE(gpu::rms_norm_wide(gpu::kRmsNormWideMaxRows, d / 8) && !gpu::rms_norm_wide(kNarrowRows, d / 8))
        << "width " << d << " must run wide at " << gpu::kRmsNormWideMaxRows << " rows and narrow at " << kNarrowRows;
    std::mt19937_64 rng(seed);
    const Inputs in = make_inputs(form, kNarrowRows, d, rng);
    const Outputs narrow = run(form, fp8, in, kNarrowRows);
    for (const int64_t rows : {int64_t{1}, int64_t{8}, gpu::kRmsNormWideMaxRows}) {
      const std::string where = std::string(form_name(form)) + (fp8 ? " fp8" : "") + " d " + std::to_string(d) +
                                " rows " + std::to_string(rows);
      const Outputs wide = run(form, fp8, in, rows);
      EXPECT_EQ(testing::mismatches(testing::bf16_bits(wide.out), testing::bf16_bits(narrow.out.slice(0, rows))), 0)
          << where << ": normed rows";
      EXPECT_EQ(testing::mismatches(testing::bf16_bits(wide.residual),
                                    testing::bf16_bits(narrow.residual.slice(0, rows))),
                0)
          << where << ": residual rows";
      if (!fp8) continue;
      EXPECT_EQ(testing::mismatches(bytes(wide.x_q), bytes(narrow.x_q.slice(0, rows))), 0)
          << where << ": e4m3 codes";
      EXPECT_EQ(testing::mismatches(wide.scales.to_vector(), narrow.scales.slice(0, rows).to_vector()), 0)
          << where << ": scales";
    }
  }
};

TEST_F(RmsNormWideCuda, V3AndV2HiddenRowsEveryForm) {
  uint64_t seed = 1;
  for (const int64_t d : {int64_t{7168}, int64_t{5120}}) {
    for (const Form form : {Form::kNorm, Form::kAddNorm, Form::kAddNormF32Addend, Form::kAddSumNorm}) {
      for (const bool fp8 : {false, true}) check(form, fp8, d, seed++);
    }
  }
}

}  // namespace
}  // namespace mlaserve::ops
