// Benchmark of mla_decode_cuda (sm_90a) at the shapes of ANCHORS.md, beside the HBM floor
// measured in the same run. A program, not a test: it prints a table and writes JSON.
//
//   mla_decode_bench [--out DIR] [--torch-baseline FILE] [--reps N] [--shapes KEY,KEY...]  (KEY bB_cC_hH_qQ, any shape)
//                    [--plans auto,split,whole] [--kernels auto,partitioned,split_s] [--early-loads on|off]
//                    [--kv-multicast on|off]
//
// --kernels: each shape once per kernel, the step's own choice (auto: use_partitioned_kernels) or
// the one named, as the tests force it (to measure the choice's boundaries); "partitioned" runs
// the ring kernel where a sequence has at most 16 query rows, else the seesaw (decode_kernel).
// --early-loads on: each call reads the schedule and tables and starts its first cache copies
// before it waits for the call before it (MlaDecodeArgs::early_loads, as the model calls it);
// off (default) keeps the figures of earlier runs comparable.
// --kv-multicast off: the seesaw's query tile pairs copy each block apart, not as clusters sharing
// it (MlaDecodeSchedule::kv_multicast; on, the default, is what the engine runs).
// Per shape: a paged bf16 cache with shuffled block tables, random inputs (never zeros), and as
// many input sets as it takes to pass 128 MB (about 2.5x the H100's 50 MB L2), used in
// rotation. The timed unit is one layer's call (the decode kernel, plus the combine kernel after
// the ring or seesaw kernel; the split-S kernel, below 8 sequences, merges in-kernel behind counters
// that every call must leave at zero, so the graph's 20 back-to-back calls also exercise that)
// with a schedule updated once beforehand, as the engine runs it: a CUDA graph of 20 calls over the rotating
// sets is replayed, each replay timed with events; the median over replays, divided by 20, is
// the figure ("graph us"). The median of single eager calls timed with events is reported too.
//
// Bytes counted: every visible cache row once (1152 B per key), q, out and lse. FLOPs:
// 2 * rows * keys * (576 + 512). The floor is bytes / the device-to-device copy bandwidth
// measured here (bytes read + written, cudaMemcpyAsync of 1 GiB); "%copy" is GB/s against that
// rate and "%peak" TFLOPS against the dense BF16 GEMM rate measured here (cuBLASLt,
// 4096 x 7168 x 16384), so that cards of different bandwidth compare. --torch-baseline takes the
// JSON written by bench/mla_decode_torch_baseline.py in the same run (plain einsum + softmax
// on a dense cache) and prints it as a column.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "copy_bandwidth.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "ops/cuda/mla_decode_sm90_heuristics.h"
#include "ops/linear.h"
#include "ops/mla_decode.h"

namespace mlaserve::bench {
namespace {

using ops::kCacheRowDim;
using ops::kKvBlockSize;
using ops::kLatentDim;

struct Shape {
  int batch;
  int context;
  int n_heads;
  int q_len;
  double flashmla_us;  // ANCHORS.md (H100, FlashMLA), 0 where none was measured
  std::string key() const {
    return "b" + std::to_string(batch) + "_c" + std::to_string(context) + "_h" + std::to_string(n_heads) + "_q" +
           std::to_string(q_len);
  }
};

// FlashMLA's figures from ANCHORS.md turned into times where the anchor gives GB/s. The last
// three: short partitions, where the schedule's split-or-whole rule and the merge of few pieces
// once cost 1.5-3.5x (bench/NOTES-mla-decode.md, 2026-11-29).
const std::vector<Shape> kShapes = {
    {128, 4096, 16, 1, 210.0}, {128, 4096, 128, 1, 245.0}, {128, 4096, 16, 2, 0.0}, {64, 8192, 16, 1, 0.0},
    {32, 32768, 16, 1, 0.0},   {1, 4096, 16, 1, 25.0},     {1, 4096, 128, 1, 0.0},  {8, 4096, 16, 1, 0.0},
    {1, 256, 16, 1, 0.0},      {1, 1024, 128, 1, 0.0},     {8, 1024, 128, 1, 0.0},
};

// "b1_c1024_h16_q1,b128_c4096_h16_q1": the listed shapes keep their FlashMLA anchor, others have none.
std::vector<Shape> parse_shapes(const std::string& list) {
  std::vector<Shape> shapes;
  std::stringstream in(list);
  for (std::string key; std::getline(in, key, ',');) {
    const auto listed = std::find_if(kShapes.begin(), kShapes.end(), [&](const Shape& s) { return s.key() == key; });
    Shape s{};
    MLA_CHECK(listed != kShapes.end() ||
                  std::sscanf(key.c_str(), "b%d_c%d_h%d_q%d", &s.batch, &s.context, &s.n_heads, &s.q_len) == 4,
              "--shapes: '{}' is not bB_cC_hH_qQ", key);
    shapes.push_back(listed != kShapes.end() ? *listed : s);
  }
  return shapes;
}

__global__ void fill_random_bf16(__nv_bfloat16* p, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t x = (static_cast<uint64_t>(i) + seed) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const float u = static_cast<float>(x >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    p[i] = __float2bfloat16(2.0f * u - 1.0f + 1e-3f);                  // never exactly zero
  }
}

void fill(Tensor& t, uint64_t seed) {
  fill_random_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(t.raw()), t.numel(), seed);
  MLA_CUDA_CHECK_LAUNCH();
}

// The card's dense BF16 rate, measured here: cuBLASLt (ops::linear_cuda) at 4096 x 7168 x 16384,
// the ANCHORS.md shape; TFLOPS of the median of 10 timed calls after 3.
double dense_bf16_tflops(cudaStream_t stream, Timer& timer) {
  constexpr int64_t m = 4096, n = 7168, k = 16384;
  Tensor x = Tensor::empty({m, k}, DType::kBF16, Device::kCUDA);  // [M, K]
  Tensor w = Tensor::empty({n, k}, DType::kBF16, Device::kCUDA);  // [N, K]
  Tensor y = Tensor::empty({m, n}, DType::kBF16, Device::kCUDA);  // [M, N]
  fill(x, 11);
  fill(w, 12);
  auto call = [&](int) { ops::linear_cuda(x, w, y, stream); };
  for (int i = 0; i < 3; ++i) call(i);
  return 2.0 * m * n * k / timer.median_us(stream, 10, call) / 1e6;
}

struct Result {
  Shape shape;
  double graph_us, eager_us, schedule_us, bytes, flops, floor_us, torch_us;
  int64_t input_sets, num_parts, num_m_tiles;
  const char* kernel;  // which decode kernel ran: split_s, ring or seesaw
  ops::MlaPlan plan;  // the plan asked for
  int64_t split_seqs;  // sequences the schedule split (0: the whole plan)
};

const char* plan_name(ops::MlaPlan plan) {
  switch (plan) {
    case ops::MlaPlan::kAuto: return "auto";
    case ops::MlaPlan::kSplit: return "split";
    case ops::MlaPlan::kWhole: return "whole";
  }
  return "?";
}

// "auto>whole": the plan asked for, then what the schedule made (whole: no sequence split).
std::string plan_label(const Result& r) {
  return std::string(plan_name(r.plan)) + ">" + (r.split_seqs == 0 ? "whole" : "split");
}

// The kernel a run uses: the schedule's choice, or one forced.
enum class KernelChoice { kAuto, kPartitioned, kSplitS };

// A list flag's comma-separated names ("auto,split"), each one of `names`, as their values.
template <typename T>
std::vector<T> parse_choices(const char* flag, const std::string& list,
                             std::initializer_list<std::pair<std::string_view, T>> names) {
  std::vector<T> out;
  const std::string items = list + ",";
  for (size_t at = 0, comma; (comma = items.find(',', at)) != std::string::npos; at = comma + 1) {
    const std::string_view name = std::string_view(items).substr(at, comma - at);
    const auto it = std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.first == name; });
    MLA_CHECK(it != names.end(), "{}: unknown name '{}'", flag, name);
    out.push_back(it->second);
  }
  return out;
}

Result run_shape(const Shape& s, ops::MlaPlan plan, KernelChoice kernel, bool early_loads, bool kv_multicast,
                 double copy_gbps, const nlohmann::json& torch, int reps, cudaStream_t stream, Timer& timer) {
  const int64_t blocks_per_seq = (s.context + kKvBlockSize - 1) / kKvBlockSize;
  const int64_t num_blocks = s.batch * blocks_per_seq;
  const int64_t t = static_cast<int64_t>(s.batch) * s.q_len;
  const double set_bytes = num_blocks * kKvBlockSize * kCacheRowDim * 2.0 + t * s.n_heads * (kCacheRowDim + kLatentDim) * 2.0;
  const int64_t sets = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(128e6 / set_bytes)));

  // Shared metadata: shuffled block tables, equal lengths (as in ANCHORS).
  std::mt19937_64 rng(7);
  std::vector<int32_t> pool(static_cast<size_t>(num_blocks)), lens(s.batch, s.context), starts(s.batch + 1);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  for (int i = 0; i <= s.batch; ++i) starts[i] = i * s.q_len;
  ops::MlaDecodeArgs base;
  Tensor table = Tensor::empty({s.batch, blocks_per_seq}, DType::kI32);
  std::copy(pool.begin(), pool.end(), table.data<int32_t>());
  Tensor lens_t = Tensor::empty({s.batch}, DType::kI32), starts_t = Tensor::empty({s.batch + 1}, DType::kI32);
  std::copy(lens.begin(), lens.end(), lens_t.data<int32_t>());
  std::copy(starts.begin(), starts.end(), starts_t.data<int32_t>());
  base.block_table = table.to(Device::kCUDA);
  base.seq_lens = lens_t.to(Device::kCUDA);
  base.query_start = starts_t.to(Device::kCUDA);
  base.softmax_scale = 0.1352338f;
  base.early_loads = early_loads;

  std::vector<ops::MlaDecodeArgs> args(static_cast<size_t>(sets), base);
  std::vector<ops::MlaDecodeOutputs> outs(static_cast<size_t>(sets));
  for (int64_t i = 0; i < sets; ++i) {
    args[i].q = Tensor::empty({t, s.n_heads, kCacheRowDim}, DType::kBF16, Device::kCUDA);
    args[i].kv_cache = Tensor::empty({num_blocks, kKvBlockSize, kCacheRowDim}, DType::kBF16, Device::kCUDA);
    fill(args[i].q, 1000 * i + 1);
    fill(args[i].kv_cache, 1000 * i + 2);
    outs[i].out = Tensor::empty({t, s.n_heads, kLatentDim}, DType::kBF16, Device::kCUDA);
    outs[i].lse = Tensor::empty({t, s.n_heads}, DType::kF32, Device::kCUDA);
    outs[i].lse.fill_bytes(0xFF);
  }
  ops::MlaDecodeSchedule schedule = ops::mla_decode_schedule_create(s.batch, s.n_heads, s.q_len);
  schedule.plan = plan;
  schedule.kv_multicast = kv_multicast;
  MLA_CUDA_CHECK(cudaDeviceSynchronize());

  const double schedule_us =
      timer.median_us(stream, reps, [&](int) {
        ops::mla_decode_schedule_update(schedule, base.seq_lens, stream, s.context);  // the bound the model passes
      });
  if (kernel != KernelChoice::kAuto) {
    schedule.partitioned = kernel != KernelChoice::kSplitS;
  }
  auto call = [&](int i) { ops::mla_decode_cuda(args[i % sets], outs[i % sets], schedule, stream); };
  for (int i = 0; i < 5; ++i) call(i);
  const double eager_us = timer.median_us(stream, reps, call);

  constexpr int kCallsPerGraph = 20;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  MLA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kCallsPerGraph; ++i) call(i);
  MLA_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  MLA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  auto replay = [&](int) { MLA_CUDA_CHECK(cudaGraphLaunch(exec, stream)); };
  for (int i = 0; i < 3; ++i) replay(i);
  const double graph_us = timer.median_us(stream, std::max(5, reps / 4), replay) / kCallsPerGraph;
  MLA_CUDA_CHECK(cudaGraphExecDestroy(exec));
  MLA_CUDA_CHECK(cudaGraphDestroy(graph));

  // Every lse written and finite (outputs were poisoned): a broken run must not report a time.
  // Short contexts make more sets than the timed calls reach: run each once more first.
  for (int64_t i = 0; i < sets; ++i) call(static_cast<int>(i));
  MLA_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (int64_t i = 0; i < sets; ++i) {
    const std::vector<float> lse = outs[i].lse.to(Device::kCPU).to_vector();
    for (float v : lse) MLA_CHECK(std::isfinite(v), "shape {}: non-finite lse {} in set {}", s.key(), v, i);
  }

  const Tensor splits = schedule.seq_splits.to(Device::kCPU);  // [max_seqs, 2]: pieces, first slot
  int64_t split_seqs = 0;
  for (int64_t b = 0; b < s.batch; ++b) split_seqs += splits.data<int32_t>()[2 * b] > 1 ? 1 : 0;
  Result r{s, graph_us, eager_us, schedule_us, 0, 0, 0, 0, sets, schedule.num_parts, schedule.num_m_tiles,
           ops::sm90::decode_kernel_name(
               ops::sm90::decode_kernel(schedule.partitioned, schedule.n_heads * schedule.max_q_len)),
           plan, split_seqs};
  const double keys = static_cast<double>(s.batch) * s.context;
  r.bytes = keys * kCacheRowDim * 2.0 + t * s.n_heads * (kCacheRowDim * 2.0 + kLatentDim * 2.0 + 4.0);
  r.flops = 2.0 * t * s.n_heads * static_cast<double>(s.context) * (kCacheRowDim + kLatentDim);
  r.floor_us = r.bytes / copy_gbps / 1e3;
  r.torch_us = torch.contains(s.key()) ? torch[s.key()].get<double>() : 0.0;
  return r;
}

int run(int argc, char** argv) {
  std::string out_dir = "bench/results", torch_path;
  std::vector<Shape> shapes = kShapes;
  int reps = 100;
  std::vector<ops::MlaPlan> plans = {ops::MlaPlan::kAuto};
  std::vector<KernelChoice> kernels = {KernelChoice::kAuto};
  bool early_loads = false, kv_multicast = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (a == "--torch-baseline" && i + 1 < argc) {
      torch_path = argv[++i];
    } else if (a == "--shapes" && i + 1 < argc) {
      shapes = parse_shapes(argv[++i]);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(5, std::atoi(argv[++i]));
    } else if (a == "--plans" && i + 1 < argc) {  // e.g. auto,split: each shape once per plan
      plans = parse_choices<ops::MlaPlan>(
          "--plans", argv[++i],
          {{"auto", ops::MlaPlan::kAuto}, {"split", ops::MlaPlan::kSplit}, {"whole", ops::MlaPlan::kWhole}});
    } else if (a == "--kernels" && i + 1 < argc) {  // e.g. partitioned,split_s: each shape once per kernel
      kernels = parse_choices<KernelChoice>(
          "--kernels", argv[++i],
          {{"auto", KernelChoice::kAuto},
           {"partitioned", KernelChoice::kPartitioned},
           {"split_s", KernelChoice::kSplitS}});
    } else if (a == "--early-loads" && i + 1 < argc) {
      const std::string v = argv[++i];
      MLA_CHECK(v == "on" || v == "off", "--early-loads: on or off, got '{}'", v);
      early_loads = v == "on";
    } else if (a == "--kv-multicast" && i + 1 < argc) {
      const std::string v = argv[++i];
      MLA_CHECK(v == "on" || v == "off", "--kv-multicast: on or off, got '{}'", v);
      kv_multicast = v == "on";
    } else {
      std::fprintf(stderr,
                   "usage: %s [--out DIR] [--torch-baseline FILE] [--reps N] [--shapes KEY,KEY...] "
                   "[--plans auto,split,whole] [--kernels auto,partitioned,split_s] [--early-loads on|off] "
                   "[--kv-multicast on|off]\n",
                   argv[0]);
      return 2;
    }
  }
  nlohmann::json torch = nlohmann::json::object();
  if (!torch_path.empty()) {
    std::ifstream in(torch_path);
    if (in) torch = nlohmann::json::parse(in).value("us", nlohmann::json::object());
  }

  cudaDeviceProp prop{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Timer timer;
  // The floor uses the memcpy rate; the 16-byte copy kernel's is printed and recorded beside it.
  const double copy_memcpy = memcpy_gbps(stream), copy_kernel = copy_kernel_gbps(stream);
  const double peak_tflops = dense_bf16_tflops(stream, timer);
  std::printf("card: %s, %d SMs, L2 %d MB; copy %.0f GB/s (memcpy), %.0f GB/s (16-byte kernel); dense BF16 %.0f TFLOPS "
              "(cuBLASLt 4096x7168x16384)\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_memcpy, copy_kernel, peak_tflops);

  std::vector<Result> results;
  for (const Shape& s : shapes) {
    for (const ops::MlaPlan plan : plans) {
      for (const KernelChoice kernel : kernels) {
        results.push_back(
            run_shape(s, plan, kernel, early_loads, kv_multicast, copy_memcpy, torch, reps, stream, timer));
      }
    }
  }

  std::printf("\n%-20s %9s %9s %8s %6s %8s %6s %9s %7s %9s %9s %9s %9s %12s\n", "shape", "graph us", "eager us",
              "GB/s", "%copy", "TFLOPS", "%peak", "floor us", "xfloor", "sched us", "torch us", "FlashMLA", "kernel",
              "plan");
  nlohmann::json rows = nlohmann::json::array();
  for (const Result& r : results) {
    const double gbps = r.bytes / r.graph_us / 1e3, tflops = r.flops / r.graph_us / 1e6;
    std::printf("%-20s %9.1f %9.1f %8.0f %6.1f %8.1f %6.1f %9.1f %7.2f %9.1f %9s %9s %9s %12s\n", r.shape.key().c_str(),
                r.graph_us, r.eager_us, gbps, 100.0 * gbps / copy_memcpy, tflops, 100.0 * tflops / peak_tflops,
                r.floor_us, r.graph_us / r.floor_us, r.schedule_us,
                r.torch_us > 0 ? std::to_string(static_cast<int>(r.torch_us)).c_str() : "-",
                r.shape.flashmla_us > 0 ? std::to_string(static_cast<int>(r.shape.flashmla_us)).c_str() : "-",
                r.kernel, plan_label(r).c_str());
    rows.push_back({{"shape", r.shape.key()},
                    {"batch", r.shape.batch},
                    {"context", r.shape.context},
                    {"n_heads", r.shape.n_heads},
                    {"q_len", r.shape.q_len},
                    {"graph_us", r.graph_us},
                    {"eager_us", r.eager_us},
                    {"schedule_us", r.schedule_us},
                    {"gbps", gbps},
                    {"tflops", tflops},
                    {"bytes", r.bytes},
                    {"flops", r.flops},
                    {"floor_us", r.floor_us},
                    {"torch_us", r.torch_us},
                    {"flashmla_anchor_us", r.shape.flashmla_us},
                    {"input_sets", r.input_sets},
                    {"num_parts", r.num_parts},
                    {"num_m_tiles", r.num_m_tiles},
                    {"kernel", r.kernel},
                    {"plan", plan_name(r.plan)},
                    {"split_seqs", r.split_seqs}});
  }

  write_report(out_dir, "mla_decode", prop.name, command_line(argc, argv),
               {{"card", prop.name},
                {"sms", prop.multiProcessorCount},
                {"copy_gbps_memcpy", copy_memcpy},
                {"copy_gbps_kernel", copy_kernel},
                {"dense_bf16_tflops", peak_tflops},
                {"early_loads", early_loads},
                {"kv_multicast", kv_multicast},
                {"results", rows}});
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("mla_decode_bench", mlaserve::bench::run, argc, argv);
}
