// Two models' weights, tensor by tensor in for_each_tensor's order: the same count, dtypes, shapes
// and bytes (copied to the host where they are on the GPU). For the tests that make the same
// weights two ways (quantised whole or layer by layer, at load or as dummies).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "model/weights.h"

namespace mlaserve::testing {

inline std::vector<Tensor> weight_tensors(ModelWeights& w) {
  std::vector<Tensor> all;
  for_each_tensor(w, [&](Tensor& t) { all.push_back(t); });
  return all;
}

inline void expect_same_weights(ModelWeights& want_model, ModelWeights& got_model) {
  const std::vector<Tensor> want = weight_tensors(want_model), got = weight_tensors(got_model);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].dtype(), want[i].dtype()) << "tensor " << i;
    ASSERT_EQ(got[i].shape(), want[i].shape()) << "tensor " << i;
    const Tensor a = want[i].to(Device::kCPU), b = got[i].to(Device::kCPU);
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << "tensor " << i << " " << shape_str(a.shape());
  }
}

}  // namespace mlaserve::testing
