// Which CUDA-graph length class a decode step falls in (DeepSeekModel::decode_seq_len_class):
// steps of one class must run the same kernels, so the classes split where a kernel choice
// depends on the step's longest sequence. On the CPU the fused attention never runs, which
// leaves the decode kernel's split-S band (ops::mla_decode_kernel_depends_on_length).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "ops/mla_decode.h"
#include "tiny_models.h"

namespace mlaserve {
namespace {

TEST(DecodeSeqLenClass, SplitsAtTheShortBoundOnlyWhereTheKernelDependsOnIt) {
  const DeepSeekModel model = testing::load_tiny_model("tiny-v3");  // 2 heads: 2 query rows a token
  constexpr int64_t kShort = ops::kMlaDecodeShortSeqLen, kMax = std::numeric_limits<int64_t>::max();
  ASSERT_TRUE(ops::mla_decode_kernel_depends_on_length(64, model.config().num_attention_heads));
  EXPECT_EQ(model.decode_seq_len_class(1, 64), kShort);
  EXPECT_EQ(model.decode_seq_len_class(kShort, 64), kShort);
  EXPECT_EQ(model.decode_seq_len_class(kShort + 1, 64), kMax);
  EXPECT_EQ(model.decode_seq_len_class(32768, 64), kMax);
  for (const int64_t b : {1, 8, 128}) {  // batches outside the band: one class whatever the lengths
    ASSERT_FALSE(ops::mla_decode_kernel_depends_on_length(b, model.config().num_attention_heads)) << b;
    EXPECT_EQ(model.decode_seq_len_class(1, b), kMax) << b;
    EXPECT_EQ(model.decode_seq_len_class(32768, b), kMax) << b;
  }
}

}  // namespace
}  // namespace mlaserve
