// Access to the tiny reference models of tests/data (made by tools/make_reference.py) and their
// golden outputs from Hugging Face transformers (float32, eager attention).
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/loader.h"
#include "model/model.h"
#include "model/safetensors.h"

namespace mlaserve::testing {

inline const std::vector<std::string>& tiny_model_names() {
  static const std::vector<std::string> names = {"tiny-v2-lite", "tiny-v2", "tiny-v3", "tiny-v3-fp8"};
  return names;
}

// The repository root: MLASERVE_SOURCE_DIR from the environment where set (test binaries built
// on one machine and run from another checkout, as scripts/gpu_test.sh does with carried builds),
// else the path compiled in.
inline std::string source_dir() {
  const char* root = std::getenv("MLASERVE_SOURCE_DIR");
  return root != nullptr && *root != '\0' ? std::string(root) : std::string(MLASERVE_SOURCE_DIR);
}

inline std::string tiny_model_dir(const std::string& name) { return source_dir() + "/tests/data/" + name; }

inline DeepSeekModel load_tiny_model(const std::string& name, LoadOptions load = {}, ModelOptions model = {}) {
  const std::string dir = tiny_model_dir(name);
  DeepSeekConfig config = load_deepseek_config(dir + "/config.json");
  ModelWeights weights = load_weights(Checkpoint::open(dir), config, load);
  return DeepSeekModel(std::move(config), std::move(weights), model);
}

struct GoldenPrompt {
  std::vector<int32_t> prompt;
  std::vector<int32_t> logit_rows;  // prompt positions with reference logits
  Tensor logits;                    // [rows, V] f32
  std::vector<int32_t> greedy;      // greedy continuation
};

inline std::vector<int32_t> to_ids(const Tensor& t) {
  const int32_t* p = t.data<int32_t>();
  return std::vector<int32_t>(p, p + t.numel());
}

inline std::vector<GoldenPrompt> load_golden(const std::string& name) {
  auto file = SafetensorsFile::open(source_dir() + "/tests/data/golden/" + name + ".safetensors");
  std::vector<GoldenPrompt> out;
  for (int i = 0; file->contains("prompt." + std::to_string(i)); ++i) {
    const std::string s = std::to_string(i);
    out.push_back(GoldenPrompt{to_ids(file->get("prompt." + s)), to_ids(file->get("logit_rows." + s)),
                               file->get("logits." + s).clone(), to_ids(file->get("greedy." + s))});
  }
  return out;
}

}  // namespace mlaserve::testing
