#include "tokenizer/tokenizer_json.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/json_fields.h"

namespace mlaserve::tokenizer {
namespace {

using nlohmann::json;

const JsonFields kFields("tokenizer.json");

std::string type_of(const json& component, std::string_view path) {
  return kFields.string(kFields.member(component, path, "type"), JsonFields::join(path, "type"));
}

void check_normalizer(const json& root) {
  const json* n = kFields.optional_member(root, "", "normalizer");
  if (n == nullptr) return;
  const std::string type = type_of(*n, "normalizer");
  if (type != "Sequence") kFields.fail("normalizer", fmt::format("normalizer type {:?} is not supported", type));
  const json& list = kFields.member(*n, "normalizer", "normalizers");
  kFields.expect_array(list, "normalizer.normalizers");
  if (!list.empty()) {
    kFields.fail("normalizer.normalizers[0]",
                 fmt::format("normalizer type {:?} is not supported", type_of(list[0], "normalizer.normalizers[0]")));
  }
}

SplitBehavior parse_behavior(const std::string& name, std::string_view path) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  kFields.fail(path, fmt::format("unknown split behavior {:?}", name));
}

SplitSpec parse_split(const json& step, const std::string& path) {
  SplitSpec split;
  const json& pattern = kFields.member(step, path, "pattern");
  const std::string pattern_path = JsonFields::join(path, "pattern");
  kFields.expect_object(pattern, pattern_path);
  if (pattern.contains("Regex")) {
    split.pattern = kFields.string(pattern["Regex"], JsonFields::join(pattern_path, "Regex"));
    split.is_regex = true;
  } else if (pattern.contains("String")) {
    split.pattern = kFields.string(pattern["String"], JsonFields::join(pattern_path, "String"));
    split.is_regex = false;
  } else {
    kFields.fail(pattern_path, "expected {\"Regex\": ...} or {\"String\": ...}");
  }
  const std::string behavior_path = JsonFields::join(path, "behavior");
  split.behavior = parse_behavior(kFields.string(kFields.member(step, path, "behavior"), behavior_path), behavior_path);
  split.invert = kFields.boolean(step, path, "invert", false);
  return split;
}

// Hugging Face tokenizers requires add_prefix_space and trim_offsets in a ByteLevel step (a file
// without either fails to load there, "missing field"), and so does this: a default for
// add_prefix_space would tokenize a file the reference refuses. trim_offsets shapes the offsets
// only, which encode() does not return; use_regex defaults to true there and here.
ByteLevelSpec parse_byte_level(const json& step, std::string_view path) {
  kFields.required_boolean(step, path, "trim_offsets");
  return ByteLevelSpec{kFields.required_boolean(step, path, "add_prefix_space"),
                       kFields.boolean(step, path, "use_regex", true)};
}

PreTokenizerSpec parse_pre_tokenizer(const json& root) {
  const json* p = kFields.optional_member(root, "", "pre_tokenizer");
  if (p == nullptr) kFields.fail("pre_tokenizer", "missing: only byte-level BPE tokenizers are supported");
  PreTokenizerSpec spec;
  const std::string type = type_of(*p, "pre_tokenizer");
  if (type == "ByteLevel") {
    spec.byte_level = parse_byte_level(*p, "pre_tokenizer");
    return spec;
  }
  if (type != "Sequence") kFields.fail("pre_tokenizer", fmt::format("pre-tokenizer type {:?} is not supported", type));
  const json& steps = kFields.member(*p, "pre_tokenizer", "pretokenizers");
  kFields.expect_array(steps, "pre_tokenizer.pretokenizers");
  bool byte_level_seen = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string path = JsonFields::index("pre_tokenizer.pretokenizers", i);
    const std::string step_type = type_of(steps[i], path);
    if (byte_level_seen) kFields.fail(path, "steps after ByteLevel are not supported");
    if (step_type == "Split") {
      spec.splits.push_back(parse_split(steps[i], path));
    } else if (step_type == "ByteLevel") {
      spec.byte_level = parse_byte_level(steps[i], path);
      byte_level_seen = true;
    } else {
      kFields.fail(path, fmt::format("pre-tokenizer type {:?} is not supported", step_type));
    }
  }
  if (!byte_level_seen) kFields.fail("pre_tokenizer", "no ByteLevel step: only byte-level BPE tokenizers are supported");
  return spec;
}

void check_only_byte_level(const json& root, const char* key, const char* list_key, bool allow_null) {
  const json* c = kFields.optional_member(root, "", key);
  if (c == nullptr) {
    if (!allow_null) kFields.fail(key, "missing: a ByteLevel decoder is required");
    return;
  }
  const std::string type = type_of(*c, key);
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const std::string list_path = JsonFields::join(key, list_key);
    const json& list = kFields.member(*c, key, list_key);
    kFields.expect_array(list, list_path);
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = JsonFields::index(list_path, i);
      const std::string t = type_of(list[i], path);
      if (t != "ByteLevel") kFields.fail(path, fmt::format("type {:?} is not supported", t));
    }
    if (!list.empty()) return;
  }
  kFields.fail(key, fmt::format("type {:?} is not supported", type));
}

std::pair<std::string, std::string> parse_merge(const json& m, const std::string& path) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
      kFields.fail(path, fmt::format("merge {:?} is not two tokens separated by one space", s));
    }
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  }
  kFields.fail(path, "expected a string \"A B\" or a pair [\"A\", \"B\"]");
}

BpeSpec parse_model(const json& root) {
  const json& m = kFields.member(root, "", "model");
  const std::string type = type_of(m, "model");
  if (type != "BPE") kFields.fail("model.type", fmt::format("model type {:?} is not supported (BPE only)", type));
  BpeSpec spec;
  const json& vocab = kFields.member(m, "model", "vocab");
  kFields.expect_object(vocab, "model.vocab");
  spec.vocab.reserve(vocab.size());
  // Ids index dense tables (the decode table has max id + 1 entries): at most twice the vocabulary's
  // size, so that the tables stay within twice the file's tokens (real vocabularies are dense: V3's
  // 128,000 entries have ids 0 .. 127,999). An id of 2^31 - 1 once sized them at 2^31 entries.
  const auto max_id = static_cast<int64_t>(2 * vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer()) kFields.fail(JsonFields::join("model.vocab", token), "expected an integer id");
    const auto value = id.get<int64_t>();
    if (value < 0 || value > max_id) {
      kFields.fail(JsonFields::join("model.vocab", token),
                   fmt::format("id {} is outside 0 .. {} (twice the vocabulary's {} entries)", id.dump(), max_id,
                               vocab.size()));
    }
    spec.vocab.emplace_back(token, static_cast<int32_t>(value));
  }
  const json& merges = kFields.member(m, "model", "merges");
  kFields.expect_array(merges, "model.merges");
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) spec.merges.push_back(parse_merge(merges[i], JsonFields::index("model.merges", i)));

  if (const json* unk = kFields.optional_member(m, "model", "unk_token")) spec.unk_token = kFields.string(*unk, "model.unk_token");
  spec.fuse_unk = kFields.boolean(m, "model", "fuse_unk", false);
  spec.ignore_merges = kFields.boolean(m, "model", "ignore_merges", false);
  if (kFields.boolean(m, "model", "byte_fallback", false)) kFields.fail("model.byte_fallback", "byte fallback is not supported");
  if (const json* d = kFields.optional_member(m, "model", "dropout")) {
    if (!d->is_number() || d->get<double>() != 0.0) kFields.fail("model.dropout", "BPE dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* v = kFields.optional_member(m, "model", key)) {
      if (kFields.string(*v, JsonFields::join("model", key)) != "") {
        kFields.fail(JsonFields::join("model", key), "subword prefixes and suffixes are not supported");
      }
    }
  }
  return spec;
}

std::vector<AddedToken> parse_added_tokens(const json& root) {
  std::vector<AddedToken> tokens;
  const json* list = kFields.optional_member(root, "", "added_tokens");
  if (list == nullptr) return tokens;
  kFields.expect_array(*list, "added_tokens");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string path = JsonFields::index("added_tokens", i);
    const json& t = (*list)[i];
    AddedToken token;
    const json& id = kFields.member(t, path, "id");
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      kFields.fail(JsonFields::join(path, "id"), "expected a non-negative integer");
    }
    token.id = id.get<int32_t>();
    token.content = kFields.string(kFields.member(t, path, "content"), JsonFields::join(path, "content"));
    if (token.content.empty()) kFields.fail(JsonFields::join(path, "content"), "empty");
    token.special = kFields.boolean(t, path, "special", false);
    token.single_word = kFields.boolean(t, path, "single_word", false);
    token.lstrip = kFields.boolean(t, path, "lstrip", false);
    token.rstrip = kFields.boolean(t, path, "rstrip", false);
    token.normalized = kFields.boolean(t, path, "normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// Hugging Face tokenizers assigns the added tokens' ids itself, in file order: the vocabulary's
// id of the same text, else the next id past the vocabulary and the added tokens before it (an
// "id" field that disagrees draws a warning there and is not used). Real files agree, since
// Hugging Face wrote them; one that does not would be tokenized here with other ids than there, so
// it fails, naming the token and both ids. This also keeps the ids dense: an id of 2^31 - 1 sized
// the decode table at 2^31 entries. A text given twice fails too.
void check_added_token_ids(const TokenizerSpec& spec) {
  std::unordered_map<std::string_view, int32_t> vocab;
  for (const auto& [text, id] : spec.model.vocab) vocab.emplace(text, id);
  const auto vocab_size = static_cast<int64_t>(spec.model.vocab.size());
  std::unordered_set<std::string_view> seen;
  int64_t max_id = -1;  // of the added tokens so far
  for (size_t i = 0; i < spec.added_tokens.size(); ++i) {
    const AddedToken& t = spec.added_tokens[i];
    const std::string path = JsonFields::index("added_tokens", i);
    if (!seen.insert(t.content).second) {
      kFields.fail(JsonFields::join(path, "content"), fmt::format("{:?} is given twice", t.content));
    }
    const auto in_vocab = vocab.find(t.content);
    const int64_t expected = in_vocab != vocab.end() ? in_vocab->second
                             : max_id < 0            ? vocab_size
                             : max_id >= vocab_size || vocab_size == 0 ? max_id + 1
                                                                       : vocab_size;
    if (t.id != expected) {
      kFields.fail(JsonFields::join(path, "id"),
                   fmt::format("{} for {:?}, where Hugging Face tokenizers assigns it {} (the vocabulary's id of the "
                               "same text, else the next past the vocabulary and the added tokens before it)",
                               t.id, t.content, expected));
    }
    max_id = std::max(max_id, expected);
  }
}

}  // namespace

TokenizerSpec parse_tokenizer_json(std::string_view text) {
  const json root = kFields.parse(text);
  kFields.expect_object(root, "");
  for (const char* key : {"truncation", "padding"}) {
    if (kFields.optional_member(root, "", key) != nullptr) kFields.fail(key, "must be null (not supported)");
  }
  check_normalizer(root);
  check_only_byte_level(root, "post_processor", "processors", /*allow_null=*/true);
  check_only_byte_level(root, "decoder", "decoders", /*allow_null=*/false);
  TokenizerSpec spec;
  spec.pre_tokenizer = parse_pre_tokenizer(root);
  spec.model = parse_model(root);
  spec.added_tokens = parse_added_tokens(root);
  check_added_token_ids(spec);
  return spec;
}

}  // namespace mlaserve::tokenizer
