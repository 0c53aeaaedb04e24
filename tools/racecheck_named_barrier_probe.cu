// Which hand-overs between two warpgroups through named barriers does compute-sanitizer's racecheck
// read right? Two CTAs of 2 x 128 threads, four rounds of each pattern; every pattern is correct
// under PTX's memory model (bar.arrive releases the arriving thread's accesses to the threads that
// bar.sync on the same barrier) but the control.
//
//   nvcc -O2 -arch=sm_90a -o /tmp/rc_bar tools/racecheck_named_barrier_probe.cu
//   for m in 0 1 2 3 4 5 6 7; do compute-sanitizer --tool racecheck /tmp/rc_bar $m; done
//
// Result (one H200, compute-sanitizer of CUDA 13.0, 2026-12-03; bench/NOTES-mla-decode.md, the
// fifty-first session): hazards for 0 (stores, then bar.arrive directly), 4 and 6 (a bar.sync pair
// of all threads, once a bar.arrive on another barrier has run); 0 hazards for 1 (the storing
// warpgroup's own bar.sync between its stores and the arrive), 2, 3 and 5. The control, 7, reports
// its races (the fifty-second session's run, which repeated 0-6 with the same result). The MLA
// decode kernels hand data over in the forms that pass, or through mbarriers that every writing
// thread arrives on (tools/racecheck_mbarrier_probe.cu).
#include <cstdio>
#include <cstdlib>

__device__ __forceinline__ void bar_sync(int id, int n) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int n) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory");
}

// a: warpgroup 0's slots, b: warpgroup 1's; each thread t hands slot t % 128 to thread t +- 128.
__global__ void k(int mode, float* out) {
  __shared__ float a[128], b[128];
  const int wg = threadIdx.x / 128, r = threadIdx.x % 128;
  float acc = 0.0f;
  for (int it = 0; it < 4; ++it) {
    if (mode == 0 || mode == 1) {  // 1 to 0 on barrier 5, back on 6 (1: each writer's own bar.sync first)
      if (wg == 1) {
        b[r] = it + r;
        if (mode == 1) bar_sync(4, 128);
        bar_arrive(5, 256);
        bar_sync(6, 256);
        acc += a[r];
      } else {
        bar_sync(5, 256);
        acc += b[r];
        a[r] = acc;
        if (mode == 1) bar_sync(3, 128);
        bar_arrive(6, 256);
      }
      continue;
    }
    if (mode == 4) {  // before the exchange: a hand-over on barrier 1 and each warpgroup's own barrier
      if (wg == 0) {
        bar_sync(3, 128);
        bar_arrive(1, 256);
      } else {
        bar_sync(1, 256);
        bar_sync(4, 128);
      }
    }
    if (mode == 5) bar_sync(3 + wg, 128);  // before the exchange: each warpgroup's own barrier only
    if (mode == 6) {  // before the exchange: the hand-over on barrier 1 only
      if (wg == 0) {
        bar_arrive(1, 256);
      } else {
        bar_sync(1, 256);
      }
    }
    // The exchange: both store, a barrier, both load the other's, a barrier (3: __syncthreads; 7: none).
    (wg ? b : a)[r] = it + r;
    if (mode == 3) __syncthreads();
    else if (mode != 7) bar_sync(5, 256);
    acc += (wg ? a : b)[r];
    if (mode == 3) __syncthreads();
    else if (mode != 7) bar_sync(5, 256);
  }
  out[blockIdx.x * 256 + threadIdx.x] = acc;
}

int main(int argc, char** argv) {
  const int only = argc > 1 ? atoi(argv[1]) : -1;
  float* out = nullptr;
  if (cudaMalloc(&out, 2 * 256 * sizeof(float)) != cudaSuccess) return 1;
  const char* names[] = {"store, bar.arrive / bar.sync",
                         "store, own bar.sync, bar.arrive / bar.sync",
                         "bar.sync pair",
                         "__syncthreads pair",
                         "bar.sync pair after a hand-over and own barriers",
                         "bar.sync pair after own barriers",
                         "bar.sync pair after a hand-over",
                         "none (control: must report)"};
  for (int mode = 0; mode < 8; ++mode) {
    if (only >= 0 && mode != only) continue;
    k<<<2, 256>>>(mode, out);
    printf("mode %d (%s): %s\n", mode, names[mode], cudaGetErrorString(cudaDeviceSynchronize()));
  }
  return 0;
}
