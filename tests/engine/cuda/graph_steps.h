// Decode steps through CUDA graphs against eager steps, step by step, on one GPU or on every
// rank of a split model (each rank runs the same steps; the logits are whole on every rank under
// tensor parallelism). Tolerance: tests/engine/served_requests.h.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "../served_requests.h"
#include "engine/decode_graphs.h"
#include "model/model.h"

namespace mlaserve::testing {

// Teacher-forced decode: 12 sequences decoding 1..30 tokens each, so the batch shrinks through
// graph sizes 16, 8, 4, 2 and 1 (and new sequence lengths cross block boundaries); each step's
// graph logits against the eager step's on a second cache holding the same rows.
inline void expect_shrinking_decode_batches_match_eager(DeepSeekModel& model) {
  LatentCache eager_cache = model.make_cache(128);
  LatentCache graph_cache = model.make_cache(128);
  DecodeGraphs graphs(model, graph_cache, /*max_batch=*/16, /*max_context=*/4096);
  std::mt19937_64 rng(21);
  const int64_t vocab = model.config().vocab_size;
  struct Seq {
    int32_t len;       // tokens in the cache
    int32_t remaining; // decode steps left
    std::vector<int32_t> table;
  };
  std::vector<Seq> seqs;
  int32_t next_block = 0;
  for (int i = 0; i < 12; ++i) {
    Seq q{1 + static_cast<int32_t>(rng() % 140), 1 + static_cast<int32_t>(i * 29 / 11), {}};
    const int32_t blocks = (q.len + q.remaining + kCacheBlockSize - 1) / kCacheBlockSize;
    for (int32_t k = 0; k < blocks; ++k) q.table.push_back(next_block++);
    ForwardBatch b;
    b.sequences.push_back({0, q.len, 0, q.table});
    for (int32_t p = 0; p < q.len; ++p) {
      b.token_ids.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
      b.positions.push_back(p);
      b.slot_mapping.push_back(int64_t{q.table[static_cast<size_t>(p / kCacheBlockSize)]} * kCacheBlockSize +
                               p % kCacheBlockSize);
    }
    b.logit_rows = {q.len - 1};
    model.forward(b, eager_cache);
    model.forward(b, graph_cache);
    seqs.push_back(std::move(q));
  }
  ASSERT_LE(next_block, 128);  // the cache holds 128 blocks
  for (int step = 0;; ++step) {
    ForwardBatch d;
    for (Seq& q : seqs) {
      if (q.remaining == 0) continue;
      const auto row = static_cast<int32_t>(d.sequences.size());
      d.token_ids.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
      d.positions.push_back(q.len);
      d.slot_mapping.push_back(int64_t{q.table[static_cast<size_t>(q.len / kCacheBlockSize)]} * kCacheBlockSize +
                               q.len % kCacheBlockSize);
      d.sequences.push_back({row, 1, q.len, q.table});
      d.logit_rows.push_back(row);
      ++q.len;
      --q.remaining;
    }
    if (d.sequences.empty()) break;
    ASSERT_TRUE(graphs.accepts(d));
    const Tensor want = model.forward(d, eager_cache).to(Device::kCPU);
    const Tensor got = graphs.run(d).to(Device::kCPU);
    expect_logits_near(got, want, step);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_EQ(graphs.num_captured(), 5);  // 16, 8, 4, 2, 1
}

}  // namespace mlaserve::testing
