// Helpers of the GEMM-shaped CUDA op tests (gemm_cuda_test.cc, moe_experts_cuda_test.cc):
// fresh seeds, counter-based random tensors made identically on the host and the GPU, the
// poison check, error metrics over the rows that were checked against the CPU reference, and
// an eager run against CUDA graph replays of the same calls.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../op_test_util.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/random_fill.h"

namespace mlaserve::ops::testing {

// A seed drawn for this run (inputs are fresh every run), recorded in the test's XML output.
// MLASERVE_TEST_SEED=<seed> replays a failure: every case of the run then takes that seed, the
// failing one (its SCOPED_TRACE names the seed) with the inputs it failed on.
inline uint64_t fresh_seed() {
  std::random_device rd;
  const char* replay = std::getenv("MLASERVE_TEST_SEED");
  const uint64_t seed =
      replay != nullptr ? std::stoull(replay) : (static_cast<uint64_t>(rd()) << 32) ^ rd();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

// Uniform(-1, 1) values rounded to `dtype`, the same on both sides (random_fill.h): the GPU
// tensor is filled in place (no upload of lm_head's 210M weights), the host one for the
// reference. Works on views (flat index within the view).
inline void fill_random(Tensor& t, uint64_t seed, cudaStream_t stream = nullptr) {
  const UniformFill fill{seed, 1.0f, 0.0f};
  if (t.is_cpu()) {
    fill_uniform_cpu(fill, t);
  } else {
    fill_uniform_cuda(fill, t, stream);
  }
}

inline Tensor random_host(const Shape& shape, DType dtype, uint64_t seed) {
  Tensor t = Tensor::empty(shape, dtype);
  fill_random(t, seed);
  return t;
}

// Every byte 0xFF (NaN in bf16 and f32), ordered on `stream` (Tensor::fill_bytes runs on the
// legacy stream, which a non-blocking stream does not wait for).
inline void poison(Tensor& t, cudaStream_t stream) {
  MLA_CUDA_CHECK(cudaMemsetAsync(t.raw(), 0xFF, t.nbytes(), stream));
}

inline Tensor poisoned_gpu(const Shape& shape, DType dtype, cudaStream_t stream) {
  Tensor t = Tensor::empty(shape, dtype, Device::kCUDA);
  poison(t, stream);
  return t;
}

// The operands of two bf16 GEMVs back to back, y1 [t, n1] = x [t, k1] · W1ᵀ then y2 [t, n2] =
// y1 · W2ᵀ: x, W1, W2 from seeds seed, seed + 1, seed + 2 on the GPU and (the same values) on the
// host, y1 (bf16) and y2 (out2) poisoned on `stream`.
struct GemvChainOperands {
  Tensor x, w1, w2;                // GPU: [t, k1], [n1, k1], [n2, n1] bf16
  Tensor x_host, w1_host, w2_host;  // host copies of the same values
  Tensor y1, y2;                   // GPU: [t, n1] bf16, [t, n2] out2, poisoned
};

inline GemvChainOperands gemv_chain_operands(int64_t t, int64_t k1, int64_t n1, int64_t n2, DType out2,
                                             uint64_t seed, cudaStream_t stream) {
  GemvChainOperands c;
  c.x = Tensor::empty({t, k1}, DType::kBF16, Device::kCUDA);
  c.w1 = Tensor::empty({n1, k1}, DType::kBF16, Device::kCUDA);
  c.w2 = Tensor::empty({n2, n1}, DType::kBF16, Device::kCUDA);
  fill_random(c.x, seed, stream);
  fill_random(c.w1, seed + 1, stream);
  fill_random(c.w2, seed + 2, stream);
  c.x_host = random_host({t, k1}, DType::kBF16, seed);
  c.w1_host = random_host({n1, k1}, DType::kBF16, seed + 1);
  c.w2_host = random_host({n2, n1}, DType::kBF16, seed + 2);
  c.y1 = poisoned_gpu({t, n1}, DType::kBF16, stream);
  c.y2 = poisoned_gpu({t, n2}, out2, stream);
  return c;
}

// Bytes of two tensors (any device) that differ; both must be the same size.
inline int64_t byte_mismatches(const Tensor& got, const Tensor& want) {
  const Tensor a = got.to(Device::kCPU), b = want.to(Device::kCPU);
  EXPECT_EQ(a.nbytes(), b.nbytes());
  const auto* pa = static_cast<const uint8_t*>(a.raw());
  const auto* pb = static_cast<const uint8_t*>(b.raw());
  int64_t n = 0;
  for (size_t i = 0; i < std::min(a.nbytes(), b.nbytes()); ++i) n += pa[i] != pb[i] ? 1 : 0;
  return n;
}

// NaN or infinite elements of a host bf16 or f32 tensor (unwritten poison shows up here).
inline int64_t count_nonfinite(const Tensor& t) {
  int64_t bad = 0;
  if (t.dtype() == DType::kBF16) {
    const bfloat16* p = t.data<bfloat16>();
    for (int64_t i = 0; i < t.numel(); ++i) bad += (p[i].bits & 0x7F80u) == 0x7F80u ? 1 : 0;
  } else {
    const float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) bad += std::isfinite(p[i]) ? 0 : 1;
  }
  return bad;
}

// Rows of a host bf16 [rows, n] output outside [first, last) that are not all poison (0xFFFF
// bits, poison()): the rows a kernel run over experts [e0, e1) must leave alone, written anyway.
inline int64_t rows_written_outside(const Tensor& t, int64_t first, int64_t last) {
  const auto* bits = static_cast<const uint16_t*>(t.raw());
  const int64_t rows = t.dim(0), n = t.numel() / std::max<int64_t>(rows, 1);
  int64_t touched = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (r >= first && r < last) continue;
    touched += std::any_of(bits + r * n, bits + (r + 1) * n, [](uint16_t b) { return b != 0xFFFF; });
  }
  return touched;
}

// Rows of a [rows, cols] host tensor (f32 or bf16) as a new f32 tensor [indices.size(), cols].
inline Tensor gather_rows_f32(const Tensor& t, const std::vector<int64_t>& indices) {
  const int64_t cols = t.numel() / std::max<int64_t>(1, t.dim(0));
  Tensor out = Tensor::empty({static_cast<int64_t>(indices.size()), cols}, DType::kF32);
  float* o = out.data<float>();
  for (size_t i = 0; i < indices.size(); ++i) {
    const Tensor row = t.slice(indices[i], indices[i] + 1).to_f32();
    std::copy(row.data<float>(), row.data<float>() + cols, o + static_cast<int64_t>(i) * cols);
  }
  return out;
}

// Rows 0 .. m - 1.
inline std::vector<int64_t> all_rows(int64_t m) {
  std::vector<int64_t> rows(static_cast<size_t>(m));
  std::iota(rows.begin(), rows.end(), int64_t{0});
  return rows;
}

// Which rows of an [m, ...] output to check against the CPU reference: all of them up to 16,
// else the first, the last and `extra` random ones (the reference of lm_head at 4096 rows would
// take minutes on the CPU; a wrong tile or stride shows up in any row it touches).
inline std::vector<int64_t> rows_to_check(int64_t m, std::mt19937_64& rng, int extra = 2) {
  std::vector<int64_t> rows;
  if (m <= 16) {
    for (int64_t i = 0; i < m; ++i) rows.push_back(i);
    return rows;
  }
  rows = {0, m - 1};
  std::uniform_int_distribution<int64_t> pick(1, m - 2);
  for (int i = 0; i < extra; ++i) rows.push_back(pick(rng));
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

struct RowErrors {
  double rel_l2 = 0.0;     // over all checked rows
  double worst_row = 0.0;  // the largest per-row relative L2
  int64_t worst_row_index = -1;
};

// Relative L2 errors of GPU rows against reference rows, row by row.
class RowErrorAccumulator {
 public:
  void add(const float* got, const float* want, int64_t cols, int64_t row_id) {
    double rn = 0.0, rd = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      const double a = got[c], b = want[c];
      rn += (a - b) * (a - b);
      rd += b * b;
    }
    num_ += rn;
    den_ += rd;
    const double row = std::sqrt(rn / std::max(rd, 1e-30));
    if (!(row <= e_.worst_row)) {  // NaN counts as worst
      e_.worst_row = row;
      e_.worst_row_index = row_id;
    }
  }
  RowErrors result() const {
    RowErrors e = e_;
    e.rel_l2 = std::sqrt(num_ / std::max(den_, 1e-30));
    return e;
  }

 private:
  double num_ = 0.0, den_ = 0.0;
  RowErrors e_;
};

// got: [rows.size(), cols] f32 GPU rows (gathered); want: the same rows from the reference.
inline RowErrors compare_rows(const Tensor& got, const Tensor& want, const std::vector<int64_t>& row_ids) {
  RowErrorAccumulator acc;
  const int64_t cols = want.numel() / std::max<int64_t>(1, want.dim(0));
  for (size_t i = 0; i < row_ids.size(); ++i) {
    const int64_t at = static_cast<int64_t>(i) * cols;
    acc.add(got.data<float>() + at, want.data<float>() + at, cols, row_ids[i]);
  }
  return acc.result();
}

inline void expect_close(const RowErrors& e, double rel_l2_limit, double row_limit, const std::string& what) {
  record_error(what + " rel_l2", e.rel_l2);
  EXPECT_LT(e.rel_l2, rel_l2_limit) << what << ": relative L2 error over the checked rows";
  EXPECT_LT(e.worst_row, row_limit) << what << ": worst row " << e.worst_row_index;
}

// Skips unless an sm_90 GPU is visible (the CUDA code is built for sm_90a only).
inline bool skip_without_sm90(std::string* why) {
  if (!cuda_available()) {
    *why = "no CUDA GPU visible";
    return true;
  }
  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  if (prop.major != 9) {
    *why = std::string("built for sm_90a; this GPU is ") + prop.name;
    return true;
  }
  return false;
}

// The fixture of the GEMM-shaped op tests: skipped without an sm_90 GPU, its own non-blocking
// stream (stream_) otherwise.
class Sm90StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (skip_without_sm90(&why)) GTEST_SKIP() << why;
    MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream_ != nullptr) MLA_CUDA_CHECK(cudaStreamDestroy(stream_));
  }
  void sync() const { MLA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  // run() once eagerly and as a CUDA graph replayed twice, `outs` poisoned before each; every
  // replay must reproduce the eager outputs bit for bit. Returns the eager outputs (host).
  std::vector<Tensor> eager_then_graph(const std::function<void()>& run, const std::vector<Tensor*>& outs) {
    for (Tensor* t : outs) poison(*t, stream_);
    run();
    sync();
    std::vector<Tensor> eager;
    for (Tensor* t : outs) eager.push_back(t->to(Device::kCPU));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    MLA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
    run();
    MLA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (int replay = 0; replay < 2; ++replay) {
      for (Tensor* t : outs) poison(*t, stream_);
      MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
      sync();
      for (size_t i = 0; i < outs.size(); ++i) {
        const Tensor got = outs[i]->to(Device::kCPU);
        EXPECT_EQ(std::memcmp(got.raw(), eager[i].raw(), got.nbytes()), 0)
            << "replay " << replay << " of output " << i << " differs from the eager run";
      }
    }
    MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
    MLA_CUDA_CHECK(cudaGraphDestroy(graph));
    return eager;
  }

  cudaStream_t stream_ = nullptr;
};

}  // namespace mlaserve::ops::testing
