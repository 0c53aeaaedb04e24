// Device code of sample_cuda (contract: ops/cuda/sampling_cuda.h): sample_cpu's temperature,
// top-k, top-p, min-p and seeded draw without sorting the row.
//
// One CTA of kThreads per row. Every cut that sample_cpu makes is a prefix of the rank order
// (z descending, then id ascending), and every decision is "the first rank whose prefix count or
// prefix mass reaches a target": top-k (count >= k), top-p (mass >= top_p · kept mass), the draw
// (mass > u · kept mass); min-p keeps the prefix with p >= min_p. A prefix is named by a Pos:
// all tokens whose order key (the float bits of z made monotone) is above `key`, plus the first
// `ties` tokens (in id order) whose key is `key`. Each search is a radix select on the prefix
// quantity over passes across the row (the row is read again each pass, with 16-byte loads
// when aligned: sampling_block.cuh's for_each_token; it stays in L2):
//   level 0 (once per row): 2048 value buckets of max_z - z (32 per unit of z, the last one
//     holding everything below max_z - 64): per bucket the count, the mass Σ p (double, p =
//     exp(z - max_z) as in sample_cpu) and the best and worst ranked token (key << 32 | ~id);
//     every search of the row starts from it;
//   refinement: the crossing bucket's tokens are the keys [worst, best]; while those differ, a
//     pass histograms the next 10 varying key bits of the tokens in that range (at most 4
//     passes, usually 0-2: a crossing bucket near the top of a peaked row often holds one key);
//   ties: the crossing key's tokens all have the same p, so the number needed is computed, and
//     the token is the first of them when one is needed (known from the histogram), else found
//     by a pass over the row in id order.
// Rows split over clusters (small batches): a row's passes are per token and one CTA is one SM, so
// below about a row an SM a cluster of C = 2, 4 or 8 CTAs (RowGroup) takes each row, every CTA a
// slice of the vocabulary. Each pass's histogram is built per slice and summed over the cluster's
// distributed shared memory into every CTA (in rank order), so every CTA holds the same merged
// histogram and makes the same decisions; the best token, min-p's sums and the tie pass reduce
// over the cluster the same way, and rank 0 writes the token.
// Sums are in double, in another order than the CPU's, so a prefix mass can differ from the
// CPU's by a few units in the 16th digit; the histogram's shared-memory atomics make that order
// (and so those last bits) vary from run to run. The GPU picks sample_cpu's token except when u ·
// mass, top_p · mass or min_p lies within such a rounding of a boundary.
#pragma once

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/sampling_block.cuh"
#include "ops/sampling_key.h"
#include "ops/sampling_split.h"

namespace mlaserve::ops::sampling_gpu {

constexpr int kValueBuckets = 2048;     // level 0
constexpr float kBucketsPerUnit = 32.0f;  // of z; level 0 covers max_z - z in [0, 64)
constexpr int kDigitBits = 10;          // refinement
constexpr int kDigits = 1 << kDigitBits;
constexpr int32_t kAllTies = INT32_MAX;

// One row's options, prepared on the host from SamplingOptions and SamplingKey.
struct RowOptions {
  float temperature;  // <= 0: greedy
  float top_p;        // (0, 1]; 1: off
  float min_p;        // [0, 1]; 0: off
  int32_t top_k;      // [0, V); 0: off (the host turns top_k >= V off)
  SamplingKey key;    // the draw's (seed, counter)
};

struct SampleParams {
  const float* logits;     // [B, V] f32, NaN-free
  const RowOptions* rows;  // [B]
  int32_t* token_ids;      // [B] i32 out; -1 where a non-greedy row's best z is not finite
  int64_t num_rows;        // B
  int32_t vocab;           // V
};

// A histogram in shared memory: per slot the token count, their mass, and the best and worst
// ranked token as (key << 32 | ~id).
struct Hist {
  int32_t* count;
  double* mass;
  unsigned long long* first;
  unsigned long long* last;
};

__host__ __device__ constexpr size_t hist_bytes(int slots) { return static_cast<size_t>(slots) * (8 + 8 + 8 + 4); }
constexpr size_t kSampleSmemBytes = hist_bytes(kValueBuckets) + hist_bytes(kDigits);

__device__ inline Hist carve_hist(unsigned char*& smem, int slots) {
  Hist h;
  h.mass = reinterpret_cast<double*>(smem);
  h.first = reinterpret_cast<unsigned long long*>(h.mass + slots);
  h.last = h.first + slots;
  h.count = reinterpret_cast<int32_t*>(h.last + slots);
  smem += hist_bytes(slots);
  return h;
}

struct Scratch {
  double sums[kWarps];
  uint32_t mins[kWarps];
  int32_t counts[kWarps];
  float best_values[kWarps];
  int32_t best_ids[kWarps];
  float best;
  int32_t best_id;
  int cross, last;  // find_crossing's slots
  double cross_count, cross_mass, last_count, last_mass;
  int32_t found, last_id;  // resolve_tie's ids
  // RowGroup's slots: this CTA's value, read by the cluster's CTAs
  double group_sum;
  uint32_t group_min;
  int32_t group_count;
};

// Monotone unsigned key of a float: a > b iff key(a) > key(b); -0 is taken as +0 (they tie).
__device__ __forceinline__ uint32_t order_key(float z) {
  const uint32_t b = __float_as_uint(z == 0.0f ? 0.0f : z);
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) != 0 ? (k & 0x7fffffffu) : ~k);
}
__device__ __forceinline__ unsigned long long rank_of(uint32_t key, int32_t id) {
  return (static_cast<unsigned long long>(key) << 32) | static_cast<uint32_t>(~static_cast<uint32_t>(id));
}
__device__ __forceinline__ uint32_t rank_key(unsigned long long r) { return static_cast<uint32_t>(r >> 32); }
__device__ __forceinline__ int32_t rank_id(unsigned long long r) {
  return static_cast<int32_t>(~static_cast<uint32_t>(r));
}

// One row at temperature t: z = logits / t (IEEE division, as on the CPU), p = exp(z - max_z);
// this CTA's slice of it.
struct RowCtx {
  const float* x;  // [V]
  VocabSlice s;    // this CTA's tokens (ops/sampling_split.h)
  float t;
  float max_z;
  __device__ float z(float logit) const { return __fdiv_rn(logit, t); }
  __device__ double p(float z) const { return exp(static_cast<double>(z) - static_cast<double>(max_z)); }
  template <typename F>
  __device__ void for_each(F f) const {  // f(i, x[i]) for this thread's tokens of the slice
    for_each_token(x + s.begin, s.end - s.begin, [&](int32_t i, float logit) { f(s.begin + i, logit); });
  }
};

// The CTAs that take one row: C = 1 (a row a CTA) or a cluster of C. Collectives are called by
// every thread of every CTA of the group, and leave the same result in all of them.
template <int C>
struct RowGroup {
  static_assert(C == 1 || C == 2 || C == 4 || C == 8, "a portable cluster");
  __device__ static int rank() {
    if constexpr (C == 1) {
      return 0;
    } else {
      return static_cast<int>(cooperative_groups::this_cluster().block_rank());
    }
  }
  __device__ static void sync() {
    if constexpr (C == 1) {
      __syncthreads();
    } else {
      cooperative_groups::this_cluster().sync();
    }
  }
  // p in CTA `rank`'s shared memory. The rank is made opaque so that the addresses are formed
  // where used: hoisted out of the row loop, the C x 4 histogram pointers of all_reduce (64-bit
  // each) took every register the kernel has and spilled.
  template <typename T>
  __device__ static T* peer(T* p, int rank) {
    asm volatile("" : "+r"(rank));
    return cooperative_groups::this_cluster().map_shared_rank(p, rank);
  }
  // op over the CTAs' v (each CTA's v the same in all its threads), in rank order.
  template <typename T, typename Op>
  __device__ static T reduce(T v, T* slot, Op op) {
    if constexpr (C == 1) {
      return v;
    } else {
      if (threadIdx.x == 0) *slot = v;
      sync();
      T out = *peer(slot, 0);
      for (int q = 1; q < C; ++q) out = op(out, *peer(slot, q));
      sync();  // every CTA has read the slots before they are written again
      return out;
    }
  }
  // The sum of the CTAs' histograms h (kSlots) into every one of them: CTA c sums slots
  // c·kSlots/C .. (c+1)·kSlots/C - 1 over the CTAs (in rank order) and writes them back to all.
  template <int kSlots>
  __device__ static void all_reduce(const Hist& h) {
    if constexpr (C > 1) {
      constexpr int kShare = kSlots / C, kPer = (kShare + kThreads - 1) / kThreads;  // slots a thread
      static_assert(kSlots % C == 0, "equal shares");
      int32_t n[kPer];
      double m[kPer];
      unsigned long long f[kPer], l[kPer];
      sync();  // every CTA's histogram is complete
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        const int i = static_cast<int>(threadIdx.x) + k * kThreads, j = rank() * kShare + i;
        n[k] = 0, m[k] = 0.0, f[k] = 0ull, l[k] = ~0ull;
        if (i >= kShare) continue;
        for (int q = 0; q < C; ++q) {
          n[k] += peer(h.count, q)[j];
          m[k] += peer(h.mass, q)[j];
          f[k] = max(f[k], peer(h.first, q)[j]);
          l[k] = min(l[k], peer(h.last, q)[j]);
        }
      }
      sync();  // every slot read before any is overwritten
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        const int i = static_cast<int>(threadIdx.x) + k * kThreads, j = rank() * kShare + i;
        if (i >= kShare) continue;
        for (int q = 0; q < C; ++q) {
          peer(h.count, q)[j] = n[k];
          peer(h.mass, q)[j] = m[k];
          peer(h.first, q)[j] = f[k];
          peer(h.last, q)[j] = l[k];
        }
      }
      sync();  // the sums are in every CTA
    }
  }
};

// A prefix of the rank order (see the note at the top).
struct Pos {
  bool all;          // the whole row
  uint32_t key;      // the prefix's last key
  int32_t ties;      // how many tokens of that key, first in id order; kAllTies: every one
  int32_t first_id;  // the first-ranked token of that key; -1: unknown
  double mass;       // Σ p over the prefix
};

// Whether prefix a is strictly shorter than prefix b.
__device__ __forceinline__ bool shorter(const Pos& a, const Pos& b) {
  if (a.all) return false;
  if (b.all) return true;
  return a.key > b.key || (a.key == b.key && a.ties < b.ties);
}

__device__ __forceinline__ void flush(const Hist& h, int slot, int32_t n, double m, unsigned long long f,
                                      unsigned long long l) {
  if (slot < 0) return;
  atomicAdd(&h.count[slot], n);
  atomicAdd(&h.mass[slot], m);
  atomicMax(&h.first[slot], f);
  atomicMin(&h.last[slot], l);
}

// Histograms the row's tokens with slot_of(z, key) >= 0 into h (kSlots slots): each CTA of the
// group its slice, then summed over the group. Each thread sums runs of its tokens that share a
// slot before touching shared memory: rows where most tokens share a bucket (flat rows, the far
// tail) would otherwise serialise on one address.
template <int kSlots, int C, typename SlotOf>
__device__ void build_hist(const RowCtx& r, const Hist& h, SlotOf slot_of) {
  __syncthreads();  // earlier readers of h are done
  for (int j = threadIdx.x; j < kSlots; j += kThreads) {
    h.count[j] = 0;
    h.mass[j] = 0.0;
    h.first[j] = 0ull;
    h.last[j] = ~0ull;
  }
  __syncthreads();
  int cur = -1;
  int32_t n = 0;
  double m = 0.0;
  unsigned long long f = 0ull, l = ~0ull;
  r.for_each([&](int32_t i, float logit) {
    const float z = r.z(logit);
    const uint32_t k = order_key(z);
    const int s = slot_of(z, k);
    if (s < 0) return;
    if (s != cur) {
      flush(h, cur, n, m, f, l);
      cur = s, n = 0, m = 0.0, f = 0ull, l = ~0ull;
    }
    const unsigned long long rank = rank_of(k, i);
    ++n;
    m += r.p(z);
    f = rank > f ? rank : f;
    l = rank < l ? rank : l;
  });
  flush(h, cur, n, m, f, l);
  __syncthreads();
  RowGroup<C>::template all_reduce<kSlots>(h);
}

struct Crossing {
  int slot;             // -1: none
  double count_before;  // tokens ranked before the slot
  double mass_before;   // their mass
};

// The first non-empty slot (in rank order) at which the prefix quantity (count or mass, starting
// from count_above / mass_above) reaches target: > target when strict, >= otherwise. When none
// does (rounding) and fallback_last is set: the last non-empty slot.
template <int kSlots>
__device__ Crossing find_crossing(const Hist& h, bool by_mass, double count_above, double mass_above, double target,
                                  bool strict, bool fallback_last, Scratch& sh) {
  constexpr int kPer = kSlots / kThreads;
  const int base = threadIdx.x * kPer;
  double local_count = 0.0, local_mass = 0.0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) local_count += h.count[base + j], local_mass += h.mass[base + j];
  double total;
  double count = block_exclusive_sum(local_count, sh.sums, total) + count_above;
  double mass = block_exclusive_sum(local_mass, sh.sums, total) + mass_above;
  int cross = INT32_MAX, last = -1;
  double cross_count = 0.0, cross_mass = 0.0, last_count = 0.0, last_mass = 0.0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int32_t n = h.count[base + j];
    if (n == 0) continue;
    const double next_count = count + n, next_mass = mass + h.mass[base + j];
    const double q = by_mass ? next_mass : next_count;
    if (cross == INT32_MAX && (strict ? q > target : q >= target)) {
      cross = base + j, cross_count = count, cross_mass = mass;
    }
    last = base + j, last_count = count, last_mass = mass;
    count = next_count, mass = next_mass;
  }
  if (threadIdx.x == 0) sh.cross = INT32_MAX, sh.last = -1;
  __syncthreads();
  if (cross != INT32_MAX) atomicMin(&sh.cross, cross);
  if (last >= 0) atomicMax(&sh.last, last);
  __syncthreads();
  if (cross != INT32_MAX && cross == sh.cross) sh.cross_count = cross_count, sh.cross_mass = cross_mass;
  if (last >= 0 && last == sh.last) sh.last_count = last_count, sh.last_mass = last_mass;
  __syncthreads();
  Crossing out{-1, 0.0, 0.0};
  if (sh.cross != INT32_MAX) {
    out = Crossing{sh.cross, sh.cross_count, sh.cross_mass};
  } else if (fallback_last && sh.last >= 0) {
    out = Crossing{sh.last, sh.last_count, sh.last_mass};
  }
  __syncthreads();  // sh may be reused
  return out;
}

// The shortest prefix whose count (by_mass false) or mass reaches target (> when strict, >=
// otherwise); the whole row's last token when rounding leaves the target unreached. h0 holds
// the row's level-0 histogram; h1 is scratch.
template <int C>
__device__ Pos select_prefix(const RowCtx& r, const Hist& h0, const Hist& h1, bool by_mass, double target, bool strict,
                             Scratch& sh) {
  Crossing c = find_crossing<kValueBuckets>(h0, by_mass, 0.0, 0.0, target, strict, true, sh);
  unsigned long long first = h0.first[c.slot], last = h0.last[c.slot];
  int32_t n = h0.count[c.slot];
  while (rank_key(first) != rank_key(last)) {
    const uint32_t hi = rank_key(first), lo = rank_key(last);
    const int shift = max(32 - __clz(static_cast<int>(lo ^ hi)) - kDigitBits, 0);
    build_hist<kDigits, C>(r, h1, [=](float, uint32_t k) {
      return k >= lo && k <= hi ? kDigits - 1 - static_cast<int>((k >> shift) & (kDigits - 1)) : -1;
    });
    c = find_crossing<kDigits>(h1, by_mass, c.count_before, c.mass_before, target, strict, true, sh);
    first = h1.first[c.slot], last = h1.last[c.slot];
    n = h1.count[c.slot];
  }
  const uint32_t key = rank_key(first);
  const double p = r.p(key_value(key));
  const double q = by_mass ? p : 1.0;  // what each token of the key adds
  const double need = target - (by_mass ? c.mass_before : c.count_before);
  double m = q > 0.0 ? (strict ? floor(need / q) + 1.0 : ceil(need / q)) : static_cast<double>(n);
  m = fmin(fmax(m, 1.0), static_cast<double>(n));
  return Pos{false, key, static_cast<int32_t>(m), rank_id(first), c.mass_before + m * p};
}

// min-p: the prefix of tokens with p >= min_p (a prefix: p falls with the rank), all ties of its
// last key included. Tokens with max_z - z beyond -log(min_p) + 1 cannot qualify and skip exp.
template <int C>
__device__ Pos min_p_prefix(const RowCtx& r, float min_p, Scratch& sh) {
  const double floor_p = min_p;
  const float max_gap = static_cast<float>(-log(floor_p)) + 1.0f;
  double mass = 0.0;
  uint32_t key = 0xffffffffu;
  r.for_each([&](int32_t, float logit) {
    const float z = r.z(logit);
    if (!(r.max_z - z <= max_gap)) return;
    const double p = r.p(z);
    if (p >= floor_p) mass += p, key = min(key, order_key(z));
  });
  mass = block_reduce(mass, sh.sums, [](double a, double b) { return a + b; });
  key = block_reduce(key, sh.mins, [](uint32_t a, uint32_t b) { return min(a, b); });
  mass = RowGroup<C>::reduce(mass, &sh.group_sum, [](double a, double b) { return a + b; });
  key = RowGroup<C>::reduce(key, &sh.group_min, [](uint32_t a, uint32_t b) { return min(a, b); });
  return Pos{false, key, kAllTies, -1, mass};
}

// The ties-th token (1-based, in id order) whose key is `key`, or the last one when there are
// fewer: a pass over each CTA's slice in tiles of kThreads consecutive ids, stopping once found.
// In a group each CTA first counts its slice's matches, so that it knows how many lie before it;
// the CTA that holds the ties-th one finds it, and the last CTA with a match gives the last one.
template <int C>
__device__ int32_t resolve_tie(const RowCtx& r, uint32_t key, int32_t ties, Scratch& sh) {
  using G = RowGroup<C>;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int64_t seen = 0;  // matching tokens in earlier slices and tiles
  if constexpr (C > 1) {
    int32_t mine = 0;
    r.for_each([&](int32_t, float logit) { mine += order_key(r.z(logit)) == key ? 1 : 0; });
    mine = block_reduce(mine, sh.counts, [](int32_t a, int32_t b) { return a + b; });
    if (threadIdx.x == 0) sh.group_count = mine;
    G::sync();
    for (int q = 0; q < G::rank(); ++q) seen += *G::peer(&sh.group_count, q);
  }
  if (threadIdx.x == 0) sh.found = -1, sh.last_id = -1;
  __syncthreads();
  for (int32_t tile = r.s.begin; tile < r.s.end && seen < ties; tile += kThreads) {
    const int32_t i = tile + static_cast<int32_t>(threadIdx.x);
    const bool match = i < r.s.end && order_key(r.z(r.x[i])) == key;
    const unsigned ballot = __ballot_sync(0xffffffffu, match);
    if (lane == 0) sh.counts[warp] = __popc(ballot);
    __syncthreads();
    int64_t before = seen + __popc(ballot & ((1u << lane) - 1u)), total = 0;
    for (int w = 0; w < kWarps; ++w) {
      if (w < warp) before += sh.counts[w];
      total += sh.counts[w];
    }
    if (match && before == static_cast<int64_t>(ties) - 1) sh.found = i;
    if (match && before == seen + total - 1) sh.last_id = i;
    seen += total;
    __syncthreads();
  }
  if constexpr (C > 1) {
    G::sync();  // every CTA's found / last_id final (and group_count read)
    int32_t found = -1, last = -1;
    for (int q = 0; q < C; ++q) {
      const int32_t f = *G::peer(&sh.found, q), l = *G::peer(&sh.last_id, q);
      if (f >= 0) found = f;
      if (l >= 0) last = l;
    }
    G::sync();  // read before the next row writes them
    return found >= 0 ? found : last;
  }
  return sh.found >= 0 ? sh.found : sh.last_id;
}

// CTAs an SM the kernel is built for: a row a CTA (C = 1) runs at large batches, where two CTAs
// share an SM (64 registers a thread); the clusters run at small ones, one CTA an SM, and take
// the registers instead (64 spilled 200-700 bytes in their collectives).
template <int C>
inline constexpr int kSampleCtasPerSm = C == 1 ? 2 : 1;

// grid C x min(B, 65535) in clusters of C (C = 1: no cluster), block kThreads, dynamic shared
// memory kSampleSmemBytes.
template <int C>
__global__ void __launch_bounds__(kThreads, kSampleCtasPerSm<C>) sample_kernel(SampleParams p) {
  using G = RowGroup<C>;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ Scratch sh;
  unsigned char* cursor = smem;
  const Hist h0 = carve_hist(cursor, kValueBuckets);
  const Hist h1 = carve_hist(cursor, kDigits);
  const int rank = G::rank();
  const bool writer = rank == 0 && threadIdx.x == 0;
  for (int64_t row = blockIdx.x / C; row < p.num_rows; row += gridDim.x / C) {
    const RowOptions o = p.rows[row];
    const float* x = p.logits + row * p.vocab;
    const VocabSlice slice = vocab_slice(p.vocab, rank, C);

    // The best logit (its id is the greedy token) and so max_z = best / t.
    float best = -INFINITY;
    int32_t best_id = INT32_MAX;
    for_each_token(x + slice.begin, slice.end - slice.begin, [&](int32_t i, float v) {
      if (ranks_before(v, slice.begin + i, best, best_id)) best = v, best_id = slice.begin + i;
    });
    block_best(best, best_id, sh.best_values, sh.best_ids);
    if (threadIdx.x == 0) sh.best = best, sh.best_id = best_id;
    G::sync();
    if constexpr (C == 1) {
      best = sh.best, best_id = sh.best_id;
    } else {
      best = -INFINITY, best_id = INT32_MAX;
      for (int q = 0; q < C; ++q) {
        const float v = *G::peer(&sh.best, q);
        const int32_t i = *G::peer(&sh.best_id, q);
        if (ranks_before(v, i, best, best_id)) best = v, best_id = i;
      }
    }
    G::sync();  // read before the slots are written again
    if (o.temperature <= 0.0f) {
      if (writer) p.token_ids[row] = best_id;
      continue;
    }
    const RowCtx r{x, slice, o.temperature, __fdiv_rn(best, o.temperature)};
    if (!isfinite(r.max_z)) {
      if (writer) p.token_ids[row] = -1;
      continue;
    }

    build_hist<kValueBuckets, C>(r, h0, [max_z = r.max_z](float z, uint32_t) {
      return static_cast<int>(fminf((max_z - z) * kBucketsPerUnit, kValueBuckets - 1.0f));
    });
    Pos kept{true, 0u, 0, -1, 0.0};
    {
      double local = 0.0;
      for (int j = threadIdx.x; j < kValueBuckets; j += kThreads) local += h0.mass[j];
      kept.mass = block_reduce(local, sh.sums, [](double a, double b) { return a + b; });
    }
    if (o.top_k > 0) kept = select_prefix<C>(r, h0, h1, false, o.top_k, false, sh);
    if (o.top_p < 1.0f) {
      const Pos q = select_prefix<C>(r, h0, h1, true, static_cast<double>(o.top_p) * kept.mass, false, sh);
      if (shorter(q, kept)) kept = q;
    }
    if (o.min_p > 0.0f) {
      const Pos q = min_p_prefix<C>(r, o.min_p, sh);
      if (shorter(q, kept)) kept = q;
    }
    Pos draw = select_prefix<C>(r, h0, h1, true, sampling_uniform(o.key) * kept.mass, true, sh);
    if (shorter(kept, draw)) draw = kept;  // rounding took the draw past the kept prefix
    const int32_t token =
        draw.ties == 1 && draw.first_id >= 0 ? draw.first_id : resolve_tie<C>(r, draw.key, draw.ties, sh);
    if (writer) p.token_ids[row] = token;
    __syncthreads();  // sh is reused by the next row (no CTA reads another's after a collective's end)
  }
}

}  // namespace mlaserve::ops::sampling_gpu
