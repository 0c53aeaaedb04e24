// The checkpoint loader on broken and unusual checkpoints (each derived from a tiny reference
// model), the dummy load format, and decode-from-cache consistency.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/generate.h"
#include "model/dummy.h"
#include "model/model.h"
#include "ops/linear.h"
#include "ops/moe_router.h"
#include "tiny_models.h"

namespace mlaserve {
namespace {

namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, Tensor>>;

// A scratch checkpoint: the tensors of a tiny model, edited by the test, plus its config.json.
class ScratchCheckpoint {
 public:
  explicit ScratchCheckpoint(const std::string& model) : source_(testing::tiny_model_dir(model)) {
    dir_ = fs::temp_directory_path() / ("mlaserve_loader_" + std::to_string(::getpid()) + "_" + model);
    fs::create_directories(dir_);
    fs::copy_file(source_ + "/config.json", dir_ / "config.json", fs::copy_options::overwrite_existing);
    Checkpoint ckpt = Checkpoint::open(source_);
    for (const std::string& n : ckpt.names()) tensors_.emplace_back(n, ckpt.get(n).clone());
  }
  ~ScratchCheckpoint() { fs::remove_all(dir_); }

  Tensors& tensors() { return tensors_; }
  void erase(const std::string& name) {
    std::erase_if(tensors_, [&](const auto& p) { return p.first == name; });
  }
  Tensor& at(const std::string& name) {
    for (auto& p : tensors_) if (p.first == name) return p.second;
    throw std::runtime_error("no tensor " + name);
  }
  // Sets one field of config.json.
  void set_config(const std::string& key, const nlohmann::json& value) {
    const fs::path path = dir_ / "config.json";
    nlohmann::json config = nlohmann::json::parse(std::ifstream(path));
    config[key] = value;
    std::ofstream(path) << config.dump(2);
  }
  // Writes the checkpoint and loads it; returns the loader's error message ("" if it loaded).
  std::string load_error(const LoadOptions& options = {}) {
    write_safetensors((dir_ / "model.safetensors").string(), tensors_);
    try {
      DeepSeekConfig c = load_deepseek_config((dir_ / "config.json").string());
      load_weights(Checkpoint::open(dir_.string()), c, options);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

 private:
  std::string source_;
  fs::path dir_;
  Tensors tensors_;
};

void expect_mentions(const std::string& message, std::initializer_list<const char*> parts) {
  ASSERT_FALSE(message.empty()) << "expected the load to fail";
  for (const char* p : parts) EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
}

TEST(Loader, UnchangedCheckpointLoads) {
  ScratchCheckpoint c("tiny-v3");
  EXPECT_EQ(c.load_error(), "");
}

TEST(Loader, WrongShapeNamesTensorAndFile) {
  ScratchCheckpoint c("tiny-v3");
  // 2 heads: kv_b_proj is [2 * 256, 512]; a [256, 512] one (1 head's rows) must be refused.
  c.at("model.layers.1.self_attn.kv_b_proj.weight") = Tensor::zeros({256, 512}, DType::kBF16);
  expect_mentions(c.load_error(), {"model.layers.1.self_attn.kv_b_proj.weight", "model.safetensors", "[256, 512]",
                                   "[512, 512]"});
}

TEST(Loader, MissingTensorIsNamed) {
  ScratchCheckpoint c("tiny-v2-lite");
  c.erase("model.layers.2.mlp.experts.5.up_proj.weight");
  expect_mentions(c.load_error(), {"missing tensor model.layers.2.mlp.experts.5.up_proj.weight"});
}

TEST(Loader, BadScaleShapeIsNamed) {
  ScratchCheckpoint c("tiny-v3-fp8");
  // kv_a_proj_with_mqa [576, 128] needs scale_inv [5, 1]: the 64-row edge block included.
  c.at("model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv") = Tensor::zeros({4, 1}, DType::kF32);
  expect_mentions(c.load_error(), {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv", "[4, 1]", "[5, 1]"});
}

TEST(Loader, Fp8WeightWithoutScaleIsRefused) {
  ScratchCheckpoint c("tiny-v3-fp8");
  c.erase("model.layers.1.self_attn.o_proj.weight_scale_inv");
  expect_mentions(c.load_error(), {"model.layers.1.self_attn.o_proj.weight", "weight_scale_inv"});
}

TEST(Loader, MtpLayerTensorsAreSkipped) {
  ScratchCheckpoint c("tiny-v3");
  // An MTP module stored as layer num_hidden_layers (3), as V3 stores layer 61 with
  // num_nextn_predict_layers 1.
  c.tensors().emplace_back("model.layers.3.eh_proj.weight", Tensor::zeros({128, 256}, DType::kBF16));
  c.tensors().emplace_back("model.layers.3.self_attn.kv_a_proj_with_mqa.weight", Tensor::zeros({576, 128}, DType::kBF16));
  expect_mentions(c.load_error(), {"unexpected", "model.layers.3.", "3 layers and 0 MTP"});
  c.set_config("num_nextn_predict_layers", 1);
  EXPECT_EQ(c.load_error(), "");
}

// A config.json that understates num_hidden_layers would load a model missing its last layers.
TEST(Loader, LayersPastTheConfiguredDepthAreRefused) {
  ScratchCheckpoint c("tiny-v3");  // 3 layers
  c.set_config("num_hidden_layers", 2);
  c.set_config("num_nextn_predict_layers", 0);
  expect_mentions(c.load_error(), {"unexpected", "model.layers.2.", "2 layers and 0 MTP", "num_hidden_layers"});
}

// A BF16 tensor where its FP8 siblings share one kernel (W8A8): refused with both names, never
// stacked (an FP8 expert's gate beside a BF16 down once read a scale that was not there).
TEST(Loader, MixedFp8FormatsInOneKernelAreNamed) {
  LoadOptions w8a8;
  w8a8.fp8_mode = Fp8Mode::kW8A8;
  auto to_bf16 = [](ScratchCheckpoint& c, const std::string& prefix) {
    const Tensor w = c.at(prefix + ".weight");
    c.at(prefix + ".weight") = Tensor::zeros(w.shape(), DType::kBF16);
    c.erase(prefix + ".weight_scale_inv");
  };
  {
    ScratchCheckpoint c("tiny-v3-fp8");
    EXPECT_EQ(c.load_error(w8a8), "");
    to_bf16(c, "model.layers.1.mlp.experts.3.down_proj");
    expect_mentions(c.load_error(w8a8), {"model.layers.1.mlp.experts.0.gate_proj.weight is block-FP8",
                                         "model.layers.1.mlp.experts.3.down_proj.weight", "not FP8"});
    EXPECT_EQ(c.load_error(), "");  // dequantised, every weight is dense
  }
  {
    ScratchCheckpoint c("tiny-v3-fp8");
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) to_bf16(c, std::string("model.layers.2.mlp.experts.5.") + proj);
    expect_mentions(c.load_error(w8a8), {"model.layers.2.mlp.experts.0.gate_proj.weight is block-FP8",
                                         "model.layers.2.mlp.experts.5."});
  }
  {
    ScratchCheckpoint c("tiny-v3-fp8");
    to_bf16(c, "model.layers.0.mlp.up_proj");
    expect_mentions(c.load_error(w8a8), {"model.layers.0.mlp.gate_proj.weight is block-FP8",
                                         "model.layers.0.mlp.up_proj.weight", "not FP8"});
  }
}

TEST(Loader, UnexpectedTensorIsNamed) {
  ScratchCheckpoint c("tiny-v3");  // has q_lora_rank: a q_proj does not belong
  c.tensors().emplace_back("model.layers.0.self_attn.q_proj.weight", Tensor::zeros({384, 128}, DType::kBF16));
  expect_mentions(c.load_error(), {"unexpected", "model.layers.0.self_attn.q_proj.weight"});
}

TEST(Loader, FusedExpertLayoutIsRefused) {
  ScratchCheckpoint c("tiny-v3");
  c.tensors().emplace_back("model.layers.1.mlp.experts.gate_up_proj", Tensor::zeros({8, 256, 128}, DType::kBF16));
  expect_mentions(c.load_error(), {"model.layers.1.mlp.experts.gate_up_proj", "fused"});
}

TEST(Loader, WrongDtypeIsNamed) {
  ScratchCheckpoint c("tiny-v2");
  c.at("model.norm.weight") = Tensor::zeros({128}, DType::kI32);
  expect_mentions(c.load_error(), {"model.norm.weight", "I32"});
}

// Decoding token by token from the latent cache gives the logits of a full prefill of the same
// tokens. Both are fp32; they differ only in summation order (the absorbed form and the MHA form
// add up the same products differently), hence 1e-3 absolute on logits of magnitude ~1-10.
TEST(Model, DecodeFromCacheReproducesPrefillLogits) {
  for (const std::string& name : {std::string("tiny-v2-lite"), std::string("tiny-v3-fp8")}) {
    SCOPED_TRACE(name);
    DeepSeekModel model = testing::load_tiny_model(name);
    std::vector<int32_t> prompt = {0, 17, 93, 400, 12, 9, 1000};
    GenerateOptions opt;
    opt.max_tokens = 70;  // crosses a 64-token block boundary
    opt.sampling.temperature = 0.0f;
    opt.block_shuffle_seed = 3;
    GenerateResult decoded = generate(model, prompt, opt);

    std::vector<int32_t> all = prompt;
    all.insert(all.end(), decoded.ids.begin(), decoded.ids.end() - 1);
    GenerateOptions full;
    full.max_tokens = 0;
    for (size_t i = prompt.size() - 1; i < all.size(); ++i) full.prompt_logit_rows.push_back(static_cast<int32_t>(i));
    GenerateResult prefill = generate(model, all, full);
    const int64_t v = model.config().vocab_size;
    double max_err = 0;
    for (size_t s = 0; s < decoded.step_logits.size(); ++s) {
      const float* d = decoded.step_logits[s].data<float>();
      const float* p = prefill.prompt_logits.data<float>() + s * v;
      for (int64_t j = 0; j < v; ++j) max_err = std::max(max_err, std::fabs(double(d[j]) - p[j]));
    }
    EXPECT_LT(max_err, 1e-3);
  }
}

TEST(Dummy, TinyConfigRunsAndIsDeterministic) {
  DeepSeekConfig config = load_deepseek_config(testing::tiny_model_dir("tiny-v3") + "/config.json");
  auto run = [&](uint64_t seed, bool fp8) {
    DummyOptions d;
    d.seed = seed;
    d.fp8 = fp8;
    DeepSeekModel model(config, make_dummy_weights(config, d));
    GenerateOptions opt;
    opt.max_tokens = 8;
    opt.sampling.temperature = 0.0f;
    return generate(model, std::vector<int32_t>{0, 5, 6}, opt).ids;
  };
  EXPECT_EQ(run(1, false), run(1, false));
  EXPECT_NE(run(1, false), run(2, false));
  std::vector<int32_t> fp8 = run(1, true);
  EXPECT_EQ(fp8.size(), 8u);
}

// The dummy router spreads tokens over the experts as a load-balanced one does: with V3's routing
// (256 experts, 8 groups, 4 kept, 8 a token) 64 tokens touch at least 85% of the distinct experts
// that uniform choices would, E·(1 − (1 − k/E)^T) ≈ 222. (A correction bias spread like the sigmoid
// scores touched ~120: decode benchmarks at batch > 8 then read half the expert weights.)
TEST(Dummy, V3RoutingSpreadsOverTheExperts) {
  DeepSeekConfig config = load_deepseek_config(testing::tiny_model_dir("tiny-v3") + "/config.json");
  config.num_hidden_layers = 2;  // one dense layer, one MoE layer
  config.n_routed_experts = 256;
  config.n_group = 8;
  config.topk_group = 4;
  config.num_experts_per_tok = 8;
  finalize_config(config);
  const ModelWeights w = make_dummy_weights(config, DummyOptions{});
  const MoeWeights& moe = *w.layers.at(1).moe;
  constexpr int64_t kTokens = 64;
  const int64_t e = config.n_routed_experts, h = config.hidden_size, k = config.num_experts_per_tok;

  // Router inputs of unit variance, as the RMSNorm before it makes them.
  Tensor x = Tensor::empty({kTokens, h}, DType::kF32);
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(rng);
  Tensor logits = Tensor::empty({kTokens, e}, DType::kF32);
  ops::linear_cpu(x, moe.router, logits);
  ops::RouterOutputs out{Tensor::empty({kTokens, k}, DType::kF32), Tensor::empty({kTokens, k}, DType::kI32)};
  ops::moe_route_cpu(logits, moe.correction_bias, router_params(config), out);  // as the model routes

  const std::set<int32_t> touched(out.expert_ids.data<int32_t>(), out.expert_ids.data<int32_t>() + kTokens * k);
  const double uniform = e * (1.0 - std::pow(1.0 - double(k) / e, double(kTokens)));
  EXPECT_GE(static_cast<double>(touched.size()), 0.85 * uniform) << touched.size() << " experts of " << e;
}

TEST(Dummy, RefusesHostModelsBeyondTheLimit) {
  DeepSeekConfig config = load_deepseek_config(testing::tiny_model_dir("tiny-v3") + "/config.json");
  DummyOptions d;
  d.max_host_bytes = 1000;
  EXPECT_THROW(make_dummy_weights(config, d), Error);
}

// Shapes whose byte count passes 2^64 saturate instead of wrapping to a small figure that the
// limit would let through (to fail later at the allocation, with a less helpful message).
TEST(Dummy, ByteCountSaturatesInsteadOfWrapping) {
  DeepSeekConfig config = load_deepseek_config(testing::tiny_model_dir("tiny-v3") + "/config.json");
  const DummyOptions d;
  EXPECT_LT(dummy_weight_bytes(config, d), 100'000'000u);
  config.vocab_size = config.hidden_size = int64_t{1} << 30;
  config.num_attention_heads = int64_t{1} << 13;
  config.intermediate_size = 714953877;
  config.num_hidden_layers = 4;  // ~1.8e19 bytes a layer
  config.layer_is_moe = {false, false, false, false};
  EXPECT_EQ(dummy_weight_bytes(config, d), UINT64_MAX);
  try {
    make_dummy_weights(config, d);
    ADD_FAILURE() << "expected the host limit to refuse this config";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("on the host (limit"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mlaserve
