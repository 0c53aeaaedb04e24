// The nesting limit of every JSON document mlaserve parses (requests, configs, safetensors
// headers, tokenizer files): real ones nest a few levels, while a deep one would overflow the
// stack of the recursive copies, conversions, walks and dumps it goes through (a 40 KB chat
// request nesting 20,000 brackets killed the server before this limit). Parsers refuse it
// while parsing, so that a deep value is never built:
//
//   auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
//     if (opens_past_nesting_limit(depth, event)) MLA_FAIL(...);
//     return true;
//   };
//   nlohmann::json::parse(text.begin(), text.end(), callback);
#pragma once

#include <nlohmann/json.hpp>

namespace mlaserve {

inline constexpr int kMaxJsonNesting = 64;

// `depth` as nlohmann's parser callbacks give it: the arrays and objects open around the one
// that starts (0 for the document itself).
inline bool opens_past_nesting_limit(int depth, nlohmann::json::parse_event_t event) {
  return (event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
         depth >= kMaxJsonNesting;
}

}  // namespace mlaserve
