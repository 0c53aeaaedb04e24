// Benchmark of the absorbed MLA decode attention at batch 1-3: the fused kernel
// (mla_absorbed_attention_cuda, one cluster of 16 CTAs a head group) against the three ops the
// model runs otherwise (mla_absorb_query_cuda, mla_decode_cuda on an updated schedule,
// mla_up_project_output_cuda), beside the HBM floor measured in the same run. A program, not a
// test: it prints a table and writes JSON.
//
//   mla_absorbed_bench [--out DIR] [--reps N]
//
// Shapes: 16, 32 and 64 heads a GPU (V2-Lite or V3 under TP8, V2 / V3 under TP4, TP2), 1-3
// sequences of one query token, contexts of 256 to 4,096 tokens: the region where the model's
// choice between the two (mla_absorbed_max_seq_len, mla_absorbed_attention_max_seqs) is made. A
// (heads, batch) the GPU holds no clusters for is left out. Per shape, as many input sets (q,
// kv_b_proj, a paged cache with shuffled tables) as it takes to pass 128 MB, used in rotation, so
// that each call reads its weights and cache from HBM as a layer of the model does. The timed unit
// is one layer's call, both paths with early loads as the model calls them: a CUDA graph of 20
// calls, the median replay over 20 ("us"). Bytes: kv_b_proj (W_UK and W_UV, bf16), every visible
// cache row once, q and o; the floor is bytes / the device-to-device copy bandwidth measured here
// (cudaMemcpyAsync, read + write).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "copy_bandwidth.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/mla_absorb.h"
#include "ops/mla_absorbed_attention.h"
#include "ops/mla_decode.h"
#include "ops/random_fill.h"

namespace mlaserve::bench {
namespace {

using ops::kCacheRowDim;
using ops::kKvBlockSize;
using ops::kLatentDim;

constexpr int64_t kNope = 128, kRope = 64, kValue = 128;
constexpr double kRotateBytes = 128e6;
constexpr int kCallsPerGraph = 20;

struct Shape {
  int64_t heads, batch, context;
};

struct Result {
  Shape shape;
  double fused_us, three_us, bytes, floor_us;
  int64_t input_sets;
};

// One layer's inputs: q [B, n, 192], kv_b_proj [n · 256, 512], a cache of B · ceil(context / 64)
// blocks, and both paths' outputs.
struct InputSet {
  ops::MlaAbsorbedArgs args;
  Tensor q_abs, o_lat, lse, o_fused, o_three;
};

Result run_shape(const Shape& s, double copy_gbps, int reps, cudaStream_t stream, Timer& timer) {
  const int64_t blocks_per_seq = (s.context + kKvBlockSize - 1) / kKvBlockSize, num_blocks = s.batch * blocks_per_seq;
  const double weight_bytes = s.heads * (kNope + kValue) * kLatentDim * 2.0;
  const double cache_bytes = static_cast<double>(s.batch) * s.context * kCacheRowDim * 2.0;
  const double io_bytes = s.batch * s.heads * (kNope + kRope + kValue) * 2.0;
  const double set_bytes = weight_bytes + num_blocks * kKvBlockSize * kCacheRowDim * 2.0;  // cache blocks whole
  const int64_t sets = std::max<int64_t>(2, static_cast<int64_t>(std::ceil(kRotateBytes / set_bytes)));

  // Shared metadata: shuffled block tables, equal lengths.
  std::mt19937_64 rng(7);
  std::vector<int32_t> pool(static_cast<size_t>(num_blocks)), starts(static_cast<size_t>(s.batch + 1));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::iota(starts.begin(), starts.end(), 0);
  Tensor table = Tensor::empty({s.batch, blocks_per_seq}, DType::kI32);
  Tensor lens = Tensor::empty({s.batch}, DType::kI32), starts_t = Tensor::empty({s.batch + 1}, DType::kI32);
  std::copy(pool.begin(), pool.end(), table.data<int32_t>());
  std::fill(lens.data<int32_t>(), lens.data<int32_t>() + s.batch, static_cast<int32_t>(s.context));
  std::copy(starts.begin(), starts.end(), starts_t.data<int32_t>());

  ops::MlaAbsorbedArgs base;
  base.block_table = table.to(Device::kCUDA);
  base.seq_lens = lens.to(Device::kCUDA);
  base.query_start = starts_t.to(Device::kCUDA);
  base.softmax_scale = 0.1352338f;
  base.early_loads = true;
  std::vector<InputSet> in(static_cast<size_t>(sets));
  for (int64_t i = 0; i < sets; ++i) {
    InputSet& x = in[static_cast<size_t>(i)];
    x.args = base;
    x.args.q = Tensor::empty({s.batch, s.heads, kNope + kRope}, DType::kBF16, Device::kCUDA);
    x.args.w_kv_b = Tensor::empty({s.heads * (kNope + kValue), kLatentDim}, DType::kBF16, Device::kCUDA);
    x.args.kv_cache = Tensor::empty({num_blocks, kKvBlockSize, kCacheRowDim}, DType::kBF16, Device::kCUDA);
    ops::fill_uniform_cuda({static_cast<uint64_t>(3 * i + 1), 1.0f, 0.0f}, x.args.q, stream);
    ops::fill_uniform_cuda({static_cast<uint64_t>(3 * i + 2), 0.05f, 0.0f}, x.args.w_kv_b, stream);
    ops::fill_uniform_cuda({static_cast<uint64_t>(3 * i + 3), 1.0f, 0.0f}, x.args.kv_cache, stream);
    x.q_abs = Tensor::empty({s.batch, s.heads, kCacheRowDim}, DType::kBF16, Device::kCUDA);
    x.o_lat = Tensor::empty({s.batch, s.heads, kLatentDim}, DType::kBF16, Device::kCUDA);
    x.lse = Tensor::empty({s.batch, s.heads}, DType::kF32, Device::kCUDA);
    x.o_fused = Tensor::empty({s.batch, s.heads, kValue}, DType::kBF16, Device::kCUDA);
    x.o_three = Tensor::empty({s.batch, s.heads, kValue}, DType::kBF16, Device::kCUDA);
  }
  MLA_CHECK(ops::mla_absorbed_attention_fits(in[0].args, in[0].o_fused), "{} heads x {} sequences do not fit",
            s.heads, s.batch);
  ops::MlaDecodeSchedule schedule = ops::mla_decode_schedule_create(s.batch, s.heads, 1);
  ops::mla_decode_schedule_update(schedule, base.seq_lens, stream, s.context);  // the bound the model passes

  auto fused = [&](int i) {
    InputSet& x = in[static_cast<size_t>(i % sets)];
    ops::mla_absorbed_attention_cuda(x.args, x.o_fused, stream);
  };
  auto three = [&](int i) {
    InputSet& x = in[static_cast<size_t>(i % sets)];
    ops::mla_absorb_query_cuda(x.args.q, x.args.w_kv_b, x.q_abs, stream);
    const ops::MlaDecodeArgs d{x.q_abs, x.args.kv_cache, x.args.block_table, x.args.seq_lens, x.args.query_start,
                               x.args.softmax_scale, /*early_loads=*/true};
    ops::MlaDecodeOutputs lat{x.o_lat, x.lse};
    ops::mla_decode_cuda(d, lat, schedule, stream);
    ops::mla_up_project_output_cuda(x.o_lat, x.args.w_kv_b, x.o_three, stream);
  };
  const int replays = std::max(5, reps);
  Result r{s, 0, 0, weight_bytes + cache_bytes + io_bytes, 0, sets};
  r.fused_us = timer.graph_us(stream, kCallsPerGraph, replays, fused);
  r.three_us = timer.graph_us(stream, kCallsPerGraph, replays, three);
  r.floor_us = r.bytes / copy_gbps / 1e3;

  // Both paths' last outputs agree (a broken run must not report a time): relative L2 within the
  // tests' bound for the two paths (mla_absorbed_attention_cuda_test: 1e-2).
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
  const std::vector<float> a = in[0].o_fused.to(Device::kCPU).to_vector();
  const std::vector<float> b = in[0].o_three.to(Device::kCPU).to_vector();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * static_cast<double>(a[i] - b[i]);
    norm += b[i] * static_cast<double>(b[i]);
  }
  MLA_CHECK(std::isfinite(diff) && diff <= 1e-4 * norm, "{} heads x {} x {}: the fused and three-op outputs differ "
            "(relative L2 {})", s.heads, s.batch, s.context, std::sqrt(diff / norm));
  return r;
}

int run(int argc, char** argv) {
  std::string out_dir = "bench/results";
  int reps = 20;
  if (!parse_out_and_reps(argc, argv, out_dir, &reps)) return 2;

  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Timer timer;
  const double copy = memcpy_gbps(stream);
  std::printf("card: %s, %d SMs; copy %.0f GB/s (memcpy)\n", prop.name, prop.multiProcessorCount, copy);

  std::vector<Result> results;
  for (const int64_t heads : {16, 32, 64}) {
    for (int64_t batch = 1; batch <= 3; ++batch) {
      if (batch > ops::mla_absorbed_attention_max_seqs(heads, Device::kCUDA)) continue;
      for (const int64_t context : {256, 1024, 1536, 2048, 3072, 4096}) {
        results.push_back(run_shape({heads, batch, context}, copy, reps, stream, timer));
      }
    }
  }

  std::printf("\n%6s %6s %8s %10s %10s %8s %9s %8s %8s\n", "heads", "batch", "context", "fused us", "three us",
              "3/fused", "floor us", "xfloor", "sets");
  nlohmann::json rows = nlohmann::json::array();
  for (const Result& r : results) {
    std::printf("%6lld %6lld %8lld %10.2f %10.2f %8.2f %9.2f %8.2f %8lld\n", static_cast<long long>(r.shape.heads),
                static_cast<long long>(r.shape.batch), static_cast<long long>(r.shape.context), r.fused_us, r.three_us,
                r.three_us / r.fused_us, r.floor_us, r.fused_us / r.floor_us, static_cast<long long>(r.input_sets));
    rows.push_back({{"heads", r.shape.heads},
                    {"batch", r.shape.batch},
                    {"context", r.shape.context},
                    {"fused_us", r.fused_us},
                    {"three_ops_us", r.three_us},
                    {"bytes", r.bytes},
                    {"floor_us", r.floor_us},
                    {"input_sets", r.input_sets}});
  }
  write_report(out_dir, "mla_absorbed", prop.name, command_line(argc, argv),
               {{"card", prop.name}, {"sms", prop.multiProcessorCount}, {"copy_gbps_memcpy", copy}, {"results", rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("mla_absorbed_bench", mlaserve::bench::run, argc, argv);
}
