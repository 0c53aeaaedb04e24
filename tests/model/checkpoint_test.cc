// Checkpoint directories: a single file, shards without an index, and sharded checkpoints
// through model.safetensors.index.json, with every way the index and shards can disagree.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "temp_dir.h"
#include "tiny_models.h"

namespace mlaserve {
namespace {

using test_util::TempDir;

Tensor values(std::vector<float> v) {
  auto n = static_cast<int64_t>(v.size());
  return Tensor::from_floats(v, {n}, DType::kF32);
}

// Two shards and their index: a, b in shard 1; c in shard 2.
void write_sharded(const TempDir& dir) {
  write_safetensors(dir.file("model-00001-of-00002.safetensors"),
                    {{"a", values({1, 2})}, {"b", values({3})}});
  write_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"c", values({4, 5, 6})}});
  dir.write("model.safetensors.index.json", R"({
    "metadata": {"total_size": 24},
    "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                   "c": "model-00002-of-00002.safetensors"}})");
}

void write_index(const TempDir& dir, const nlohmann::json& weight_map) {
  dir.write("model.safetensors.index.json", nlohmann::json{{"weight_map", weight_map}}.dump());
}

// The Error of Checkpoint::open must contain every one of `parts`.
void expect_open_error(const std::string& dir, const std::vector<std::string>& parts) {
  std::string message = test_util::error_message([&] { Checkpoint::open(dir); });
  for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
}

TEST(Checkpoint, Sharded) {
  TempDir dir;
  write_sharded(dir);
  Checkpoint ckpt = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(ckpt.contains("c"));
  EXPECT_FALSE(ckpt.contains("d"));
  EXPECT_EQ(ckpt.get("c").to_vector(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(ckpt.get("a").to_vector(), (std::vector<float>{1, 2}));
  EXPECT_EQ(ckpt.info("c").file, dir.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(ckpt.info("b").shape, (Shape{1}));
  std::string message = test_util::error_message([&] { ckpt.get("d"); });
  EXPECT_NE(message.find(dir.path().string() + ": checkpoint has no tensor 'd'"), std::string::npos)
      << message;
  message = test_util::error_message([&] { ckpt.info("d"); });
  EXPECT_NE(message.find("no tensor 'd'"), std::string::npos) << message;
}

// Files the index does not name are not part of the checkpoint.
TEST(Checkpoint, IndexIgnoresOtherFiles) {
  TempDir dir;
  write_sharded(dir);
  write_safetensors(dir.file("consolidated.safetensors"), {{"a", values({9})}});
  Checkpoint ckpt = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ckpt.get("a").to_vector(), (std::vector<float>{1, 2}));
}

TEST(Checkpoint, SingleFileAndUnindexedShards) {
  TempDir dir;
  write_safetensors(dir.file("model.safetensors"), {{"w", values({1})}});
  write_safetensors(dir.file("extra.safetensors"), {{"v", values({2})}});
  dir.write("config.json", "{}");
  Checkpoint ckpt = Checkpoint::open(dir.path().string());
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"v", "w"}));
  EXPECT_EQ(ckpt.get("v").to_vector(), (std::vector<float>{2}));
}

TEST(Checkpoint, DuplicateAcrossUnindexedFiles) {
  TempDir dir;
  write_safetensors(dir.file("a.safetensors"), {{"w", values({1})}});
  write_safetensors(dir.file("b.safetensors"), {{"w", values({2})}});
  expect_open_error(dir.path().string(),
                    {dir.file("b.safetensors"), "tensor 'w' is also in", dir.file("a.safetensors")});
}

TEST(Checkpoint, MissingShard) {
  TempDir dir;
  write_sharded(dir);
  std::filesystem::remove(dir.file("model-00002-of-00002.safetensors"));
  expect_open_error(dir.path().string(), {"model.safetensors.index.json", "tensor 'c'",
                                          "shard 'model-00002-of-00002.safetensors' does not exist"});
}

TEST(Checkpoint, ListedTensorAbsentFromShard) {
  TempDir dir;
  write_sharded(dir);
  write_index(dir, {{"a", "model-00001-of-00002.safetensors"},
                    {"b", "model-00001-of-00002.safetensors"},
                    {"c", "model-00002-of-00002.safetensors"},
                    {"d", "model-00002-of-00002.safetensors"}});
  expect_open_error(dir.path().string(), {dir.file("model-00002-of-00002.safetensors"),
                                          "tensor 'd' is listed", "but is not in it"});
}

TEST(Checkpoint, TensorInShardListedForAnotherShard) {
  TempDir dir;
  write_sharded(dir);
  write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                    {{"c", values({4, 5, 6})}, {"a", values({0})}});
  expect_open_error(dir.path().string(),
                    {dir.file("model-00002-of-00002.safetensors"), "tensor 'a' is also in this shard",
                     "lists it in 'model-00001-of-00002.safetensors'"});
}

TEST(Checkpoint, TensorInShardNotListed) {
  TempDir dir;
  write_sharded(dir);
  write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                    {{"c", values({4, 5, 6})}, {"e", values({0})}});
  expect_open_error(dir.path().string(),
                    {dir.file("model-00002-of-00002.safetensors"), "tensor 'e' is not listed"});
}

TEST(Checkpoint, MalformedIndex) {
  struct IndexCase {
    const char* text;
    const char* expected;
  };
  const IndexCase cases[] = {
      {"{", "invalid JSON"},
      {"[]", "expected a JSON object"},
      {R"({"metadata": {}})", "field 'weight_map' is required"},
      {R"({"weight_map": []})", "field 'weight_map' must be an object"},
      {R"({"weight_map": {}})", "weight_map lists no tensors"},
      {R"({"weight_map": {"a": 3}})", "field 'weight_map.a' must be a shard file name, got number 3"},
      {R"({"weight_map": {"a": "../model.safetensors"}})",
       "tensor 'a': shard '../model.safetensors' is not a file inside"},
      {R"({"weight_map": {"a": "/etc/passwd"}})", "tensor 'a': shard '/etc/passwd' is not a file inside"},
      {R"({"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}})",
       "duplicate key 'a' in object 'weight_map'"},
  };
  for (const IndexCase& c : cases) {
    TempDir dir;
    std::string index = dir.write("model.safetensors.index.json", c.text);
    SCOPED_TRACE(c.text);
    expect_open_error(dir.path().string(), {index, c.expected});
  }
}

TEST(Checkpoint, NotACheckpoint) {
  TempDir dir;
  expect_open_error(dir.path().string(),
                    {dir.path().string(), "no model.safetensors.index.json and no *.safetensors"});
  std::string missing = dir.file("nowhere");
  expect_open_error(missing, {missing, "not a checkpoint directory"});
}

// A malformed shard fails the checkpoint with the shard's own message.
TEST(Checkpoint, MalformedShard) {
  TempDir dir;
  write_sharded(dir);
  std::string shard = dir.write("model-00002-of-00002.safetensors", "short");
  expect_open_error(dir.path().string(), {shard, "file is 5 bytes"});
}

// The tiny reference checkpoints in tests/data, written by transformers and the Python
// safetensors library: config and tensors agree, every tensor reads, and each FP8 weight has
// its fp32 [ceil(out/128), ceil(in/128)] scale (MODEL_SPEC §6.2).
TEST(Checkpoint, TinyReferenceCheckpoints) {
  for (const std::string& name : testing::tiny_model_names()) {
    SCOPED_TRACE(name);
    const std::string dir = testing::tiny_model_dir(name);
    DeepSeekConfig config = load_deepseek_config(dir);
    Checkpoint ckpt = Checkpoint::open(dir);
    EXPECT_EQ(ckpt.info("model.embed_tokens.weight").shape, (Shape{config.vocab_size, config.hidden_size}));
    EXPECT_EQ(ckpt.info("model.layers.0.self_attn.kv_a_proj_with_mqa.weight").shape,
              (Shape{config.kv_cache_dim, config.hidden_size}));
    int fp8_weights = 0;
    for (const std::string& tensor : ckpt.names()) {
      Tensor t = ckpt.get(tensor);
      EXPECT_EQ(t.nbytes(), ckpt.info(tensor).end - ckpt.info(tensor).begin) << tensor;
      if (t.dtype() != DType::kF8E4M3) continue;
      ++fp8_weights;
      const TensorInfo& scale = ckpt.info(tensor + "_scale_inv");
      EXPECT_EQ(scale.dtype, DType::kF32) << tensor;
      EXPECT_EQ(scale.shape, (Shape{(t.dim(0) + 127) / 128, (t.dim(1) + 127) / 128})) << tensor;
    }
    EXPECT_EQ(fp8_weights > 0, config.fp8.has_value());
  }
}

}  // namespace
}  // namespace mlaserve
