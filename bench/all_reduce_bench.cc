// The tensor-parallel all-reduce at decode sizes: NCCL against the peer all-reduce
// (dist/peer_all_reduce.h), each as 20 calls captured in one CUDA graph (as the decode steps run
// them), beside the floor of the bytes each GPU must receive over the GPUs' link. A program, not
// a test: it prints a table and writes JSON.
//
//   all_reduce_bench [--tp N] [--reps N] [--master-port P] [--out DIR]   (N GPUs of one machine;
//                                                                         fewer: nothing measured)
//
// It forks its N ranks (dist::DistContext, as mlaserve does); rank 0 prints and writes. Sizes:
// f32 tensors of 8 KiB (V2-Lite's [1, 2048] partial output at one token) to 4 MiB (V3's [2, 64,
// 7168] MoE output apart from the shared experts' at 64 tokens). The floor: (N - 1) · bytes at the
// GPU-to-GPU copy rate, cudaMemcpyPeerAsync of 256 MiB from GPU 1 to GPU 0, measured by rank 0 in
// the same run (the link alone: no launch or synchronisation latency in it).
#include <cuda_runtime_api.h>

#include <cstdio>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "core/cuda_check.h"
#include "core/tensor.h"
#include "dist/context.h"

namespace mlaserve::bench {
namespace {

constexpr int kCalls = 20;  // all-reduces a graph

// GB/s of cudaMemcpyPeerAsync from device 1 to device 0 (rank 0's stream).
double peer_copy_gbs(cudaStream_t stream, int reps) {
  constexpr size_t kBytes = size_t{256} << 20;
  void *dst = nullptr, *src = nullptr;
  MLA_CUDA_CHECK(cudaMalloc(&dst, kBytes));
  if (const cudaError_t e = cudaDeviceEnablePeerAccess(1, 0); e != cudaErrorPeerAccessAlreadyEnabled) {
    MLA_CUDA_CHECK(e);  // without it the copy is staged through the host
  }
  cudaGetLastError();
  MLA_CUDA_CHECK(cudaSetDevice(1));
  MLA_CUDA_CHECK(cudaMalloc(&src, kBytes));
  MLA_CUDA_CHECK(cudaSetDevice(0));
  Timer timer;
  const double us = timer.median_us(stream, reps, [&](int) {
    MLA_CUDA_CHECK(cudaMemcpyPeerAsync(dst, 0, src, 1, kBytes, stream));
  });
  MLA_CUDA_CHECK(cudaFree(dst));
  MLA_CUDA_CHECK(cudaSetDevice(1));
  MLA_CUDA_CHECK(cudaFree(src));
  MLA_CUDA_CHECK(cudaSetDevice(0));
  return static_cast<double>(kBytes) / us * 1e-3;
}

int run(int argc, char** argv) {
  dist::LaunchOptions o;
  o.tp_size = 2;
  o.master_port = 29910;
  o.peer_all_reduce_max_kib = 4096;
  std::string out_dir = "bench/results";
  int reps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tp" && i + 1 < argc) {
      o.tp_size = std::atoi(argv[++i]);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (a == "--master-port" && i + 1 < argc) {
      o.master_port = std::atoi(argv[++i]);
    } else if (a == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--tp N] [--reps N] [--master-port P] [--out DIR]\n", argv[0]);
      return 2;
    }
  }
  const std::string command = command_line(argc, argv);
  if (const int gpus = dist::visible_gpus(); gpus < o.tp_size) {
    std::printf("all_reduce_bench: TP%d needs %d GPUs, this machine shows %d: nothing measured\n", o.tp_size, o.tp_size,
                gpus);
    return 0;
  }
  std::unique_ptr<dist::DistContext> ctx = dist::DistContext::start(o);
  const bool leader = ctx->is_leader();
  Collectives& nccl = *ctx->world();    // the same ranks as the tensor-parallel group, NCCL only
  Collectives& peer = *ctx->tp_group();  // peer memory up to 4 MiB, when the GPUs can map it
  cudaStream_t stream = nullptr;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const double link_gbs = leader ? peer_copy_gbs(stream, reps) : 0.0;
  Timer timer;
  nlohmann::json rows = nlohmann::json::array();
  if (leader) {
    std::printf("TP%d all-reduce, f32, %d calls a graph; link %.1f GB/s (GPU 1 -> GPU 0 copy)\n", o.tp_size, kCalls,
                link_gbs);
    std::printf("%8s %10s %10s %10s %10s\n", "KiB", "NCCL us", "peer us", "peer/NCCL", "floor us");
  }
  for (const int64_t kib : {8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}) {
    Tensor t = Tensor::from_floats(std::vector<float>(static_cast<size_t>(kib * 256), 1e-3f), {kib * 256}, DType::kF32)
                   .to(Device::kCUDA);
    const Stream s{stream};
    const double nccl_us = timer.graph_us(stream, kCalls, reps, [&](int) { nccl.all_reduce_sum(t, s); });
    const double peer_us = timer.graph_us(stream, kCalls, reps, [&](int) { peer.all_reduce_sum(t, s); });
    if (!leader) continue;
    const double floor_us = (o.tp_size - 1) * static_cast<double>(kib * 1024) / link_gbs * 1e-3;
    std::printf("%8lld %10.2f %10.2f %10.2f %10.2f\n", static_cast<long long>(kib), nccl_us, peer_us,
                peer_us / nccl_us, floor_us);
    rows.push_back({{"kib", kib}, {"nccl_us", nccl_us}, {"peer_us", peer_us}, {"floor_us", floor_us}});
  }
  MLA_CUDA_CHECK(cudaStreamDestroy(stream));
  if (leader) {
    int device = 0;
    MLA_CUDA_CHECK(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    write_report(out_dir, "all_reduce", prop.name, command,
                 {{"card", prop.name}, {"tp", o.tp_size}, {"calls_per_graph", kCalls}, {"link_gbs", link_gbs},
                  {"rows", rows}});
  }
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) {
  return mlaserve::bench::run_program("all_reduce_bench", mlaserve::bench::run, argc, argv);
}
