// cuBLASLt calls with cached handles, workspaces and plans (see cublaslt_gemm.h).
//
// Row-major to cuBLAS's column-major: a row-major [R, C] matrix with row stride ld is the
// column-major [C, R] matrix with leading dimension ld. So D [M, N] = A [M, K] · B becomes
// Dᶜ [N, M] = Bᶜ · Aᶜ with cuBLAS m = N, n = M, k = K: cuBLAS's A operand is our B (stored
// [K, N] column-major and transposed for kNK, stored [N, K] and used as is for kKN), cuBLAS's
// B operand is our A (stored [K, M], not transposed), C = D. For weights as stored (kNK) this
// is the "TN" layout, the one cuBLASLt's Hopper kernels prefer.
#include "ops/cuda/cublaslt_gemm.h"

#include <cublasLt.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/memory.h"

namespace mlaserve::ops::cuda {
namespace {

constexpr std::string_view kOp = "lt_gemm";

std::atomic<int64_t> plans_built{0};
std::atomic<int64_t> plan_build_ns{0};
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF8E4M3: return CUDA_R_8F_E4M3;
    default: return CUDA_R_32F;
  }
}

// FP8 problems: cuBLAS's A (our B, the weight) has 128 x 128 block scales, cuBLAS's B (our A,
// the activations) 1 x 128 group scales (cublaslt_gemm.h). Pointers are set on every call.
void set_fp8_scales(cublasLtMatmulDesc_t op, const Fp8BlockScales& s) {
  const void* lt_a_scale = s.b_blk128;
  const void* lt_b_scale = s.a_vec128;
  MLA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &lt_a_scale, sizeof(lt_a_scale)));
  MLA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &lt_b_scale, sizeof(lt_b_scale)));
}

// The largest power of two, up to 256, that divides the address of every batch entry: what the
// heuristic may assume.
uint32_t alignment_of(const void* p, int64_t batch_stride, DType dtype, bool batched) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p) |
                            (batched ? static_cast<uintptr_t>(batch_stride) * dtype_size(dtype) : 0);
  uint32_t align = 256;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

// Everything the descriptors and the algorithm depend on.
struct PlanKey {
  int64_t m, n, k, batch;
  int64_t lda, ldb, ldd, batch_a, batch_b, batch_d;
  DType ab_dtype, d_dtype;
  BLayout b_layout;
  uint32_t align_a, align_b, align_d;
  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = 0;
    auto mix = [&h](uint64_t v) { h ^= std::hash<uint64_t>{}(v) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2); };
    for (int64_t v : {k.m, k.n, k.k, k.batch, k.lda, k.ldb, k.ldd, k.batch_a, k.batch_b, k.batch_d}) {
      mix(static_cast<uint64_t>(v));
    }
    mix(static_cast<uint64_t>(k.ab_dtype) | static_cast<uint64_t>(k.d_dtype) << 8 |
        static_cast<uint64_t>(k.b_layout) << 16);
    mix(static_cast<uint64_t>(k.align_a) | static_cast<uint64_t>(k.align_b) << 16 |
        static_cast<uint64_t>(k.align_d) << 32);
    return h;
  }
};

// Descriptors and the chosen algorithm of one problem. cuBLAS's operands: lt_a is our B,
// lt_b our A, lt_d our D (also used as C, with beta = 0).
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t lt_a = nullptr, lt_b = nullptr, lt_d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // statuses ignored: no throw from a destructor (at exit the context may be gone)
    if (lt_d != nullptr) cublasLtMatrixLayoutDestroy(lt_d);
    if (lt_b != nullptr) cublasLtMatrixLayoutDestroy(lt_b);
    if (lt_a != nullptr) cublasLtMatrixLayoutDestroy(lt_a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

// One host thread's cuBLASLt state on one device.
struct DeviceContext {
  cublasLtHandle_t handle = nullptr;
  std::unordered_map<cudaStream_t, std::unique_ptr<Buffer>> workspaces;  // kWorkspaceBytes each
  std::unordered_map<PlanKey, std::unique_ptr<Plan>, PlanKeyHash> plans;

  DeviceContext() = default;
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;
  ~DeviceContext() {
    plans.clear();
    workspaces.clear();
    if (handle != nullptr) cublasLtDestroy(handle);  // status ignored, as in ~Plan
  }
};

// Handles and workspaces are made outside stream capture only: creating them allocates.
void check_not_capturing(cudaStream_t stream, std::string_view what) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  MLA_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  MLA_CHECK(status == cudaStreamCaptureStatusNone,
            "{}: the first GEMM on this thread/device/stream ran during a CUDA graph capture and would "
            "allocate its {}; run the step once before capturing it",
            kOp, what);
}

DeviceContext& context_for(int device, cudaStream_t stream) {
  thread_local std::map<int, std::unique_ptr<DeviceContext>> contexts;
  std::unique_ptr<DeviceContext>& ctx = contexts[device];
  if (!ctx) {
    check_not_capturing(stream, "cuBLASLt handle");
    auto fresh = std::make_unique<DeviceContext>();
    MLA_CUBLAS_CHECK(cublasLtCreate(&fresh->handle));
    ctx = std::move(fresh);
  }
  return *ctx;
}

void* workspace_for(DeviceContext& ctx, cudaStream_t stream) {
  std::unique_ptr<Buffer>& ws = ctx.workspaces[stream];
  if (!ws) {
    check_not_capturing(stream, "workspace");
    ws = std::make_unique<Buffer>(Device::kCUDA, kWorkspaceBytes);
  }
  return ws->data();
}

cublasLtMatrixLayout_t make_layout(DType dtype, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t batch_stride) {
  cublasLtMatrixLayout_t layout = nullptr;
  MLA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, cuda_type(dtype), static_cast<uint64_t>(rows),
                                              static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const auto count = static_cast<int32_t>(batch);
    MLA_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    MLA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                      &batch_stride, sizeof(batch_stride)));
  }
  return layout;
}

std::unique_ptr<Plan> make_plan(cublasLtHandle_t handle, const PlanKey& k, const Fp8BlockScales& fp8_scales) {
  auto plan = std::make_unique<Plan>();
  MLA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  if (k.ab_dtype == DType::kF8E4M3) {
    const int32_t lt_a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    const int32_t lt_b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    MLA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &lt_a_mode, sizeof(lt_a_mode)));
    MLA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &lt_b_mode, sizeof(lt_b_mode)));
    set_fp8_scales(plan->op, fp8_scales);
  }
  const bool b_nk = k.b_layout == BLayout::kNK;
  const int32_t trans_a = b_nk ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  MLA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  // cuBLAS A = our B: stored [K, N] (kNK, transposed) or [N, K] (kKN); cuBLAS B = our A [K, M].
  plan->lt_a = b_nk ? make_layout(k.ab_dtype, k.k, k.n, k.ldb, k.batch, k.batch_b)
                    : make_layout(k.ab_dtype, k.n, k.k, k.ldb, k.batch, k.batch_b);
  plan->lt_b = make_layout(k.ab_dtype, k.k, k.m, k.lda, k.batch, k.batch_a);
  plan->lt_d = make_layout(k.d_dtype, k.n, k.m, k.ldd, k.batch, k.batch_d);

  cublasLtMatmulPreference_t pref = nullptr;
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t max_ws = kWorkspaceBytes;
  const cublasStatus_t statuses[] = {
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof(max_ws)),
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &k.align_b,
                                           sizeof(k.align_b)),
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &k.align_a,
                                           sizeof(k.align_a)),
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &k.align_d,
                                           sizeof(k.align_d)),
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &k.align_d,
                                           sizeof(k.align_d))};
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t query = cublasLtMatmulAlgoGetHeuristic(handle, plan->op, plan->lt_a, plan->lt_b, plan->lt_d,
                                                              plan->lt_d, pref, 1, &result, &found);
  MLA_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  for (cublasStatus_t s : statuses) MLA_CUBLAS_CHECK(s);
  MLA_CUBLAS_CHECK(query);
  MLA_CHECK(found > 0 && result.state == CUBLAS_STATUS_SUCCESS,
            "{}: cuBLASLt has no algorithm for D [{}, {}] = A [{}, {}] · B ({}), batch {}, {} -> {}", kOp, k.m, k.n, k.m,
            k.k, b_nk ? "[N, K]ᵀ" : "[K, N]", k.batch, dtype_name(k.ab_dtype), dtype_name(k.d_dtype));
  plan->algo = result.algo;
  plan->workspace_bytes = result.workspaceSize;
  return plan;
}

void check_problem(const GemmProblem& p) {
  MLA_CHECK(p.m > 0 && p.n > 0 && p.k > 0 && p.batch > 0, "{}: empty problem M {} N {} K {} batch {}", kOp, p.m, p.n,
            p.k, p.batch);
  const bool bf16_in = p.ab_dtype == DType::kBF16 && (p.d_dtype == DType::kBF16 || p.d_dtype == DType::kF32);
  const bool f32_in = p.ab_dtype == DType::kF32 && p.d_dtype == DType::kF32;
  const bool fp8_in = p.ab_dtype == DType::kF8E4M3 && (p.d_dtype == DType::kBF16 || p.d_dtype == DType::kF32);
  MLA_CHECK(bf16_in || f32_in || fp8_in,
            "{}: A and B {} with D {}: supported are BF16 -> BF16 or F32, F32 -> F32 and F8_E4M3 -> BF16 or F32", kOp,
            dtype_name(p.ab_dtype), dtype_name(p.d_dtype));
  if (fp8_in) {
    const auto aligned16 = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
    MLA_CHECK(p.fp8_scales.a_vec128 != nullptr && p.fp8_scales.b_blk128 != nullptr && aligned16(p.fp8_scales.a_vec128) &&
                  aligned16(p.fp8_scales.b_blk128),
              "{}: an FP8 problem needs both block-scale tensors, 16-byte aligned", kOp);
    MLA_CHECK(p.b_layout == BLayout::kNK && p.batch == 1, "{}: FP8 problems are single [M, K] · [N, K]ᵀ products",
              kOp);
    MLA_CHECK(p.m % 4 == 0 && p.n % 4 == 0 && p.k % 16 == 0 && ((p.k + 127) / 128) % 4 == 0,
              "{}: cuBLASLt's block-scaled FP8 needs M, N multiples of 4, K of 16 and ceil(K/128) of 4; got M {} N {} "
              "K {}",
              kOp, p.m, p.n, p.k);
  } else {
    MLA_CHECK(p.fp8_scales.a_vec128 == nullptr && p.fp8_scales.b_blk128 == nullptr,
              "{}: block scales given for a {} problem", kOp, dtype_name(p.ab_dtype));
  }
  const int64_t b_row = p.b_layout == BLayout::kNK ? p.k : p.n;
  MLA_CHECK(p.a.row_stride >= p.k && p.b.row_stride >= b_row && p.d_row_stride >= p.n,
            "{}: row strides A {} B {} D {} are shorter than the rows (K {}, N {})", kOp, p.a.row_stride,
            p.b.row_stride, p.d_row_stride, p.k, p.n);
  MLA_CHECK(p.batch == 1 || (p.a.batch_stride >= 0 && p.b.batch_stride >= 0 && p.d_batch_stride > 0),
            "{}: negative batch strides", kOp);
  MLA_CHECK(p.batch < (int64_t{1} << 31), "{}: batch {} over cuBLASLt's int32 count", kOp, p.batch);
  MLA_CHECK(p.a.data != nullptr && p.b.data != nullptr && p.d != nullptr, "{}: null operand", kOp);
}

}  // namespace

void lt_gemm(const GemmProblem& p, cudaStream_t stream) {
  check_problem(p);
  int device = 0;
  MLA_CUDA_CHECK(cudaGetDevice(&device));
  DeviceContext& ctx = context_for(device, stream);
  void* workspace = workspace_for(ctx, stream);

  const bool batched = p.batch > 1;
  const PlanKey key{p.m,
                    p.n,
                    p.k,
                    p.batch,
                    p.a.row_stride,
                    p.b.row_stride,
                    p.d_row_stride,
                    batched ? p.a.batch_stride : 0,
                    batched ? p.b.batch_stride : 0,
                    batched ? p.d_batch_stride : 0,
                    p.ab_dtype,
                    p.d_dtype,
                    p.b_layout,
                    alignment_of(p.a.data, p.a.batch_stride, p.ab_dtype, batched),
                    alignment_of(p.b.data, p.b.batch_stride, p.ab_dtype, batched),
                    alignment_of(p.d, p.d_batch_stride, p.d_dtype, batched)};
  std::unique_ptr<Plan>& plan = ctx.plans[key];
  if (!plan) {
    const auto t0 = std::chrono::steady_clock::now();
    plan = make_plan(ctx.handle, key, p.fp8_scales);
    plans_built.fetch_add(1, std::memory_order_relaxed);
    plan_build_ns.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count(),
        std::memory_order_relaxed);
  }
  if (p.ab_dtype == DType::kF8E4M3) set_fp8_scales(plan->op, p.fp8_scales);

  const float alpha = 1.0f, beta = 0.0f;
  MLA_CUBLAS_CHECK(cublasLtMatmul(ctx.handle, plan->op, &alpha, p.b.data, plan->lt_a, p.a.data, plan->lt_b, &beta,
                                  p.d, plan->lt_d, p.d, plan->lt_d, &plan->algo, workspace, plan->workspace_bytes,
                                  stream));
}

GemmPlanStats lt_plan_stats() {
  return {plans_built.load(std::memory_order_relaxed), 1e-6 * double(plan_build_ns.load(std::memory_order_relaxed))};
}

}  // namespace mlaserve::ops::cuda
