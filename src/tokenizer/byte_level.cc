#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace mlaserve::tokenizer::byte_level {
namespace {

bool maps_to_itself(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

struct Tables {
  std::array<char32_t, 256> char_of_byte{};
  std::array<int16_t, 324> byte_of_char{};  // code points 0..323 cover the whole alphabet

  Tables() {
    byte_of_char.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = maps_to_itself(b) ? static_cast<char32_t>(b) : next++;
      char_of_byte[static_cast<size_t>(b)] = c;
      byte_of_char[c] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t char_of_byte(uint8_t b) { return tables().char_of_byte[b]; }

int byte_of_char(char32_t c) { return c < tables().byte_of_char.size() ? tables().byte_of_char[c] : -1; }

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char b : bytes) utf8::append(out, char_of_byte(static_cast<uint8_t>(b)));
  return out;
}

bool decode(std::string_view text, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < text.size()) {
    const int b = byte_of_char(utf8::decode(text, i));
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace mlaserve::tokenizer::byte_level
