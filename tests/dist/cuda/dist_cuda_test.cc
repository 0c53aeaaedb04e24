// A model split over 2 or 4 GPUs, one process each, against the same model on one GPU (the
// collectives' own cases: collectives_cuda_test.cc; the world they share: dist_world.h). The
// world is 2 ranks, or 4 with MLASERVE_TEST_WORLD=4; every case skips when fewer GPUs are
// visible (CI compiles it).
//
// The binary starts its other ranks itself: rank 0 re-executes it with MLASERVE_TEST_RANK=r
// (fork + exec, since CUDA is already initialised when it counts the GPUs), all meet over the
// loopback TCP rendezvous (dist/control_channel.h), join the NCCL world, and run every test in
// lockstep. Rank 0 runs the engine's side of each step (it sends the step plan,
// dist/step_message.h) and checks; the others follow the plan, exactly as `mlaserve` ranks do.
//
// Layouts: a world of 2 runs TP2 and PP2, a world of 4 runs TP4, TP2xPP2 and PP4. Each layout's
// groups are split from the world communicator as DistContext splits them (rank = pp_rank ·
// tp_size + tp_rank; the tensor-parallel group is the ranks of one stage, the pipeline group the
// ranks of one tensor-parallel rank), and a test checks which ranks each group holds.
// The tiny golden models have 2 attention heads (tiny-v2: 4) and 3 layers, so TP4 runs on
// tiny-v2 only and PP4 on none of them; the dummy models at V2-Lite shapes (16 heads, 27 layers)
// and at V3 shapes cut to 4 layers (128 heads: 32 per rank under TP4, 3 dense + 1 MoE layer,
// BF16 and block FP8) cover every layout.
//
// References and tolerances. Rank 0 runs the whole model on its GPU twice: over whole batches,
// and over the micro-batches a pipeline cuts each batch into, one after the other (a GEMM's rows
// can depend on its row count through the kernel its heuristic picks). A pipeline without
// tensor parallelism repeats the second run's arithmetic and must give its logits exactly.
// Tensor parallelism sums the ranks' partial o_proj and FFN outputs in f32 and rounds them as
// one GPU rounds its own at decode sizes (model/tensor_parallel.cc), so only the order of the f32
// additions differs; past them (model.h, kTpF32SumMaxBytes) each rank's share is rounded to bf16
// first: measured on H200s, at most 0.63% relative L2 on the golden models (always f32), 3.3-4.1% on
// 27 V2-Lite-shaped layers and about 1% on V3 shapes. Through the MoE router a difference can flip a
// near-tied expert choice, which moves a token's output by O(1); the bounds are 2% per step
// (golden models), and on the dummy models at released shapes 10% (20% in block FP8) for the
// median row with 40% for any row (see kFlipRowRelL2), and the greedy tokens (teacher-forced along
// the one-GPU path) must equal one GPU's wherever its choice is not a near tie (see expect_same).
//
// The engine over a pipeline with steps in flight (EnginePipeline): rank 0 runs the engine over
// dist::DistributedRunner, which keeps one step per stage in flight, and must give exactly the
// greedy tokens of the engine on one GPU over the same steps (see engine_on_pipeline).
//
// Every rank runs the same cases in the same order (the collectives must match): rank 0 starts
// the others with its own arguments, gtest filters included.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>

#include <cuda_runtime_api.h>

#include "dist/context.h"
#include "dist/distributed_runner.h"
#include "dist/micro_batch.h"
#include "dist/nccl_collectives.h"
#include "dist/partition.h"
#include "dist/step_message.h"
#include "dist/step_runner.h"
#include "engine/deepseek_runner.h"
#include "engine/engine.h"
#include "model/dummy.h"
#include "model/presets.h"
#include "model/shard.h"
#include "../../engine/cuda/graph_steps.h"
#include "../../engine/in_flight_runner.h"
#include "../../engine/served_requests.h"
#include "../../model/step_batch.h"
#include "../../model/tiny_models.h"
#include "../free_port.h"
#include "dist_world.h"

namespace mlaserve::dist {
namespace {

constexpr int kMicroBatches = 2;  // per pipeline step (mlaserve --pipeline-micro-batches 2)
using namespace world_test;

// ---- Whole model on one GPU vs split over two -----------------------------------------------

struct GreedyRun {
  std::vector<std::vector<int32_t>> tokens;  // per sequence: the greedy tokens
  std::vector<Tensor> logits;                // per step [R, V] f32 on the host
};

std::vector<int32_t> argmax_rows(const Tensor& logits) {
  std::vector<int32_t> out;
  const float* p = logits.data<float>();
  for (int64_t r = 0; r < logits.dim(0); ++r) {
    const float* row = p + r * logits.dim(1);
    out.push_back(static_cast<int32_t>(std::max_element(row, row + logits.dim(1)) - row));
  }
  return out;
}

// Prefill of every prompt in one step, then `decode_steps` decode steps. `forced` (one GPU's
// tokens) is fed when given, so that both runs see the same batches.
using StepFn = std::function<Tensor(const ForwardBatch&)>;
GreedyRun greedy(const StepFn& step, std::vector<std::vector<int32_t>> seqs, int decode_steps, const GreedyRun* forced) {
  GreedyRun run;
  run.tokens.resize(seqs.size());
  std::vector<int32_t> done(seqs.size(), 0);
  for (int k = 0; k <= decode_steps; ++k) {
    const ForwardBatch batch = testing::step_batch(seqs, done, /*blocks_per_seq=*/8);  // 512 tokens
    Tensor logits = step(batch);
    logits = logits.is_cpu() ? logits : logits.to(Device::kCPU);
    const std::vector<int32_t> next = argmax_rows(logits);
    for (size_t s = 0; s < seqs.size(); ++s) {
      done[s] = static_cast<int32_t>(seqs[s].size());
      run.tokens[s].push_back(next[s]);
      seqs[s].push_back(forced ? forced->tokens[s][static_cast<size_t>(k)] : next[s]);
    }
    run.logits.push_back(logits);
  }
  return run;
}

double rel_l2(const Tensor& got, const Tensor& want);

// One GPU's step, each batch cut into the micro-batches a pipeline of this layout runs
// (dist/micro_batch.h) and forwarded one after the other, their logits concatenated: the very
// arithmetic the pipeline repeats. (A GEMM's rows can depend on how many rows it has, through
// the kernel and split its heuristic picks, so the uncut batch is not the pipeline's reference.)
StepFn one_gpu_step(DeepSeekModel& model, LatentCache& cache, int micro_batches) {
  return [&model, &cache, micro_batches](const ForwardBatch& batch) {
    std::vector<Tensor> parts;
    int64_t rows = 0;
    for (const ForwardBatch& part : split_micro_batches(batch, micro_batches)) {
      parts.push_back(model.forward(part, cache).to(Device::kCPU));
      rows += parts.back().dim(0);
    }
    Tensor logits = Tensor::empty({rows, model.config().vocab_size}, DType::kF32);
    int64_t row = 0;
    for (const Tensor& p : parts) {
      std::memcpy(logits.slice(row, row + p.dim(0)).raw(), p.raw(), p.nbytes());
      row += p.dim(0);
    }
    return logits;
  };
}

// The references on rank 0: one GPU over whole batches (tensor parallelism's) and, for layouts
// with pipelines, over the pipeline's micro-batches, along the first one's greedy tokens.
struct OneGpuRuns {
  GreedyRun whole, micro;
  double self_rel_l2 = 0;  // the largest step's distance between the two: one GPU's own noise
  const GreedyRun& for_layout(int pp) const { return pp > 1 ? micro : whole; }
};

OneGpuRuns one_gpu_runs(DeepSeekModel& model, const std::vector<std::vector<int32_t>>& prompts, int decode_steps,
                        bool pipelines) {
  OneGpuRuns r;
  const int64_t blocks = 8 * static_cast<int64_t>(prompts.size());
  LatentCache a = model.make_cache(blocks);
  r.whole = greedy(one_gpu_step(model, a, 1), prompts, decode_steps, nullptr);
  if (!pipelines) return r;
  LatentCache b = model.make_cache(blocks);
  r.micro = greedy(one_gpu_step(model, b, kMicroBatches), prompts, decode_steps, &r.whole);
  for (size_t k = 0; k < r.whole.logits.size(); ++k) {
    const Tensor &m = r.micro.logits[k], &w = r.whole.logits[k];
    r.self_rel_l2 = std::max(r.self_rel_l2, rel_l2(m, w));
    for (int64_t s = 0; s < w.dim(0); ++s) {
      const double e = rel_l2(m.slice(s, s + 1), w.slice(s, s + 1));
      if (e > 0.02) std::printf("  one GPU, step %zu row %lld: rel. L2 %.3f%%\n", k, static_cast<long long>(s), 100 * e);
    }
  }
  std::printf("  one GPU, whole batches vs micro-batches: worst logits rel. L2 %.3f%%\n", 100 * r.self_rel_l2);
  return r;
}

double rel_l2(const Tensor& got, const Tensor& want) {
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    num += (double(g[i]) - w[i]) * (double(g[i]) - w[i]);
    den += double(w[i]) * w[i];
  }
  return std::sqrt(num / den);
}

// The split run: rank 0 sends each step's batch to the other ranks and runs its share; they follow.
GreedyRun split_run(DeepSeekModel& model, const StepGroups& groups, const std::vector<std::vector<int32_t>>& prompts,
              int decode_steps, const GreedyRun& forced) {
  LatentCache cache = model.make_cache(8 * static_cast<int64_t>(prompts.size()));
  if (rank() != 0) {
    for (StepMessage m; (m = decode_message(g_ctx->channel().receive())).kind == StepMessage::Kind::kStep;) {
      run_step(model, cache, m.batch, groups);
    }
    return {};
  }
  GreedyRun run = greedy(
      [&](const ForwardBatch& b) {
        g_ctx->channel().broadcast(encode_step(b));
        return run_step(model, cache, b, groups);
      },
      prompts, decode_steps, &forced);
  g_ctx->channel().broadcast(encode_stop());
  return run;
}

// How far a split run's logits may be from one GPU's (relative L2). Without `flip_row`: every
// step within `step`. With it (dummy models at released shapes, see kDummyTpRelL2): the median
// row within `step`, and every row within `flip_row`, the most one expert choice flipped at a
// near tie can move a row.
struct LogitBounds {
  double step = 0;
  double flip_row = 0;
};

// Logits within `bounds`; greedy tokens equal to one GPU's except at near ties: where they
// differ, one GPU's logits of the two tokens must be closer than the largest logit difference
// between the two runs on that row (bf16 rounding can flip such a choice).
void expect_same(const GreedyRun& split, const GreedyRun& whole, LogitBounds bounds) {
  if (rank() != 0) return;
  ASSERT_EQ(split.logits.size(), whole.logits.size());
  int64_t same = 0, total = 0;
  double worst = 0;
  std::vector<double> rows;  // every row's distance, every step
  for (size_t k = 0; k < whole.logits.size(); ++k) {
    const Tensor& w = whole.logits[k];
    const Tensor& g = split.logits[k];
    const double e = rel_l2(g, w);
    worst = std::max(worst, e);
    if (bounds.flip_row == 0) {
      EXPECT_LE(e, bounds.step) << "step " << k;
    }
    const int64_t v = w.dim(1);
    for (int64_t s = 0; s < w.dim(0); ++s) {
      rows.push_back(rel_l2(g.slice(s, s + 1), w.slice(s, s + 1)));
      if (rows.back() > bounds.step / 2) {  // a routing flip moves one row by O(1)
        std::printf("  step %zu row %lld: rel. L2 %.3f%%\n", k, static_cast<long long>(s), 100 * rows.back());
      }
      if (bounds.flip_row > 0) {
        EXPECT_LE(rows.back(), bounds.flip_row) << "step " << k << " row " << s;
      }
    }
    for (int64_t s = 0; s < w.dim(0); ++s) {
      const int32_t want = whole.tokens[static_cast<size_t>(s)][k], got = split.tokens[static_cast<size_t>(s)][k];
      ++total;
      if (want == got) {
        ++same;
        continue;
      }
      const float* wr = w.data<float>() + s * v;
      const float* gr = g.data<float>() + s * v;
      double max_diff = 0;
      for (int64_t i = 0; i < v; ++i) max_diff = std::max(max_diff, std::fabs(double(gr[i]) - wr[i]));
      const double gap = double(wr[want]) - wr[got];
      std::printf("  step %zu sequence %lld: token %d instead of %d, one GPU's gap %.4f, logit difference %.4f\n", k,
                  static_cast<long long>(s), got, want, gap, max_diff);
      EXPECT_LE(gap, max_diff) << "step " << k << " sequence " << s << ": not a near tie";
    }
  }
  std::nth_element(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(rows.size() / 2), rows.end());
  const double median = rows.empty() ? 0.0 : rows[rows.size() / 2];
  if (bounds.flip_row > 0) {
    EXPECT_LE(median, bounds.step) << "the median row";
  }
  std::printf("  median row rel. L2 %.3f%%, worst step %.3f%%, greedy tokens equal %lld / %lld\n", 100 * median, 100 * worst,
              static_cast<long long>(same), static_cast<long long>(total));
}

// The model on this rank's GPU: whole, or this rank's share talking to the other rank.
LoadOptions bf16_load(std::optional<ShardPlan> shard) {
  LoadOptions o;
  o.weight_dtype = DType::kBF16;
  o.shard = shard;
  return o;
}

ModelOptions gpu_options(std::optional<ShardPlan> shard) {
  ModelOptions o;
  o.device = Device::kCUDA;
  if (shard) {
    LayoutGroups& g = groups_of(SplitKind{shard->tp_size, shard->pp_size});
    o.shard = shard;
    o.tp_group = g.tp.get();
    o.pp_group = g.pp.get();
  }
  return o;
}

StepGroups step_groups(SplitKind kind) { return StepGroups{groups_of(kind).parallel, g_ctx->world(), kMicroBatches}; }

// Bounds on the logits' relative L2 distance per step (see the tolerances at the top): a
// pipeline without tensor parallelism repeats one GPU's arithmetic on the same micro-batches and
// must give its logits exactly; tensor parallelism sums the heads' and channels' partial outputs
// in another order (f32, rounded as one GPU rounds, at decode sizes; past them each rank's share
// rounded to bf16 first, model.h kTpF32SumMaxBytes): measured on H200s at most 0.63% on the golden
// models (always f32) and 3.7% on 27 V2-Lite-shaped layers (2026-11-30 with bf16 prefill sums:
// 4.1%), where an expert flip at a near tie adds more.
// Block FP8 re-quantises each activation block from its amax, so a last-bit difference upstream
// can move a whole 128-value block by an FP8 step (6%) and then flip experts: on V3 shapes one GPU
// is 11.4% from itself between whole batches and micro-batches (self_rel_l2, printed), and TP2,
// TP4 and TP2xPP2 measured 12.1%, 12.1% and 9.6% from it (H200s, 13:22): bound 20%.
// On the dummy models these bounds hold for the median row, not for every step: a flipped expert
// choice at a near tie moves its row alone, by 10-23% at V3 shapes (H200s, 17:30: TP4 BF16 rows
// of 0.8-1.05% and one of 20.2%; TP2xPP2 four rows of 10-15% among twenty; one GPU against itself
// two rows of 10-11%; FP8 rows 4-23%), so a row may be as far as kFlipRowRelL2.
constexpr double kGoldenTpRelL2 = 0.02;
constexpr double kDummyTpRelL2 = 0.10;
constexpr double kDummyFp8TpRelL2 = 0.20;
constexpr double kFlipRowRelL2 = 0.40;
LogitBounds golden_bounds(SplitKind kind) { return {kind.tp == 1 ? 0.0 : kGoldenTpRelL2, 0.0}; }
LogitBounds dummy_bounds(SplitKind kind, bool fp8) {
  if (kind.tp == 1) return {};  // exact
  return {fp8 ? kDummyFp8TpRelL2 : kDummyTpRelL2, kFlipRowRelL2};
}

class TinySplit : public ::testing::TestWithParam<std::tuple<std::string, SplitKind>> {};

TEST_P(TinySplit, SameGreedyTokensAsOneGpu) {
  const auto& [name, kind] = GetParam();
  REQUIRE_WORLD(kind.world());
  const std::string dir = testing::tiny_model_dir(name);
  const DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  const Checkpoint ckpt = Checkpoint::open(dir);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& g : testing::load_golden(name)) prompts.push_back(g.prompt);
  const int decode_steps = 12;

  OneGpuRuns one;
  if (rank() == 0) {
    ModelWeights w = load_weights(ckpt, config, bf16_load(std::nullopt));
    move_weights(w, Device::kCUDA);
    DeepSeekModel model(config, std::move(w), gpu_options(std::nullopt));
    one = one_gpu_runs(model, prompts, decode_steps, kind.pp > 1);
  }
  const ParallelConfig pc{kind.tp, kind.pp, rank()};
  const ShardPlan plan = make_shard_plan(config, pc);
  ModelWeights w = load_weights(ckpt, config, bf16_load(plan));
  move_weights(w, Device::kCUDA);
  DeepSeekModel model(config, std::move(w), gpu_options(plan));
  // Rank 0 shares its forced tokens with the other ranks through the batches it sends.
  const GreedyRun split = split_run(model, step_groups(kind), prompts, decode_steps, one.whole);
  expect_same(split, one.for_layout(kind.pp), golden_bounds(kind));
}

std::string split_name(const ::testing::TestParamInfo<std::tuple<std::string, SplitKind>>& info) {
  std::string n = std::get<0>(info.param) + "_" + kind_name(std::get<1>(info.param));
  for (char& c : n) c = c == '-' ? '_' : c;
  return n;
}

// World 2: every golden model at TP2 and PP2. World 4: every one at TP2xPP2; TP4 needs 4 heads
// (tiny-v2 only); PP4 needs 4 layers (none: they have 3).
INSTANTIATE_TEST_SUITE_P(Golden, TinySplit,
                         ::testing::Combine(::testing::Values("tiny-v2-lite", "tiny-v2", "tiny-v3", "tiny-v3-fp8"),
                                            ::testing::Values(SplitKind{2, 1}, SplitKind{1, 2}, SplitKind{2, 2})),
                         split_name);
INSTANTIATE_TEST_SUITE_P(GoldenTp4, TinySplit,
                         ::testing::Combine(::testing::Values("tiny-v2"), ::testing::Values(SplitKind{4, 1})),
                         split_name);

// Dummy weights at a released model's shapes: the logits of 4 prompts (200, 37, 1 and 120
// tokens) and 4 decode steps, one GPU against each layout of this world.
void dummy_model_vs_one_gpu(const DeepSeekConfig& config, uint64_t seed,
                            ExpertSplit experts = ExpertSplit::kExperts) {
  DummyOptions d;
  d.seed = seed;
  d.weight_dtype = DType::kBF16;  // block FP8 when config.fp8 (filled in BF16 and quantised on the GPU)
  d.device = Device::kCUDA;
  std::vector<std::vector<int32_t>> prompts;
  std::mt19937 rng(3);
  for (int len : {200, 37, 1, 120}) {
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % config.vocab_size);
    prompts.push_back(p);
  }
  OneGpuRuns one;
  if (rank() == 0) {
    DeepSeekModel model(config, make_dummy_weights(config, d), gpu_options(std::nullopt));
    one = one_gpu_runs(model, prompts, 4, /*pipelines=*/true);  // every world has a PP layout
  }
  const std::vector<SplitKind> kinds = g_world == 2 ? std::vector<SplitKind>{{2, 1}, {1, 2}}
                                                    : std::vector<SplitKind>{{4, 1}, {2, 2}, {1, 4}};
  for (SplitKind kind : kinds) {
    std::printf("[rank %d] tp %d pp %d\n", rank(), kind.tp, kind.pp);
    d.shard = make_shard_plan(config, ParallelConfig{kind.tp, kind.pp, rank(), experts});
    DeepSeekModel model(config, make_dummy_weights(config, d), gpu_options(d.shard));
    const GreedyRun split = split_run(model, step_groups(kind), prompts, 4, one.whole);
    expect_same(split, one.for_layout(kind.pp), dummy_bounds(kind, config.fp8.has_value()));
  }
}

// V2-Lite shapes (27 layers, 16 heads, 64 experts, vocabulary 102400), BF16.
TEST(DummyModels, V2LiteLogitsWithinBf16ToleranceOfOneGpu) {
  REQUIRE_WORLD(g_world);
  dummy_model_vs_one_gpu(preset_config("deepseek-v2-lite"), 7);
}

// V3 shapes (128 heads, 256 experts with sigmoid group-limited routing, vocabulary 129280) cut
// to 4 layers: 3 dense + 1 MoE, so that PP4 has a layer per stage and one GPU holds the whole.
DeepSeekConfig v3_four_layers(bool fp8) {
  DeepSeekConfig c = preset_config("deepseek-v3");
  c.num_hidden_layers = 4;
  if (!fp8) c.fp8.reset();
  finalize_config(c);
  return c;
}

TEST(DummyModels, V3FourLayersBf16WithinToleranceOfOneGpu) {
  REQUIRE_WORLD(g_world);
  dummy_model_vs_one_gpu(v3_four_layers(false), 11);
}

// Block FP8 weights, W8A8: each rank quantises the activations of its own heads and channels,
// in the same 128-column blocks as one GPU (32 heads · 128 is a whole number of blocks).
TEST(DummyModels, V3FourLayersFp8WithinToleranceOfOneGpu) {
  REQUIRE_WORLD(g_world);
  dummy_model_vs_one_gpu(v3_four_layers(true), 13);
}

// The routed experts split by channels (--expert-split channels): each TP rank holds every expert's
// 2048 / tp channels (whole 128-channel scale blocks), its partial expert outputs summed with the
// rest of the FFN's.
TEST(DummyModels, V3FourLayersFp8ExpertChannelsWithinToleranceOfOneGpu) {
  REQUIRE_WORLD(g_world);
  dummy_model_vs_one_gpu(v3_four_layers(true), 13, ExpertSplit::kChannels);
}

// ---- The engine over a pipeline, steps in flight ------------------------------------------

// 16 requests (the prompts twice, so that the second copies can hit the prefix cache), 12
// greedy tokens each, a budget of 96 tokens per step and 6 sequences per step: many steps, of
// which one per stage is in flight. The reference is the engine on rank 0's GPU over the same
// steps: testing::InFlightRunner over a DeepSeekRunner without CUDA graphs, with as many steps in
// flight, so the engine forms the same batches (its scheduling does not depend on when a step
// runs), and a pipeline repeats one GPU's arithmetic on the same batches (0% above): every token
// must be equal.
std::vector<std::vector<int32_t>> serve_greedy(ModelRunner& runner, const std::vector<std::vector<int32_t>>& prompts) {
  EngineOptions o;
  o.scheduler = {/*max_num_batched_tokens=*/96, /*max_num_seqs=*/6, /*chunked_prefill=*/true};
  Engine engine(runner, o);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int copy = 0; copy < 2; ++copy) {
    for (const std::vector<int32_t>& p : prompts) {
      SamplingParams sp;
      sp.temperature = 0.0f;
      sp.max_tokens = 12;
      sp.ignore_eos = true;
      streams.push_back(engine.add_request({p, sp, nullptr}));
    }
  }
  while (engine.has_unfinished()) engine.step();
  std::vector<std::vector<int32_t>> out;
  for (auto& st : streams) {
    out.emplace_back();
    while (auto ev = st->try_next()) out.back().insert(out.back().end(), ev->token_ids.begin(), ev->token_ids.end());
  }
  EXPECT_EQ(engine.stats().num_free_blocks, engine.stats().num_cache_blocks);
  return out;
}

// A runner whose logits outlive its next step: DeepSeekRunner's graph replays return the graph's
// output, which InFlightRunner's later steps would overwrite before the engine samples it.
class OwnedLogits final : public ModelRunner {
 public:
  explicit OwnedLogits(ModelRunner& inner) : inner_(inner) {}
  ModelRunnerInfo info() const override { return inner_.info(); }
  Tensor execute(const ForwardBatch& batch) override {
    Tensor logits = inner_.execute(batch);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the replay has written them
    return logits.clone();
  }

 private:
  ModelRunner& inner_;
};

// `make_model(shard)` builds the model (whole, or this rank's share) on this rank's GPU. With
// `graphs`, decode steps of up to 6 sequences replay CUDA graphs, on one GPU (the reference: the
// same padded batches) and on every stage of the pipeline (NCCL's send / receive inside them).
void engine_on_pipeline(SplitKind kind, const std::function<DeepSeekModel(std::optional<ShardPlan>)>& make_model,
                        const DeepSeekConfig& config, const std::vector<std::vector<int32_t>>& prompts,
                        bool graphs = false) {
  constexpr int32_t kBlocks = 128;
  constexpr int64_t kGraphBatch = 6;  // serve_greedy's sequences a step
  std::vector<std::vector<int32_t>> want;
  if (rank() == 0) {
    DeepSeekModel model = make_model(std::nullopt);
    DeepSeekRunner one_gpu(model, kBlocks, RunnerOptions{graphs, kGraphBatch});
    OwnedLogits owned(one_gpu);
    testing::InFlightRunner runner(owned, kind.pp, 5);
    want = serve_greedy(runner, prompts);
  }
  const ParallelConfig pc{kind.tp, kind.pp, rank()};
  DeepSeekModel model = make_model(make_shard_plan(config, pc));
  const StepGroups groups{pc, g_ctx->world(), 1};
  const int64_t graph_batch = graphs ? kGraphBatch : 0;
  if (rank() != 0) {
    run_follower(model, kBlocks, g_ctx->channel(), groups, graph_batch);
    return;
  }
  // Logits ring slots of 4 rows, fewer than serve_greedy's 6 sequences a step: steps with more
  // rows take NCCL, so both paths run (dist/logits_ring.h).
  constexpr int64_t kRingRows = 4;
  DistributedRunner runner(model, kBlocks, g_ctx->channel(), groups, 0, kRingRows, graph_batch);
  ASSERT_EQ(runner.max_in_flight(), kind.pp);
  const std::vector<std::vector<int32_t>> got = serve_greedy(runner, prompts);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "request " << i;
}

// World 2: tiny-v2-lite and tiny-v3 (golden models) at PP2.
class EnginePipeline : public ::testing::TestWithParam<std::string> {
 protected:
  void serve_on_pp2(bool graphs) {
    const std::string dir = testing::tiny_model_dir(GetParam());
    const DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
    const Checkpoint ckpt = Checkpoint::open(dir);
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& g : testing::load_golden(GetParam())) prompts.push_back(g.prompt);
    engine_on_pipeline(
        SplitKind{1, 2},
        [&](std::optional<ShardPlan> shard) {
          ModelWeights w = load_weights(ckpt, config, bf16_load(shard));
          move_weights(w, Device::kCUDA);
          return DeepSeekModel(config, std::move(w), gpu_options(shard));
        },
        config, prompts, graphs);
  }
};

TEST_P(EnginePipeline, StepsInFlightGiveOneGpusTokens) {
  REQUIRE_WORLD(2);
  serve_on_pp2(/*graphs=*/false);
}

// The same with the decode steps in CUDA graphs on one GPU and on both stages: the graphs of
// each padded size are captured on both stages at the same step and replayed after.
TEST_P(EnginePipeline, DecodeGraphsOnEveryStageGiveOneGpusTokens) {
  REQUIRE_WORLD(2);
  serve_on_pp2(/*graphs=*/true);
}

INSTANTIATE_TEST_SUITE_P(Golden, EnginePipeline, ::testing::Values("tiny-v2-lite", "tiny-v3"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// ---- Decode graphs under tensor parallelism ------------------------------------------------

// This rank's TP2 share of a golden model, on its GPU.
DeepSeekModel tp2_share(const std::string& name) {
  const std::string dir = testing::tiny_model_dir(name);
  const DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  const ShardPlan plan = make_shard_plan(config, ParallelConfig{2, 1, rank()});
  ModelWeights w = load_weights(Checkpoint::open(dir), config, bf16_load(plan));
  move_weights(w, Device::kCUDA);
  return DeepSeekModel(config, std::move(w), gpu_options(plan));
}

class TpDecodeGraphs : public ::testing::TestWithParam<std::string> {};

// World 2: both TP2 ranks run the same teacher-forced decode steps through graphs (the
// all-reduces and the logits' gather captured in them) and eagerly: the graph logits are the
// eager step's (engine/cuda/graph_steps.h; whole on every rank), through five graph sizes.
TEST_P(TpDecodeGraphs, ShrinkingDecodeBatchesMatchEagerStepByStep) {
  REQUIRE_WORLD(2);
  DeepSeekModel model = tp2_share(GetParam());
  testing::expect_shrinking_decode_batches_match_eager(model);
}

// World 2: the engine on rank 0 over TP2 (DistributedRunner; rank 1 follows), decode steps
// eager and then in CUDA graphs that rank 0 picks and both ranks replay: the same requests get
// the same greedy tokens up to near ties (tests/engine/served_requests.h; tiny-v2-lite, as
// test_engine_graphs_cuda serves on one GPU).
TEST(EngineTp2, DecodeGraphsServeLikeEagerSteps) {
  REQUIRE_WORLD(2);
  DeepSeekModel model = tp2_share("tiny-v2-lite");
  const StepGroups groups{groups_of(SplitKind{2, 1}).parallel, g_ctx->world(), 1};
  constexpr int32_t kBlocks = 256;
  constexpr int64_t kMaxSeqs = 64;  // served_requests.h's scheduler cap
  std::vector<testing::Served> served[2];
  for (const bool graphs : {false, true}) {
    const int64_t graph_batch = graphs ? kMaxSeqs : 0;
    if (rank() != 0) {
      run_follower(model, kBlocks, g_ctx->channel(), groups, graph_batch);
      continue;
    }
    DistributedRunner runner(model, kBlocks, g_ctx->channel(), groups, 0, kMaxSeqs, graph_batch);
    ASSERT_EQ(runner.graphs() != nullptr, graphs);
    served[graphs] = testing::serve(runner, model.config().vocab_size, 40, 5);
  }
  if (rank() == 0) testing::expect_equal_up_to_near_ties(served[0], served[1]);
}

INSTANTIATE_TEST_SUITE_P(Golden, TpDecodeGraphs, ::testing::Values("tiny-v2-lite", "tiny-v3"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// World 4: PP4 needs 4 layers, so V2-Lite shapes cut to 8 layers with dummy weights.
TEST(EnginePipelineDummy, V2LiteEightLayersPp4StepsInFlightGiveOneGpusTokens) {
  REQUIRE_WORLD(4);
  DeepSeekConfig config = preset_config("deepseek-v2-lite");
  config.num_hidden_layers = 8;
  finalize_config(config);
  std::vector<std::vector<int32_t>> prompts;
  std::mt19937 rng(5);
  for (int len : {150, 37, 1, 90, 64, 200, 12, 77}) {
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % config.vocab_size);
    prompts.push_back(p);
  }
  engine_on_pipeline(
      SplitKind{1, 4},
      [&](std::optional<ShardPlan> shard) {
        DummyOptions d;
        d.seed = 21;
        d.weight_dtype = DType::kBF16;
        d.device = Device::kCUDA;
        d.shard = shard;
        return DeepSeekModel(config, make_dummy_weights(config, d), gpu_options(shard));
      },
      config, prompts);
}

}  // namespace
}  // namespace mlaserve::dist

int main(int argc, char** argv) {
  // The other ranks run exactly these arguments (InitGoogleTest removes the --gtest_ flags from
  // argv, and every rank must run the same cases in the same order).
  std::vector<char*> exec_args(argv, argv + argc + 1);
  ::testing::InitGoogleTest(&argc, argv);
  using mlaserve::dist::DistContext;
  const char* world_env = std::getenv("MLASERVE_TEST_WORLD");
  const int world = world_env ? std::atoi(world_env) : 2;
  if (world != 2 && world != 4) {
    std::fprintf(stderr, "MLASERVE_TEST_WORLD must be 2 or 4, got '%s'\n", world_env);
    return 1;
  }
  mlaserve::dist::world_test::g_world = world;
  const char* rank_env = std::getenv("MLASERVE_TEST_RANK");
  const int rank = rank_env ? std::atoi(rank_env) : 0;
  std::vector<pid_t> children;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  std::unique_ptr<DistContext> ctx;
  if (devices >= world) {
    if (!rank_env) {  // rank 0 starts the others: the same binary and arguments
      setenv("MLASERVE_TEST_PORT", std::to_string(mlaserve::testing::free_tcp_port()).c_str(), 1);
      for (int r = 1; r < world; ++r) {
        const pid_t child = fork();
        if (child == 0) {
          setenv("MLASERVE_TEST_RANK", std::to_string(r).c_str(), 1);
          execv("/proc/self/exe", exec_args.data());
          std::perror("execv");
          _exit(127);
        }
        children.push_back(child);
      }
    }
    mlaserve::dist::LaunchOptions o;
    o.tp_size = world;  // the world (and a tensor-parallel group of all ranks, unused); layouts split it
    o.peer_all_reduce_max_kib = 0;  // that unused group maps no peer buffers (groups_of's TP groups do)
    o.master_port = std::atoi(std::getenv("MLASERVE_TEST_PORT"));
    ctx = DistContext::join(o, rank, rank);
    mlaserve::dist::world_test::g_ctx = ctx.get();
  }
  // Rank 0 reports; the others' failures show in their exit status (and their output with
  // MLASERVE_TEST_ALL_RANKS=1).
  const bool quiet = rank != 0 && std::getenv("MLASERVE_TEST_ALL_RANKS") == nullptr;
  if (quiet && std::freopen("/dev/null", "w", stdout) == nullptr) return 1;
  int rc = RUN_ALL_TESTS();
  mlaserve::dist::world_test::g_groups.clear();
  ctx.reset();
  for (size_t i = 0; i < children.size(); ++i) {
    int status = 0;
    waitpid(children[i], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "rank %zu failed (status %d)\n", i + 1, status);
      rc = 1;
    }
  }
  return rc;
}
