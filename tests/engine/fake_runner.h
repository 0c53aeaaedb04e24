// FakeRunner: a ModelRunner without a model, for testing the engine on the CPU in
// milliseconds. Its "model" is a pure function of a sequence's whole context, and it reads that
// context back through the cache it keeps, so any mistake in block tables, slots, prefix
// sharing, eviction or recomputation changes the tokens:
//   - the cache is simulated: each slot (block * 64 + row) holds the (token, position) written;
//   - execute() checks the batch as DeepSeekModel::forward does (slices tile the batch, block
//     tables cover the context, slots and positions agree with the tables), writes the new
//     tokens, then for each logit row gathers positions 0..p through the sequence's block table
//     (checking every slot holds that position) and returns logits(context);
//   - logits(context) peak at next_token(context), a hash of the tokens and their positions.
// reference_greedy() is what an uninterrupted, uncached run must produce.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/error.h"
#include "engine/model_runner.h"
#include "kv/latent_cache.h"

namespace mlaserve::testing {

inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t context_hash(std::span<const int32_t> context) {
  uint64_t h = 0x1234;
  for (int32_t t : context) h = mix64(h ^ static_cast<uint64_t>(t));
  return h;
}

// logits[v] in [0, 2) from the hash, and 6 at the favoured token: greedy picks it, sampling at
// temperature 1 picks it most of the time.
inline void fake_logits(std::span<const int32_t> context, std::span<float> out) {
  const uint64_t h = context_hash(context);
  for (size_t v = 0; v < out.size(); ++v) out[v] = static_cast<float>(mix64(h ^ v) >> 40) * 0x1.0p-23f;
  out[h % out.size()] = 6.0f;
}

inline int32_t fake_next_token(std::span<const int32_t> context, int64_t vocab) {
  return static_cast<int32_t>(context_hash(context) % static_cast<uint64_t>(vocab));
}

inline std::vector<int32_t> reference_greedy(std::vector<int32_t> context, int64_t n, int64_t vocab) {
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(fake_next_token(context, vocab));
    context.push_back(out.back());
  }
  return out;
}

struct FakeRunnerOptions {
  int64_t vocab_size = 101;
  int32_t num_cache_blocks = 64;
  int64_t max_position_embeddings = 1 << 20;
  std::vector<int32_t> eos_token_ids;
};

class FakeRunner final : public ModelRunner {
 public:
  explicit FakeRunner(FakeRunnerOptions options)
      : options_(std::move(options)),
        slots_(static_cast<size_t>(options_.num_cache_blocks * kCacheBlockSize), Slot{-1, -1}) {}

  ModelRunnerInfo info() const override {
    return {options_.vocab_size, options_.num_cache_blocks, options_.max_position_embeddings, options_.eos_token_ids};
  }

  // Runs before each step (a test may inspect the batch or throw to make the step fail).
  std::function<void(const ForwardBatch&)> before_execute;
  int64_t num_executed = 0;

  Tensor execute(const ForwardBatch& batch) override {
    if (before_execute) before_execute(batch);
    const int64_t t = batch.num_tokens();
    MLA_CHECK(t > 0 && static_cast<int64_t>(batch.positions.size()) == t &&
                  static_cast<int64_t>(batch.slot_mapping.size()) == t,
              "fake runner: ragged batch");
    std::vector<int> seq_of_row(static_cast<size_t>(t), -1);
    int64_t covered = 0;
    for (size_t s = 0; s < batch.sequences.size(); ++s) {
      const SequenceSlice& q = batch.sequences[s];
      MLA_CHECK(q.query_start == covered && q.query_len > 0, "fake runner: slices do not tile the batch");
      MLA_CHECK(static_cast<int64_t>(q.block_table.size()) * kCacheBlockSize >= q.context_len + q.query_len,
                "fake runner: block table too short");
      for (int32_t j = 0; j < q.query_len; ++j) {
        const size_t row = static_cast<size_t>(q.query_start + j);
        const int64_t p = q.context_len + j;
        MLA_CHECK(batch.positions[row] == p, "fake runner: position {} for row of position {}", batch.positions[row], p);
        MLA_CHECK(batch.slot_mapping[row] == slot(q, p), "fake runner: slot mapping disagrees with the block table");
        slots_[static_cast<size_t>(batch.slot_mapping[row])] = Slot{batch.token_ids[row], static_cast<int32_t>(p)};
        seq_of_row[row] = static_cast<int>(s);
      }
      covered += q.query_len;
    }
    MLA_CHECK(covered == t, "fake runner: slices cover {} of {} rows", covered, t);

    const auto r = static_cast<int64_t>(batch.logit_rows.size());
    Tensor logits = Tensor::empty({r, options_.vocab_size}, DType::kF32);
    for (int64_t i = 0; i < r; ++i) {
      const auto row = static_cast<size_t>(batch.logit_rows[static_cast<size_t>(i)]);
      const SequenceSlice& q = batch.sequences[static_cast<size_t>(seq_of_row.at(row))];
      std::vector<int32_t> context;
      for (int64_t p = 0; p <= batch.positions[row]; ++p) {
        const Slot& s = slots_[static_cast<size_t>(slot(q, p))];
        MLA_CHECK(s.position == p, "fake runner: the cache slot of position {} holds position {}", p, s.position);
        context.push_back(s.token);
      }
      fake_logits(context, std::span(logits.data<float>() + i * options_.vocab_size,
                                     static_cast<size_t>(options_.vocab_size)));
    }
    ++num_executed;
    return logits;
  }

 private:
  struct Slot {
    int32_t token, position;
  };
  static int64_t slot(const SequenceSlice& q, int64_t p) {
    return int64_t{q.block_table[static_cast<size_t>(p / kCacheBlockSize)]} * kCacheBlockSize + p % kCacheBlockSize;
  }

  FakeRunnerOptions options_;
  std::vector<Slot> slots_;
};

}  // namespace mlaserve::testing
