// The GPT-2 byte-level alphabet: every byte maps to one printable code point, so that BPE
// vocabularies can be stored as text. Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to
// themselves; the 68 others (controls, space, 0x7F-0xA0, 0xAD) map to U+0100 upwards in byte
// order (space -> U+0120 'Ġ', '\n' -> U+010A 'Ċ').
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mlaserve::tokenizer::byte_level {

// The code point that stands for byte `b`.
char32_t char_of_byte(uint8_t b);

// The byte that code point `c` stands for, or -1 if `c` is not in the alphabet.
int byte_of_char(char32_t c);

// Maps raw bytes to their byte-level text (what a vocabulary entry looks like).
std::string encode(std::string_view bytes);

// Maps byte-level text back to bytes. Returns false (and leaves `out` unspecified) when some
// code point of valid UTF-8 `text` is outside the alphabet.
bool decode(std::string_view text, std::string& out);

}  // namespace mlaserve::tokenizer::byte_level
