// Fuzz target: a model's config.json (a checkpoint is untrusted input). The parser must throw
// mlaserve::Error or return a config that validates again unchanged (finalize_config is the
// rule both go through).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  mlaserve::DeepSeekConfig config;
  try {
    config = mlaserve::parse_deepseek_config(json, "fuzz/config.json");
  } catch (const mlaserve::Error&) {
    return 0;
  }
  try {
    mlaserve::finalize_config(config);
  } catch (const mlaserve::Error&) {
    std::abort();  // accepted once, refused the second time
  }
  return 0;
}
