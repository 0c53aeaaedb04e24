// The partition of the released configs over tensor-parallel sizes 1..8 and pipeline stages:
// every head, channel, expert, vocabulary row and layer held by exactly one rank of a group, in
// order, with the FP8 128-channel alignment the V3 weights need; sizes that cannot split fail
// with a message. Runs on the CPU for sizes no lent machine has (TP4, TP8, TP2 x PP2).
#include <gtest/gtest.h>

#include "dist/partition.h"
#include "dist/step_runner.h"
#include "model/presets.h"
#include "model/shard.h"

namespace mlaserve::dist {
namespace {

// The ranges of every rank tile [0, total) in rank order.
void expect_tiles(const std::vector<IndexRange>& parts, int64_t total, const char* what) {
  int64_t next = 0;
  for (const IndexRange& r : parts) {
    EXPECT_EQ(r.begin, next) << what;
    EXPECT_GE(r.end, r.begin) << what;
    next = r.end;
  }
  EXPECT_EQ(next, total) << what;
}

TEST(Partition, TensorParallelSharesTileTheModel) {
  for (const char* name : {"deepseek-v2-lite", "deepseek-v2", "deepseek-v3"}) {
    const DeepSeekConfig c = preset_config(name);
    for (int tp : {1, 2, 4, 8}) {
      SCOPED_TRACE(std::string(name) + " tp" + std::to_string(tp));
      std::vector<IndexRange> heads, mlp, shared, experts, vocab;
      for (int r = 0; r < tp; ++r) {
        const ShardPlan p = make_shard_plan(c, ParallelConfig{tp, 1, r});
        EXPECT_EQ(p.tp_rank, r);
        EXPECT_EQ(p.heads.size(), c.num_attention_heads / tp);
        EXPECT_EQ(p.experts.size(), c.n_routed_experts / tp);
        EXPECT_EQ(p.vocab_shard, (c.vocab_size + tp - 1) / tp);
        EXPECT_LE(p.vocab.size(), p.vocab_shard);
        EXPECT_EQ(p.layers, (IndexRange{0, c.num_hidden_layers}));
        if (c.fp8) {  // the cut rows and columns of FP8 weights fall on 128-wide scale blocks
          EXPECT_EQ(p.heads.begin * c.qk_head_dim % 128, 0);
          EXPECT_EQ(p.heads.begin * c.v_head_dim % 128, 0);
          EXPECT_EQ(p.mlp.begin % 128, 0);
          EXPECT_EQ(p.shared.begin % 128, 0);
        }
        heads.push_back(p.heads);
        mlp.push_back(p.mlp);
        shared.push_back(p.shared);
        experts.push_back(p.experts);
        vocab.push_back(p.vocab);
      }
      expect_tiles(heads, c.num_attention_heads, "heads");
      expect_tiles(mlp, c.intermediate_size, "mlp");
      expect_tiles(shared, c.shared_intermediate_size(), "shared");
      expect_tiles(experts, c.n_routed_experts, "experts");
      expect_tiles(vocab, c.vocab_size, "vocab");
    }
  }
}

TEST(Partition, ExpertChannelSharesTileEveryExpert) {
  for (const char* name : {"deepseek-v2-lite", "deepseek-v3"}) {
    const DeepSeekConfig c = preset_config(name);
    for (int tp : {2, 4, 8}) {
      SCOPED_TRACE(std::string(name) + " tp" + std::to_string(tp));
      std::vector<IndexRange> channels;
      for (int r = 0; r < tp; ++r) {
        const ShardPlan p = make_shard_plan(c, ParallelConfig{tp, 1, r, ExpertSplit::kChannels});
        EXPECT_EQ(p.experts, (IndexRange{0, c.n_routed_experts}));  // every expert, cut
        channels.push_back(p.expert_channels);
        const ShardPlan whole = make_shard_plan(c, ParallelConfig{tp, 1, r});  // the default: whole experts
        EXPECT_EQ(whole.expert_channels, (IndexRange{0, c.moe_intermediate_size}));
        EXPECT_EQ(whole.experts.size(), c.n_routed_experts / tp);
      }
      expect_tiles(channels, c.moe_intermediate_size, "expert channels");
    }
  }
}

TEST(Partition, OneRankHoldsTheWholeModel) {
  for (const char* name : {"deepseek-v2-lite", "deepseek-v3"}) {
    const DeepSeekConfig c = preset_config(name);
    const ShardPlan p = make_shard_plan(c, ParallelConfig{});
    EXPECT_TRUE(holds_whole_model(p, c));
    EXPECT_FALSE(holds_whole_model(make_shard_plan(c, ParallelConfig{2, 1, 1}), c));
  }
}

TEST(Partition, VocabularyThatDoesNotSplitIsPadded) {
  DeepSeekConfig c = preset_config("deepseek-v2-lite");
  c.vocab_size = 1001;
  std::vector<IndexRange> vocab;
  for (int r = 0; r < 4; ++r) vocab.push_back(make_shard_plan(c, ParallelConfig{4, 1, r}).vocab);
  expect_tiles(vocab, 1001, "vocab");
  EXPECT_EQ(vocab[3], (IndexRange{753, 1001}));  // shards of 251 rows, the last holds 248
  EXPECT_EQ(make_shard_plan(c, ParallelConfig{4, 1, 3}).vocab_shard, 251);
}

std::vector<int64_t> equal(int64_t layers) { return std::vector<int64_t>(static_cast<size_t>(layers), 1); }

TEST(Partition, LayerRangesOfPipelineStages) {
  EXPECT_EQ(layer_range(equal(27), 2, 0), (IndexRange{0, 13}));  // equal costs: the earlier boundary on a tie
  EXPECT_EQ(layer_range(equal(27), 2, 1), (IndexRange{13, 27}));
  EXPECT_EQ(layer_range(equal(61), 4, 0), (IndexRange{0, 15}));
  EXPECT_EQ(layer_range(equal(61), 4, 1), (IndexRange{15, 30}));
  EXPECT_EQ(layer_range(equal(61), 4, 3), (IndexRange{46, 61}));
  EXPECT_EQ(layer_range(equal(62), 4, 2), (IndexRange{31, 46}));
  for (int stages : {1, 2, 3, 4, 8, 61}) {
    std::vector<IndexRange> parts;
    for (int s = 0; s < stages; ++s) parts.push_back(layer_range(equal(61), stages, s));
    expect_tiles(parts, 61, "layers");
    const auto [lo, hi] = std::minmax_element(parts.begin(), parts.end(), [](const IndexRange& a, const IndexRange& b) {
      return a.size() < b.size();
    });
    EXPECT_LE(hi->size() - lo->size(), 1) << stages << " stages";
    EXPECT_GE(lo->size(), 1);
  }
  EXPECT_THROW(layer_range(equal(3), 4, 0), Error);
}

// DeepSeek's leading dense layers weigh half a MoE layer: V2-Lite's stage 0 takes the dense layer
// and 13 MoE layers, V3's first of four stages its 3 dense layers and 13 MoE layers.
TEST(Partition, LayerRangesWeighDenseLayersHalf) {
  const DeepSeekConfig v2l = preset_config("deepseek-v2-lite"), v3 = preset_config("deepseek-v3");
  ASSERT_EQ(layer_costs(v2l).front(), 1);
  ASSERT_EQ(layer_costs(v2l).back(), 2);
  EXPECT_EQ(layer_range(layer_costs(v2l), 2, 0), (IndexRange{0, 14}));
  EXPECT_EQ(layer_range(layer_costs(v2l), 2, 1), (IndexRange{14, 27}));
  const std::vector<int64_t> c3 = layer_costs(v3);
  std::vector<IndexRange> parts;
  for (int s = 0; s < 4; ++s) parts.push_back(layer_range(c3, 4, s));
  EXPECT_EQ(parts, (std::vector<IndexRange>{{0, 16}, {16, 31}, {31, 46}, {46, 61}}));
  // More stages than MoE layers: every stage still gets a layer.
  const std::vector<int64_t> tiny = {1, 1, 1, 2};
  std::vector<IndexRange> four;
  for (int s = 0; s < 4; ++s) four.push_back(layer_range(tiny, 4, s));
  expect_tiles(four, 4, "layers");
  for (const IndexRange& r : four) EXPECT_EQ(r.size(), 1);
}

// Steps in flight: one without stages; --pipeline-steps-in-flight 0 is one per stage.
TEST(Partition, PipelineStepsInFlight) {
  EXPECT_EQ(pipeline_steps_in_flight(ParallelConfig{2, 1, 0}, 0), 1);
  EXPECT_EQ(pipeline_steps_in_flight(ParallelConfig{2, 1, 0}, 3), 1);
  EXPECT_EQ(pipeline_steps_in_flight(ParallelConfig{1, 2, 0}, 0), 2);
  EXPECT_EQ(pipeline_steps_in_flight(ParallelConfig{2, 4, 0}, 0), 4);
  EXPECT_EQ(pipeline_steps_in_flight(ParallelConfig{1, 2, 0}, 1), 1);
  EXPECT_EQ(pipeline_steps_in_flight(ParallelConfig{1, 2, 0}, 3), 3);
}

TEST(Partition, TensorTimesPipelineRankLayout) {
  const DeepSeekConfig c = preset_config("deepseek-v3");
  for (int rank = 0; rank < 4; ++rank) {  // TP2 x PP2: ranks 0, 1 are stage 0
    const ParallelConfig pc{2, 2, rank};
    const ShardPlan p = make_shard_plan(c, pc);
    EXPECT_EQ(p.tp_rank, rank % 2);
    EXPECT_EQ(p.pp_rank, rank / 2);
    EXPECT_EQ(pc.rank_of(p.pp_rank, p.tp_rank), rank);
    EXPECT_EQ(p.layers, rank < 2 ? (IndexRange{0, 31}) : (IndexRange{31, 61}));  // 3 dense + 28 MoE, 30 MoE
    EXPECT_EQ(p.heads, rank % 2 == 0 ? (IndexRange{0, 64}) : (IndexRange{64, 128}));
  }
}

TEST(Partition, SizesThatDoNotSplitAreRefused) {
  const DeepSeekConfig c = preset_config("deepseek-v2-lite");  // 16 heads, 64 experts
  try {
    make_shard_plan(c, ParallelConfig{3, 1, 0});
    FAIL() << "tp 3 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16 attention heads do not split evenly"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_shard_plan(c, ParallelConfig{32, 1, 0}), Error);  // 16 heads over 32 ranks
  EXPECT_THROW(make_shard_plan(c, ParallelConfig{2, 1, 2}), Error);   // rank outside the world
  EXPECT_THROW(make_shard_plan(c, ParallelConfig{1, 28, 0}), Error);  // 27 layers, 28 stages
}

}  // namespace
}  // namespace mlaserve::dist
