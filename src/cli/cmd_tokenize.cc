// `mlaserve tokenize` and `mlaserve detokenize`: the tokenizer as a line filter, for users
// debugging prompts and for scripts.
//
//   mlaserve tokenize --tokenizer DIR [--add-special]     {"text": "..."} lines -> {"ids": [...]}
//   mlaserve detokenize --tokenizer DIR [--skip-special]  {"ids": [...]} lines  -> {"text": "..."}
//
// DIR holds tokenizer.json and tokenizer_config.json. tokenize adds no special tokens unless
// --add-special (then BOS/EOS as tokenizer_config.json says). Output is one line per input
// line, in order; a line that cannot be handled (bad JSON, a missing field, an unknown id)
// gives {"error": "..."} in its place and the command exits with 1 at the end.
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace mlaserve::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer_dir;
  bool add_special = false;   // tokenize: BOS/EOS per tokenizer_config.json
  bool skip_special = false;  // detokenize: drop special tokens
};

using LineHandler = nlohmann::json (*)(const tokenizer::Tokenizer&, const TokenizeOptions&, const nlohmann::json&);

nlohmann::json tokenize_line(const tokenizer::Tokenizer& tok, const TokenizeOptions& o, const nlohmann::json& in) {
  if (!in.is_object() || !in.contains("text") || !in["text"].is_string()) {
    MLA_FAIL("expected an object with a string field \"text\"");
  }
  return nlohmann::json{{"ids", tok.encode(in["text"].get<std::string>(), o.add_special)}};
}

nlohmann::json detokenize_line(const tokenizer::Tokenizer& tok, const TokenizeOptions& o, const nlohmann::json& in) {
  if (!in.is_object() || !in.contains("ids") || !in["ids"].is_array()) {
    MLA_FAIL("expected an object with an array field \"ids\"");
  }
  std::vector<int32_t> ids;
  for (const auto& id : in["ids"]) {
    if (!id.is_number_integer()) MLA_FAIL("\"ids\" must hold integers");
    // Compared before narrowing: 4294967296 must not wrap to token 0 (ids past 2^63 read negative).
    const int64_t wide = id.get<int64_t>();
    if (wide < 0 || wide > INT32_MAX) MLA_FAIL("token id {} outside [0, {}]", id.dump(), INT32_MAX);
    ids.push_back(static_cast<int32_t>(wide));
  }
  return nlohmann::json{{"text", tok.decode(ids, o.skip_special)}};
}

// Reads JSON lines from stdin and writes one result line per input line.
void run_lines(const TokenizeOptions& o, LineHandler handle) {
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(o.tokenizer_dir);
  std::string line;
  size_t number = 0;
  while (std::getline(std::cin, line)) {
    ++number;
    nlohmann::json out;
    try {
      out = handle(tok, o, nlohmann::json::parse(line));
    } catch (const std::exception& e) {  // nlohmann's parse errors and mlaserve::Error alike
      out = nlohmann::json{{"error", fmt::format("line {}: {}", number, e.what())}};
      exit_code() = 1;
    }
    const std::string text = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict) + "\n";
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  std::fflush(stdout);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  auto* tokenize = app.add_subcommand("tokenize", "Text to token ids: {\"text\": ...} JSON lines on stdin");
  tokenize->add_option("--tokenizer", options->tokenizer_dir, "Directory with tokenizer.json and tokenizer_config.json")
      ->required();
  tokenize->add_flag("--add-special", options->add_special, "Add BOS/EOS as tokenizer_config.json says");
  tokenize->callback([options] { run_lines(*options, tokenize_line); });

  auto* detokenize = app.add_subcommand("detokenize", "Token ids to text: {\"ids\": [...]} JSON lines on stdin");
  detokenize->add_option("--tokenizer", options->tokenizer_dir, "Directory with tokenizer.json and tokenizer_config.json")
      ->required();
  detokenize->add_flag("--skip-special", options->skip_special, "Drop special tokens (BOS, EOS, pad, ...)");
  detokenize->callback([options] { run_lines(*options, detokenize_line); });
}

}  // namespace mlaserve::cli
