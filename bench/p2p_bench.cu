// GPU 1 -> GPU 0 transfers of a two-stage pipeline's per-step payloads (issue #9), by NCCL p2p and
// by the copy engine, with GPU 0 idle and with GPU 0's SMs busy. A program, not a test: it prints a
// table and writes JSON.
//
//   p2p_bench [--reps N] [--out DIR]      (needs GPUs 0 and 1 with peer access)
//
// Payloads: 1 MiB; the hidden state between stages, bf16 [2384, 2048] (9.8 MB); the sampled rows'
// logits the last stage sends rank 0 every step, f32 [225, 102400] (92.2 MB); 256 MiB.
// Methods, each moving a buffer on GPU 1 into one on GPU 0:
//   nccl     ncclSend on GPU 1's stream and ncclRecv on GPU 0's in one group, over a two-rank
//            communicator made in this process (ncclCommInitRank per device inside a group; rank =
//            device); NCCL_NVLS_ENABLE=0 as in the engine (dist/context.h);
//   ce-pull  cudaMemcpyPeerAsync on GPU 0's stream (peer access enabled both ways);
//   ce-push  the same on GPU 1's stream.
// Loads on GPU 0 (the receiver), a kernel of fixed FMA work on a stream of its own launched just
// before each transfer and sized to run about 4x the idle NCCL transfer (at least 200 us):
//   idle       none;
//   all-slots  every block slot of every SM taken, as by a large GEMM's grid: a kernel NCCL needs
//              on GPU 0 waits for SMs to free up;
//   1cta/sm    one 256-thread block per SM: every SM busy, with room beside it.
// "us" against the idle row says whether the load slowed the transfer; "load us" (the load
// kernel's own events, in the same reps) against "alone us" (the same kernel without a transfer)
// whether the transfer slowed the compute.
//
// Timing: one transfer per rep between two events on GPU 0's stream; GPU 1's stream waits for GPU
// 0's before its side and GPU 0's waits for GPU 1's after it, so the span covers both ends. The
// median of --reps (default 50) after 3 untimed; GB/s = bytes / time (decimal GB). NCCL's first
// call (it connects the two ranks) is reported apart, as host wall time to its completion. The
// destination is poisoned before each row and compared with the source after it.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_main.h"
#include "bench_report.h"
#include "bench_timing.h"
#include "core/cuda_check.h"
#include "dist/nccl_api.h"

extern char** environ;

namespace mlaserve::bench {
namespace {

constexpr int kDst = 0, kSrc = 1;  // device and NCCL rank of each end
constexpr int kWarmup = 3;
constexpr int kLoadThreads = 256;

struct Payload {
  const char* name;
  size_t bytes;
};

const std::vector<Payload> kPayloads = {
    {"1MiB", size_t{1} << 20},
    {"hidden bf16 [2384,2048]", size_t{2384} * 2048 * 2},
    {"logits f32 [225,102400]", size_t{225} * 102400 * 4},
    {"256MiB", size_t{256} << 20},
};

enum class Method { kNccl, kCePull, kCePush };

const char* method_name(Method m) {
  switch (m) {
    case Method::kNccl: return "nccl";
    case Method::kCePull: return "ce-pull";
    case Method::kCePush: return "ce-push";
  }
  return "?";
}

// The source bytes: a pattern that never holds the poison byte 0xff.
uint8_t pattern(size_t i) { return static_cast<uint8_t>(i * 131 % 251); }

// `iters` rounds of 8 independent FMA chains per thread (enough in flight to keep an SM's FMA pipes
// issuing); every thread stores its sum, so no chain can be dropped.
__global__ void fma_load_kernel(int iters, float* sink) {
  float a[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) a[j] = static_cast<float>(threadIdx.x + j);
  for (int i = 0; i < iters; ++i) {
#pragma unroll
    for (int j = 0; j < 8; ++j) a[j] = fmaf(a[j], 0.999999f, 1e-6f);
  }
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; ++j) s += a[j];
  sink[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

class Event {
 public:
  explicit Event(unsigned flags = cudaEventDefault) { MLA_CUDA_CHECK(cudaEventCreateWithFlags(&e_, flags)); }
  ~Event() { cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  operator cudaEvent_t() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

double elapsed_us(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0.0f;
  MLA_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms * 1e3;
}

// What one transfer touches. GPU 0 is the current device throughout, but for set-up.
struct Link {
  uint8_t* dst;             // on GPU 0
  const uint8_t* src;       // on GPU 1
  cudaStream_t s0, s1;      // GPU 0's, GPU 1's
  cudaEvent_t on0, on1;     // recorded on s0 / s1 (no timing): fence one GPU's side into the other's
  ncclComm_t comm0, comm1;  // ranks 0 and 1
};

// Enqueues one transfer of `bytes`; when GPU 1's stream does part of it, that part starts after and
// ends before what GPU 0's stream holds around the call.
void transfer(const Link& l, Method m, size_t bytes) {
  if (m == Method::kCePull) {
    MLA_CUDA_CHECK(cudaMemcpyPeerAsync(l.dst, kDst, l.src, kSrc, bytes, l.s0));
    return;
  }
  MLA_CUDA_CHECK(cudaEventRecord(l.on0, l.s0));
  MLA_CUDA_CHECK(cudaStreamWaitEvent(l.s1, l.on0, 0));
  if (m == Method::kNccl) {
    MLA_NCCL_CALL(group_start);
    MLA_NCCL_CALL(send, l.src, bytes, ncclUint8, kDst, l.comm1, l.s1);
    MLA_NCCL_CALL(recv, l.dst, bytes, ncclUint8, kSrc, l.comm0, l.s0);
    MLA_NCCL_CALL(group_end);
  } else {
    MLA_CUDA_CHECK(cudaMemcpyPeerAsync(l.dst, kDst, l.src, kSrc, bytes, l.s1));
  }
  MLA_CUDA_CHECK(cudaEventRecord(l.on1, l.s1));
  MLA_CUDA_CHECK(cudaStreamWaitEvent(l.s0, l.on1, 0));
}

// A compute load on GPU 0: `blocks` x 256 threads of `iters` FMA rounds on `stream`.
struct Load {
  const char* name;
  cudaStream_t stream;
  int blocks;
  float* sink;  // blocks x 256
  int iters = 0;
  double us_per_iter = 0.0;  // measured

  void launch() const {
    fma_load_kernel<<<blocks, kLoadThreads, 0, stream>>>(iters, sink);
    MLA_CUDA_CHECK_LAUNCH();
  }
};

struct Times {
  double us;       // median transfer
  double load_us;  // median load kernel in the same reps (0 without a load)
};

// One transfer per rep, timed on GPU 0's stream; with a load, the load kernel is launched (and
// timed on its own stream) just before each transfer.
Times measure(const Link& l, Method m, size_t bytes, int reps, const Load* load) {
  Event t0, t1, l0, l1;
  std::vector<double> us, load_us;
  for (int i = -kWarmup; i < reps; ++i) {
    if (load != nullptr) {
      MLA_CUDA_CHECK(cudaEventRecord(l0, load->stream));
      load->launch();
      MLA_CUDA_CHECK(cudaEventRecord(l1, load->stream));
    }
    MLA_CUDA_CHECK(cudaEventRecord(t0, l.s0));
    transfer(l, m, bytes);
    MLA_CUDA_CHECK(cudaEventRecord(t1, l.s0));
    MLA_CUDA_CHECK(cudaEventSynchronize(t1));
    if (load != nullptr) MLA_CUDA_CHECK(cudaEventSynchronize(l1));
    if (i < 0) continue;
    us.push_back(elapsed_us(t0, t1));
    if (load != nullptr) load_us.push_back(elapsed_us(l0, l1));
  }
  return {median(us), load != nullptr ? median(load_us) : 0.0};
}

void poison(const Link& l, size_t bytes) {
  MLA_CUDA_CHECK(cudaMemsetAsync(l.dst, 0xff, bytes, l.s0));
  MLA_CUDA_CHECK(cudaStreamSynchronize(l.s0));
}

// Compares GPU 0's first `bytes` with the source pattern (`expected`); `host` is scratch.
void check(const Link& l, size_t bytes, const std::vector<uint8_t>& expected, std::vector<uint8_t>& host,
           const std::string& what) {
  MLA_CUDA_CHECK(cudaMemcpy(host.data(), l.dst, bytes, cudaMemcpyDeviceToHost));
  MLA_CHECK(std::memcmp(host.data(), expected.data(), bytes) == 0, "{}: GPU 0 does not hold GPU 1's bytes", what);
}

int run(int argc, char** argv) {
  std::string out_dir = "bench/results";
  int reps = 50;
  if (!parse_out_and_reps(argc, argv, out_dir, reps)) return 2;
  MLA_CHECK(reps >= 1, "--reps must be at least 1");
  int devices = 0;
  MLA_CUDA_CHECK(cudaGetDeviceCount(&devices));
  if (devices < 2) {  // a one-GPU machine: nothing to measure (scripts/gpu_test.sh runs every benchmark)
    std::printf("p2p_bench: needs 2 GPUs (GPU 1 sends to GPU 0), found %d: nothing measured\n", devices);
    return 0;
  }
  cudaDeviceProp prop0{}, prop1{};
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop0, kDst));
  MLA_CUDA_CHECK(cudaGetDeviceProperties(&prop1, kSrc));
  int peer01 = 0, peer10 = 0;
  MLA_CUDA_CHECK(cudaDeviceCanAccessPeer(&peer01, kDst, kSrc));
  MLA_CUDA_CHECK(cudaDeviceCanAccessPeer(&peer10, kSrc, kDst));
  MLA_CHECK(peer01 != 0 && peer10 != 0, "GPUs 0 and 1 have no peer access to each other (no NVLink or PCIe P2P)");

  // GPU 1: the source, its stream and fence.
  const size_t max_bytes = kPayloads.back().bytes;
  std::vector<uint8_t> expected(max_bytes), host(max_bytes);
  for (size_t i = 0; i < max_bytes; ++i) expected[i] = pattern(i);
  MLA_CUDA_CHECK(cudaSetDevice(kSrc));
  MLA_CUDA_CHECK(cudaDeviceEnablePeerAccess(kDst, 0));
  uint8_t* src = nullptr;
  MLA_CUDA_CHECK(cudaMalloc(&src, max_bytes));
  MLA_CUDA_CHECK(cudaMemcpy(src, expected.data(), max_bytes, cudaMemcpyHostToDevice));
  cudaStream_t s1 = nullptr;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  Event on1(cudaEventDisableTiming);

  // GPU 0: the destination, its streams (transfers, load) and fence.
  MLA_CUDA_CHECK(cudaSetDevice(kDst));
  MLA_CUDA_CHECK(cudaDeviceEnablePeerAccess(kSrc, 0));
  uint8_t* dst = nullptr;
  MLA_CUDA_CHECK(cudaMalloc(&dst, max_bytes));
  cudaStream_t s0 = nullptr, load_stream = nullptr;
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
  MLA_CUDA_CHECK(cudaStreamCreateWithFlags(&load_stream, cudaStreamNonBlocking));
  Event on0(cudaEventDisableTiming);

  // The two ranks, one per device, made by this one thread.
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  int nccl_version = 0;
  MLA_NCCL_CALL(get_version, &nccl_version);
  ncclUniqueId id{};
  MLA_NCCL_CALL(get_unique_id, &id);
  ncclComm_t comms[2] = {nullptr, nullptr};
  MLA_NCCL_CALL(group_start);
  for (int d : {kDst, kSrc}) {
    MLA_CUDA_CHECK(cudaSetDevice(d));
    MLA_NCCL_CALL(comm_init_rank, &comms[d], 2, id, d);
  }
  MLA_NCCL_CALL(group_end);
  MLA_CUDA_CHECK(cudaSetDevice(kDst));
  const Link link{dst, src, s0, s1, on0, on1, comms[kDst], comms[kSrc]};

  // NCCL's first call, which connects the ranks.
  const size_t first_bytes = kPayloads.front().bytes;
  poison(link, first_bytes);
  const auto c0 = std::chrono::steady_clock::now();
  transfer(link, Method::kNccl, first_bytes);
  MLA_CUDA_CHECK(cudaStreamSynchronize(s0));
  const double first_call_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - c0).count();
  check(link, first_bytes, expected, host, "nccl first call");

  nlohmann::json nccl_env = nlohmann::json::object();
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    if (kv.rfind("NCCL_", 0) == 0) nccl_env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  }
  const int sms = prop0.multiProcessorCount;
  int slots_per_sm = 0;
  MLA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&slots_per_sm, fma_load_kernel, kLoadThreads, 0));
  float* sink = nullptr;
  MLA_CUDA_CHECK(cudaMalloc(&sink, sizeof(float) * sms * slots_per_sm * kLoadThreads));
  Load loads[] = {{"all-slots", load_stream, sms * slots_per_sm, sink}, {"1cta/sm", load_stream, sms, sink}};
  Timer timer;  // on GPU 0
  for (Load& load : loads) {  // the time of one FMA round, from runs of 2^15
    load.iters = 1 << 15;
    load.us_per_iter = timer.median_us(load_stream, 3, [&](int) { load.launch(); }) / load.iters;
  }

  std::printf("GPU 0: %s, GPU 1: %s (%d SMs, %d load blocks per SM at 256 threads); NCCL %d.%d.%d\n", prop0.name,
              prop1.name, sms, slots_per_sm, nccl_version / 10000, nccl_version / 100 % 100, nccl_version % 100);
  std::printf("NCCL env: %s\n", nccl_env.dump().c_str());
  std::printf("nccl first call (connects the ranks), %zu bytes: %.0f us\n\n", first_bytes, first_call_us);
  std::printf("%-24s %8s %-8s %-9s %10s %8s %10s %10s\n", "payload", "MB", "method", "load", "us", "GB/s", "load us",
              "alone us");
  nlohmann::json rows = nlohmann::json::array();
  const Method methods[] = {Method::kNccl, Method::kCePull, Method::kCePush};
  for (const Payload& p : kPayloads) {
    auto row = [&](Method m, const Load* load, double alone_us) {
      const char* load_name = load != nullptr ? load->name : "idle";
      poison(link, p.bytes);
      const Times t = measure(link, m, p.bytes, reps, load);
      check(link, p.bytes, expected, host, fmt::format("{} {} {}", p.name, method_name(m), load_name));
      const double gbps = p.bytes / t.us / 1e3;
      std::printf("%-24s %8.1f %-8s %-9s %10.1f %8.1f", p.name, p.bytes / 1e6, method_name(m), load_name, t.us, gbps);
      if (load != nullptr) std::printf(" %10.1f %10.1f", t.load_us, alone_us);
      std::printf("\n");
      rows.push_back({{"payload", p.name}, {"bytes", p.bytes}, {"method", method_name(m)}, {"load", load_name},
                      {"us", t.us}, {"gbps", gbps}, {"load_us", t.load_us}, {"load_alone_us", alone_us}});
      return t.us;
    };
    double nccl_idle_us = 0.0;
    for (Method m : methods) {
      const double us = row(m, nullptr, 0.0);
      if (m == Method::kNccl) nccl_idle_us = us;
    }
    const double target_us = std::max(4.0 * nccl_idle_us, 200.0);
    for (Load& load : loads) {
      load.iters = std::max(1, static_cast<int>(target_us / load.us_per_iter));
      const double alone_us = timer.median_us(load_stream, 5, [&](int) { load.launch(); });
      for (Method m : methods) row(m, &load, alone_us);
    }
  }

  write_report(out_dir, "p2p", prop0.name, command_line(argc, argv),
               {{"card", prop0.name},
                {"card_gpu1", prop1.name},
                {"nccl_version", nccl_version},
                {"nccl_env", nccl_env},
                {"nccl_first_call_us", first_call_us},
                {"reps", reps},
                {"rows", rows}});
  for (ncclComm_t c : comms) MLA_NCCL_CALL(comm_destroy, c);
  MLA_CUDA_CHECK(cudaFree(sink));
  MLA_CUDA_CHECK(cudaFree(dst));
  MLA_CUDA_CHECK(cudaFree(src));
  MLA_CUDA_CHECK(cudaStreamDestroy(s0));
  MLA_CUDA_CHECK(cudaStreamDestroy(s1));
  MLA_CUDA_CHECK(cudaStreamDestroy(load_stream));
  return 0;
}

}  // namespace
}  // namespace mlaserve::bench

int main(int argc, char** argv) { return mlaserve::bench::run_program("p2p_bench", mlaserve::bench::run, argc, argv); }
