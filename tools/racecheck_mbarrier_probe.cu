// Does compute-sanitizer's racecheck see the ordering an mbarrier gives? One value a lane handed
// from warp 0 to warp 4 (the other warpgroup) through shared memory, ordered five ways.
//
//   nvcc -O2 -arch=sm_90a -o /tmp/rc_mbar tools/racecheck_mbarrier_probe.cu
//   for m in 0 1 2 3 4; do compute-sanitizer --tool racecheck /tmp/rc_mbar $m; done
//
// Result (one H200, compute-sanitizer of CUDA 13.0, 2026-11-29; every mode reads the right values
// but the control): 0 hazards for named barriers (1), __syncthreads (2) and an mbarrier that every
// writing lane arrives on itself (4); hazards for the control without ordering (3) and for an
// mbarrier that lane 0 alone arrives on after __syncwarp (0): every lane's write but lane 0's is
// reported, so racecheck follows an mbarrier's release / acquire only from the arriving thread and
// does not carry other lanes' writes through __syncwarp. Hazards reported on such elected-arrive
// hand-offs in our kernels (the "dyn" tile slot, bench/NOTES-engine.md) are of this kind; a
// kernel can be checked by letting every lane arrive (count x 32) in a test build.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
__device__ __forceinline__ uint32_t sa(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__global__ void k(int mode, int* out) {
  __shared__ alignas(8) uint64_t bar, bar32;
  __shared__ int slot[32];
  int tid = threadIdx.x;
  if (tid == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(sa(&bar)), "r"(1));
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(sa(&bar32)), "r"(32));
    asm volatile("fence.mbarrier_init.release.cluster;");
  }
  __syncthreads();
  for (int it = 0; it < 4; ++it) {
    if (tid < 32) {
      slot[tid] = it * 100 + tid;
      if (mode == 0) {  // mbarrier release/acquire
        __syncwarp();
        if (tid == 0) asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" ::"r"(sa(&bar)) : "memory");
      } else if (mode == 1) {  // named barrier arrive / sync
        asm volatile("bar.arrive 1, 64;" ::: "memory");
      } else if (mode == 4) {  // mbarrier of 32 arrivals: every writer arrives itself
        asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" ::"r"(sa(&bar32)) : "memory");
      }
    }
    if (mode == 2) __syncthreads();
    if (tid >= 128 && tid < 160) {
      if (mode == 0 || mode == 4) {
        const uint32_t b = mode == 0 ? sa(&bar) : sa(&bar32);
        uint32_t done = 0;
        while (!done) {
          asm volatile(
              "{ .reg .pred p; mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2; selp.u32 %0,1,0,p; }"
              : "=r"(done)
              : "r"(b), "r"((uint32_t)(it & 1))
              : "memory");
        }
      } else if (mode == 1) {
        asm volatile("bar.sync 1, 64;" ::: "memory");
      }
      out[it * 32 + tid - 128] = slot[tid - 128];
    }
    __syncthreads();  // writer's next iteration after the read (WAR ordered)
  }
}
int main(int argc, char** argv) {
  int only = argc > 1 ? atoi(argv[1]) : -1;
  int* out = nullptr;
  if (cudaMalloc(&out, 4096) != cudaSuccess) return 1;
  const char* names[] = {"mbarrier, lane 0 arrives after __syncwarp", "named bar.arrive/bar.sync", "__syncthreads",
                         "none (control: must report)", "mbarrier, every writer arrives"};
  for (int mode = 0; mode < 5; ++mode) {
    if (only >= 0 && mode != only) continue;
    k<<<1, 256>>>(mode, out);
    cudaError_t e = cudaDeviceSynchronize();
    int h[128]; cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost);
    int bad = 0; for (int i = 0; i < 128; ++i) bad += h[i] != (i / 32) * 100 + i % 32;
    printf("mode %d (%s): %s, %d wrong values\n", mode, names[mode], cudaGetErrorString(e), bad);
  }
}
