// Load-time FP8 quantisation layer by layer (model/quantize_fp8.h, move_and_quantize_fp8, what
// `--quantization fp8` runs): on the CPU it gives quantize_weights_fp8's tensors bit for bit (the
// GPU form, where each layer moves before it is quantised: fp8_model_cuda_test.cc).
#include <gtest/gtest.h>

#include "model/loader.h"
#include "model/quantize_fp8.h"
#include "same_weights.h"
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
  testing::expect_same_weights(whole, by_layer);
  int fp8 = 0;
  for (const Tensor& t : testing::weight_tensors(by_layer)) fp8 += t.dtype() == DType::kF8E4M3 ? 1 : 0;
  EXPECT_GT(fp8, 0);  // the linears were quantised
}

}  // namespace
}  // namespace mlaserve
