// Which block-scaled FP8 problems does cuBLASLt take, and does it compute them right? The DeepSeek
// recipe as ops/cuda/cublaslt_gemm.cc calls it: weights [N, K] e4m3 with 128 x 128 block scales
// (BLK128x128_32F, K-block fastest), activations [M, K] e4m3 with 1 x 128 group scales
// (VEC128_32F, [ceil(K/128), M], M fastest), bf16 out. It calls cuBLASLt directly because lt_gemm
// refuses (by its checks) the very problems asked about here. For each problem: the heuristic's status,
// then for a found algorithm the worst relative L2 error of rows 0, 1, M/2 and the last four against
// a double-precision reference (bf16 out: ~2e-3 expected; "WRONG" past 5e-3), and its time.
//
// The questions it answers (cuBLASLt 13.1, one H100, 2026-12-07, bench/NOTES-fp8-gemm.md s68):
//   - M not a multiple of 4: refused (CUBLAS_STATUS_NOT_SUPPORTED) at 1, 65-67, 1601, 4097, 4099;
//   - ceil(K/128) not a multiple of 4 (V2-Lite's K = 2816 and 10944): right when each 128-row
//     block's scales are padded to a multiple of 4 (the pad poisoned with 1e30 here, so unread),
//     silently wrong (relative error 0.47) when they are packed: cuBLASLt reads them with the padded
//     stride, which is why cublaslt_fp8_fits refuses such K.
//
//   nvcc -O2 -std=c++17 -arch=sm_90a -o /tmp/cublaslt_fp8_probe tools/cublaslt_fp8_probe.cu -lcublasLt
//   /tmp/cublaslt_fp8_probe
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "probe_check.h"

namespace {

struct Problem {
  int m, n, k;
  bool pad_scales;  // weight scale rows padded to a multiple of 4 K blocks
};

// Device copies of one problem's operands.
struct Operands {
  void *x = nullptr, *w = nullptr, *xs = nullptr, *ws = nullptr, *d = nullptr;
  ~Operands() {
    for (void* p : {x, w, xs, ws, d}) cudaFree(p);
  }
};

template <typename T>
void* upload(const std::vector<T>& host) {
  void* dev = nullptr;
  CHECK(cudaMalloc(&dev, host.size() * sizeof(T)));
  CHECK(cudaMemcpy(dev, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return dev;
}

// Worst relative L2 error over rows 0, 1, M/2 and the last four (NaN outputs counted apart).
double worst_row_error(const Problem& p, int stride_l, const std::vector<__nv_fp8_e4m3>& x,
                       const std::vector<__nv_fp8_e4m3>& w, const std::vector<float>& xs,
                       const std::vector<float>& ws, const std::vector<__nv_bfloat16>& d, int& nan) {
  const int l_blocks = (p.k + 127) / 128;
  std::vector<int> rows = {0, std::min(1, p.m - 1), p.m / 2};
  for (int r = std::max(0, p.m - 4); r < p.m; ++r) rows.push_back(r);
  double worst = 0;
  for (const int r : rows) {
    double num = 0, den = 0;
    for (int n = 0; n < p.n; ++n) {
      double acc = 0;
      for (int l = 0; l < l_blocks; ++l) {
        double part = 0;
        for (int kk = 128 * l; kk < std::min(p.k, 128 * l + 128); ++kk) {
          part += double(float(x[size_t(r) * p.k + kk])) * double(float(w[size_t(n) * p.k + kk]));
        }
        acc += part * xs[size_t(l) * p.m + r] * ws[size_t(n / 128) * stride_l + l];
      }
      const double got = __bfloat162float(d[size_t(r) * p.n + n]);
      nan += std::isnan(got) ? 1 : 0;
      num += (got - acc) * (got - acc);
      den += acc * acc;
    }
    worst = std::max(worst, std::sqrt(num / std::max(den, 1e-30)));
  }
  return worst;
}

void run(cublasLtHandle_t handle, const Problem& p, void* workspace, size_t workspace_bytes) {
  const int l_blocks = (p.k + 127) / 128, n_blocks = (p.n + 127) / 128;
  const int stride_l = p.pad_scales ? (l_blocks + 3) / 4 * 4 : l_blocks;
  std::printf("M %d N %d K %d: ceil(K/128) %d, weight scale rows of %d\n", p.m, p.n, p.k, l_blocks, stride_l);
  std::mt19937 rng(7 * p.m + 3 * p.n + p.k);
  std::uniform_real_distribution<float> value(-2.f, 2.f), scale(0.5f, 2.f);
  std::vector<__nv_fp8_e4m3> x(size_t(p.m) * p.k), w(size_t(p.n) * p.k);
  for (auto& v : x) v = __nv_fp8_e4m3(value(rng));
  for (auto& v : w) v = __nv_fp8_e4m3(value(rng));
  std::vector<float> xs(size_t(l_blocks) * p.m), ws(size_t(n_blocks) * stride_l, 1e30f);  // pad poisoned
  for (auto& v : xs) v = scale(rng);
  for (int nb = 0; nb < n_blocks; ++nb) {
    for (int l = 0; l < l_blocks; ++l) ws[size_t(nb) * stride_l + l] = scale(rng);
  }
  Operands dev;
  dev.x = upload(x);
  dev.w = upload(w);
  dev.xs = upload(xs);
  dev.ws = upload(ws);
  CHECK(cudaMalloc(&dev.d, size_t(p.m) * p.n * 2));
  CHECK(cudaMemset(dev.d, 0xff, size_t(p.m) * p.n * 2));  // NaN poison

  // cuBLAS's A is the weight (transposed), its B the activations, D [N, M] column-major = [M, N].
  cublasLtMatmulDesc_t op = nullptr;
  CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  const int32_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &a_mode, sizeof(a_mode)));
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &b_mode, sizeof(b_mode)));
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &dev.ws, sizeof(dev.ws)));
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &dev.xs, sizeof(dev.xs)));
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, p.k, p.n, p.k));
  CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, p.k, p.m, p.k));
  CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, p.n, p.m, p.n));
  cublasLtMatmulPreference_t pref = nullptr;
  CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t max_ws = workspace_bytes;
  CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof(max_ws)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, op, la, lb, ld, ld, pref, 1, &result, &found);
  std::printf("  heuristic status %d, algorithms found %d\n", int(status), found);
  if (status == CUBLAS_STATUS_SUCCESS && found > 0) {
    const float alpha = 1.f, beta = 0.f;
    auto gemm = [&] {
      CHECK(cublasLtMatmul(handle, op, &alpha, dev.w, la, dev.x, lb, &beta, dev.d, ld, dev.d, ld, &result.algo,
                           workspace, result.workspaceSize, nullptr));
    };
    gemm();
    CHECK(cudaDeviceSynchronize());
    std::vector<__nv_bfloat16> d(size_t(p.m) * p.n);
    CHECK(cudaMemcpy(d.data(), dev.d, d.size() * 2, cudaMemcpyDeviceToHost));
    int nan = 0;
    const double worst = worst_row_error(p, stride_l, x, w, xs, ws, d, nan);
    std::printf("  worst checked row: relative L2 %.3e, NaN outputs %d -> %s\n", worst, nan,
                nan == 0 && worst < 5e-3 ? "CORRECT" : "WRONG");
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < 3; ++i) gemm();
    constexpr int kReps = 20;
    CHECK(cudaEventRecord(start));
    for (int i = 0; i < kReps; ++i) gemm();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    const double us = 1e3 * ms / kReps;
    std::printf("  %.1f us, %.0f TFLOPS\n", us, 2.0 * p.m * p.n * p.k / us * 1e-6);
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(stop));
  }
  CHECK(cublasLtMatmulPreferenceDestroy(pref));
  CHECK(cublasLtMatrixLayoutDestroy(la));
  CHECK(cublasLtMatrixLayoutDestroy(lb));
  CHECK(cublasLtMatrixLayoutDestroy(ld));
  CHECK(cublasLtMatmulDescDestroy(op));
}

}  // namespace

int main() {
  cublasLtHandle_t handle = nullptr;
  CHECK(cublasLtCreate(&handle));
  constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // as cublaslt_gemm.cc
  void* workspace = nullptr;
  CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
  std::printf("cuBLASLt %zu\n", cublasLtGetVersion());
  const Problem problems[] = {
      {64, 2048, 2048, false},   {65, 2048, 2048, false},   {66, 2048, 2048, false},    {67, 2048, 2048, false},
      {1, 2048, 2048, false},    {4096, 2112, 7168, false}, {4097, 2112, 7168, false},  {4099, 2112, 7168, false},
      {4096, 7168, 2048, false}, {4097, 7168, 2048, false}, {1601, 576, 7168, false},   {256, 2048, 2816, true},
      {256, 2048, 2816, false},  {1600, 2048, 10944, true}, {1601, 2048, 2816, true}};
  for (const Problem& p : problems) run(handle, p, workspace, kWorkspaceBytes);
  CHECK(cudaFree(workspace));
  CHECK(cublasLtDestroy(handle));
  return 0;
}
