// Load-time FP8 quantisation layer by layer (model/quantize_fp8.h, move_and_quantize_fp8, what
// `--quantization fp8` runs): on the CPU it gives quantize_weights_fp8's tensors bit for bit (the
// GPU form, where each layer moves before it is quantised: fp8_model_cuda_test.cc).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "model/loader.h"
#include "model/quantize_fp8.h"
#include "tiny_models.h"

namespace mlaserve {
namespace {

TEST(MoveAndQuantizeFp8, OnTheCpuEqualsQuantizingTheWholeModel) {
  const std::string dir = testing::tiny_model_dir("tiny-v2-lite");
  const DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  ModelWeights whole = load_weights(Checkpoint::open(dir), config);
  ModelWeights by_layer = load_weights(Checkpoint::open(dir), config);
  quantize_weights_fp8(whole);
  move_and_quantize_fp8(by_layer, Device::kCPU);
  std::vector<Tensor> want, got;
  for_each_tensor(whole, [&](Tensor& t) { want.push_back(t); });
  for_each_tensor(by_layer, [&](Tensor& t) { got.push_back(t); });
  ASSERT_EQ(got.size(), want.size());
  int fp8 = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].dtype(), want[i].dtype()) << "tensor " << i;
    ASSERT_EQ(got[i].shape(), want[i].shape()) << "tensor " << i;
    EXPECT_EQ(std::memcmp(got[i].raw(), want[i].raw(), want[i].nbytes()), 0) << "tensor " << i;
    fp8 += got[i].dtype() == DType::kF8E4M3 ? 1 : 0;
  }
  EXPECT_GT(fp8, 0);  // the linears were quantised
}

}  // namespace
}  // namespace mlaserve
