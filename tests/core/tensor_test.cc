#include "core/tensor.h"

#include <gtest/gtest.h>

namespace mlaserve {
namespace {

TEST(Tensor, EmptyZerosShapes) {
  Tensor t = Tensor::zeros({3, 4}, DType::kF32);
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_TRUE(t.defined());
  EXPECT_FALSE(Tensor().defined());
  for (float v : t.to_vector()) EXPECT_EQ(v, 0.0f);
  EXPECT_THROW(t.dim(2), Error);
  EXPECT_THROW(t.data<bfloat16>(), Error);
}

TEST(Tensor, ReshapeAndSliceShareStorage) {
  Tensor t = Tensor::from_floats({0, 1, 2, 3, 4, 5}, {3, 2}, DType::kF32);
  Tensor r = t.reshape({-1});
  EXPECT_EQ(r.shape(), Shape({6}));
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), Shape({2, 2}));
  EXPECT_EQ(s.data<float>()[0], 2.0f);
  s.data<float>()[0] = 42.0f;
  EXPECT_EQ(t.data<float>()[2], 42.0f);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.slice(2, 4), Error);
}

TEST(Tensor, DtypeConversions) {
  Tensor t = Tensor::from_floats({1.0f, -2.5f, 448.0f, 1000.0f}, {4}, DType::kF8E4M3);
  EXPECT_EQ(t.to_vector(), std::vector<float>({1.0f, -2.5f, 448.0f, 448.0f}));
  Tensor b = Tensor::from_floats({1.00390625f}, {1}, DType::kBF16);  // 1 + 2^-8: tie to 1
  EXPECT_EQ(b.to_vector()[0], 1.0f);
}

TEST(Tensor, ViewKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{7, 8});
  Tensor v = Tensor::view_of(owner->data(), {2}, DType::kF32, Device::kCPU, owner);
  std::weak_ptr<std::vector<float>> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(v.to_vector()[1], 8.0f);
}

}  // namespace
}  // namespace mlaserve
