// UTF-8 helpers for the tokenizer: validation, code point decoding and encoding, and the
// lossy decoding that Hugging Face's ByteLevel decoder applies to the bytes of a token
// sequence (Rust's String::from_utf8_lossy: every maximal invalid subpart becomes one U+FFFD,
// the Unicode "substitution of maximal subparts" practice).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mlaserve::tokenizer::utf8 {

// Byte length of the longest well-formed prefix of `s` (== s.size() when `s` is valid).
size_t valid_prefix_length(std::string_view s);
inline bool is_valid(std::string_view s) { return valid_prefix_length(s) == s.size(); }

// Decodes the code point that starts at s[i] and advances i past it. `s` must be valid UTF-8.
char32_t decode(std::string_view s, size_t& i);
// The code point that ends at s[end) (the last one before `end`). `s` must be valid UTF-8.
char32_t decode_before(std::string_view s, size_t end);

// Appends the UTF-8 encoding of `cp` (a Unicode scalar value).
void append(std::string& out, char32_t cp);

// Appends `bytes` decoded lossily: valid sequences verbatim, each maximal invalid subpart as
// U+FFFD. A truncated sequence at the very end counts as one maximal subpart.
void append_lossy(std::string& out, std::string_view bytes);

// Number of trailing bytes of `bytes` (0 to 3) that form a truncated but so far well-formed
// sequence: the bytes a streaming decoder must hold back, because the next bytes may complete
// the character. Everything before them decodes the same whatever follows.
size_t incomplete_suffix_length(std::string_view bytes);

// Number of code points in valid UTF-8 `s`.
size_t count_code_points(std::string_view s);

}  // namespace mlaserve::tokenizer::utf8
