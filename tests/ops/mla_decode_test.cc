#include "ops/mla_decode.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "op_test_util.h"

namespace mlaserve::ops {
namespace {

using testing::expect_all_written;
using testing::i32_tensor;
using testing::max_rel_error;
using testing::poisoned;
using testing::random_tensor;
using testing::to_doubles;

struct SeqSpec {
  int32_t seq_len;  // keys, the new tokens included
  int32_t q_len;
};

struct DecodeProblem {
  MlaDecodeArgs args;
  int64_t n_heads, row_dim, latent_dim;
};

// Random queries and cache rows; the blocks of all sequences are handed out in a shuffled order
// so that every block table is non-contiguous, with spare (unused, random) blocks in the pool.
DecodeProblem make_problem(const std::vector<SeqSpec>& seqs, int64_t n_heads, int64_t row_dim,
                           int64_t latent_dim, int64_t block_size, DType dtype, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t total_q = 0, total_blocks = 3, max_blocks = 1;
  for (const SeqSpec& s : seqs) {
    total_q += s.q_len;
    int64_t blocks = (s.seq_len + block_size - 1) / block_size;
    total_blocks += blocks;
    max_blocks = std::max(max_blocks, blocks + 1);  // padded: unused entries stay -1
  }
  std::vector<int32_t> pool(static_cast<size_t>(total_blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  const auto b = static_cast<int64_t>(seqs.size());
  std::vector<int32_t> table(static_cast<size_t>(b * max_blocks), -1), lens, starts{0};
  size_t next = 0;
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < (seqs[i].seq_len + block_size - 1) / block_size; ++j) {
      table[i * max_blocks + j] = pool[next++];
    }
    lens.push_back(seqs[i].seq_len);
    starts.push_back(starts.back() + seqs[i].q_len);
  }
  DecodeProblem p{{}, n_heads, row_dim, latent_dim};
  p.args.q = random_tensor({total_q, n_heads, row_dim}, dtype, rng);
  p.args.kv_cache = random_tensor({total_blocks, block_size, row_dim}, dtype, rng);
  p.args.block_table = i32_tensor(table, {b, max_blocks});
  p.args.seq_lens = i32_tensor(lens, {b});
  p.args.query_start = i32_tensor(starts, {b + 1});
  p.args.softmax_scale = 0.1352338f;  // V3's (dn + dr)^-1/2 · m²
  return p;
}

// Naive double-precision reference straight from the header's formulas.
void reference(const DecodeProblem& p, std::vector<double>& out, std::vector<double>& lse) {
  const auto q = to_doubles(p.args.q), cache = to_doubles(p.args.kv_cache);
  const int64_t n = p.n_heads, d = p.row_dim, dv = p.latent_dim;
  const int64_t block_size = p.args.kv_cache.dim(1), max_blocks = p.args.block_table.dim(1);
  const int32_t* table = p.args.block_table.data<int32_t>();
  const int32_t* lens = p.args.seq_lens.data<int32_t>();
  const int32_t* starts = p.args.query_start.data<int32_t>();
  out.assign(static_cast<size_t>(p.args.q.dim(0) * n * dv), 0.0);
  lse.assign(static_cast<size_t>(p.args.q.dim(0) * n), 0.0);
  for (int64_t b = 0; b < p.args.block_table.dim(0); ++b) {
    const int64_t q_len = starts[b + 1] - starts[b];
    for (int64_t j = 0; j < q_len; ++j) {
      const int64_t t = starts[b] + j;
      for (int64_t h = 0; h < n; ++h) {
        std::vector<double> s;
        for (int64_t pos = 0; pos <= lens[b] - q_len + j; ++pos) {
          const int64_t row = table[b * max_blocks + pos / block_size] * block_size + pos % block_size;
          double acc = 0.0;
          for (int64_t c = 0; c < d; ++c) acc += q[(t * n + h) * d + c] * cache[row * d + c];
          s.push_back(p.args.softmax_scale * acc);
        }
        const double m = *std::max_element(s.begin(), s.end());
        double sum = 0.0;
        for (double v : s) sum += std::exp(v - m);
        for (size_t pos = 0; pos < s.size(); ++pos) {
          const int64_t row = table[b * max_blocks + pos / block_size] * block_size + pos % block_size;
          const double w = std::exp(s[pos] - m) / sum;
          for (int64_t c = 0; c < dv; ++c) out[(t * n + h) * dv + c] += w * cache[row * d + c];
        }
        lse[t * n + h] = m + std::log(sum);
      }
    }
  }
}

void run_and_compare(const DecodeProblem& p) {
  MlaDecodeOutputs o{poisoned({p.args.q.dim(0), p.n_heads, p.latent_dim}, DType::kF32),
                     poisoned({p.args.q.dim(0), p.n_heads}, DType::kF32)};
  mla_decode_cpu(p.args, o);
  expect_all_written(o.out);
  expect_all_written(o.lse);
  std::vector<double> want_out, want_lse;
  reference(p, want_out, want_lse);
  // The inputs are exactly representable in both paths, so the only differences are fp32
  // rounding: a 576-term dot has relative error ~sqrt(576)·6e-8 ≈ 1.4e-6 of the term scale,
  // which moves each softmax weight by the same relative amount. 2e-5 leaves a 10x margin.
  EXPECT_LT(max_rel_error(o.out, want_out), 2e-5);
  std::vector<double> got_lse = to_doubles(o.lse);
  for (size_t i = 0; i < got_lse.size(); ++i) {
    ASSERT_NEAR(got_lse[i], want_lse[i], 2e-5 * std::max(1.0, std::abs(want_lse[i]))) << "lse " << i;
  }
}

// Contexts around block boundaries (1, 63, 64, 65, 130, 200) and multi-token queries.
const std::vector<SeqSpec> kMixedBatch = {{1, 1}, {63, 1}, {64, 2}, {65, 1}, {130, 3}, {200, 1}};

TEST(MlaDecodeCpu, MatchesNaiveF32) {
  run_and_compare(make_problem(kMixedBatch, 4, kCacheRowDim, kLatentDim, kKvBlockSize, DType::kF32, 1));
}

TEST(MlaDecodeCpu, MatchesNaiveBf16) {
  run_and_compare(make_problem(kMixedBatch, 3, kCacheRowDim, kLatentDim, kKvBlockSize, DType::kBF16, 2));
}

TEST(MlaDecodeCpu, MatchesNaiveTinyDims) {
  // A tiny test model's shapes: latent 32 + rope 16, blocks of 16 tokens.
  run_and_compare(make_problem({{17, 2}, {5, 5}, {48, 1}}, 2, 48, 32, 16, DType::kF32, 3));
}

TEST(MlaDecodeCpu, SingleKeyGivesThatRow) {
  // One visible key: softmax weight 1, out = the latent part of the row, lse = the score.
  DecodeProblem p = make_problem({{1, 1}}, 2, kCacheRowDim, kLatentDim, kKvBlockSize, DType::kF32, 4);
  MlaDecodeOutputs o{poisoned({1, 2, kLatentDim}, DType::kF32), poisoned({1, 2}, DType::kF32)};
  mla_decode_cpu(p.args, o);
  const int64_t block = p.args.block_table.data<int32_t>()[0];
  const float* row = p.args.kv_cache.data<float>() + block * kKvBlockSize * kCacheRowDim;
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t c = 0; c < kLatentDim; ++c) ASSERT_EQ(o.out.data<float>()[h * kLatentDim + c], row[c]);
  }
}

TEST(MlaDecodeCpu, RejectsBadInputs) {
  DecodeProblem p = make_problem({{70, 2}}, 2, kCacheRowDim, kLatentDim, kKvBlockSize, DType::kF32, 5);
  MlaDecodeOutputs o{Tensor::empty({2, 2, kLatentDim}, DType::kF32), Tensor::empty({2, 2}, DType::kF32)};
  {
    MlaDecodeArgs bad = p.args;
    bad.block_table = p.args.block_table.clone();
    bad.block_table.data<int32_t>()[1] = static_cast<int32_t>(p.args.kv_cache.dim(0));
    EXPECT_THROW(mla_decode_cpu(bad, o), Error);
  }
  {
    MlaDecodeArgs bad = p.args;
    bad.seq_lens = i32_tensor({1}, {1});  // fewer keys than query tokens
    EXPECT_THROW(mla_decode_cpu(bad, o), Error);
  }
  {
    MlaDecodeArgs bad = p.args;
    bad.seq_lens = i32_tensor({200}, {1});  // needs more blocks than the table holds
    EXPECT_THROW(mla_decode_cpu(bad, o), Error);
  }
  {
    MlaDecodeArgs bad = p.args;
    bad.softmax_scale = 0.0f;
    EXPECT_THROW(mla_decode_cpu(bad, o), Error);
  }
  MlaDecodeOutputs wrong{Tensor::empty({2, 2, kLatentDim}, DType::kBF16), o.lse};
  EXPECT_THROW(mla_decode_cpu(p.args, wrong), Error);
}

// A batch large enough to be split over threads (ops/cpu_util.h, parallel_for: ~18 M multiply-adds
// a sequence) gives the bits of each sequence run alone (a batch of one: one thread). Query
// lengths 1 and 2, contexts of different lengths, V3's row (576) and latent (512) widths.
TEST(MlaDecodeCpu, ThreadsGiveTheBitsOfOneSequenceAtATime) {
  const std::vector<SeqSpec> seqs = {{1024, 1}, {700, 2}, {1024, 1}, {333, 1}, {1024, 2}, {900, 1}};
  const int64_t n = 16, d = 576, dv = 512, block = 64;
  const DecodeProblem whole = make_problem(seqs, n, d, dv, block, DType::kBF16, 77);
  const int64_t t = whole.args.q.dim(0);
  MlaDecodeOutputs all{poisoned({t, n, dv}, DType::kF32), poisoned({t, n}, DType::kF32)};
  mla_decode_cpu(whole.args, all);
  const int32_t* starts = whole.args.query_start.data<int32_t>();
  for (int64_t b = 0; b < static_cast<int64_t>(seqs.size()); ++b) {
    MlaDecodeArgs one = whole.args;
    const int64_t q0 = starts[b], q1 = starts[b + 1];
    one.q = whole.args.q.slice(q0, q1);
    one.block_table = whole.args.block_table.slice(b, b + 1);
    one.seq_lens = whole.args.seq_lens.slice(b, b + 1);
    one.query_start = i32_tensor({0, static_cast<int32_t>(q1 - q0)}, {2});
    MlaDecodeOutputs alone{poisoned({q1 - q0, n, dv}, DType::kF32), poisoned({q1 - q0, n}, DType::kF32)};
    mla_decode_cpu(one, alone);
    EXPECT_EQ(std::memcmp(alone.out.raw(), all.out.data<float>() + q0 * n * dv, alone.out.nbytes()), 0)
        << "sequence " << b;
    EXPECT_EQ(std::memcmp(alone.lse.raw(), all.lse.data<float>() + q0 * n, alone.lse.nbytes()), 0) << "sequence " << b;
  }
}

}  // namespace
}  // namespace mlaserve::ops
