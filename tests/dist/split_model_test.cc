// A tiny model split over threads (LocalCollectives) on the CPU backend gives the logits of the
// whole model: tensor parallelism (heads, MLP channels, routed experts whole or their channels,
// vocabulary), pipeline stages, and both, over batches that mix prefill, chunked prefill with cached
// context, and decode.
//
// Tolerance: the split and the whole model compute in f32 from the same weights; they differ
// only in the order of the partial sums (o_proj, FFN: ~1e-7 relative per sum), which three
// layers amplify to ~1e-6 on logits of magnitude ~1-10. 1e-4 absolute is far above that and far
// below any difference a misplaced head, channel, expert or vocabulary row makes (O(1)).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <thread>

#include "dist/local_collectives.h"
#include "dist/partition.h"
#include "dist/step_runner.h"
#include "model/dummy.h"
#include "model/shard.h"
#include "../model/tiny_models.h"

namespace mlaserve::dist {
namespace {

constexpr int32_t kBlocks = 16;

// Sequence i's cache blocks: i * 4 ... (4 blocks, 256 tokens each at most).
std::vector<int32_t> blocks_of(int seq) { return {seq * 4, seq * 4 + 1, seq * 4 + 2, seq * 4 + 3}; }

struct SeqStep {
  int seq;
  int32_t context, len;
};

// One step of several sequences; every sequence's last row (and row 0) samples.
ForwardBatch make_batch(const std::vector<SeqStep>& seqs, int64_t vocab) {
  ForwardBatch b;
  for (const SeqStep& s : seqs) {
    SequenceSlice slice{static_cast<int32_t>(b.token_ids.size()), s.len, s.context, blocks_of(s.seq)};
    for (int32_t p = s.context; p < s.context + s.len; ++p) {
      b.token_ids.push_back(static_cast<int32_t>((p * 131 + s.seq * 17 + 5) % vocab));
      b.positions.push_back(p);
      b.slot_mapping.push_back(int64_t{slice.block_table[static_cast<size_t>(p / kCacheBlockSize)]} * kCacheBlockSize +
                               p % kCacheBlockSize);
    }
    b.sequences.push_back(slice);
    b.logit_rows.push_back(static_cast<int32_t>(b.token_ids.size() - 1));
  }
  b.logit_rows.push_back(0);
  return b;
}

// Prefill of three prompts, then a chunk with cached context beside decodes, then decodes.
std::vector<ForwardBatch> steps(int64_t vocab) {
  return {make_batch({{0, 0, 40}, {1, 0, 5}, {2, 0, 1}}, vocab), make_batch({{1, 5, 1}, {2, 1, 1}, {0, 40, 30}}, vocab),
          make_batch({{0, 70, 1}, {1, 6, 1}, {2, 2, 3}}, vocab), make_batch({{0, 71, 1}, {1, 7, 1}, {2, 5, 1}}, vocab)};
}

std::vector<Tensor> run_whole(const std::string& name) {
  DeepSeekModel model = testing::load_tiny_model(name);
  LatentCache cache = model.make_cache(kBlocks);
  std::vector<Tensor> out;
  for (const ForwardBatch& b : steps(model.config().vocab_size)) out.push_back(model.forward(b, cache));
  return out;
}

// The logits of every step from each rank of the last stage, split over tp x pp threads.
// Rank pc's share of the checkpoint, talking to its tensor- and pipeline-parallel groups.
DeepSeekModel rank_model(const DeepSeekConfig& config, const Checkpoint& ckpt, const ParallelConfig& pc,
                         Collectives& tp_comm, Collectives& pp_comm) {
  LoadOptions load;
  load.shard = make_shard_plan(config, pc);
  ModelOptions options;
  options.shard = load.shard;
  options.tp_group = &tp_comm;
  options.pp_group = &pp_comm;
  return DeepSeekModel(config, load_weights(ckpt, config, load), options);
}

std::vector<std::vector<Tensor>> run_split(const std::string& name, int tp, int pp, ExpertSplit experts) {
  const std::string dir = testing::tiny_model_dir(name);
  const DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  std::vector<std::shared_ptr<LocalGroup>> tp_groups, pp_groups;
  for (int i = 0; i < pp; ++i) tp_groups.push_back(std::make_shared<LocalGroup>(tp));
  for (int i = 0; i < tp; ++i) pp_groups.push_back(std::make_shared<LocalGroup>(pp));
  std::vector<std::vector<Tensor>> logits(static_cast<size_t>(tp));
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(tp * pp));
  for (int rank = 0; rank < tp * pp; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        const ParallelConfig pc{tp, pp, rank, experts};
        LocalCollectives tp_comm(tp_groups[static_cast<size_t>(pc.pp_rank())], pc.tp_rank());
        LocalCollectives pp_comm(pp_groups[static_cast<size_t>(pc.tp_rank())], pc.pp_rank());
        DeepSeekModel model = rank_model(config, ckpt, pc, tp_comm, pp_comm);
        LatentCache cache = model.make_cache(kBlocks);
        for (const ForwardBatch& b : steps(config.vocab_size)) {
          Tensor l = model.forward(b, cache);
          EXPECT_EQ(l.defined(), pc.pp_rank() == pp - 1);
          if (l.defined()) logits[static_cast<size_t>(pc.tp_rank())].push_back(l);
        }
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(rank)] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  return logits;
}

struct Split {
  std::string model;
  int tp, pp;
  ExpertSplit experts = ExpertSplit::kExperts;
};

void PrintTo(const Split& s, std::ostream* os) {
  *os << s.model << " tp" << s.tp << " pp" << s.pp << (s.experts == ExpertSplit::kChannels ? " expert channels" : "");
}

class SplitModel : public ::testing::TestWithParam<Split> {};

TEST_P(SplitModel, LogitsEqualTheWholeModel) {
  const Split s = GetParam();
  const std::vector<Tensor> want = run_whole(s.model);
  const auto got = run_split(s.model, s.tp, s.pp, s.experts);
  for (int r = 0; r < s.tp; ++r) {
    ASSERT_EQ(got[static_cast<size_t>(r)].size(), want.size()) << "tp rank " << r;
    for (size_t step = 0; step < want.size(); ++step) {
      const Tensor& g = got[static_cast<size_t>(r)][step];
      ASSERT_EQ(g.shape(), want[step].shape());
      const float* gp = g.data<float>();
      const float* wp = want[step].data<float>();
      double max_abs = 0;
      for (int64_t i = 0; i < g.numel(); ++i) max_abs = std::max(max_abs, std::fabs(double(gp[i]) - wp[i]));
      EXPECT_LT(max_abs, 1e-4) << "step " << step << " tp rank " << r;
      if (r > 0) {  // every rank of the group holds the same gathered logits, bit for bit
        EXPECT_EQ(0, std::memcmp(g.raw(), got[0][step].raw(), g.nbytes())) << "step " << step;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, SplitModel,
    ::testing::Values(Split{"tiny-v2-lite", 2, 1}, Split{"tiny-v2", 2, 1}, Split{"tiny-v2", 4, 1},
                      Split{"tiny-v3", 2, 1}, Split{"tiny-v3-fp8", 2, 1}, Split{"tiny-v3", 1, 2},
                      Split{"tiny-v2", 1, 3}, Split{"tiny-v2", 2, 2},
                      Split{"tiny-v2-lite", 2, 1, ExpertSplit::kChannels},
                      Split{"tiny-v2", 4, 1, ExpertSplit::kChannels}, Split{"tiny-v3", 2, 1, ExpertSplit::kChannels},
                      Split{"tiny-v2", 2, 2, ExpertSplit::kChannels}),
    [](const ::testing::TestParamInfo<Split>& info) {
      std::string n = info.param.model + "_tp" + std::to_string(info.param.tp) + "_pp" + std::to_string(info.param.pp) +
                      (info.param.experts == ExpertSplit::kChannels ? "_expert_channels" : "");
      for (char& c : n) c = c == '-' ? '_' : c;
      return n;
    });

// One engine step as the ranks run it (dist/step_runner.h): TP2 x PP2 with two micro-batches
// per step; rank 0 ends with the whole batch's logits, the other ranks with none.
TEST(RunStep, PipelineMicroBatchesGiveRankZeroTheWholeLogits) {
  const std::string name = "tiny-v2";
  std::vector<ForwardBatch> batches = steps(1024);
  for (ForwardBatch& b : batches) b.logit_rows.pop_back();  // the engine's rows increase
  std::vector<Tensor> want;
  {
    DeepSeekModel model = testing::load_tiny_model(name);
    LatentCache cache = model.make_cache(kBlocks);
    for (const ForwardBatch& b : batches) want.push_back(model.forward(b, cache));
  }
  const std::string dir = testing::tiny_model_dir(name);
  const DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  const int tp = 2, pp = 2;
  auto world = std::make_shared<LocalGroup>(tp * pp);
  std::vector<std::shared_ptr<LocalGroup>> tp_groups{std::make_shared<LocalGroup>(tp), std::make_shared<LocalGroup>(tp)};
  std::vector<std::shared_ptr<LocalGroup>> pp_groups{std::make_shared<LocalGroup>(pp), std::make_shared<LocalGroup>(pp)};
  std::vector<Tensor> got;
  std::vector<std::string> errors(tp * pp);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < tp * pp; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        const ParallelConfig pc{tp, pp, rank};
        LocalCollectives world_comm(world, rank);
        LocalCollectives tp_comm(tp_groups[static_cast<size_t>(pc.pp_rank())], pc.tp_rank());
        LocalCollectives pp_comm(pp_groups[static_cast<size_t>(pc.tp_rank())], pc.pp_rank());
        DeepSeekModel model = rank_model(config, ckpt, pc, tp_comm, pp_comm);
        LatentCache cache = model.make_cache(kBlocks);
        for (const ForwardBatch& b : batches) {
          Tensor l = run_step(model, cache, b, StepGroups{pc, &world_comm, 2});
          EXPECT_EQ(l.defined(), rank == 0);
          if (rank == 0) got.push_back(l);
        }
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(rank)] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    ASSERT_EQ(got[k].shape(), want[k].shape());
    const std::vector<float> g = got[k].to_vector(), w = want[k].to_vector();
    double max_abs = 0;
    for (size_t i = 0; i < g.size(); ++i) max_abs = std::max(max_abs, std::fabs(double(g[i]) - w[i]));
    EXPECT_LT(max_abs, 1e-4) << "step " << k;
  }
}

// tiny-v2's checkpoint loaded whole and as the share of rank `parallel`.
struct TinyV2Share {
  DeepSeekConfig config;
  ShardPlan plan;
  ModelWeights full, part;
};
TinyV2Share load_tiny_v2_share(const ParallelConfig& parallel) {
  const std::string dir = testing::tiny_model_dir("tiny-v2");
  TinyV2Share s{load_deepseek_config(dir + "/config.json"), {}, {}, {}};
  const Checkpoint ckpt = Checkpoint::open(dir);
  s.full = load_weights(ckpt, s.config, {});
  LoadOptions load;
  load.shard = s.plan = make_shard_plan(s.config, parallel);
  s.part = load_weights(ckpt, s.config, load);
  return s;
}

// A layer's share holds exactly the full weights' rows and columns of its heads, channels and
// experts, and the lm_head shard its vocabulary rows then zeros.
TEST(ShardWeights, SharesAreCutsOfTheFullWeights) {
  const TinyV2Share s = load_tiny_v2_share(ParallelConfig{4, 1, 3});  // heads [3, 4), vocab [768, 1024)
  const DeepSeekConfig& c = s.config;
  const ModelWeights& full = s.full;
  const ModelWeights& part = s.part;
  auto at = [](const Tensor& t, int64_t r, int64_t col) { return t.data<float>()[r * t.dim(1) + col]; };
  const MlaWeights& fa = full.layers[1].attn;
  const MlaWeights& pa = part.layers[1].attn;
  ASSERT_EQ(pa.q_b_proj->weight.shape(), (Shape{c.qk_head_dim, *c.q_lora_rank}));
  EXPECT_EQ(at(pa.q_b_proj->weight, 5, 7), at(fa.q_b_proj->weight, 3 * c.qk_head_dim + 5, 7));
  ASSERT_EQ(pa.o_proj.weight.shape(), (Shape{c.hidden_size, c.v_head_dim}));
  EXPECT_EQ(at(pa.o_proj.weight, 9, 11), at(fa.o_proj.weight, 9, 3 * c.v_head_dim + 11));
  EXPECT_EQ(at(pa.kv_b_dense, 2, 3), at(fa.kv_b_dense, 3 * 256 + 2, 3));
  EXPECT_EQ(pa.kv_a_proj.weight.shape(), fa.kv_a_proj.weight.shape());  // the latent is replicated
  const MoeWeights& fm = *full.layers[1].moe;
  const MoeWeights& pm = *part.layers[1].moe;
  EXPECT_EQ(pm.experts.num_experts(), 2);  // experts [6, 8)
  EXPECT_EQ(pm.experts.gate_up.data<float>()[100], fm.experts.gate_up.slice(6, 7).data<float>()[100]);
  const int64_t width = c.shared_intermediate_size(), q = width / 4;
  EXPECT_EQ(at(pm.shared->gate_up.weight, q + 1, 4), at(fm.shared->gate_up.weight, width + 3 * q + 1, 4));  // up row
  EXPECT_EQ(at(pm.shared->down.weight, 4, 1), at(fm.shared->down.weight, 4, 3 * q + 1));
  EXPECT_EQ(at(part.lm_head, 10, 3), at(full.lm_head, 768 + 10, 3));
  EXPECT_EQ(part.layers[0].mlp->down.weight.shape(), (Shape{c.hidden_size, c.intermediate_size / 4}));
}

// With the routed experts split by channels, a rank holds every expert, each cut to its channels:
// gate rows [c0, c1), up rows [Im + c0, Im + c1), down columns [c0, c1) of the full weights.
TEST(ShardWeights, ExpertChannelSharesAreCutsOfEveryExpert) {
  const TinyV2Share s = load_tiny_v2_share(ParallelConfig{4, 1, 3, ExpertSplit::kChannels});
  const DeepSeekConfig& c = s.config;
  const int64_t im = c.moe_intermediate_size, w = im / 4, c0 = 3 * w;
  ASSERT_EQ(s.plan.experts, (IndexRange{0, c.n_routed_experts}));
  ASSERT_EQ(s.plan.expert_channels, (IndexRange{c0, im}));
  const ops::ExpertWeights& f = s.full.layers[1].moe->experts;
  const ops::ExpertWeights& g = s.part.layers[1].moe->experts;
  ASSERT_EQ(g.gate_up.shape(), (Shape{c.n_routed_experts, 2 * w, c.hidden_size}));
  ASSERT_EQ(g.down.shape(), (Shape{c.n_routed_experts, c.hidden_size, w}));
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    for (int64_t j = 0; j < w; ++j) {
      for (int64_t h : {int64_t{0}, c.hidden_size - 1}) {
        // [E, R, X] element (e, row, h) of a gate_up; [E, H, C] element (e, h, col) of a down.
        const auto gu = [&](const Tensor& t, int64_t row) {
          return t.data<float>()[(e * t.dim(1) + row) * t.dim(2) + h];
        };
        const auto dn = [&](const Tensor& t, int64_t col) {
          return t.data<float>()[(e * t.dim(1) + h) * t.dim(2) + col];
        };
        ASSERT_EQ(gu(g.gate_up, j), gu(f.gate_up, c0 + j)) << "expert " << e << " gate row " << j;
        ASSERT_EQ(gu(g.gate_up, w + j), gu(f.gate_up, im + c0 + j)) << "expert " << e << " up row " << j;
        ASSERT_EQ(dn(g.down, j), dn(f.down, c0 + j)) << "expert " << e << " down column " << j;
      }
    }
  }
}

// FP8 experts cut by channels take their scale blocks along: [E, 2 Im / 128, H / 128] gate_up scales
// keep block rows c0 / 128 .. of each half, the down scales block columns; dummy weights drawn for a
// share equal the same cut of the whole model's (model/dummy.h). A cut inside a 128-wide block fails
// with a message.
TEST(ShardWeights, Fp8ExpertChannelSharesKeepTheirScaleBlocks) {
  DeepSeekConfig c = load_deepseek_config(testing::tiny_model_dir("tiny-v3-fp8") + "/config.json");
  c.moe_intermediate_size = 512;  // 4 blocks: TP2 ranks hold 2 each
  c.num_attention_heads = 4;       // 2 a rank: q_b_proj's 384 rows and o_proj's 256 columns on whole blocks
  DummyOptions d;
  d.seed = 3;
  d.fp8 = true;
  const ModelWeights full = make_dummy_weights(c, d);
  d.shard = make_shard_plan(c, ParallelConfig{2, 1, 1, ExpertSplit::kChannels});
  const ModelWeights part = make_dummy_weights(c, d);
  const int64_t layer = c.first_k_dense_replace;
  const ops::ExpertWeights& f = full.layers[static_cast<size_t>(layer)].moe->experts;
  const ops::ExpertWeights& g = part.layers[static_cast<size_t>(layer)].moe->experts;
  ASSERT_TRUE(g.is_fp8());
  const int64_t hb = f.gate_up_scale.dim(2);
  ASSERT_EQ(g.gate_up_scale.shape(), (Shape{c.n_routed_experts, 4, hb}));
  ASSERT_EQ(g.down_scale.shape(), (Shape{c.n_routed_experts, f.down_scale.dim(1), 2}));
  const float* fs = f.gate_up_scale.data<float>();
  const float* gs = g.gate_up_scale.data<float>();
  const float* fd = f.down_scale.data<float>();
  const float* gd = g.down_scale.data<float>();
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    for (int64_t r = 0; r < 2; ++r) {
      EXPECT_EQ(gs[(e * 4 + r) * hb], fs[(e * 8 + 2 + r) * hb]) << "gate block " << r;
      EXPECT_EQ(gs[(e * 4 + 2 + r) * hb], fs[(e * 8 + 4 + 2 + r) * hb]) << "up block " << r;
      EXPECT_EQ(gd[(e * f.down_scale.dim(1)) * 2 + r], fd[(e * f.down_scale.dim(1)) * 4 + 2 + r]) << "down block " << r;
    }
  }
  const char* g_down = static_cast<const char*>(g.down.raw());
  const char* f_down = static_cast<const char*>(f.down.raw());
  EXPECT_EQ(std::memcmp(g_down + 5, f_down + 256 + 5, 100), 0) << "expert 0's first down row, columns 256 ..";

  c.moe_intermediate_size = 128;  // TP2 would cut its one block in two
  d.shard = make_shard_plan(c, ParallelConfig{2, 1, 0, ExpertSplit::kChannels});
  try {
    make_dummy_weights(c, d);
    ADD_FAILURE() << "a cut inside a scale block must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("128-wide scale blocks"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mlaserve::dist
