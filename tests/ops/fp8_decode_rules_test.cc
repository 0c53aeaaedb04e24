// Where the norms quantise for their FP8 readers (fp8_norm_quantization_pays, ops/rms_norm_fp8.h):
// on the GPU from two tokens, and wide rows (V3's and V2's hidden) at every step, where the GEMVs
// reading bf16 x take the kernel the codes feed (use_gemv_mma, linear_fp8_heuristics.h); and an
// MLP's down projection on its gate_up rows (gemv_mma_takes_swiglu). Host rules only.
#include <gtest/gtest.h>

#include "ops/rms_norm_fp8.h"

#ifdef MLASERVE_WITH_CUDA
#include "ops/cuda/linear_fp8_heuristics.h"
#endif

namespace mlaserve::ops {
namespace {

TEST(Fp8DecodeRules, CpuNormsAlwaysQuantise) {
  EXPECT_TRUE(fp8_norm_quantization_pays(Device::kCPU, 1, 2048));
  EXPECT_TRUE(fp8_norm_quantization_pays(Device::kCPU, 1, 7168));
}

#ifdef MLASERVE_WITH_CUDA
TEST(Fp8DecodeRules, GpuNormsQuantiseWideRowsAtEveryStepNarrowFromTwoTokens) {
  EXPECT_TRUE(fp8_norm_quantization_pays(Device::kCUDA, 1, 7168));  // V3's hidden
  EXPECT_TRUE(fp8_norm_quantization_pays(Device::kCUDA, 1, 5120));  // V2's
  EXPECT_FALSE(fp8_norm_quantization_pays(Device::kCUDA, 1, 2048));  // V2-Lite's: from two tokens
  EXPECT_TRUE(fp8_norm_quantization_pays(Device::kCUDA, 2, 2048));
  EXPECT_FALSE(fp8_norm_quantization_pays(Device::kCUDA, 1, 1536));  // V3's q_a_layernorm
  EXPECT_TRUE(fp8_norm_quantization_pays(Device::kCUDA, 8, 1536));
  EXPECT_TRUE(fp8_norm_quantization_pays(Device::kCUDA, 9, 1536));
}

// From two tokens narrow rows take the tensor-core GEMV on bf16 x as on the norm's codes.
TEST(Fp8DecodeRules, NarrowRowsFromTwoTokensTakeTheSameGemvEitherWay) {
  for (const int64_t t : {2, 3, 4, 8}) {
    for (const int64_t k : {1536, 2048}) {
      EXPECT_EQ(sm90_fp8::use_gemv_mma(t, k, true), sm90_fp8::use_gemv_mma(t, k, false)) << t << " " << k;
    }
  }
}

// A wide row's GEMVs are the same kernel on bf16 x as on the norm's codes at every token count.
TEST(Fp8DecodeRules, WideRowsTakeTheSameGemvEitherWay) {
  for (const int64_t t : {1, 2, 3}) {
    EXPECT_TRUE(sm90_fp8::use_gemv_mma(t, 7168, true)) << t;
    EXPECT_TRUE(sm90_fp8::use_gemv_mma(t, 7168, false)) << t;
  }
  EXPECT_TRUE(sm90_fp8::gemv_mma_quantizes(1, 7168));
  EXPECT_FALSE(sm90_fp8::use_gemv_mma(1, 2048, false));  // V2-Lite's rows: the CUDA-core GEMV at one token
  EXPECT_TRUE(sm90_fp8::use_gemv_mma(1, 2048, true));
}

// Where an MLP's down projection takes the one launch on its gate_up rows (gemv_mma_takes_swiglu),
// its two passes would have run the same tensor-core GEMV on the SwiGLU quantiser's codes: the
// choice changes no bit of the model's output.
TEST(Fp8DecodeRules, SwiGluDownOneLaunchOnlyWhereTheTwoPassesTakeTheSameGemv) {
  for (int64_t t = 1; t <= 16; ++t) {
    for (const int64_t k : {256, 1408, 2048, 2304, 2816, 10944, 18432}) {
      if (sm90_fp8::gemv_mma_takes_swiglu(t, k)) {
        EXPECT_TRUE(sm90_fp8::use_gemv_mma(t, k, true)) << t << " " << k;
      }
    }
  }
  EXPECT_TRUE(sm90_fp8::gemv_mma_takes_swiglu(1, 2816));    // V2-Lite's shared experts at one token
  EXPECT_FALSE(sm90_fp8::gemv_mma_takes_swiglu(2, 2816));   // two tokens: the step lost (the rule's note)
  EXPECT_FALSE(sm90_fp8::gemv_mma_takes_swiglu(1, 10944));  // V2-Lite's dense down: the two passes
}
#endif

}  // namespace
}  // namespace mlaserve::ops
