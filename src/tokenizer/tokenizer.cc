#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) MLA_FAIL("cannot read {}: {}", path.string(), std::error_code(errno, std::generic_category()).message());
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// What one id decodes to.
struct TokenInfo {
  bool exists = false;
  bool special = false;
  int32_t added_index = -1;  // index into AddedVocabulary::tokens(), or -1
  uint32_t bytes_offset = 0;
  uint32_t bytes_length = 0;
};

}  // namespace

struct Tokenizer::Impl {
  TokenizerConfig config;
  AddedVocabulary added;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  TokenIdMap added_ids;             // added token content -> id
  std::vector<TokenInfo> infos;     // by id
  std::string bytes_arena;          // TokenInfo::bytes_* index into this
  std::optional<int32_t> bos, eos, pad;

  Impl(TokenizerSpec spec, TokenizerConfig cfg)
      : config(std::move(cfg)),
        added(std::move(spec.added_tokens)),
        pre_tokenizer(spec.pre_tokenizer),
        model(spec.model) {
    for (const AddedToken& t : added.tokens()) added_ids[t.content] = t.id;
    build_decode_table();
    bos = resolve("bos_token", config.bos_token);
    eos = resolve("eos_token", config.eos_token);
    pad = resolve("pad_token", config.pad_token);
    if (config.add_bos_token && !bos) MLA_FAIL("tokenizer_config.json: add_bos_token is true but bos_token is not set");
    if (config.add_eos_token && !eos) MLA_FAIL("tokenizer_config.json: add_eos_token is true but eos_token is not set");
  }

  std::optional<int32_t> token_to_id(std::string_view token) const {
    if (const auto it = added_ids.find(token); it != added_ids.end()) return it->second;
    return model.token_to_id(token);
  }

  std::optional<int32_t> resolve(const char* field, const std::optional<std::string>& token) const {
    if (!token) return std::nullopt;
    const std::optional<int32_t> id = token_to_id(*token);
    if (!id) MLA_FAIL("tokenizer_config.json: {} {:?} is not a token of tokenizer.json", field, *token);
    return id;
  }

  void set_bytes(int32_t id, std::string_view text, bool special) {
    TokenInfo& info = infos[static_cast<size_t>(id)];
    std::string bytes;
    if (!byte_level::decode(text, bytes)) bytes.assign(text);
    info = TokenInfo{true, special, -1, static_cast<uint32_t>(bytes_arena.size()), static_cast<uint32_t>(bytes.size())};
    bytes_arena += bytes;
  }

  void build_decode_table() {
    int32_t end = model.id_end();
    for (const AddedToken& t : added.tokens()) end = std::max(end, t.id + 1);
    infos.assign(static_cast<size_t>(end), TokenInfo{});
    for (int32_t id = 0; id < model.id_end(); ++id) {
      if (const std::string* token = model.id_to_token(id)) set_bytes(id, *token, false);
    }
    // Added tokens take precedence over the model's entry for the same id.
    for (size_t i = 0; i < added.tokens().size(); ++i) {
      const AddedToken& t = added.tokens()[i];
      set_bytes(t.id, t.content, t.special);
      infos[static_cast<size_t>(t.id)].added_index = static_cast<int32_t>(i);
    }
  }
};

Tokenizer::Tokenizer(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  return Tokenizer(std::make_unique<const Impl>(parse_tokenizer_json(tokenizer_json),
                                                parse_tokenizer_config(tokenizer_config_json)));
}

Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) MLA_FAIL("tokenizer directory {} does not exist", dir.string());
  const std::string tokenizer_json = read_file(dir / "tokenizer.json");
  TokenizerConfig config = parse_tokenizer_config(read_file(dir / "tokenizer_config.json"));
  const std::filesystem::path jinja = dir / "chat_template.jinja";
  if (!config.chat_template && std::filesystem::exists(jinja, ec)) config.chat_template = read_file(jinja);
  return Tokenizer(std::make_unique<const Impl>(parse_tokenizer_json(tokenizer_json), std::move(config)));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const size_t valid = utf8::valid_prefix_length(text);
  if (valid != text.size()) {
    MLA_FAIL("cannot encode: the text is not valid UTF-8 (byte 0x{:02X} at offset {})", static_cast<uint8_t>(text[valid]),
             valid);
  }
  const Impl& im = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens && im.config.add_bos_token) ids.push_back(*im.bos);
  im.added.split(text, [&](AddedVocabulary::Segment segment) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
      return;
    }
    im.pre_tokenizer.split(segment.text, [&](std::string_view piece) { im.model.encode(piece, ids); });
  });
  if (add_special_tokens && im.config.add_eos_token) ids.push_back(*im.eos);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (const int32_t id : ids) {
    if (!has_id(id)) MLA_FAIL("cannot decode: token id {} is not in the vocabulary (size {})", id, vocab_size());
    if (skip_special_tokens && is_special(id)) continue;
    bytes += token_bytes(id);
  }
  if (utf8::is_valid(bytes)) return bytes;
  std::string text;
  utf8::append_lossy(text, bytes);
  return text;
}

bool Tokenizer::has_id(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->infos[static_cast<size_t>(id)].exists;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  MLA_CHECK(has_id(id), "token id {} is not in the vocabulary", id);
  const TokenInfo& info = impl_->infos[static_cast<size_t>(id)];
  return std::string_view(impl_->bytes_arena).substr(info.bytes_offset, info.bytes_length);
}

bool Tokenizer::is_special(int32_t id) const { return has_id(id) && impl_->infos[static_cast<size_t>(id)].special; }

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (!has_id(id)) return std::nullopt;
  const int32_t added = impl_->infos[static_cast<size_t>(id)].added_index;
  if (added >= 0) return impl_->added.tokens()[static_cast<size_t>(added)].content;
  return *impl_->model.id_to_token(id);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->infos.size()); }

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }

const TokenizerConfig& Tokenizer::config() const { return impl_->config; }

nlohmann::ordered_json Tokenizer::template_context() const {
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  const TokenizerConfig& c = impl_->config;
  if (c.bos_token) context["bos_token"] = *c.bos_token;
  if (c.eos_token) context["eos_token"] = *c.eos_token;
  if (c.unk_token) context["unk_token"] = *c.unk_token;
  if (c.pad_token) context["pad_token"] = *c.pad_token;
  return context;
}

}  // namespace mlaserve::tokenizer
