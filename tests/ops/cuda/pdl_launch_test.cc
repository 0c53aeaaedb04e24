// gpu::launch_config (pdl.cuh): the launch attributes a LaunchShape asks for. Host code only: runs
// without a GPU.
#include <gtest/gtest.h>

#include "ops/cuda/pdl.cuh"

namespace mlaserve::ops::gpu {
namespace {

TEST(LaunchConfig, PlainHasNoAttributes) {
  cudaLaunchAttribute attrs[2];
  const cudaLaunchConfig_t c = launch_config({dim3(7, 2), dim3(128), 1024, 0, false}, nullptr, attrs);
  EXPECT_EQ(c.numAttrs, 0u);
  EXPECT_EQ(c.gridDim.x, 7u);
  EXPECT_EQ(c.gridDim.y, 2u);
  EXPECT_EQ(c.blockDim.x, 128u);
  EXPECT_EQ(c.dynamicSmemBytes, 1024u);
}

TEST(LaunchConfig, ProgrammaticByDefault) {
  cudaLaunchAttribute attrs[2];
  const cudaLaunchConfig_t c = launch_config({dim3(3), dim3(256)}, nullptr, attrs);
  ASSERT_EQ(c.numAttrs, 1u);
  EXPECT_EQ(c.attrs[0].id, cudaLaunchAttributeProgrammaticStreamSerialization);
  EXPECT_EQ(c.attrs[0].val.programmaticStreamSerializationAllowed, 1);
}

TEST(LaunchConfig, ClusterThenProgrammatic) {
  cudaLaunchAttribute attrs[2];
  const cudaLaunchConfig_t c = launch_config({dim3(16, 3), dim3(256), 0, 16}, nullptr, attrs);
  ASSERT_EQ(c.numAttrs, 2u);
  EXPECT_EQ(c.attrs[0].id, cudaLaunchAttributeClusterDimension);
  EXPECT_EQ(c.attrs[0].val.clusterDim.x, 16u);
  EXPECT_EQ(c.attrs[0].val.clusterDim.y, 1u);
  EXPECT_EQ(c.attrs[0].val.clusterDim.z, 1u);
  EXPECT_EQ(c.attrs[1].id, cudaLaunchAttributeProgrammaticStreamSerialization);
  const cudaLaunchConfig_t only = launch_config({dim3(16), dim3(256), 0, 16, false}, nullptr, attrs);
  ASSERT_EQ(only.numAttrs, 1u);
  EXPECT_EQ(only.attrs[0].id, cudaLaunchAttributeClusterDimension);
}

}  // namespace
}  // namespace mlaserve::ops::gpu
