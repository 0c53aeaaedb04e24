// Access to the golden data that tools/tokenizer/make_golden.py writes at test time (the CTest
// fixture "tokenizer_golden" runs it first) and to the tokenizers it describes.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mlaserve::tokenizer::testing {

inline std::filesystem::path golden_dir() { return MLASERVE_TOKENIZER_GOLDEN; }

// The rows of a JSON-lines golden file; fails the test if the file is missing.
inline std::vector<nlohmann::ordered_json> read_jsonl(const std::filesystem::path& relative) {
  const std::filesystem::path path = golden_dir() / relative;
  std::vector<nlohmann::ordered_json> rows;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path << " is missing: run the CTest fixture tokenizer_golden_setup first";
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::ordered_json::parse(line));
  return rows;
}

// The directory of golden tokenizer `name` (small, variant, tiny, v3), or "" if absent.
inline std::string tokenizer_dir(const std::string& name) {
  std::ifstream in(golden_dir() / "manifest.json");
  if (!in) return "";
  const nlohmann::json manifest = nlohmann::json::parse(in);
  const auto& dirs = manifest.at("tokenizers");
  return dirs.contains(name) ? dirs.at(name).get<std::string>() : "";
}

// Printable form of a byte string for failure messages.
inline std::string escaped(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace); }

}  // namespace mlaserve::tokenizer::testing
