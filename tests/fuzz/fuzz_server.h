// The serving state the server's fuzz targets (request, http_session) run against: the tiny
// tokenizer, the fake runner of tests/engine behind a running engine, and the checks of what a
// request's answer may look like.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/fake_runner.h"
#include "engine/tokenizer_text_decoder.h"
#include "server/serving_state.h"

namespace mlaserve::server::fuzz {

inline constexpr const char* kApiKey = "fuzz-key";

// Options every target starts from: the tiny model's name, an API key, and admission that never
// fills (every task is dropped soon).
inline ServerOptions base_server_options() {
  ServerOptions o;
  o.model_name = "tiny";
  o.api_key = kApiKey;
  o.max_waiting_requests = 1 << 20;
  return o;
}

struct FuzzServer {
  explicit FuzzServer(const ServerOptions& options)
      : tokenizer(tokenizer::Tokenizer::load(std::string(MLASERVE_SOURCE_DIR) + "/tests/data/tiny-tokenizer")),
        runner(testing::FakeRunnerOptions{1024, 32, 1 << 20, {}}),
        text(tokenizer),
        engine(runner, engine_options(), &text),
        state(engine, &tokenizer, options) {
    engine.start();
  }
  static EngineOptions engine_options() {
    EngineOptions e;
    e.scheduler = {256, 16, true};
    e.max_model_len = 256;
    return e;
  }
  tokenizer::Tokenizer tokenizer;
  testing::FakeRunner runner;
  TokenizerTextDecoderFactory text;
  Engine engine;
  ServingState state;
};

inline bool is_json(std::string_view text) { return nlohmann::json::accept(text.begin(), text.end()); }

// Every event of a streamed answer: "data: " then a JSON object or [DONE], then a blank line.
inline bool is_sse(std::string_view out) {
  while (!out.empty()) {
    if (out.substr(0, 6) != "data: ") return false;
    const size_t end = out.find("\n\n");
    if (end == std::string_view::npos) return false;
    const std::string_view data = out.substr(6, end - 6);
    if (data != "[DONE]" && !is_json(data)) return false;
    out.remove_prefix(end + 2);
  }
  return true;
}

}  // namespace mlaserve::server::fuzz
