// Shared check of an attention op's FP8 output (ops::AttentionFp8Output, merge_attention_states.h):
// the codes and scales must be those of quantize_activations_fp8_cpu over the op's own output as
// stored (bf16), bit for bit: the GPU quantiser's arithmetic is the CPU's (fp8_quant.cuh), and both
// read the same bf16 values, so there is no tolerance to state. Outputs poisoned with 0xFF bytes
// (e4m3 NaN, which the saturating quantiser never writes) show rows left unwritten.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "core/tensor.h"
#include "ops/fp8_quant.h"
#include "ops/merge_attention_states.h"

namespace mlaserve::ops::testing {

// out [T, n, 128] bf16 on the GPU; got.q's codes [T, n·128] and scales [T, n] on the GPU.
inline void expect_fp8_of_output(const Tensor& out, const AttentionFp8Output& got) {
  const int64_t t = out.dim(0), k = out.dim(1) * out.dim(2);
  Tensor want_q = Tensor::empty({t, k}, DType::kF8E4M3);
  Tensor want_s = Tensor::empty({t, out.dim(1)}, DType::kF32);
  quantize_activations_fp8_cpu(out.to(Device::kCPU).to_f32().reshape({t, k}), got.params, want_q, want_s);
  const Tensor got_q = got.q.x_q.to(Device::kCPU), got_s = got.q.scales.to(Device::kCPU);
  int64_t bad_codes = 0, bad_scales = 0, first_bad = -1;
  for (int64_t i = 0; i < t * k; ++i) {
    if (got_q.data<float8_e4m3>()[i].bits == want_q.data<float8_e4m3>()[i].bits) continue;
    if (bad_codes++ == 0) first_bad = i;
  }
  for (int64_t i = 0; i < want_s.numel(); ++i) {
    bad_scales += std::memcmp(got_s.data<float>() + i, want_s.data<float>() + i, sizeof(float)) != 0 ? 1 : 0;
  }
  EXPECT_EQ(bad_codes, 0) << "e4m3 codes differ from the quantiser's, first at (row " << first_bad / k << ", channel "
                          << first_bad % k << ")";
  EXPECT_EQ(bad_scales, 0) << "scales differ from the quantiser's";
}

// Codes [T, n·128] e4m3 and scales [T, n] f32 on the GPU, poisoned.
inline AttentionFp8Output poisoned_fp8_output(int64_t t, int64_t n, ActQuantParams params = {}) {
  AttentionFp8Output o{{Tensor::empty({t, n * 128}, DType::kF8E4M3, Device::kCUDA),
                             Tensor::empty({t, n}, DType::kF32, Device::kCUDA), Tensor()},
                            params};
  o.q.x_q.fill_bytes(0xFF);
  o.q.scales.fill_bytes(0xFF);
  return o;
}

}  // namespace mlaserve::ops::testing
