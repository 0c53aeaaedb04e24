// SoloRankCollectives: the collectives of one tensor-parallel rank run alone on one GPU, for
// timing that rank's own kernels (decode_step_bench --tp-rank-of N). Timing only, never values:
// all_reduce_sum leaves the rank's partial sum as it is (no communication: the all-reduces' time
// is left out of the step), all_gather_columns copies the rank's own columns into their place
// (the other ranks' columns keep what they held). Pipeline send/recv are refused.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>

#include "core/collectives.h"
#include "core/cuda_check.h"
#include "core/error.h"

namespace mlaserve::bench {

class SoloRankCollectives final : public Collectives {
 public:
  SoloRankCollectives(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(Tensor&, Stream) override {}

  // in [R, c] -> columns [rank c, rank c + c) of out [R, C], clipped at C.
  void all_gather_columns(const Tensor& in, Tensor& out, Stream stream) override {
    const int64_t rows = in.dim(0), c = in.dim(1), first = rank_ * c;
    const int64_t cols = std::min<int64_t>(c, out.dim(1) - first);
    if (cols <= 0) return;
    const size_t elem = dtype_size(in.dtype());
    MLA_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(out.raw()) + first * elem, out.dim(1) * elem, in.raw(),
                                     c * elem, cols * elem, rows, cudaMemcpyDeviceToDevice,
                                     static_cast<cudaStream_t>(stream.cuda)));
  }

  void send(const Tensor&, int, Stream) override { MLA_FAIL("SoloRankCollectives: no pipeline stages"); }
  void recv(Tensor&, int, Stream) override { MLA_FAIL("SoloRankCollectives: no pipeline stages"); }

 private:
  int rank_, size_;
};

}  // namespace mlaserve::bench
