// The checks every golden tokenizer goes through: encode (with and without special tokens),
// decode (with and without skip_special_tokens) and streaming decode, each against what
// Hugging Face tokenizers produced for the same input.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "golden.h"
#include "tokenizer/incremental_detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer::testing {

inline std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < 40; ++i) s.append(i ? " " : "").append(std::to_string(ids[i]));
  return ids.size() > 40 ? s + " ..." : s;
}

// Encodes every corpus string; returns how many were checked.
inline size_t check_encode(const Tokenizer& tok, const std::string& name) {
  const auto rows = read_jsonl("encode/" + name + ".jsonl");
  size_t failures = 0;
  for (const auto& row : rows) {
    const auto text = row.at("text").get<std::string>();
    const auto expected = row.at("ids").get<std::vector<int32_t>>();
    const auto expected_special = row.at("ids_special").get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.encode(text, false);
    const std::vector<int32_t> got_special = tok.encode(text, true);
    if (got != expected || got_special != expected_special) {
      if (++failures <= 10) {
        ADD_FAILURE() << name << ": encode(" << escaped(text) << ")\n  expected " << show_ids(expected)
                      << "\n  got      " << show_ids(got) << "\n  with special: expected " << show_ids(expected_special)
                      << " got " << show_ids(got_special);
      }
    }
  }
  EXPECT_EQ(failures, 0u) << name << ": " << failures << " of " << rows.size() << " strings encode differently";
  return rows.size();
}

// Decodes random id sequences in one go and streamed; returns how many were checked.
inline size_t check_decode(const Tokenizer& tok, const std::string& name) {
  const auto rows = read_jsonl("decode/" + name + ".jsonl");
  size_t failures = 0;
  for (const auto& row : rows) {
    const auto ids = row.at("ids").get<std::vector<int32_t>>();
    for (const bool skip : {false, true}) {
      const auto expected = row.at(skip ? "text_skip" : "text").get<std::string>();
      const std::string got = tok.decode(ids, skip);
      IncrementalDetokenizer stream(tok, skip);
      std::string streamed;
      bool chunks_valid = true;
      for (const int32_t id : ids) {
        const std::string chunk = stream.push(id);
        chunks_valid = chunks_valid && utf8::is_valid(chunk);
        streamed += chunk;
      }
      streamed += stream.flush();
      if (got != expected || streamed != expected || !chunks_valid) {
        if (++failures <= 10) {
          ADD_FAILURE() << name << ": decode(" << show_ids(ids) << ", skip_special_tokens=" << skip << ")\n  expected "
                        << escaped(expected) << "\n  got      " << escaped(got) << "\n  streamed " << escaped(streamed)
                        << (chunks_valid ? "" : " (a chunk was not valid UTF-8)");
        }
      }
    }
  }
  EXPECT_EQ(failures, 0u) << name << ": " << failures << " decodes differ";
  return rows.size();
}

}  // namespace mlaserve::tokenizer::testing
