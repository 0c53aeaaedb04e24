// Named presets: the config.json of each released model family, embedded as text and parsed by
// the same parser as a checkpoint's own file, so a preset obeys every rule a checkpoint does.
//
//   deepseek-v2-lite   DeepSeek-V2-Lite(-Chat), 16B, bf16
//   deepseek-v2        DeepSeek-V2(-Chat) / V2.5, 236B, bf16
//   deepseek-v3        DeepSeek-V3 / V3-0324, 671B, block FP8 (quantization_config)
//   deepseek-r1        DeepSeek-R1: the same shapes and config as deepseek-v3
//
// A real checkpoint's own config.json always wins over a preset: V2 revisions disagree on the
// YaRN mscale values (MODEL_SPEC §11.12), and fine-tunes may change anything.
#pragma once

#include <string_view>
#include <vector>

#include "model/config.h"

namespace mlaserve {

const std::vector<std::string_view>& preset_names();

// The embedded config.json text; throws listing the valid names for an unknown one.
std::string_view preset_config_json(std::string_view name);

// preset_config_json parsed and finalised.
DeepSeekConfig preset_config(std::string_view name);

}  // namespace mlaserve
